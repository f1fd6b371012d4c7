-- Search documents written once per post (the SQLite twin: sqlite.sql's post_search). The first
-- index (20251210000001) gave every media row a document repeating its post's text, so an
-- import tokenised a post's text, and wrote its words, once per media row. Now a post has one
-- document (post_search_index: its text and author, weight D) written when it is imported, and
-- a media row has one in media_search_index only when it has text of its own (an analysis,
-- extracted text): all it says, its post's text included, as before. A media row without is
-- found by its post's document. This migration moves the rows already there.

CREATE TABLE IF NOT EXISTS post_search_index (
    post_id     TEXT PRIMARY KEY REFERENCES posts (post_id) ON DELETE CASCADE,
    author      TEXT,    -- lower(author_username)
    author_name TEXT,    -- lower(author_name)
    posted_at   BIGINT,  -- posted_at_timestamp (epoch ms)
    document    TEXT NOT NULL,
    vector      TSVECTOR NOT NULL
);
ALTER TABLE post_search_index ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON post_search_index TO service_role;
    END IF;
END $$;
COMMENT ON TABLE post_search_index IS 'search document of each post (its text and author), kept current by triggers';
CREATE INDEX IF NOT EXISTS idx_post_search_vector ON post_search_index USING GIN (vector);

-- Whether a media row has text of its own, so a document of its own: the one rule of both indexes.
CREATE OR REPLACE FUNCTION media_has_own_text(p_analysis TEXT, p_extracted_text TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_analysis IS NOT NULL OR coalesce(p_extracted_text, '') <> '';
$$;

-- Every word of these documents, for correcting misspelt queries.
CREATE OR REPLACE FUNCTION media_search_add_words(p_documents TEXT[]) RETURNS VOID
LANGUAGE sql SECURITY INVOKER AS $$
    INSERT INTO media_search_words (word)
    SELECT DISTINCT w FROM unnest(p_documents) d, regexp_split_to_table(lower(d), '[^[:alnum:]]+') AS w
     WHERE length(w) BETWEEN 3 AND 40
    ON CONFLICT (word) DO NOTHING;
$$;

-- Write the search documents of these media rows: only those with text of their own have one.
CREATE OR REPLACE FUNCTION media_search_refresh(p_media_ids TEXT[]) RETURNS VOID
LANGUAGE sql SECURITY INVOKER AS $$
    DELETE FROM media_search_index i
     USING post_media m WHERE m.media_id = i.media_id AND i.media_id = ANY(p_media_ids)
                          AND (m.duplicate_of IS NOT NULL OR NOT media_has_own_text(m.ai_analysis, m.extracted_text));
    INSERT INTO media_search_index AS i (media_id, group_key, media_type, author, author_name, posted_at,
                                         document, vector)
    SELECT d.media_id, d.group_key, d.media_type, d.author_username, d.author_name, d.posted_at,
           concat_ws(E'\n', d.image_text, d.description, d.tags, d.post_text, d.author),
           setweight(to_tsvector('english', coalesce(d.image_text, '')), 'A')
           || setweight(to_tsvector('english', coalesce(d.description, '')), 'B')
           || setweight(to_tsvector('english', coalesce(d.tags, '')), 'C')
           || setweight(to_tsvector('english', concat_ws(' ', d.post_text, d.author)), 'D')
      FROM (SELECT m.media_id, media_group_key(m.media_id, m.md5_sum, m.near_group_id) AS group_key,
                   m.media_type, lower(p.author_username) AS author_username, lower(p.author_name) AS author_name,
                   p.posted_at_timestamp AS posted_at,
                   nullif(concat_ws(E'\n', m.extracted_text, media_json_text(a.j -> 'text_in_image')), '') AS image_text,
                   media_json_text(a.j -> 'description') AS description,
                   media_json_text(a.j -> 'tags') AS tags,
                   p.text_content AS post_text,
                   concat_ws(' ', p.author_username, p.author_name) AS author
              FROM post_media m
              JOIN posts p ON p.post_id = m.post_id
              LEFT JOIN LATERAL (SELECT media_analysis_json(m.ai_analysis) AS j) a ON TRUE
             WHERE m.media_id = ANY(p_media_ids) AND m.duplicate_of IS NULL
               AND media_has_own_text(m.ai_analysis, m.extracted_text)) d
    ON CONFLICT (media_id) DO UPDATE SET
        group_key = EXCLUDED.group_key, media_type = EXCLUDED.media_type, author = EXCLUDED.author,
        author_name = EXCLUDED.author_name, posted_at = EXCLUDED.posted_at, document = EXCLUDED.document,
        vector = EXCLUDED.vector;
    SELECT media_search_add_words(ARRAY(SELECT i.document FROM media_search_index i
                                         WHERE i.media_id = ANY(p_media_ids)));
$$;

-- Write the search documents of these posts.
CREATE OR REPLACE FUNCTION post_search_refresh(p_post_ids TEXT[]) RETURNS VOID
LANGUAGE sql SECURITY INVOKER AS $$
    INSERT INTO post_search_index AS s (post_id, author, author_name, posted_at, document, vector)
    SELECT p.post_id, lower(p.author_username), lower(p.author_name), p.posted_at_timestamp,
           concat_ws(E'\n', p.text_content, concat_ws(' ', p.author_username, p.author_name)),
           setweight(to_tsvector('english', concat_ws(' ', p.text_content, p.author_username, p.author_name)), 'D')
      FROM posts p WHERE p.post_id = ANY(p_post_ids)
    ON CONFLICT (post_id) DO UPDATE SET
        author = EXCLUDED.author, author_name = EXCLUDED.author_name, posted_at = EXCLUDED.posted_at,
        document = EXCLUDED.document, vector = EXCLUDED.vector;
    SELECT media_search_add_words(ARRAY(SELECT s.document FROM post_search_index s
                                         WHERE s.post_id = ANY(p_post_ids)));
$$;

CREATE OR REPLACE FUNCTION media_search_on_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
DECLARE
    own TEXT[] := ARRAY(SELECT media_id FROM new_rows WHERE media_has_own_text(ai_analysis, extracted_text));
BEGIN
    IF cardinality(own) > 0 THEN
        PERFORM media_search_refresh(own);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION post_search_on_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM post_search_refresh(ARRAY(SELECT post_id FROM new_rows));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION media_search_on_post_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM post_search_refresh(ARRAY[NEW.post_id]);
    PERFORM media_search_refresh(ARRAY(SELECT media_id FROM post_media WHERE post_id = NEW.post_id));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS post_search_insert ON posts;
CREATE TRIGGER post_search_insert AFTER INSERT ON posts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION post_search_on_insert();

-- The rows already there: documents of media without text of their own go, every post gets one.
DELETE FROM media_search_index i
 USING post_media m WHERE m.media_id = i.media_id AND NOT media_has_own_text(m.ai_analysis, m.extracted_text);
SELECT post_search_refresh(ARRAY(SELECT p.post_id FROM posts p
                                  WHERE NOT EXISTS (SELECT 1 FROM post_search_index s WHERE s.post_id = p.post_id)));

-- The best-ranked copy of each picture matching q and the filters, the best pictures first:
-- media with a document of their own by it, the others by their post's.
CREATE OR REPLACE FUNCTION media_search_top(p_query TSQUERY, p_weights "char"[], p_media_type TEXT, p_author TEXT,
    p_since_ms BIGINT, p_limit INTEGER)
RETURNS TABLE (group_key TEXT, media_id TEXT, rank REAL)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    WITH hits AS (
        SELECT i.group_key, i.media_id, ts_rank(i.vector, p_query) AS rank FROM media_search_index i
         WHERE i.vector @@ p_query
           AND (p_weights IS NULL OR ts_filter(i.vector, p_weights) @@ p_query)
           AND (p_media_type IS NULL OR i.media_type = p_media_type)
           AND (p_author IS NULL OR i.author = p_author OR i.author_name = p_author)
           AND (p_since_ms IS NULL OR i.posted_at >= p_since_ms)
        UNION ALL
        SELECT media_group_key(m.media_id, m.md5_sum, m.near_group_id), m.media_id, s.rank
          FROM (SELECT s.post_id, ts_rank(s.vector, p_query) AS rank FROM post_search_index s
                 WHERE s.vector @@ p_query
                   AND (p_weights IS NULL OR ts_filter(s.vector, p_weights) @@ p_query)
                   AND (p_author IS NULL OR s.author = p_author OR s.author_name = p_author)
                   AND (p_since_ms IS NULL OR s.posted_at >= p_since_ms)) s
          JOIN post_media m ON m.post_id = s.post_id
         WHERE m.duplicate_of IS NULL AND NOT media_has_own_text(m.ai_analysis, m.extracted_text)
           AND (p_media_type IS NULL OR m.media_type = p_media_type)
    ), best AS (
        SELECT DISTINCT ON (hits.group_key) hits.* FROM hits ORDER BY hits.group_key, hits.rank DESC, hits.media_id
    )
    SELECT * FROM best ORDER BY best.rank DESC, best.media_id LIMIT p_limit;
$$;

-- The hits a search shows (see 20251210000001): every copy of the picture with its post, the
-- earliest post first, and a snippet of the document the best copy was found by.
CREATE OR REPLACE FUNCTION media_search_present(p_keys TEXT[], p_ids TEXT[], p_ranks REAL[], p_queries TSQUERY[],
    p_fuzzy BOOLEAN)
RETURNS TABLE (group_key TEXT, rank REAL, snippet TEXT, media_id TEXT, media_type TEXT, local_file_path TEXT,
               media_url TEXT, media_ids TEXT[], posts JSONB, fuzzy BOOLEAN)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT top.gkey, top.rank,
           ts_headline('english', replace(coalesce(i.document, s.document), E'\n', ' · '), top.q,
                       'StartSel=[, StopSel=], MaxWords=18, MinWords=6, MaxFragments=2, FragmentDelimiter=" … "'),
           top.media_id, m.media_type, m.local_file_path, m.media_url,
           members.media_ids, members.posts, p_fuzzy
      FROM unnest(p_keys, p_ids, p_ranks, p_queries) WITH ORDINALITY AS top(gkey, media_id, rank, q, n)
      JOIN post_media m ON m.media_id = top.media_id
      LEFT JOIN media_search_index i ON i.media_id = top.media_id
      LEFT JOIN post_search_index s ON s.post_id = m.post_id
      CROSS JOIN LATERAL (
          SELECT array_agg(o.media_id ORDER BY p.posted_at_timestamp, o.media_id) AS media_ids,
                 jsonb_agg(jsonb_build_object('post_id', o.post_id, 'post_url', p.url, 'author', p.author_username,
                                              'posted_at_timestamp', p.posted_at_timestamp, 'media_id', o.media_id,
                                              'local_file_path', o.local_file_path)
                           ORDER BY p.posted_at_timestamp, o.media_id) AS posts
            FROM post_media o
            JOIN posts p ON p.post_id = o.post_id
           WHERE o.duplicate_of IS NULL
             AND ((top.gkey LIKE 'md5:%' AND o.md5_sum = substr(top.gkey, 5) AND o.near_group_id IS NULL)
                  OR (top.gkey LIKE 'id:%' AND o.media_id = substr(top.gkey, 4))
                  OR o.near_group_id = top.gkey)) members
     ORDER BY top.n;
$$;

CREATE OR REPLACE FUNCTION media_search(p_terms JSONB, p_media_type TEXT DEFAULT NULL, p_author TEXT DEFAULT NULL,
    p_since_ms BIGINT DEFAULT NULL, p_field TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 20)
RETURNS TABLE (group_key TEXT, rank REAL, snippet TEXT, media_id TEXT, media_type TEXT, local_file_path TEXT,
               media_url TEXT, media_ids TEXT[], posts JSONB, fuzzy BOOLEAN)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    q TSQUERY := media_search_query(p_terms);
    weights "char"[] := CASE p_field WHEN 'text' THEN '{a}' WHEN 'description' THEN '{b}' WHEN 'tags' THEN '{c}'
                                     WHEN 'post' THEN '{d}' END;
    v_author TEXT := lower(p_author);
    positives TSQUERY;
    negatives TSQUERY;
    corrected TSQUERY;
    is_fuzzy BOOLEAN := FALSE;
    keys TEXT[];
    ids TEXT[];
    ranks REAL[];
BEGIN
    IF q IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(t.group_key ORDER BY t.rank DESC, t.media_id), array_agg(t.media_id ORDER BY t.rank DESC, t.media_id),
           array_agg(t.rank ORDER BY t.rank DESC, t.media_id) INTO keys, ids, ranks
      FROM media_search_top(q, weights, p_media_type, v_author, p_since_ms, p_limit) t;
    IF ids IS NULL THEN
        positives := media_search_query(
            (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(p_terms) e
              WHERE NOT coalesce((e->>'negated')::boolean, FALSE)));
        IF positives IS NOT NULL AND NOT EXISTS (SELECT 1 FROM media_search_index i WHERE i.vector @@ positives)
           AND NOT EXISTS (SELECT 1 FROM post_search_index s WHERE s.vector @@ positives) THEN
            corrected := media_search_corrected(p_terms);
        END IF;
    END IF;
    IF corrected IS NOT NULL THEN
        negatives := media_search_query(
            (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(p_terms) e
              WHERE coalesce((e->>'negated')::boolean, FALSE)));
        q := CASE WHEN negatives IS NULL THEN corrected ELSE corrected && negatives END;
        is_fuzzy := TRUE;
        SELECT array_agg(t.group_key ORDER BY t.rank DESC, t.media_id), array_agg(t.media_id ORDER BY t.rank DESC, t.media_id),
           array_agg(t.rank ORDER BY t.rank DESC, t.media_id) INTO keys, ids, ranks
          FROM media_search_top(q, weights, p_media_type, v_author, p_since_ms, p_limit) t;
    END IF;
    RETURN QUERY SELECT * FROM media_search_present(keys, ids, ranks, array_fill(q, ARRAY[coalesce(cardinality(ids), 0)]),
                                                    is_fuzzy);
END;
$$;

NOTIFY pgrst, 'reload schema';
