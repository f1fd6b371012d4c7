-- Every store operation as one SQL function, called the same way by the PostgreSQL back end
-- (psycopg) and the Supabase REST back end (PostgREST /rpc/): the store's rules live here once,
-- the two back ends only supply the transport. Reads page in key order (p_limit rows at most
-- per call: PostgREST caps a response at its db-max-rows). All SECURITY INVOKER: they run with
-- the caller's rights, so row-level security still applies.
--   * media_denied_table(): which table this role cannot use. Row-level security with no
--     policies makes selects come back empty and updates touch nothing, without an error,
--     so a key without rights must be detected up front.

-- Whether a scrape's URL is at least as fresh as the stored one (unknown expiry counts as fresh).
CREATE OR REPLACE FUNCTION media_url_is_newer(p_stored TIMESTAMPTZ, p_offered TIMESTAMPTZ) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_stored IS NULL OR p_offered IS NULL OR p_offered >= p_stored;
$$;

-- The slot rows an import offers, as a record set.
CREATE OR REPLACE FUNCTION media_offered_slots(p_rows JSONB)
RETURNS TABLE (media_id TEXT, post_id TEXT, media_type TEXT, media_url TEXT, slot_key TEXT, slot_role TEXT,
               "position" INTEGER, url_expires_at TIMESTAMPTZ)
LANGUAGE sql IMMUTABLE AS $$
    SELECT * FROM jsonb_to_recordset(p_rows) AS r(media_id TEXT, post_id TEXT, media_type TEXT, media_url TEXT,
                                                  slot_key TEXT, slot_role TEXT, "position" INTEGER,
                                                  url_expires_at TIMESTAMPTZ);
$$;

-- Insert new media slots, refresh known ones (the primary row of a slot, whoever wrote it):
-- a fresher URL replaces the stored one and sends a failed slot back to pending; an older
-- scrape's URL changes nothing. Returns every offered slot's media_id and whether it is new.
CREATE OR REPLACE FUNCTION media_upsert_slots(p_rows JSONB)
RETURNS TABLE (media_id TEXT, post_id TEXT, slot_key TEXT, inserted BOOLEAN)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    added TEXT[];
BEGIN
    UPDATE post_media m SET
        media_url = CASE WHEN media_url_is_newer(m.url_expires_at, r.url_expires_at) THEN r.media_url
                         ELSE m.media_url END,
        url_expires_at = GREATEST(m.url_expires_at, r.url_expires_at),
        download_status = CASE WHEN m.download_status = 'failed' AND m.media_url <> r.media_url
                                    AND media_url_is_newer(m.url_expires_at, r.url_expires_at)
                               THEN 'pending' ELSE m.download_status END,
        download_permanent = CASE WHEN m.media_url <> r.media_url
                                       AND media_url_is_newer(m.url_expires_at, r.url_expires_at)
                                  THEN FALSE ELSE m.download_permanent END,
        slot_role = r.slot_role,
        "position" = r."position",
        updated_at = CASE WHEN m.media_url <> r.media_url THEN NOW() ELSE m.updated_at END
      FROM media_offered_slots(p_rows) r
     WHERE m.post_id = r.post_id AND m.slot_key = r.slot_key AND m.duplicate_of IS NULL;
    WITH new_rows AS (
        INSERT INTO post_media AS m (media_id, post_id, media_type, media_url, slot_key, slot_role, "position",
                                     url_expires_at, ai_analysis_status, ai_analysis_log, created_at, updated_at)
        SELECT r.media_id, r.post_id, r.media_type, r.media_url, r.slot_key, r.slot_role, r."position",
               r.url_expires_at, 'not_started', '[]'::jsonb, NOW(), NOW()
          FROM media_offered_slots(p_rows) r
         WHERE NOT EXISTS (SELECT 1 FROM post_media o
                            WHERE o.post_id = r.post_id AND o.slot_key = r.slot_key AND o.duplicate_of IS NULL)
        ON CONFLICT (post_id, slot_key) WHERE duplicate_of IS NULL DO NOTHING
        RETURNING m.media_id)
    SELECT coalesce(array_agg(new_rows.media_id), '{}') INTO added FROM new_rows;
    RETURN QUERY
        SELECT m.media_id, m.post_id, m.slot_key, m.media_id = ANY(added)
          FROM media_offered_slots(p_rows) r
          JOIN post_media m ON m.post_id = r.post_id AND m.slot_key = r.slot_key AND m.duplicate_of IS NULL;
END;
$$;

