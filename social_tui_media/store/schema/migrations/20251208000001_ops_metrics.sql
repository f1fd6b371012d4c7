-- The figures behind `manage_media.py stats`, read from the rows and their event logs (no second
-- bookkeeping that could drift). Event timestamps are ISO-8601 UTC text as the tool writes
-- them, so a window is a text comparison (p_since in the same form), the same on SQLite.

-- The events of every row's log, one per line (older logs stored as JSON strings included).
CREATE OR REPLACE FUNCTION media_events(p_names TEXT[], p_since TEXT DEFAULT NULL)
RETURNS TABLE (media_id TEXT, post_id TEXT, event TEXT, at TEXT, details JSONB)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT m.media_id, m.post_id, e->>'event', e->>'timestamp', coalesce(e->'details', '{}'::jsonb)
      FROM post_media m CROSS JOIN LATERAL jsonb_array_elements(media_log_array(m.ai_analysis_log)) e
     WHERE jsonb_typeof(e) = 'object' AND e->>'event' = ANY(p_names)
       AND (p_since IS NULL OR e->>'timestamp' >= p_since);
$$;

-- A JSON number as numeric, anything else as NULL (older events lack the field).
CREATE OR REPLACE FUNCTION media_json_number(p_value JSONB) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number' THEN (p_value #>> '{}')::numeric END;
$$;

-- Downloads since p_since (NULL: all time): succeeded and failed slots, slots served without an
-- HTTP request (cache, legacy file, archive, or a slot sharing another's fetch), the timed
-- HTTP fetches with their milliseconds, bytes and 95th percentile (nearest rank), failures by kind.
CREATE OR REPLACE FUNCTION media_download_metrics(p_since TEXT DEFAULT NULL) RETURNS JSONB
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    WITH ev AS (
        SELECT event, details FROM media_events(ARRAY['media_downloaded', 'media_download_failed'], p_since)
    ), ok AS (
        SELECT coalesce(details->>'source', 'http') AS source,
               media_json_number(details->'duration_ms') AS ms,
               coalesce(media_json_number(details->'file_size'), 0) AS nbytes
          FROM ev WHERE event = 'media_downloaded'
    ), timed AS (
        SELECT ms, nbytes FROM ok WHERE source = 'http' AND ms IS NOT NULL
    )
    SELECT jsonb_build_object(
        'succeeded', (SELECT count(*) FROM ok),
        'failed', (SELECT count(*) FROM ev WHERE event = 'media_download_failed'),
        'served_without_http', (SELECT count(*) FROM ok WHERE source <> 'http'),
        'http_timed', (SELECT count(*) FROM timed),
        'http_ms', (SELECT coalesce(sum(ms), 0) FROM timed),
        'http_bytes', (SELECT coalesce(sum(nbytes), 0) FROM timed),
        'p95_ms', (SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY ms) FROM timed),
        'failures_by_kind', (SELECT coalesce(jsonb_object_agg(k, n ORDER BY k), '{}'::jsonb)
                               FROM (SELECT coalesce(details->>'error_kind', 'error') AS k, count(*) AS n
                                       FROM ev WHERE event = 'media_download_failed' GROUP BY 1) f));
$$;

-- What each stage has waiting now, and what the archive holds: download (the claim rule's
-- statuses), analysis (cached, not yet analysed), archive (cached, no archive copy); S3 objects
-- and bytes counted once per archive copy (rows share a copy of the same bytes).
-- The text stage (extract-text) adds its count here.
CREATE OR REPLACE FUNCTION media_stage_counts() RETURNS JSONB
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT jsonb_build_object(
        'download', count(*) FILTER (WHERE download_status = 'pending'
                                        OR (download_status = 'failed' AND NOT download_permanent)),
        'analysis', count(*) FILTER (WHERE download_status = 'downloaded' AND evicted_at IS NULL
                                        AND local_file_path IS NOT NULL
                                        AND media_ai_status(ai_analysis_status) = 'not_started'),
        'archive', count(*) FILTER (WHERE download_status = 'downloaded' AND archive_url IS NULL
                                       AND md5_sum IS NOT NULL),
        's3_objects', (SELECT count(DISTINCT archive_url) FROM post_media WHERE archive_url IS NOT NULL),
        's3_bytes', (SELECT coalesce(sum(b), 0) FROM (SELECT max(file_size) AS b FROM post_media
                                                        WHERE archive_url IS NOT NULL GROUP BY archive_url) a))
      FROM post_media;
$$;

-- Analysis cost and tokens of completed analyses since p_since, by 'month' (of the analysis),
-- 'post' or 'author', in key order a page at a time (p_after: the last key).
CREATE OR REPLACE FUNCTION media_analysis_costs(p_by TEXT, p_since TEXT DEFAULT NULL, p_after TEXT DEFAULT NULL,
    p_limit INTEGER DEFAULT 1000)
RETURNS TABLE (group_key TEXT, analyses BIGINT, prompt_tokens BIGINT, completion_tokens BIGINT, cost_usd NUMERIC)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT g.k, count(*), coalesce(sum(media_json_number(g.details #> '{tokens_used,prompt}')), 0)::bigint,
           coalesce(sum(media_json_number(g.details #> '{tokens_used,completion}')), 0)::bigint,
           coalesce(sum(media_json_number(g.details -> 'estimated_cost_usd')), 0)
      FROM (SELECT CASE p_by WHEN 'month' THEN substr(e.at, 1, 7)
                             WHEN 'post' THEN e.post_id
                             ELSE coalesce(p.author_username, '') END AS k,
                   e.details
              FROM media_events(ARRAY['ai_analysis_completed'], p_since) e
              LEFT JOIN posts p ON p.post_id = e.post_id) g
     WHERE p_after IS NULL OR g.k > p_after
     GROUP BY g.k
     ORDER BY g.k
     LIMIT p_limit;
$$;

NOTIFY pgrst, 'reload schema';
