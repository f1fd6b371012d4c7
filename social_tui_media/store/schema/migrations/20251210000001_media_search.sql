-- `manage_media.py search`: one ranked search over everything a post's media says, native to
-- PostgreSQL. Each media row has one document in media_search_index: the text in the media
-- (extracted text and the analysis' text_in_image, weight A), the analysis' description (B) and
-- tags (C), the post's text and author (D), as a tsvector (GIN, english stemming) and as plain
-- text (GIN trigram index, so a misspelt word still finds its document). Triggers keep it
-- current as rows are imported, analysed and extracted and as posts are re-scraped; this
-- migration builds it for the rows already there.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS media_search_index (
    media_id TEXT PRIMARY KEY REFERENCES post_media (media_id) ON DELETE CASCADE,
    document TEXT NOT NULL,
    vector   TSVECTOR NOT NULL
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
CREATE INDEX IF NOT EXISTS idx_media_search_trgm ON media_search_index USING GIN (document gin_trgm_ops);

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

-- Write the search documents of these media rows.
CREATE OR REPLACE FUNCTION media_search_refresh(p_media_ids TEXT[]) RETURNS VOID
LANGUAGE sql SECURITY INVOKER AS $$
    INSERT INTO media_search_index AS i (media_id, document, vector)
    SELECT d.media_id,
           concat_ws(E'\n', d.image_text, d.description, d.tags, d.post_text, d.author),
           setweight(to_tsvector('english', coalesce(d.image_text, '')), 'A')
           || setweight(to_tsvector('english', coalesce(d.description, '')), 'B')
           || setweight(to_tsvector('english', coalesce(d.tags, '')), 'C')
           || setweight(to_tsvector('english', concat_ws(' ', d.post_text, d.author)), 'D')
      FROM (SELECT m.media_id,
                   nullif(concat_ws(E'\n', m.extracted_text, media_json_text(a.j -> 'text_in_image')), '') AS image_text,
                   media_json_text(a.j -> 'description') AS description,
                   media_json_text(a.j -> 'tags') AS tags,
                   p.text_content AS post_text,
                   concat_ws(' ', p.author_username, p.author_name) AS author
              FROM post_media m
              JOIN posts p ON p.post_id = m.post_id
              LEFT JOIN LATERAL (SELECT media_analysis_json(m.ai_analysis) AS j) a ON TRUE
             WHERE m.media_id = ANY(p_media_ids)) d
    ON CONFLICT (media_id) DO UPDATE SET document = EXCLUDED.document, vector = EXCLUDED.vector;
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
CREATE TRIGGER media_search_update AFTER UPDATE OF ai_analysis, extracted_text, post_id ON post_media
    FOR EACH ROW
    WHEN (OLD.ai_analysis IS DISTINCT FROM NEW.ai_analysis OR OLD.extracted_text IS DISTINCT FROM NEW.extracted_text
          OR OLD.post_id IS DISTINCT FROM NEW.post_id)
    EXECUTE FUNCTION media_search_on_update();
DROP TRIGGER IF EXISTS media_search_post_update ON posts;
CREATE TRIGGER media_search_post_update AFTER UPDATE OF text_content, author_username, author_name ON posts
    FOR EACH ROW
    WHEN (OLD.text_content IS DISTINCT FROM NEW.text_content
          OR OLD.author_username IS DISTINCT FROM NEW.author_username
          OR OLD.author_name IS DISTINCT FROM NEW.author_name)
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

-- One hit per picture for the matched rows (ids, ranks and the query to highlight each with):
-- identical bytes and confirmed near duplicates collapse into one hit listing every post that
-- shares the picture, the earliest first; the best-ranked member gives the snippet and file.
CREATE OR REPLACE FUNCTION media_search_collapse(p_ids TEXT[], p_ranks REAL[], p_queries TSQUERY[],
    p_limit INTEGER, p_fuzzy BOOLEAN)
RETURNS TABLE (group_key TEXT, rank REAL, snippet TEXT, media_id TEXT, media_type TEXT, local_file_path TEXT,
               media_url TEXT, media_ids TEXT[], posts JSONB, fuzzy BOOLEAN)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    WITH hits AS (
        SELECT h.media_id, h.rank, h.q, coalesce(m.near_group_id, 'md5:' || m.md5_sum, 'id:' || m.media_id) AS gkey
          FROM unnest(p_ids, p_ranks, p_queries) AS h(media_id, rank, q)
          JOIN post_media m ON m.media_id = h.media_id
    ), best AS (
        SELECT DISTINCT ON (hits.gkey) hits.gkey, hits.media_id, hits.rank, hits.q
          FROM hits ORDER BY hits.gkey, hits.rank DESC, hits.media_id
    ), top AS (
        SELECT * FROM best ORDER BY best.rank DESC, best.media_id LIMIT p_limit
    )
    SELECT top.gkey, top.rank,
           ts_headline('english', replace(i.document, E'\n', ' · '), top.q,
                       'StartSel=[, StopSel=], MaxWords=18, MinWords=6, MaxFragments=2, FragmentDelimiter=" … "'),
           top.media_id, m.media_type, m.local_file_path, m.media_url,
           members.media_ids, members.posts, p_fuzzy
      FROM top
      JOIN post_media m ON m.media_id = top.media_id
      JOIN media_search_index i ON i.media_id = top.media_id
      CROSS JOIN LATERAL (
          SELECT array_agg(o.media_id ORDER BY p.posted_at_timestamp, o.media_id) AS media_ids,
                 jsonb_agg(jsonb_build_object('post_id', p.post_id, 'post_url', p.url, 'author', p.author_username,
                                              'posted_at_timestamp', p.posted_at_timestamp, 'media_id', o.media_id,
                                              'local_file_path', o.local_file_path)
                           ORDER BY p.posted_at_timestamp, o.media_id) AS posts
            FROM (SELECT * FROM post_media c  -- each arm an index read; the others are skipped
                   WHERE top.gkey LIKE 'md5:%' AND c.md5_sum = substr(top.gkey, 5) AND c.near_group_id IS NULL
                  UNION ALL
                  SELECT * FROM post_media c WHERE top.gkey LIKE 'id:%' AND c.media_id = top.media_id
                  UNION ALL
                  SELECT * FROM post_media c
                   WHERE top.gkey NOT LIKE 'md5:%' AND top.gkey NOT LIKE 'id:%' AND c.near_group_id = top.gkey) o
            JOIN posts p ON p.post_id = o.post_id
           WHERE o.duplicate_of IS NULL) members
     ORDER BY top.rank DESC, top.media_id;
$$;

-- The ranked search: media matching p_terms and the filters, one hit per picture (above). When
-- no document holds the positive words at all, each is looked up by trigram similarity instead
-- (a misspelling still finds its word; negations still hold); those hits say fuzzy. p_field: text (in the media),
-- description, tags or post (its text and author).
CREATE OR REPLACE FUNCTION media_search(p_terms JSONB, p_media_type TEXT DEFAULT NULL, p_author TEXT DEFAULT NULL,
    p_since_ms BIGINT DEFAULT NULL, p_field TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 20)
RETURNS TABLE (group_key TEXT, rank REAL, snippet TEXT, media_id TEXT, media_type TEXT, local_file_path TEXT,
               media_url TEXT, media_ids TEXT[], posts JSONB, fuzzy BOOLEAN)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    q TSQUERY := media_search_query(p_terms);
    weights "char"[] := CASE p_field WHEN 'text' THEN '{a}' WHEN 'description' THEN '{b}' WHEN 'tags' THEN '{c}'
                                     WHEN 'post' THEN '{d}' END;
    words TEXT[] := ARRAY(SELECT lower(r.text) FROM jsonb_to_recordset(p_terms) AS r(text TEXT, negated BOOLEAN)
                           WHERE NOT coalesce(r.negated, FALSE));
    ids TEXT[];
    ranks REAL[];
    queries TSQUERY[];
    positives TSQUERY;
    negatives TSQUERY;
BEGIN
    IF q IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(i.media_id), array_agg(ts_rank_cd(i.vector, q)), array_agg(q)
      INTO ids, ranks, queries
      FROM media_search_index i
      JOIN post_media m ON m.media_id = i.media_id
      JOIN posts p ON p.post_id = m.post_id
     WHERE i.vector @@ q
       AND (weights IS NULL OR ts_filter(i.vector, weights) @@ q)
       AND m.duplicate_of IS NULL
       AND (p_media_type IS NULL OR m.media_type = p_media_type)
       AND (p_author IS NULL OR lower(p.author_username) = lower(p_author) OR lower(p.author_name) = lower(p_author))
       AND (p_since_ms IS NULL OR p.posted_at_timestamp >= p_since_ms);
    positives := media_search_query(
        (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(p_terms) e
          WHERE NOT coalesce((e->>'negated')::boolean, FALSE)));
    negatives := media_search_query(
        (SELECT coalesce(jsonb_agg(e), '[]'::jsonb) FROM jsonb_array_elements(p_terms) e
          WHERE coalesce((e->>'negated')::boolean, FALSE)));
    IF ids IS NOT NULL OR cardinality(words) = 0
       OR EXISTS (SELECT 1 FROM media_search_index i WHERE i.vector @@ positives) THEN
        RETURN QUERY SELECT * FROM media_search_collapse(ids, ranks, queries, p_limit, FALSE);
        RETURN;
    END IF;
    PERFORM set_config('pg_trgm.word_similarity_threshold', '0.5', TRUE);
    SELECT array_agg(f.media_id), array_agg(f.rank), array_agg(f.q) INTO ids, ranks, queries
      FROM (SELECT i.media_id,
                   ((SELECT sum(word_similarity(w, i.document)) FROM unnest(words) w) / 10)::real AS rank,
                   (SELECT to_tsquery('english', string_agg(quote_literal(best.word), ' & '))
                      FROM unnest(words) w,
                           LATERAL (SELECT x.word FROM regexp_split_to_table(lower(i.document), '[^[:alnum:]]+') x(word)
                                     WHERE x.word <> '' ORDER BY similarity(w, x.word) DESC LIMIT 1) best) AS q
              FROM media_search_index i
              JOIN post_media m ON m.media_id = i.media_id
              JOIN posts p ON p.post_id = m.post_id
             WHERE i.document %> words[1] AND i.document %> ALL (words)
               AND (negatives IS NULL OR i.vector @@ negatives)
               AND m.duplicate_of IS NULL
               AND (p_media_type IS NULL OR m.media_type = p_media_type)
               AND (p_author IS NULL OR lower(p.author_username) = lower(p_author)
                    OR lower(p.author_name) = lower(p_author))
               AND (p_since_ms IS NULL OR p.posted_at_timestamp >= p_since_ms)) f;
    RETURN QUERY SELECT * FROM media_search_collapse(ids, ranks, queries, p_limit, TRUE);
END;
$$;

NOTIFY pgrst, 'reload schema';
