-- Running for months: an append-only audit log of media access and deletions, marking cached
-- files used (a true LRU), and the row logic of retention.
--   * media_audit: who (OS user and host), what, which media, when and why, for every presigned
--     URL handed out, every export and every file deleted (eviction, retention, repair). Rows
--     are only ever added: a trigger rejects UPDATE, DELETE and TRUNCATE for every role (the
--     owner and service_role included; Supabase's default privileges grant service_role all,
--     so grants alone would not hold), and the API roles lose those privileges as well.
--   * media_mark_used: a batch of reads in one statement (cache_used_at), so eviction follows
--     last use, not download order.
--   * media_retention_candidates: cached rows whose file only old posts use.

CREATE TABLE IF NOT EXISTS media_audit (
    audit_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    actor_user  TEXT NOT NULL,
    actor_host  TEXT NOT NULL,
    action      TEXT NOT NULL,
    media_id    TEXT,
    target      TEXT,
    reason      TEXT,
    details     JSONB
);
CREATE INDEX IF NOT EXISTS idx_media_audit_occurred_at ON media_audit (occurred_at);
CREATE INDEX IF NOT EXISTS idx_media_audit_media_id ON media_audit (media_id) WHERE media_id IS NOT NULL;
COMMENT ON TABLE media_audit IS 'Append-only: presigned URLs, exports and file deletions (who, what, when, why)';

CREATE OR REPLACE FUNCTION media_audit_append_only() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'media_audit is append-only: % is not allowed', TG_OP;
END;
$$;

DROP TRIGGER IF EXISTS media_audit_append_only ON media_audit;
CREATE TRIGGER media_audit_append_only BEFORE UPDATE OR DELETE ON media_audit
    FOR EACH ROW EXECUTE FUNCTION media_audit_append_only();
DROP TRIGGER IF EXISTS media_audit_no_truncate ON media_audit;
CREATE TRIGGER media_audit_no_truncate BEFORE TRUNCATE ON media_audit
    FOR EACH STATEMENT EXECUTE FUNCTION media_audit_append_only();

REVOKE UPDATE, DELETE, TRUNCATE ON media_audit FROM PUBLIC;
DO $$
DECLARE
    api_role TEXT;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON media_audit FROM %I', api_role);
        END IF;
    END LOOP;
END;
$$;
ALTER TABLE media_audit ENABLE ROW LEVEL SECURITY;

-- Append audit entries (a JSON array of {actor_user, actor_host, action, media_id, target,
-- reason, details}); the database stamps the time. Returns how many were written.
CREATE OR REPLACE FUNCTION media_append_audit(p_rows JSONB) RETURNS INTEGER
LANGUAGE sql SECURITY INVOKER AS $$
    WITH added AS (
        INSERT INTO media_audit (actor_user, actor_host, action, media_id, target, reason, details)
        SELECT r.actor_user, r.actor_host, r.action, r.media_id, r.target, r.reason, r.details
          FROM jsonb_to_recordset(p_rows) AS r(actor_user TEXT, actor_host TEXT, action TEXT, media_id TEXT,
                                               target TEXT, reason TEXT, details JSONB)
        RETURNING 1)
    SELECT count(*)::int FROM added;
$$;

-- Audit entries in the order they were written, a page at a time (p_after: the last audit_id).
CREATE OR REPLACE FUNCTION media_audit_list(p_since TIMESTAMPTZ DEFAULT NULL, p_media_id TEXT DEFAULT NULL,
    p_after BIGINT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF media_audit
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT * FROM media_audit
     WHERE (p_since IS NULL OR occurred_at >= p_since)
       AND (p_media_id IS NULL OR media_id = p_media_id)
       AND (p_after IS NULL OR audit_id > p_after)
     ORDER BY audit_id
     LIMIT p_limit;
$$;

-- Mark cached rows read now (one statement for a batch of reads); never moves a mark back.
CREATE OR REPLACE FUNCTION media_mark_used(p_media_ids TEXT[]) RETURNS INTEGER
LANGUAGE sql SECURITY INVOKER AS $$
    WITH marked AS (
        UPDATE post_media SET cache_used_at = NOW()
         WHERE media_id = ANY(p_media_ids) AND (cache_used_at IS NULL OR cache_used_at < NOW())
        RETURNING 1)
    SELECT count(*)::int FROM marked;
$$;

-- Whether a post is older than the retention cutoff: by when it was posted, else (no date in
-- the scrape) by when it was first seen.
CREATE OR REPLACE FUNCTION media_post_is_old(p posts, p_cutoff_ms BIGINT, p_cutoff_at TIMESTAMPTZ)
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN coalesce(p.posted_at_timestamp, 0) > 0 THEN p.posted_at_timestamp < p_cutoff_ms
                ELSE coalesce(p.first_seen_at, p.created_at) < p_cutoff_at END;
$$;

-- Cached rows of old posts whose bytes no newer post's cached row shares (a content-addressed
-- file may belong to several posts: it stays while any of them is young), in (md5_sum,
-- media_id) order, a page at a time.
CREATE OR REPLACE FUNCTION media_retention_candidates(p_cutoff_ms BIGINT, p_cutoff_at TIMESTAMPTZ,
    p_after_md5 TEXT DEFAULT NULL, p_after_media_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS SETOF post_media
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT m.* FROM post_media m JOIN posts p ON p.post_id = m.post_id
     WHERE m.download_status = 'downloaded' AND m.evicted_at IS NULL AND m.local_file_path IS NOT NULL
       AND m.md5_sum IS NOT NULL
       AND media_post_is_old(p, p_cutoff_ms, p_cutoff_at)
       AND NOT EXISTS (
           SELECT 1 FROM post_media o JOIN posts q ON q.post_id = o.post_id
            WHERE o.md5_sum = m.md5_sum AND o.download_status = 'downloaded' AND o.evicted_at IS NULL
              AND NOT media_post_is_old(q, p_cutoff_ms, p_cutoff_at))
       AND (p_after_md5 IS NULL OR (m.md5_sum, m.media_id) > (p_after_md5, p_after_media_id))
     ORDER BY m.md5_sum, m.media_id
     LIMIT p_limit;
$$;

NOTIFY pgrst, 'reload schema';
