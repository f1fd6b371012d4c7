-- `manage_media.py search`: one ranked search over everything a post's media says, native to
-- PostgreSQL. Each media row has one document in media_search_index: the text in the media
-- (extracted text and the analysis' text_in_image, weight A), the analysis' description (B) and
-- tags (C), the post's text and author (D), as a tsvector (GIN, english stemming); every word
-- of the documents is in media_search_words (GIN trigram index), so a misspelt word is corrected
-- to the words the documents hold. Triggers keep it
-- current as rows are imported, analysed and extracted and as posts are re-scraped; this
-- migration builds it for the rows already there. The filters (type, author, posting time) and
-- the picture a row holds (group_key: its near-duplicate group, else its bytes, else itself) are
-- kept beside the document, so a search ranks and collapses without reading post_media or posts;
-- only the hits it shows are read there. Rows marked as a second copy of a slot are not indexed.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS media_search_index (
    media_id    TEXT PRIMARY KEY REFERENCES post_media (media_id) ON DELETE CASCADE,
    group_key   TEXT NOT NULL,
    media_type  TEXT,
    author      TEXT,    -- lower(author_username)
    author_name TEXT,    -- lower(author_name)
    posted_at   BIGINT,  -- posts.posted_at_timestamp (epoch ms)
    document    TEXT NOT NULL,
    vector      TSVECTOR NOT NULL
);
ALTER TABLE media_search_index ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON media_search_index TO service_role;
    END IF;
END $$;
COMMENT ON TABLE media_search_index IS 'search document of each post_media row, kept current by triggers';

CREATE INDEX IF NOT EXISTS idx_media_search_vector ON media_search_index USING GIN (vector);

CREATE TABLE IF NOT EXISTS media_search_words (word TEXT PRIMARY KEY);
ALTER TABLE media_search_words ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON media_search_words TO service_role;
    END IF;
END $$;
COMMENT ON TABLE media_search_words IS 'every word of the search documents, for correcting misspelt queries';
CREATE INDEX IF NOT EXISTS idx_media_search_words_trgm ON media_search_words USING GIN (word gin_trgm_ops);
CREATE INDEX IF NOT EXISTS idx_media_search_group ON media_search_index (group_key);

-- The analysis as JSON, whatever older writers stored (NULL, text that is not JSON).
CREATE OR REPLACE FUNCTION media_analysis_json(p_analysis TEXT) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN j ELSE jsonb_build_object('description', p_analysis) END
      FROM (SELECT social_tui_try_jsonb(p_analysis) AS j) s
     WHERE p_analysis IS NOT NULL;
$$;

-- A JSON value (string, array of strings, anything) as plain text.
CREATE OR REPLACE FUNCTION media_json_text(p_value JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(p_value)
               WHEN 'string' THEN p_value #>> '{}'
               WHEN 'array' THEN (SELECT string_agg(e #>> '{}', ' ') FROM jsonb_array_elements(p_value) e)
               WHEN 'null' THEN NULL
               ELSE p_value::text END;
$$;

-- The picture a row holds: its confirmed near-duplicate group, else its bytes, else itself.
CREATE OR REPLACE FUNCTION media_group_key(p_media_id TEXT, p_md5_sum TEXT, p_near_group_id TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_near_group_id, 'md5:' || p_md5_sum, 'id:' || p_media_id);
$$;

-- Write the search documents of these media rows.
CREATE OR REPLACE FUNCTION media_search_refresh(p_media_ids TEXT[]) RETURNS VOID
LANGUAGE sql SECURITY INVOKER AS $$
    DELETE FROM media_search_index i
     USING post_media m WHERE m.media_id = i.media_id AND i.media_id = ANY(p_media_ids)
                          AND m.duplicate_of IS NOT NULL;
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
             WHERE m.media_id = ANY(p_media_ids) AND m.duplicate_of IS NULL) d
    ON CONFLICT (media_id) DO UPDATE SET
        group_key = EXCLUDED.group_key, media_type = EXCLUDED.media_type, author = EXCLUDED.author,
        author_name = EXCLUDED.author_name, posted_at = EXCLUDED.posted_at, document = EXCLUDED.document,
        vector = EXCLUDED.vector;
    INSERT INTO media_search_words (word)
    SELECT DISTINCT w FROM media_search_index i,
                           regexp_split_to_table(lower(i.document), '[^[:alnum:]]+') AS w
     WHERE i.media_id = ANY(p_media_ids) AND length(w) BETWEEN 3 AND 40
    ON CONFLICT (word) DO NOTHING;
$$;

CREATE OR REPLACE FUNCTION media_search_on_insert() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM media_search_refresh(ARRAY(SELECT media_id FROM new_rows));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION media_search_on_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM media_search_refresh(ARRAY[NEW.media_id]);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION media_search_on_post_update() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM media_search_refresh(ARRAY(SELECT media_id FROM post_media WHERE post_id = NEW.post_id));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS media_search_insert ON post_media;
CREATE TRIGGER media_search_insert AFTER INSERT ON post_media
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION media_search_on_insert();
DROP TRIGGER IF EXISTS media_search_update ON post_media;
CREATE TRIGGER media_search_update
    AFTER UPDATE OF ai_analysis, extracted_text, post_id, md5_sum, near_group_id, media_type, duplicate_of
    ON post_media FOR EACH ROW
    WHEN (OLD.ai_analysis IS DISTINCT FROM NEW.ai_analysis OR OLD.extracted_text IS DISTINCT FROM NEW.extracted_text
          OR OLD.post_id IS DISTINCT FROM NEW.post_id OR OLD.md5_sum IS DISTINCT FROM NEW.md5_sum
          OR OLD.near_group_id IS DISTINCT FROM NEW.near_group_id OR OLD.media_type IS DISTINCT FROM NEW.media_type
          OR OLD.duplicate_of IS DISTINCT FROM NEW.duplicate_of)
    EXECUTE FUNCTION media_search_on_update();
DROP TRIGGER IF EXISTS media_search_post_update ON posts;
CREATE TRIGGER media_search_post_update
    AFTER UPDATE OF text_content, author_username, author_name, posted_at_timestamp ON posts
    FOR EACH ROW
    WHEN (OLD.text_content IS DISTINCT FROM NEW.text_content
          OR OLD.author_username IS DISTINCT FROM NEW.author_username
          OR OLD.author_name IS DISTINCT FROM NEW.author_name
          OR OLD.posted_at_timestamp IS DISTINCT FROM NEW.posted_at_timestamp)
    EXECUTE FUNCTION media_search_on_post_update();

-- The rows already there.
SELECT media_search_refresh(ARRAY(SELECT m.media_id FROM post_media m
                                   WHERE NOT EXISTS (SELECT 1 FROM media_search_index i
                                                      WHERE i.media_id = m.media_id)));

-- A search's terms (parsed by the caller: [{text, phrase, prefix, negated}]) as one tsquery:
-- every positive term must match, no negated one may; phrases keep their word order, a prefix
-- term matches any word it starts (stemmed, as the document is).
CREATE OR REPLACE FUNCTION media_search_query(p_terms JSONB) RETURNS TSQUERY
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t RECORD;
    q TSQUERY;
    term TSQUERY;
    word TEXT;
BEGIN
    FOR t IN SELECT * FROM jsonb_to_recordset(p_terms) AS r(text TEXT, phrase BOOLEAN, prefix BOOLEAN, negated BOOLEAN)
    LOOP
        IF coalesce(t.prefix, FALSE) THEN
            word := lower(regexp_replace(t.text, '[^[:alnum:]]+', '', 'g'));
            term := CASE WHEN word = '' THEN NULL ELSE to_tsquery('simple', word || ':*') END;
        ELSIF coalesce(t.phrase, FALSE) THEN
            term := phraseto_tsquery('english', t.text);
        ELSE
            term := plainto_tsquery('english', t.text);
        END IF;
        CONTINUE WHEN term IS NULL OR numnode(term) = 0;
        IF coalesce(t.negated, FALSE) THEN
            term := !! term;
        END IF;
        q := CASE WHEN q IS NULL THEN term ELSE q && term END;
    END LOOP;
    RETURN q;
END;
$$;

-- The hits a search shows, already one per picture and ranked (group keys, best copies, ranks
-- and the query to highlight each with): every copy of the picture with its post, the earliest
-- post first, and a snippet of the best copy's document showing why it matched.
CREATE OR REPLACE FUNCTION media_search_present(p_keys TEXT[], p_ids TEXT[], p_ranks REAL[], p_queries TSQUERY[],
    p_fuzzy BOOLEAN)
RETURNS TABLE (group_key TEXT, rank REAL, snippet TEXT, media_id TEXT, media_type TEXT, local_file_path TEXT,
               media_url TEXT, media_ids TEXT[], posts JSONB, fuzzy BOOLEAN)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT top.gkey, top.rank,
           ts_headline('english', replace(i.document, E'\n', ' · '), top.q,
                       'StartSel=[, StopSel=], MaxWords=18, MinWords=6, MaxFragments=2, FragmentDelimiter=" … "'),
           top.media_id, m.media_type, m.local_file_path, m.media_url,
           members.media_ids, members.posts, p_fuzzy
      FROM unnest(p_keys, p_ids, p_ranks, p_queries) WITH ORDINALITY AS top(gkey, media_id, rank, q, n)
      JOIN post_media m ON m.media_id = top.media_id
      JOIN media_search_index i ON i.media_id = top.media_id
      CROSS JOIN LATERAL (
          SELECT array_agg(c.media_id ORDER BY c.posted_at, c.media_id) AS media_ids,
                 jsonb_agg(jsonb_build_object('post_id', o.post_id, 'post_url', p.url, 'author', p.author_username,
                                              'posted_at_timestamp', p.posted_at_timestamp, 'media_id', o.media_id,
                                              'local_file_path', o.local_file_path)
                           ORDER BY c.posted_at, c.media_id) AS posts
            FROM media_search_index c
            JOIN post_media o ON o.media_id = c.media_id
            JOIN posts p ON p.post_id = o.post_id
           WHERE c.group_key = top.gkey) members
     ORDER BY top.n;
$$;

-- The best-ranked copy of each picture matching q and the filters, the best pictures first.
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
    ), best AS (
        SELECT DISTINCT ON (hits.group_key) hits.* FROM hits ORDER BY hits.group_key, hits.rank DESC, hits.media_id
    )
    SELECT * FROM best ORDER BY best.rank DESC, best.media_id LIMIT p_limit;
$$;

-- A query's positive words corrected to the documents' own words: each word becomes "any of
-- the three indexed words most like it" (trigram similarity); NULL when a word has none.
CREATE OR REPLACE FUNCTION media_search_corrected(p_terms JSONB) RETURNS TSQUERY
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t RECORD;
    q TSQUERY;
    alternatives TSQUERY;
BEGIN
    FOR t IN SELECT * FROM jsonb_to_recordset(p_terms) AS r(text TEXT, negated BOOLEAN)
              WHERE NOT coalesce(r.negated, FALSE)
    LOOP
        SELECT tsquery_or_agg FROM (
            SELECT string_agg(format('(%s)', plainto_tsquery('english', near.word)::text), ' | ') AS tsquery_or_agg
              FROM (SELECT w.word FROM media_search_words w, regexp_split_to_table(lower(t.text), '\s+') part
                     WHERE w.word % part ORDER BY similarity(w.word, part) DESC LIMIT 3) near) s
          INTO alternatives;
        IF alternatives IS NULL THEN
            RETURN NULL;
        END IF;
        q := CASE WHEN q IS NULL THEN alternatives ELSE q && alternatives END;
    END LOOP;
    RETURN q;
END;
$$;

-- The ranked search: media matching p_terms and the filters, one hit per picture (identical
-- bytes and confirmed near duplicates collapse into one hit listing every post sharing it, the
-- earliest first). When no document holds the positive words at all, each is corrected to the
-- indexed words most like it (a misspelling still finds its word; negations still hold); those
-- hits say fuzzy. p_field: text (in the media), description, tags or post (its text and author).
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
        IF positives IS NOT NULL AND NOT EXISTS (SELECT 1 FROM media_search_index i WHERE i.vector @@ positives) THEN
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
