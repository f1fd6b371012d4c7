-- Every store operation as one SQL function, called the same way by the PostgreSQL back end
-- (psycopg) and the Supabase REST back end (PostgREST /rpc/): the store's rules live here once,
-- the two back ends only supply the transport. Reads page in key order (p_limit rows at most
-- per call: PostgREST caps a response at its db-max-rows). All SECURITY INVOKER: they run with
-- the caller's rights, so row-level security still applies.
--   * media_denied_table(): which table this role cannot use. Row-level security with no
--     policies makes selects come back empty and updates touch nothing, without an error,
--     so a key without rights must be detected up front.

-- The analysis status a row is in: rows written without one count as not_started.
CREATE OR REPLACE FUNCTION media_ai_status(p_status TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_status, 'not_started');
$$;

-- The one rule for which rows analysis may take: a cached file, and a status the run asks for,
-- or `started` under a lease that ran out (a crashed worker's row). Inlined by the planner.
CREATE OR REPLACE FUNCTION media_analysis_claimable(m post_media, p_statuses TEXT[], p_lease_seconds INTEGER)
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT m.download_status = 'downloaded' AND m.evicted_at IS NULL AND m.local_file_path IS NOT NULL
       AND (media_ai_status(m.ai_analysis_status) = ANY(p_statuses)
            OR (m.ai_analysis_status = 'started'
                AND (m.ai_claimed_at IS NULL
                     OR m.ai_claimed_at < NOW() - make_interval(secs => p_lease_seconds))));
$$;

-- What an analysis run would take now (dry runs, fixed work lists), in claim order.
CREATE OR REPLACE FUNCTION media_analysis_candidates(p_statuses TEXT[], p_lease_seconds INTEGER,
    p_media_ids TEXT[] DEFAULT NULL, p_after TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF post_media
LANGUAGE sql STABLE AS $$
    SELECT m.* FROM post_media m
     WHERE media_analysis_claimable(m, p_statuses, p_lease_seconds)
       AND (p_media_ids IS NULL OR m.media_id = ANY(p_media_ids))
       AND (p_after IS NULL OR m.media_id > p_after)
     ORDER BY m.media_id
     LIMIT p_limit;
$$;

-- Claim up to p_limit cached rows for analysis and log ai_analysis_started, atomically.
CREATE OR REPLACE FUNCTION media_claim_analysis(p_worker TEXT, p_limit INTEGER,
    p_lease_seconds INTEGER, p_statuses TEXT[], p_event JSONB, p_media_ids TEXT[] DEFAULT NULL)
RETURNS SETOF post_media
LANGUAGE sql AS $$
    WITH picked AS (
        SELECT m.media_id FROM post_media m
         WHERE media_analysis_claimable(m, p_statuses, p_lease_seconds)
           AND (p_media_ids IS NULL OR m.media_id = ANY(p_media_ids))
         ORDER BY m.created_at, m.media_id
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    )
    UPDATE post_media m
       SET ai_analysis_status = 'started', ai_claimed_by = p_worker, ai_claimed_at = NOW(),
           ai_analysis_log = media_log_array(m.ai_analysis_log) || jsonb_build_array(p_event),
           updated_at = NOW()
      FROM picked
     WHERE m.media_id = picked.media_id
    RETURNING m.*;
$$;

-- Media rows matching the filters, in (post_id, position, media_id) order, a page at a time:
-- pass the last row's key as p_after_* for the next page.
CREATE OR REPLACE FUNCTION media_list(p_post_id TEXT DEFAULT NULL, p_download_status TEXT DEFAULT NULL,
    p_ai_status TEXT DEFAULT NULL, p_media_ids TEXT[] DEFAULT NULL, p_after_post_id TEXT DEFAULT NULL,
    p_after_position INTEGER DEFAULT NULL, p_after_media_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF post_media
LANGUAGE sql STABLE AS $$
    SELECT * FROM post_media
     WHERE (p_post_id IS NULL OR post_id = p_post_id)
       AND (p_download_status IS NULL OR download_status = p_download_status)
       AND (p_ai_status IS NULL OR media_ai_status(ai_analysis_status) = p_ai_status)
       AND (p_media_ids IS NULL OR media_id = ANY(p_media_ids))
       AND (p_after_post_id IS NULL
            OR (post_id, position, media_id) > (p_after_post_id, p_after_position, p_after_media_id))
     ORDER BY post_id, position, media_id
     LIMIT p_limit;
$$;

-- The processes holding download claims on rows not yet downloaded.
CREATE OR REPLACE FUNCTION media_download_claimants() RETURNS TABLE (claimant TEXT)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT download_claimed_by FROM post_media
     WHERE download_claimed_by IS NOT NULL AND download_status <> 'downloaded';
$$;

-- The archive copy of these bytes, if any row has one.
CREATE OR REPLACE FUNCTION media_archived_copy(p_md5_sum TEXT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT archive_url FROM post_media
     WHERE md5_sum = p_md5_sum AND archive_url IS NOT NULL
     LIMIT 1;
$$;

-- Posts in post_id order after p_after (a UTC day's start as the earliest posted_at).
CREATE OR REPLACE FUNCTION media_posts_page(p_after TEXT, p_limit INTEGER, p_start_date DATE DEFAULT NULL)
RETURNS TABLE (post_id TEXT, urn TEXT, posted_at TIMESTAMPTZ, raw_json JSONB)
LANGUAGE sql STABLE AS $$
    SELECT p.post_id, p.urn, p.posted_at, p.raw_json FROM posts p
     WHERE p.post_id > coalesce(p_after, '')
       AND (p_start_date IS NULL OR p.posted_at >= (p_start_date::timestamp AT TIME ZONE 'UTC'))
     ORDER BY p.post_id
     LIMIT p_limit;
$$;

-- Which of these posts already have media rows.
CREATE OR REPLACE FUNCTION media_posts_with_media(p_post_ids TEXT[]) RETURNS TABLE (post_id TEXT)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m.post_id FROM post_media m WHERE m.post_id = ANY(p_post_ids);
$$;

-- A download run: started, then finished with its counts.
CREATE OR REPLACE FUNCTION media_start_run(p_run_id TEXT, p_source_path TEXT, p_script_name TEXT)
RETURNS VOID
LANGUAGE sql AS $$
    INSERT INTO download_runs (run_id, source_path, script_name) VALUES (p_run_id, p_source_path, p_script_name);
$$;

CREATE OR REPLACE FUNCTION media_finish_run(p_run_id TEXT, p_status TEXT, p_posts_processed INTEGER,
    p_posts_new INTEGER, p_posts_updated INTEGER, p_error_count INTEGER, p_error_message TEXT)
RETURNS VOID
LANGUAGE sql AS $$
    UPDATE download_runs
       SET completed_at = NOW(), status = p_status, posts_processed = p_posts_processed,
           posts_new = p_posts_new, posts_updated = p_posts_updated, error_count = p_error_count,
           error_message = p_error_message
     WHERE run_id = p_run_id;
$$;

-- One engagement snapshot per post per run.
CREATE OR REPLACE FUNCTION media_insert_data_downloads(p_rows JSONB) RETURNS INTEGER
LANGUAGE sql AS $$
    WITH added AS (
        INSERT INTO data_downloads (download_id, post_id, run_id, downloaded_at, total_reactions,
                                    stats_json, raw_json, source_file)
        SELECT r.download_id, r.post_id, r.run_id, r.downloaded_at, r.total_reactions,
               r.stats_json, r.raw_json, r.source_file
          FROM jsonb_to_recordset(p_rows) AS r(download_id TEXT, post_id TEXT, run_id TEXT,
               downloaded_at TIMESTAMPTZ, total_reactions INTEGER, stats_json JSONB, raw_json JSONB,
               source_file TEXT)
        RETURNING 1)
    SELECT count(*)::int FROM added;
$$;

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
                           FROM (SELECT media_ai_status(ai_analysis_status) AS k, count(*) AS n
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