-- Upsert posts by URN in the original scripts' shape: an existing post keeps its post_id and
-- first_seen_at (the TUI's "new" marker); a newer scrape refreshes raw_json and fills blanks.
CREATE OR REPLACE FUNCTION social_tui_upsert_posts(p_rows JSONB)
RETURNS TABLE (post_id TEXT, urn TEXT, inserted BOOLEAN)
LANGUAGE sql AS $$
    INSERT INTO posts AS p (post_id, urn, full_urn, platform, posted_at_timestamp, author_username, author_name,
                            text_content, post_type, url, raw_json, first_seen_at, last_seen_at, is_read,
                            is_marked, created_at, updated_at)
    SELECT r.post_id, r.urn, r.full_urn, coalesce(r.platform, 'linkedin'), r.posted_at_timestamp,
           r.author_username, r.author_name, r.text_content, r.post_type, r.url, r.raw_json, NOW(), NOW(),
           FALSE, FALSE, NOW(), NOW()
      FROM jsonb_to_recordset(p_rows) AS r(post_id TEXT, urn TEXT, full_urn TEXT, platform TEXT,
           posted_at_timestamp BIGINT, author_username TEXT, author_name TEXT, text_content TEXT,
           post_type TEXT, url TEXT, raw_json TEXT)
    ON CONFLICT (urn) DO UPDATE SET
        full_urn = coalesce(nullif(EXCLUDED.full_urn, ''), p.full_urn),
        posted_at_timestamp = CASE WHEN p.posted_at_timestamp = 0 THEN EXCLUDED.posted_at_timestamp
                                   ELSE p.posted_at_timestamp END,
        author_username = coalesce(nullif(EXCLUDED.author_username, ''), p.author_username),
        author_name = coalesce(nullif(EXCLUDED.author_name, ''), p.author_name),
        text_content = coalesce(nullif(EXCLUDED.text_content, ''), p.text_content),
        post_type = coalesce(nullif(EXCLUDED.post_type, ''), p.post_type),
        url = coalesce(nullif(EXCLUDED.url, ''), p.url),
        raw_json = EXCLUDED.raw_json,
        last_seen_at = NOW(),
        updated_at = NOW()
    RETURNING p.post_id, p.urn, (xmax = 0) AS inserted;
$$;

-- The cached file of a post's first media, or of a media slot in any post (the TUI's hook):
-- one row at most, from rows already downloaded and not evicted.
CREATE OR REPLACE FUNCTION media_cached_file(p_post_id TEXT DEFAULT NULL, p_slot_key TEXT DEFAULT NULL)
RETURNS SETOF post_media
LANGUAGE sql STABLE AS $$
    SELECT * FROM post_media
     WHERE download_status = 'downloaded' AND evicted_at IS NULL AND local_file_path IS NOT NULL
       AND (p_post_id IS NULL OR post_id = p_post_id)
       AND (p_slot_key IS NULL OR slot_key = p_slot_key)
       AND (p_post_id IS NOT NULL OR p_slot_key IS NOT NULL)
     ORDER BY "position", media_id
     LIMIT 1;
$$;

-- Append one event to a row's log; never rewrites what is there.
CREATE OR REPLACE FUNCTION media_append_event(p_media_id TEXT, p_event JSONB) RETURNS VOID
LANGUAGE sql AS $$
    UPDATE post_media
       SET ai_analysis_log = media_log_array(ai_analysis_log) || jsonb_build_array(p_event),
           updated_at = NOW()
     WHERE media_id = p_media_id;
$$;

-- Claim up to p_limit slots to download: pending ones, transient failures, permanent failures
-- only when asked; claims whose lease ran out or whose owner is known dead are taken over.
-- Soonest-expiring signed URLs first.
CREATE OR REPLACE FUNCTION media_claim_downloads(p_worker TEXT, p_limit INTEGER,
    p_lease_seconds INTEGER, p_retry_failed BOOLEAN, p_dead_workers TEXT[] DEFAULT '{}',
    p_media_ids TEXT[] DEFAULT NULL)
RETURNS SETOF post_media
LANGUAGE sql AS $$
    WITH picked AS (
        SELECT media_id FROM post_media
         WHERE (download_status = 'pending'
                OR (download_status = 'failed' AND (p_retry_failed OR NOT download_permanent)))
           AND (download_claimed_by IS NULL
                OR download_claimed_at < NOW() - make_interval(secs => p_lease_seconds)
                OR download_claimed_by = ANY(p_dead_workers))
           AND (p_media_ids IS NULL OR media_id = ANY(p_media_ids))
         ORDER BY url_expires_at NULLS LAST, created_at, position
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    )
    UPDATE post_media m
       SET download_claimed_by = p_worker, download_claimed_at = NOW()
      FROM picked
     WHERE m.media_id = picked.media_id
    RETURNING m.*;
