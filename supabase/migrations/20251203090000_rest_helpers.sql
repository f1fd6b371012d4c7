-- What the Supabase REST back end (supabase-py over PostgREST) needs beyond the pipeline
-- functions: one request per operation that has no single PostgREST call.
--   * media_denied_table(): which table this role cannot use. Row-level security with no
--     policies makes selects come back empty and updates touch nothing, without an error,
--     so a key without rights must be detected up front.
--   * media_counts(): the stats aggregates (PostgREST has no GROUP BY by default).
--   * media_update(): set columns of one row and append an event in one transaction.
-- All SECURITY INVOKER: they run with the caller's rights, so RLS still applies.

-- The first table of the store this role cannot fully use (a missing grant, or row-level
-- security applying to it), or NULL when the role may read and write them all.
CREATE OR REPLACE FUNCTION media_denied_table() RETURNS TEXT
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT t.name
      FROM unnest(ARRAY['post_media', 'posts', 'download_runs', 'data_downloads'])
           WITH ORDINALITY AS t(name, n)
     WHERE NOT (has_table_privilege(t.name, 'SELECT') AND has_table_privilege(t.name, 'INSERT')
                AND has_table_privilege(t.name, 'UPDATE'))
        OR row_security_active(t.name)
     ORDER BY t.n
     LIMIT 1;
$$;

-- The numbers behind `manage_media.py stats`, as one JSON object.
CREATE OR REPLACE FUNCTION media_counts() RETURNS JSONB
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT jsonb_build_object(
        'media_total', count(*),
        'archived', count(archive_url),
        'ai_cost_usd', coalesce(sum(ai_cost_usd), 0),
        'ai_prompt_tokens', coalesce(sum(ai_prompt_tokens), 0),
        'ai_completion_tokens', coalesce(sum(ai_completion_tokens), 0),
        'evicted', count(evicted_at),
        'expiring_48h', count(*) FILTER (WHERE download_status <> 'downloaded'
                                           AND url_expires_at >= NOW()
                                           AND url_expires_at < NOW() + INTERVAL '48 hours'),
        'posts_total', (SELECT count(*) FROM posts),
        'by_download_status', (SELECT coalesce(jsonb_object_agg(s.k, s.n), '{}'::jsonb)
                                 FROM (SELECT download_status AS k, count(*) AS n
                                         FROM post_media GROUP BY 1) s),
        'by_ai_status', (SELECT coalesce(jsonb_object_agg(s.k, s.n), '{}'::jsonb)
                           FROM (SELECT coalesce(ai_analysis_status, 'not_started') AS k, count(*) AS n
                                   FROM post_media GROUP BY 1) s))
      FROM post_media;
$$;

-- Set columns of one post_media row (p_fields: column -> JSON value, converted to the
-- column's type) and append p_event to its log, atomically. Unknown columns raise 42703.
CREATE OR REPLACE FUNCTION media_update(p_media_id TEXT, p_fields JSONB, p_event JSONB DEFAULT NULL)
RETURNS VOID
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    assignments TEXT;
BEGIN
    SELECT string_agg(format('%I = r.%I', key, key), ', ')
      INTO assignments
      FROM jsonb_object_keys(coalesce(p_fields, '{}'::jsonb)) AS key;
    IF assignments IS NOT NULL THEN
        EXECUTE format('UPDATE post_media m SET %s, updated_at = NOW()
                          FROM jsonb_populate_record(NULL::post_media, $1) AS r
                         WHERE m.media_id = $2', assignments)
          USING p_fields, p_media_id;
    END IF;
    IF p_event IS NOT NULL AND jsonb_typeof(p_event) <> 'null' THEN
        PERFORM media_append_event(p_media_id, p_event);
    END IF;
END;
$$;

-- PostgREST caches the schema: make new functions callable at once (Supabase's own event
-- trigger does this too; a self-hosted PostgREST may not have one). Harmless elsewhere.
NOTIFY pgrst, 'reload schema';
