-- What the media pipeline adds to the installation's schema. Additions only: new columns,
-- indexes, functions and triggers; no column the installation has is renamed or retyped, and
-- the three views are not touched. Every statement can run again.
--   * a stable identity per media slot (the URL without its signing parameters), filled by a
--     trigger for rows the original scripts insert, unique per post among primary rows;
--   * download state with claims, so two processes never fetch the same slot;
--   * analysis claims with a lease, so a crashed worker's rows are picked up again;
--   * rows written by the original scripts repaired on the way in: a log stored as a JSON
--     string becomes an array, 'pending' analysis becomes claimable, a cached file counts.

-- Parse text as JSON without failing on rows written by older scripts.
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

-- The slot identity of a media URL: scheme and host (lower case), path, and every query
-- parameter but the signing ones (DESIGN.md lists them), in their order. The same rule as
-- social_tui_media.posts.media_items.slot_key; a test holds the two to each other.
CREATE OR REPLACE FUNCTION media_slot_key(p_url TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    WITH parts AS (
        SELECT substring(p_url FROM '^([A-Za-z][A-Za-z0-9+.-]*)://') AS scheme,
               substring(p_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)') AS netloc,
               substring(p_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') AS path,
               substring(p_url FROM '^[^?#]*\?([^#]*)') AS query
    ), kept AS (
        SELECT string_agg(u.param, '&' ORDER BY u.n) AS query
          FROM parts, unnest(string_to_array(parts.query, '&')) WITH ORDINALITY AS u(param, n)
         WHERE u.param <> '' AND split_part(u.param, '=', 1) <> ALL (ARRAY[
               'e', 'v', 't', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires',
               'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token', 'AWSAccessKeyId',
               'Expires', 'Signature', 'Key-Pair-Id', 'Policy'])
    )
    SELECT lower(parts.scheme) || '://' || lower(parts.netloc) || coalesce(parts.path, '')
           || coalesce('?' || kept.query, '')
      FROM parts, kept
     WHERE parts.scheme IS NOT NULL;
$$;

ALTER TABLE posts
    ADD COLUMN IF NOT EXISTS author_name  TEXT,
    ADD COLUMN IF NOT EXISTS last_seen_at TIMESTAMPTZ;

ALTER TABLE download_runs
    ADD COLUMN IF NOT EXISTS source_path TEXT,
    ADD COLUMN IF NOT EXISTS error_count INTEGER DEFAULT 0;

ALTER TABLE post_media
    ADD COLUMN IF NOT EXISTS slot_key             TEXT,
    ADD COLUMN IF NOT EXISTS slot_role            TEXT,
    ADD COLUMN IF NOT EXISTS position             INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS duplicate_of         TEXT,
    ADD COLUMN IF NOT EXISTS url_expires_at       TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS download_status      TEXT NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS download_error       TEXT,
    ADD COLUMN IF NOT EXISTS download_error_kind  TEXT,
    ADD COLUMN IF NOT EXISTS download_permanent   BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN IF NOT EXISTS download_attempts    INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS downloaded_at        TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS download_claimed_by  TEXT,
    ADD COLUMN IF NOT EXISTS download_claimed_at  TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS cache_used_at        TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS evicted_at           TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS archived_at          TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS ai_claimed_by        TEXT,
    ADD COLUMN IF NOT EXISTS ai_claimed_at        TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS ai_model             TEXT,
    ADD COLUMN IF NOT EXISTS ai_prompt_tokens     INTEGER,
    ADD COLUMN IF NOT EXISTS ai_completion_tokens INTEGER,
    ADD COLUMN IF NOT EXISTS ai_cost_usd          NUMERIC(12, 6);

ALTER TABLE post_media DROP CONSTRAINT IF EXISTS post_media_download_status_check;
ALTER TABLE post_media ADD CONSTRAINT post_media_download_status_check
    CHECK (download_status IN ('pending', 'downloaded', 'failed'));

COMMENT ON COLUMN post_media.slot_key IS 'The media URL without its signing parameters: the slot identity, stable across re-signed URLs';
COMMENT ON COLUMN post_media.duplicate_of IS 'A second row of a slot (older scripts inserted one per scrape): the primary row''s media_id';
COMMENT ON COLUMN post_media.download_status IS 'pending, downloaded or failed';
COMMENT ON COLUMN post_media.download_claimed_by IS 'host:pid:nonce of the process fetching this slot';
COMMENT ON COLUMN post_media.ai_claimed_by IS 'host:pid:nonce of the analysis worker holding the lease';

-- Rows as any writer leaves them, made whole: slot identity, a log array, a claimable status,
-- the download state a cached file implies, and a second row of a slot marked as a duplicate.
CREATE OR REPLACE FUNCTION media_row_defaults() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.slot_key IS NULL OR (TG_OP = 'UPDATE' AND NEW.media_url IS DISTINCT FROM OLD.media_url
                                AND NEW.slot_key IS NOT DISTINCT FROM OLD.slot_key
                                AND OLD.slot_key = media_slot_key(OLD.media_url)) THEN
        NEW.slot_key := media_slot_key(NEW.media_url);
    END IF;
    IF NEW.slot_role IS NULL THEN
        NEW.slot_role := NEW.media_type;
    END IF;
    IF NEW.ai_analysis_log IS NULL OR jsonb_typeof(NEW.ai_analysis_log) <> 'array' THEN
        NEW.ai_analysis_log := media_log_array(NEW.ai_analysis_log);
    END IF;
    IF NEW.ai_analysis_status IS NULL OR NEW.ai_analysis_status = 'pending' THEN
        NEW.ai_analysis_status := 'not_started';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.download_status = 'pending' AND NEW.local_file_path IS NOT NULL AND NEW.md5_sum IS NOT NULL THEN
            NEW.download_status := 'downloaded';
            NEW.downloaded_at := coalesce(NEW.downloaded_at, NOW());
        END IF;
        IF NEW.duplicate_of IS NULL THEN
            SELECT m.media_id INTO NEW.duplicate_of FROM post_media m
             WHERE m.post_id = NEW.post_id AND m.slot_key = NEW.slot_key AND m.duplicate_of IS NULL
             LIMIT 1;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- Rows already there: the same repair, then later copies of a slot marked as duplicates.
UPDATE post_media SET slot_key = media_slot_key(media_url) WHERE slot_key IS NULL;
UPDATE post_media SET slot_role = media_type WHERE slot_role IS NULL;
UPDATE post_media SET ai_analysis_log = media_log_array(ai_analysis_log)
 WHERE ai_analysis_log IS NULL OR jsonb_typeof(ai_analysis_log) <> 'array';
UPDATE post_media SET ai_analysis_status = 'not_started'
 WHERE ai_analysis_status IS NULL OR ai_analysis_status = 'pending';
UPDATE post_media SET download_status = 'downloaded', downloaded_at = coalesce(updated_at, NOW())
 WHERE download_status = 'pending' AND local_file_path IS NOT NULL AND md5_sum IS NOT NULL
   AND downloaded_at IS NULL;
UPDATE post_media m SET duplicate_of = d.first_id
  FROM (SELECT media_id,
               first_value(media_id) OVER (PARTITION BY post_id, slot_key ORDER BY created_at, media_id) AS first_id
          FROM post_media WHERE duplicate_of IS NULL) d
 WHERE d.media_id = m.media_id AND d.first_id <> m.media_id;

DROP TRIGGER IF EXISTS media_row_defaults ON post_media;
CREATE TRIGGER media_row_defaults BEFORE INSERT OR UPDATE ON post_media
    FOR EACH ROW EXECUTE FUNCTION media_row_defaults();

CREATE UNIQUE INDEX IF NOT EXISTS idx_media_post_slot ON post_media (post_id, slot_key)
    WHERE duplicate_of IS NULL;
CREATE INDEX IF NOT EXISTS idx_media_slot_key ON post_media (slot_key);
CREATE INDEX IF NOT EXISTS idx_media_download_queue ON post_media (download_status, url_expires_at)
    WHERE download_status <> 'downloaded';
CREATE INDEX IF NOT EXISTS idx_media_ai_queue ON post_media (ai_analysis_status)
    WHERE ai_analysis_status <> 'completed';

-- Row-level security on every table (an installation's security pass did the same; policies
-- are the installation's own and are left as they are).
ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE download_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_downloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE profile_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE action_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE post_media ENABLE ROW LEVEL SECURITY;