$$;

-- Record the outcome of many downloads in one statement; only the claim's owner may finish.
CREATE OR REPLACE FUNCTION media_finish_downloads(p_worker TEXT, p_results JSONB)
RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    UPDATE post_media m SET
        download_status = r.download_status,
        md5_sum = coalesce(r.md5_sum, m.md5_sum),
        file_size = coalesce(r.file_size, m.file_size),
        mime_type = coalesce(r.mime_type, m.mime_type),
        width = coalesce(r.width, m.width),
        height = coalesce(r.height, m.height),
        local_file_path = coalesce(r.local_file_path, m.local_file_path),
        download_error = r.download_error,
        download_error_kind = r.download_error_kind,
        download_permanent = coalesce(r.download_permanent, FALSE),
        download_attempts = m.download_attempts + coalesce(r.attempts, 0),
        downloaded_at = CASE WHEN r.download_status = 'downloaded' THEN NOW() ELSE m.downloaded_at END,
        cache_used_at = CASE WHEN r.download_status = 'downloaded' THEN NOW() ELSE m.cache_used_at END,
        evicted_at = CASE WHEN r.download_status = 'downloaded' THEN NULL ELSE m.evicted_at END,
        download_claimed_by = NULL,
        download_claimed_at = NULL,
        ai_analysis_log = media_log_array(m.ai_analysis_log)
                          || CASE WHEN r.event IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(r.event) END,
        updated_at = NOW()
      FROM jsonb_to_recordset(p_results) AS r(media_id TEXT, download_status TEXT, md5_sum TEXT,
           file_size BIGINT, mime_type TEXT, width INTEGER, height INTEGER, local_file_path TEXT,
           download_error TEXT, download_error_kind TEXT, download_permanent BOOLEAN,
           attempts INTEGER, event JSONB)
     WHERE m.media_id = r.media_id AND m.download_claimed_by = p_worker;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Finish an analysis the worker still holds: completed (with the result) or failed.
CREATE OR REPLACE FUNCTION media_finish_analysis(p_media_id TEXT, p_worker TEXT, p_status TEXT,
    p_analysis JSONB, p_model TEXT, p_prompt_tokens INTEGER, p_completion_tokens INTEGER,
    p_cost NUMERIC, p_event JSONB)
RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    UPDATE post_media SET
        ai_analysis_status = p_status,
        ai_analysis = CASE WHEN p_status = 'completed' THEN p_analysis::text ELSE ai_analysis END,
        ai_analyzed_at = CASE WHEN p_status = 'completed' THEN NOW() ELSE ai_analyzed_at END,
        ai_model = coalesce(p_model, ai_model),
        ai_prompt_tokens = coalesce(ai_prompt_tokens, 0) + coalesce(p_prompt_tokens, 0),
        ai_completion_tokens = coalesce(ai_completion_tokens, 0) + coalesce(p_completion_tokens, 0),
        ai_cost_usd = coalesce(ai_cost_usd, 0) + coalesce(p_cost, 0),
        ai_claimed_by = NULL,
        ai_claimed_at = NULL,
        ai_analysis_log = media_log_array(ai_analysis_log) || jsonb_build_array(p_event),
        updated_at = NOW()
     WHERE media_id = p_media_id AND ai_claimed_by = p_worker AND ai_analysis_status = 'started';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n = 1;
END;
$$;

-- The analysis status a row is in: rows written without one count as not_started.
CREATE OR REPLACE FUNCTION media_ai_status(p_status TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_status, 'not_started');
$$;

