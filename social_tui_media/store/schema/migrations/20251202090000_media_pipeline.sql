-- What the media pipeline needs beyond the spec's columns:
--   * a stable identity per media slot (scheme://host/path, stable across re-signed URLs),
--   * download state with claims so two processes never fetch the same slot,
--   * analysis claims with a lease so a crashed worker's rows are picked up again,
--   * ai_analysis as a JSON object, ai_analysis_log always a JSON array,
--   * row-level security on every table (Supabase exposes tables over REST),
--   * SQL functions for every operation that must be atomic.

-- Parse text as JSON without failing the migration on rows written by older scripts.
CREATE OR REPLACE FUNCTION social_tui_try_jsonb(p_text TEXT) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN p_text::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;

-- An event log as a JSON array, whatever older writers left (NULL, a JSON string, one object).
CREATE OR REPLACE FUNCTION media_log_array(p_log JSONB) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parsed JSONB;
BEGIN
    IF p_log IS NULL OR jsonb_typeof(p_log) = 'null' THEN
        RETURN '[]'::jsonb;
    ELSIF jsonb_typeof(p_log) = 'array' THEN
        RETURN p_log;
    ELSIF jsonb_typeof(p_log) = 'string' THEN
        parsed := social_tui_try_jsonb(p_log #>> '{}');
        IF parsed IS NULL THEN
            RETURN jsonb_build_array(jsonb_build_object('event', 'legacy_log', 'details', p_log));
        END IF;
        RETURN media_log_array(parsed);
    ELSE
        RETURN jsonb_build_array(p_log);
    END IF;
END;
$$;

ALTER TABLE post_media
    ADD COLUMN IF NOT EXISTS slot_key            TEXT,
    ADD COLUMN IF NOT EXISTS slot_role           TEXT,
    ADD COLUMN IF NOT EXISTS position            INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS url_expires_at      TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS download_status     TEXT NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS download_error      TEXT,
    ADD COLUMN IF NOT EXISTS download_error_kind TEXT,
    ADD COLUMN IF NOT EXISTS download_permanent  BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN IF NOT EXISTS download_attempts   INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS downloaded_at       TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS download_claimed_by TEXT,
    ADD COLUMN IF NOT EXISTS download_claimed_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS cache_used_at       TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS evicted_at          TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS archived_at         TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS ai_claimed_by       TEXT,
    ADD COLUMN IF NOT EXISTS ai_claimed_at       TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS ai_model            TEXT,
    ADD COLUMN IF NOT EXISTS ai_prompt_tokens    INTEGER,
    ADD COLUMN IF NOT EXISTS ai_completion_tokens INTEGER,
    ADD COLUMN IF NOT EXISTS ai_cost_usd         NUMERIC(12, 6);

ALTER TABLE post_media ADD CONSTRAINT post_media_download_status_check
    CHECK (download_status IN ('pending', 'downloaded', 'failed'));

-- ai_analysis holds a JSON object; older free text is kept as its description.
ALTER TABLE post_media ALTER COLUMN ai_analysis TYPE JSONB USING (
    CASE
        WHEN ai_analysis IS NULL THEN NULL
        WHEN jsonb_typeof(social_tui_try_jsonb(ai_analysis)) = 'object' THEN social_tui_try_jsonb(ai_analysis)
        ELSE jsonb_build_object('description', ai_analysis)
    END
);

UPDATE post_media SET ai_analysis_log = media_log_array(ai_analysis_log)
 WHERE ai_analysis_log IS NOT NULL AND jsonb_typeof(ai_analysis_log) <> 'array';

-- Rows written before this migration: derive the slot from the URL; older scripts inserted a
-- new row per import, so later copies of a slot keep their data under a distinct key.
UPDATE post_media SET slot_key = lower(substring(media_url FROM '^[A-Za-z]+://[^/?#]+'))
                                 || coalesce(substring(media_url FROM '^[A-Za-z]+://[^/?#]+([^?#]*)'), '')
 WHERE slot_key IS NULL;
UPDATE post_media m SET slot_key = m.slot_key || '#' || m.media_id
  FROM (SELECT media_id, row_number() OVER (PARTITION BY post_id, slot_key ORDER BY created_at, media_id) AS n
          FROM post_media) d
 WHERE d.media_id = m.media_id AND d.n > 1;
UPDATE post_media SET download_status = 'downloaded', downloaded_at = coalesce(updated_at, NOW())
 WHERE local_file_path IS NOT NULL AND md5_sum IS NOT NULL AND download_status = 'pending';
UPDATE post_media SET slot_role = media_type WHERE slot_role IS NULL;

ALTER TABLE post_media ALTER COLUMN slot_key SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_media_post_slot ON post_media(post_id, slot_key);
CREATE INDEX IF NOT EXISTS idx_media_download_queue ON post_media(download_status, url_expires_at)
    WHERE download_status <> 'downloaded';
CREATE INDEX IF NOT EXISTS idx_media_ai_queue ON post_media(ai_analysis_status)
    WHERE ai_analysis_status <> 'completed';

COMMENT ON COLUMN post_media.slot_key IS 'scheme://host/path of the media URL: the slot identity, stable across re-signed URLs';
COMMENT ON COLUMN post_media.download_status IS 'Status: pending, downloaded, failed';
COMMENT ON COLUMN post_media.download_claimed_by IS 'host:pid:nonce of the process fetching this slot';
COMMENT ON COLUMN post_media.ai_claimed_by IS 'host:pid:nonce of the analysis worker holding the lease';

-- Row-level security on every table: no policies, so only the service role (or the owner
-- connecting directly) reads or writes; anon and authenticated keys see nothing.
ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE download_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_downloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE profile_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE action_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_media ENABLE ROW LEVEL SECURITY;

-- Append one event to a row's log; never rewrites what is there.
CREATE OR REPLACE FUNCTION media_append_event(p_media_id TEXT, p_event JSONB) RETURNS VOID
LANGUAGE sql AS $$
    UPDATE post_media
       SET ai_analysis_log = media_log_array(ai_analysis_log) || jsonb_build_array(p_event),
           updated_at = NOW()
     WHERE media_id = p_media_id;
$$;

-- Insert new media slots, refresh the URL of known ones. A failed slot that gets a fresh URL
-- goes back to pending. Returns every row's media_id and whether it was new.
CREATE OR REPLACE FUNCTION media_upsert_slots(p_rows JSONB)
RETURNS TABLE (media_id TEXT, post_id TEXT, slot_key TEXT, inserted BOOLEAN)
LANGUAGE sql AS $$
    INSERT INTO post_media AS m (media_id, post_id, media_type, media_url, slot_key, slot_role,
                                 position, url_expires_at, ai_analysis_log)
    SELECT r.media_id, r.post_id, r.media_type, r.media_url, r.slot_key, r.slot_role,
           r.position, r.url_expires_at, '[]'::jsonb
      FROM jsonb_to_recordset(p_rows) AS r(media_id TEXT, post_id TEXT, media_type TEXT,
           media_url TEXT, slot_key TEXT, slot_role TEXT, position INTEGER,
           url_expires_at TIMESTAMPTZ)
    ON CONFLICT (post_id, slot_key) DO UPDATE SET
        media_url = CASE WHEN m.url_expires_at IS NULL OR EXCLUDED.url_expires_at IS NULL
                           OR EXCLUDED.url_expires_at >= m.url_expires_at
                         THEN EXCLUDED.media_url ELSE m.media_url END,
        url_expires_at = GREATEST(m.url_expires_at, EXCLUDED.url_expires_at),
        -- Only a fresher URL (one that is stored) re-queues a failed slot; an older scrape's
        -- URL must not send a permanent failure back to the same dead link.
        download_status = CASE WHEN m.download_status = 'failed' AND m.media_url <> EXCLUDED.media_url
                                    AND (m.url_expires_at IS NULL OR EXCLUDED.url_expires_at IS NULL
                                         OR EXCLUDED.url_expires_at >= m.url_expires_at)
                               THEN 'pending' ELSE m.download_status END,
        download_permanent = CASE WHEN m.media_url <> EXCLUDED.media_url
                                       AND (m.url_expires_at IS NULL OR EXCLUDED.url_expires_at IS NULL
                                            OR EXCLUDED.url_expires_at >= m.url_expires_at)
                                  THEN FALSE ELSE m.download_permanent END,
        updated_at = CASE WHEN m.media_url <> EXCLUDED.media_url THEN NOW() ELSE m.updated_at END
    RETURNING m.media_id, m.post_id, m.slot_key, (xmax = 0) AS inserted;
$$;

-- Upsert posts by URN: an existing post keeps its post_id. Returns post_id per urn.
CREATE OR REPLACE FUNCTION social_tui_upsert_posts(p_rows JSONB)
RETURNS TABLE (post_id TEXT, urn TEXT, inserted BOOLEAN)
LANGUAGE sql AS $$
    INSERT INTO posts AS p (post_id, urn, full_urn, posted_at_timestamp, posted_at,
                            author_username, author_name, text_content, post_url, post_type, raw_json)
    SELECT r.post_id, r.urn, r.full_urn, r.posted_at_timestamp, r.posted_at,
           r.author_username, r.author_name, r.text_content, r.post_url, r.post_type, r.raw_json
      FROM jsonb_to_recordset(p_rows) AS r(post_id TEXT, urn TEXT, full_urn TEXT,
           posted_at_timestamp BIGINT, posted_at TIMESTAMPTZ, author_username TEXT,
           author_name TEXT, text_content TEXT, post_url TEXT, post_type TEXT, raw_json JSONB)
    ON CONFLICT (urn) DO UPDATE SET
        full_urn = coalesce(EXCLUDED.full_urn, p.full_urn),
        posted_at_timestamp = coalesce(EXCLUDED.posted_at_timestamp, p.posted_at_timestamp),
        posted_at = coalesce(EXCLUDED.posted_at, p.posted_at),
        author_username = coalesce(EXCLUDED.author_username, p.author_username),
        author_name = coalesce(EXCLUDED.author_name, p.author_name),
        text_content = coalesce(EXCLUDED.text_content, p.text_content),
        post_url = coalesce(EXCLUDED.post_url, p.post_url),
        post_type = coalesce(EXCLUDED.post_type, p.post_type),
        raw_json = EXCLUDED.raw_json,
        last_seen_at = NOW(),
        updated_at = NOW()
    RETURNING p.post_id, p.urn, (xmax = 0) AS inserted;
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
        ai_analysis = CASE WHEN p_status = 'completed' THEN p_analysis ELSE ai_analysis END,
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
