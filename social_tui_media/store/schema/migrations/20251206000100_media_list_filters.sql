-- `manage_media.py list` filters by media type and creation day in the database, and streams
-- its rows a page at a time, instead of loading every row to filter them in Python.
--
-- media_list gains p_media_type and p_since. The old signature is dropped first: PostgREST
-- picks a function by its argument names, and two overloads with defaults would be ambiguous.
--
-- Its query is built from the filters actually given and planned with their values (EXECUTE),
-- so each page is an index range read: with `p IS NULL OR column = p` written for every filter,
-- one plan served every call, and each page scanned and sorted the whole table (130,000 rows:
-- 200 ms a page). Values are always bound parameters, never spliced into the text.

DROP FUNCTION IF EXISTS media_list(TEXT, TEXT, TEXT, TEXT[], TEXT, INTEGER, TEXT, INTEGER);

-- Media rows matching the filters, in (post_id, position, media_id) order, a page at a time:
-- pass the last row's key as p_after_* for the next page. p_since: rows created on or after
-- the start of that UTC day.
CREATE OR REPLACE FUNCTION media_list(p_post_id TEXT DEFAULT NULL, p_download_status TEXT DEFAULT NULL,
    p_ai_status TEXT DEFAULT NULL, p_media_type TEXT DEFAULT NULL, p_since DATE DEFAULT NULL,
    p_media_ids TEXT[] DEFAULT NULL, p_after_post_id TEXT DEFAULT NULL, p_after_position INTEGER DEFAULT NULL,
    p_after_media_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF post_media
LANGUAGE plpgsql STABLE SECURITY INVOKER AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT * FROM post_media WHERE %s ORDER BY post_id, position, media_id LIMIT $10',
        concat_ws(' AND ', 'TRUE',  -- a filter not given adds no condition (concat_ws skips NULL)
            CASE WHEN p_post_id IS NOT NULL THEN 'post_id = $1' END,
            CASE WHEN p_download_status IS NOT NULL THEN 'download_status = $2' END,
            CASE WHEN p_ai_status IS NOT NULL THEN 'media_ai_status(ai_analysis_status) = $3' END,
            CASE WHEN p_media_type IS NOT NULL THEN 'media_type = $4' END,
            CASE WHEN p_since IS NOT NULL THEN $q$created_at >= ($5::TIMESTAMP AT TIME ZONE 'UTC')$q$ END,
            CASE WHEN p_media_ids IS NOT NULL THEN 'media_id = ANY($6)' END,
            CASE WHEN p_after_post_id IS NOT NULL THEN '(post_id, position, media_id) > ($7, $8, $9)' END))
        USING p_post_id, p_download_status, p_ai_status, p_media_type, p_since, p_media_ids,
              p_after_post_id, p_after_position, p_after_media_id, p_limit;
END;
$$;

-- PostgREST caches the schema: make the new signature callable at once.
NOTIFY pgrst, 'reload schema';
