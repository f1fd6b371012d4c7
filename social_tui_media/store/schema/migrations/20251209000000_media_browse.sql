-- The media browser and the gallery export read media rows with their post (author, date, text,
-- URL) a page at a time, newest post first and a post's media in order: one function, so a page
-- is one query (no query per row), over psycopg and PostgREST's /rpc/ alike.
--
-- Keyset paging: pass the last row's (post_posted_at, post_id, position, media_id) as p_after_*
-- for the next page. The first page of 100,000 rows is an index range read on posts, newest
-- first (idx_posts_browse_order), never a sort of the whole table.
--
-- p_text: a substring, any case, of the analysis, the post's text or its author (plain filters
-- until the search has its own index); p_author: of the author's username or name.
-- % and _ in them are literal. Values are bound parameters, never spliced into the text.

CREATE INDEX IF NOT EXISTS idx_posts_browse_order ON posts (posted_at_timestamp DESC, post_id DESC);

CREATE OR REPLACE FUNCTION media_like_pattern(p_text TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT '%' || replace(replace(replace(p_text, '\', '\\'), '%', '\%'), '_', '\_') || '%';
$$;

CREATE OR REPLACE FUNCTION media_browse(p_text TEXT DEFAULT NULL, p_post_id TEXT DEFAULT NULL,
    p_author TEXT DEFAULT NULL, p_media_type TEXT DEFAULT NULL, p_after_posted_at BIGINT DEFAULT NULL,
    p_after_post_id TEXT DEFAULT NULL, p_after_position INTEGER DEFAULT NULL,
    p_after_media_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000, p_media_ids TEXT[] DEFAULT NULL)
RETURNS TABLE (media_id TEXT, post_id TEXT, media_type TEXT, media_url TEXT, local_file_path TEXT,
    file_size BIGINT, mime_type TEXT, width INTEGER, height INTEGER, md5_sum TEXT, download_status TEXT,
    download_error TEXT, ai_analysis_status TEXT, ai_analysis TEXT, ai_analyzed_at TIMESTAMPTZ,
    archive_url TEXT, evicted_at TIMESTAMPTZ, "position" INTEGER, slot_role TEXT, created_at TIMESTAMPTZ,
    extracted_text TEXT, post_author_username TEXT, post_author_name TEXT, post_url TEXT, post_text TEXT, post_posted_at BIGINT)
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT m.media_id, m.post_id, m.media_type, m.media_url, m.local_file_path, m.file_size::BIGINT,
                m.mime_type, m.width::INTEGER, m.height::INTEGER, m.md5_sum, m.download_status, m.download_error,
                media_ai_status(m.ai_analysis_status), m.ai_analysis::TEXT, m.ai_analyzed_at, m.archive_url,
                m.evicted_at, m.position, m.slot_role, m.created_at, m.extracted_text, p.author_username, p.author_name, p.url,
                p.text_content, p.posted_at_timestamp
           FROM posts p JOIN post_media m ON m.post_id = p.post_id
          WHERE %s
          ORDER BY p.posted_at_timestamp DESC, p.post_id DESC, m.position, m.media_id
          LIMIT $9',
        concat_ws(' AND ', 'TRUE',  -- a filter not given adds no condition (concat_ws skips NULL)
            CASE WHEN p_text IS NOT NULL THEN
                $q$(m.ai_analysis::TEXT ILIKE media_like_pattern($1) OR p.text_content ILIKE media_like_pattern($1)
                    OR p.author_username ILIKE media_like_pattern($1)
                    OR p.author_name ILIKE media_like_pattern($1))$q$ END,
            CASE WHEN p_post_id IS NOT NULL THEN 'p.post_id = $2' END,
            CASE WHEN p_author IS NOT NULL THEN
                $q$(p.author_username ILIKE media_like_pattern($3) OR p.author_name ILIKE media_like_pattern($3))$q$ END,
            CASE WHEN p_media_type IS NOT NULL THEN 'm.media_type = $4' END,
            CASE WHEN p_media_ids IS NOT NULL THEN 'm.media_id = ANY ($10)' END,
            CASE WHEN p_after_post_id IS NOT NULL THEN
                $q$p.posted_at_timestamp <= $5
                   AND (p.posted_at_timestamp < $5
                        OR (p.posted_at_timestamp = $5
                            AND (p.post_id < $6 OR (p.post_id = $6 AND (m.position, m.media_id) > ($7, $8)))))$q$
            END))
        USING p_text, p_post_id, p_author, p_media_type, p_after_posted_at, p_after_post_id,
              p_after_position, p_after_media_id, p_limit, p_media_ids;
END;
$$;

-- PostgREST caches the schema: make the new function callable at once.
NOTIFY pgrst, 'reload schema';