-- The one rule for which rows analysis may take: a cached file, and a status the run asks for,
-- or `started` under a lease that ran out (a crashed worker's row). Inlined by the planner.
CREATE OR REPLACE FUNCTION media_analysis_claimable(m post_media, p_statuses TEXT[], p_lease_seconds INTEGER,
    p_dead_workers TEXT[] DEFAULT '{}')
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT m.download_status = 'downloaded' AND m.evicted_at IS NULL AND m.local_file_path IS NOT NULL
       AND (media_ai_status(m.ai_analysis_status) = ANY(p_statuses)
            OR (m.ai_analysis_status = 'started'
                AND (m.ai_claimed_at IS NULL
                     OR m.ai_claimed_at < NOW() - make_interval(secs => p_lease_seconds)
                     OR m.ai_claimed_by = ANY(p_dead_workers))));
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

-- An interrupted download run (Ctrl-C) gives its claims back instead of leaving them to expire:
-- the next run, on any host, may take those rows at once. Returns how many were released.
CREATE OR REPLACE FUNCTION media_release_downloads(p_worker TEXT) RETURNS INTEGER
LANGUAGE sql AS $$
    WITH released AS (
        UPDATE post_media
           SET download_claimed_by = NULL, download_claimed_at = NULL
         WHERE download_claimed_by = p_worker
        RETURNING 1)
    SELECT count(*)::int FROM released;
$$;

-- Claim up to p_limit cached rows for analysis and log ai_analysis_started, atomically.
CREATE OR REPLACE FUNCTION media_claim_analysis(p_worker TEXT, p_limit INTEGER,
    p_lease_seconds INTEGER, p_statuses TEXT[], p_event JSONB, p_media_ids TEXT[] DEFAULT NULL,
    p_dead_workers TEXT[] DEFAULT '{}')
RETURNS SETOF post_media
LANGUAGE sql AS $$
    WITH picked AS (
        SELECT m.media_id FROM post_media m
         WHERE media_analysis_claimable(m, p_statuses, p_lease_seconds, p_dead_workers)
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

-- The processes holding analysis claims (a dead one's are taken over at once).
CREATE OR REPLACE FUNCTION media_analysis_claimants() RETURNS TABLE (claimant TEXT)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ai_claimed_by FROM post_media
     WHERE ai_claimed_by IS NOT NULL AND ai_analysis_status = 'started';
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

-- Posts in post_id order after p_after, posted at or after p_since_ms (epoch milliseconds).
CREATE OR REPLACE FUNCTION media_posts_page(p_after TEXT, p_limit INTEGER, p_since_ms BIGINT DEFAULT NULL)
RETURNS TABLE (post_id TEXT, urn TEXT, posted_at_timestamp BIGINT, raw_json TEXT)
LANGUAGE sql STABLE AS $$
    SELECT p.post_id, p.urn, p.posted_at_timestamp, p.raw_json FROM posts p
     WHERE p.post_id > coalesce(p_after, '')
       AND (p_since_ms IS NULL OR p.posted_at_timestamp >= p_since_ms)
     ORDER BY p.post_id
     LIMIT p_limit;
$$;

-- Which of these posts already have media rows.
CREATE OR REPLACE FUNCTION media_posts_with_media(p_post_ids TEXT[]) RETURNS TABLE (post_id TEXT)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m.post_id FROM post_media m WHERE m.post_id = ANY(p_post_ids);
$$;

-- A download run in the original scripts' shape: started, then finished with its counts.
CREATE OR REPLACE FUNCTION media_start_run(p_run_id TEXT, p_source_path TEXT, p_script_name TEXT,
    p_system_info TEXT, p_platform TEXT DEFAULT 'linkedin')
RETURNS VOID
LANGUAGE sql AS $$
    INSERT INTO download_runs (run_id, started_at, status, script_name, platform, system_info, source_path,
                               created_at)
    VALUES (p_run_id, NOW(), 'running', p_script_name, p_platform, p_system_info, p_source_path, NOW());
$$;

CREATE OR REPLACE FUNCTION media_finish_run(p_run_id TEXT, p_status TEXT, p_posts_processed INTEGER,
    p_posts_new INTEGER, p_posts_updated INTEGER, p_error_count INTEGER, p_error_message TEXT)
RETURNS VOID
LANGUAGE sql AS $$
    UPDATE download_runs
       SET completed_at = NOW(), status = p_status, posts_fetched = p_posts_processed,
           posts_new = p_posts_new, posts_updated = p_posts_updated, error_count = p_error_count,
           error_message = p_error_message
     WHERE run_id = p_run_id;
$$;

-- One engagement snapshot per post per run.
CREATE OR REPLACE FUNCTION media_insert_data_downloads(p_rows JSONB) RETURNS INTEGER
LANGUAGE sql AS $$
    WITH added AS (
        INSERT INTO data_downloads (download_id, post_id, run_id, downloaded_at, total_reactions,
                                    stats_json, raw_json, source_file_path, created_at)
        SELECT r.download_id, r.post_id, r.run_id, r.downloaded_at, coalesce(r.total_reactions, 0),
               r.stats_json, r.raw_json, r.source_file_path, NOW()
          FROM jsonb_to_recordset(p_rows) AS r(download_id TEXT, post_id TEXT, run_id TEXT,
               downloaded_at TIMESTAMPTZ, total_reactions INTEGER, stats_json TEXT, raw_json TEXT,
               source_file_path TEXT)
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
