-- Local text extraction (`manage_media.py extract-text`): a queued stage like analysis, claimed
-- with a lease, its status and events on the row. The text of identical bytes (same md5) is
-- extracted once and shared by every row holding them; each image also gets a perceptual hash,
-- from which confirmed near duplicates (re-encoded, resized, lightly cropped re-shares) are
-- grouped under one near_group_id.
--   * text_status: not_started -> started -> completed | failed (failed -> started on retry);
--   * extracted_text: the exact text; text_segments: where it came from (PDF pages, video
--     frames with their timestamps), a JSON array;
--   * phash: 64-bit perceptual hash of an image, 16 hex digits;
--   * near_group_id: the media_id that founded the row's confirmed near-duplicate group.

ALTER TABLE post_media
    ADD COLUMN IF NOT EXISTS text_status       TEXT NOT NULL DEFAULT 'not_started',
    ADD COLUMN IF NOT EXISTS text_claimed_by   TEXT,
    ADD COLUMN IF NOT EXISTS text_claimed_at   TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS extracted_text    TEXT,
    ADD COLUMN IF NOT EXISTS text_segments     JSONB,
    ADD COLUMN IF NOT EXISTS text_engine       TEXT,
    ADD COLUMN IF NOT EXISTS text_extracted_at TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS phash             TEXT,
    ADD COLUMN IF NOT EXISTS near_group_id     TEXT;

ALTER TABLE post_media DROP CONSTRAINT IF EXISTS post_media_text_status_check;
ALTER TABLE post_media ADD CONSTRAINT post_media_text_status_check
    CHECK (text_status IN ('not_started', 'started', 'completed', 'failed'));

COMMENT ON COLUMN post_media.text_status IS 'local text extraction: not_started, started, completed or failed';
COMMENT ON COLUMN post_media.text_claimed_by IS 'host:pid:nonce of the extract-text worker holding the lease';
COMMENT ON COLUMN post_media.text_segments IS 'JSON array: {page, text, source} per PDF page, {t, text} per video frame (seconds)';
COMMENT ON COLUMN post_media.phash IS '64-bit perceptual hash of an image (DCT), 16 hex digits';
COMMENT ON COLUMN post_media.near_group_id IS 'confirmed near-duplicate group: the media_id that founded it';

CREATE INDEX IF NOT EXISTS idx_media_text_queue ON post_media (text_status) WHERE text_status <> 'completed';
CREATE INDEX IF NOT EXISTS idx_media_near_group ON post_media (near_group_id) WHERE near_group_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_media_phash ON post_media (media_id) WHERE phash IS NOT NULL;

-- The one rule for which rows extract-text may take: a cached file, and a status the run asks
-- for, or `started` under a lease that ran out or held by a process that is gone.
CREATE OR REPLACE FUNCTION media_text_claimable(m post_media, p_statuses TEXT[], p_lease_seconds INTEGER,
    p_dead_workers TEXT[] DEFAULT '{}')
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT m.download_status = 'downloaded' AND m.evicted_at IS NULL AND m.local_file_path IS NOT NULL
       AND (m.text_status = ANY(p_statuses)
            OR (m.text_status = 'started'
                AND (m.text_claimed_at IS NULL
                     OR m.text_claimed_at < NOW() - make_interval(secs => p_lease_seconds)
                     OR m.text_claimed_by = ANY(p_dead_workers))));
$$;

-- Claim up to p_limit rows for extraction and log text_extraction_started, atomically. A row
-- whose bytes another live worker is reading now is left for later (it will share that text),
-- and of rows holding the same bytes only one is taken.
CREATE OR REPLACE FUNCTION media_claim_text(p_worker TEXT, p_limit INTEGER, p_lease_seconds INTEGER,
    p_statuses TEXT[], p_event JSONB, p_media_ids TEXT[] DEFAULT NULL, p_dead_workers TEXT[] DEFAULT '{}')
RETURNS SETOF post_media
LANGUAGE sql SECURITY INVOKER AS $$
    WITH picked AS (
        SELECT m.media_id FROM post_media m
         WHERE media_text_claimable(m, p_statuses, p_lease_seconds, p_dead_workers)
           AND (p_media_ids IS NULL OR m.media_id = ANY(p_media_ids))
           AND NOT EXISTS (SELECT 1 FROM post_media o
                            WHERE o.md5_sum = m.md5_sum AND o.media_id <> m.media_id
                              AND o.text_status = 'started'
                              AND o.text_claimed_at >= NOW() - make_interval(secs => p_lease_seconds)
                              AND NOT (o.text_claimed_by = ANY(p_dead_workers)))
           AND NOT EXISTS (SELECT 1 FROM post_media o  -- one row per md5 a claim: it is read once
                            WHERE o.md5_sum = m.md5_sum AND o.media_id < m.media_id
                              AND media_text_claimable(o, p_statuses, p_lease_seconds, p_dead_workers)
                              AND (p_media_ids IS NULL OR o.media_id = ANY(p_media_ids)))
         ORDER BY m.created_at, m.media_id
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    )
    UPDATE post_media m
       SET text_status = 'started', text_claimed_by = p_worker, text_claimed_at = NOW(),
           ai_analysis_log = media_log_array(m.ai_analysis_log) || jsonb_build_array(p_event),
           updated_at = NOW()
      FROM picked
     WHERE m.media_id = picked.media_id
    RETURNING m.*;
$$;

-- How many rows a run would take now (its progress bar's total).
CREATE OR REPLACE FUNCTION media_text_backlog(p_statuses TEXT[], p_lease_seconds INTEGER,
    p_media_ids TEXT[] DEFAULT NULL)
RETURNS BIGINT
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT count(*) FROM post_media m
     WHERE media_text_claimable(m, p_statuses, p_lease_seconds)
       AND (p_media_ids IS NULL OR m.media_id = ANY(p_media_ids));
$$;

-- The processes holding extraction claims (a dead one's are taken over at once).
CREATE OR REPLACE FUNCTION media_text_claimants() RETURNS TABLE (claimant TEXT)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT DISTINCT text_claimed_by FROM post_media
     WHERE text_claimed_by IS NOT NULL AND text_status = 'started';
$$;

-- Finish an extraction the worker still holds. A completed one is shared at once with every
-- other row holding the same bytes that is not extracted and not held by a live worker: each
-- gets the text and its own started/completed events, marked shared_from. Returns the number of
-- rows written (0: the lease was taken over, nothing written).
CREATE OR REPLACE FUNCTION media_finish_text(p_media_id TEXT, p_worker TEXT, p_status TEXT, p_text TEXT,
    p_segments JSONB, p_engine TEXT, p_phash TEXT, p_event JSONB, p_lease_seconds INTEGER DEFAULT 600)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    n INTEGER;
    shared INTEGER := 0;
    md5 TEXT;
BEGIN
    UPDATE post_media SET
        text_status = p_status,
        extracted_text = CASE WHEN p_status = 'completed' THEN p_text ELSE extracted_text END,
        text_segments = CASE WHEN p_status = 'completed' THEN p_segments ELSE text_segments END,
        text_engine = CASE WHEN p_status = 'completed' THEN p_engine ELSE text_engine END,
        text_extracted_at = CASE WHEN p_status = 'completed' THEN NOW() ELSE text_extracted_at END,
        phash = coalesce(p_phash, phash),
        text_claimed_by = NULL, text_claimed_at = NULL,
        ai_analysis_log = media_log_array(ai_analysis_log) || jsonb_build_array(p_event),
        updated_at = NOW()
     WHERE media_id = p_media_id AND text_claimed_by = p_worker AND text_status = 'started'
    RETURNING md5_sum INTO md5;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 OR p_status <> 'completed' OR md5 IS NULL THEN
        RETURN n;
    END IF;
    UPDATE post_media o SET
        text_status = 'completed', extracted_text = p_text, text_segments = p_segments,
        text_engine = p_engine, text_extracted_at = NOW(), phash = coalesce(p_phash, o.phash),
        text_claimed_by = NULL, text_claimed_at = NULL,
        ai_analysis_log = media_log_array(o.ai_analysis_log) || jsonb_build_array(
            jsonb_build_object('timestamp', p_event->>'timestamp', 'event', 'text_extraction_started',
                               'status', 'success', 'details', jsonb_build_object('shared_from', p_media_id)),
            p_event || jsonb_build_object('details', coalesce(p_event->'details', '{}'::jsonb)
                                                     || jsonb_build_object('shared_from', p_media_id))),
        updated_at = NOW()
     WHERE o.md5_sum = md5 AND o.media_id <> p_media_id
       AND (o.text_status IN ('not_started', 'failed')
            OR (o.text_status = 'started'
                AND (o.text_claimed_at IS NULL
                     OR o.text_claimed_at < NOW() - make_interval(secs => p_lease_seconds))));
    GET DIAGNOSTICS shared = ROW_COUNT;
    RETURN n + shared;
END;
$$;

-- The extraction another row already made of these bytes, if any (a row downloaded after its
-- twin was extracted reuses it instead of reading the file again).
CREATE OR REPLACE FUNCTION media_extracted_text_of(p_md5_sum TEXT)
RETURNS SETOF post_media
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT * FROM post_media
     WHERE md5_sum = p_md5_sum AND text_status = 'completed'
     ORDER BY text_extracted_at, media_id
     LIMIT 1;
$$;

-- Images whose perceptual hash is within p_max_distance bits of p_phash, other posts only
-- (never a post's own pages), nearest first. The caller confirms them by their text.
CREATE OR REPLACE FUNCTION media_near_candidates(p_media_id TEXT, p_phash TEXT, p_max_distance INTEGER,
    p_limit INTEGER DEFAULT 50)
RETURNS TABLE (media_id TEXT, post_id TEXT, md5_sum TEXT, phash TEXT, extracted_text TEXT, file_size BIGINT,
               near_group_id TEXT, distance INTEGER)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    WITH me AS (SELECT post_id FROM post_media WHERE media_id = p_media_id)
    SELECT c.media_id, c.post_id, c.md5_sum, c.phash, c.extracted_text, c.file_size::bigint, c.near_group_id,
           bit_count(('x' || c.phash)::bit(64) # ('x' || p_phash)::bit(64))::int AS distance
      FROM post_media c, me
     WHERE c.phash IS NOT NULL AND c.media_id <> p_media_id AND c.post_id <> me.post_id
       AND c.text_status = 'completed'
       AND bit_count(('x' || c.phash)::bit(64) # ('x' || p_phash)::bit(64)) <= p_max_distance
     ORDER BY distance, c.created_at, c.media_id
     LIMIT p_limit;
$$;

-- Put rows in one confirmed near-duplicate group, with every row holding the same bytes and
-- the groups they were in (merged).
CREATE OR REPLACE FUNCTION media_set_near_group(p_group_id TEXT, p_media_ids TEXT[]) RETURNS INTEGER
LANGUAGE sql SECURITY INVOKER AS $$
    WITH changed AS (
        UPDATE post_media SET near_group_id = p_group_id, updated_at = NOW()
         WHERE media_id = ANY(p_media_ids)
            OR md5_sum IN (SELECT md5_sum FROM post_media WHERE media_id = ANY(p_media_ids))
            OR near_group_id IN (SELECT near_group_id FROM post_media WHERE media_id = ANY(p_media_ids))
        RETURNING 1)
    SELECT count(*)::int FROM changed;
$$;

-- Every group of media holding the same picture: identical bytes (same md5) and confirmed near
-- duplicates, one row per member with its post, the best copy (largest) first in each group
-- (equal copies: the earliest post first).
-- A page at a time in (group_key, member order); pass the last row's p_after_* for the next.
CREATE OR REPLACE FUNCTION media_duplicate_groups(p_after_group TEXT DEFAULT NULL, p_after_rank INTEGER DEFAULT NULL,
    p_limit INTEGER DEFAULT 1000)
RETURNS TABLE (group_key TEXT, member_rank INTEGER, kind TEXT, media_id TEXT, post_id TEXT, media_type TEXT,
               media_url TEXT, post_url TEXT, author_username TEXT, posted_at_timestamp BIGINT,
               file_size BIGINT, width INTEGER, height INTEGER, md5_sum TEXT, local_file_path TEXT)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    WITH keyed AS (
        SELECT m.*, coalesce(m.near_group_id, 'md5:' || m.md5_sum) AS gkey
          FROM post_media m
         WHERE m.duplicate_of IS NULL AND (m.near_group_id IS NOT NULL OR m.md5_sum IS NOT NULL)
    ), md5_groups AS (  -- identical bytes of a near group's member belong to that group
        SELECT md5_sum, min(near_group_id) AS near_group_id FROM keyed
         WHERE near_group_id IS NOT NULL AND md5_sum IS NOT NULL GROUP BY md5_sum
    ), grouped AS (
        SELECT k.*, coalesce(k.near_group_id, g.near_group_id, k.gkey) AS group_key FROM keyed k
          LEFT JOIN md5_groups g ON g.md5_sum = k.md5_sum
    ), sized AS (
        SELECT gr.*, count(*) OVER (PARTITION BY gr.group_key) AS members FROM grouped gr
    ), ranked AS (
        SELECT s.*, p.url AS post_url, p.author_username, p.posted_at_timestamp,
               (row_number() OVER (PARTITION BY s.group_key
                   ORDER BY s.file_size DESC NULLS LAST, coalesce(s.width, 0) * coalesce(s.height, 0) DESC,
                            p.posted_at_timestamp, s.media_id))::int AS member_rank
          FROM sized s JOIN posts p ON p.post_id = s.post_id WHERE s.members > 1
    )
    SELECT r.group_key, r.member_rank, CASE WHEN r.group_key LIKE 'md5:%' THEN 'identical' ELSE 'near' END,
           r.media_id, r.post_id, r.media_type, r.media_url, r.post_url, r.author_username, r.posted_at_timestamp,
           r.file_size::bigint, r.width, r.height, r.md5_sum, r.local_file_path
      FROM ranked r
     WHERE p_after_group IS NULL OR (r.group_key, r.member_rank) > (p_after_group, p_after_rank)
     ORDER BY r.group_key, r.member_rank
     LIMIT p_limit;
$$;

-- The row whose analysis this row can share (20251207000000's one lookup, now knowing near
-- duplicates): a completed row by the same model (or a dated snapshot of it) holding the same
-- bytes, else one confirmed a near duplicate of it (same near_group_id); identical bytes first,
-- then the largest copy.
CREATE OR REPLACE FUNCTION media_shareable_analysis(p_media_id TEXT, p_model TEXT)
RETURNS SETOF post_media
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT o.* FROM post_media me
      JOIN post_media o ON o.media_id <> me.media_id
                       AND ((me.md5_sum IS NOT NULL AND o.md5_sum = me.md5_sum)
                            OR (me.near_group_id IS NOT NULL AND o.near_group_id = me.near_group_id))
     WHERE me.media_id = p_media_id
       AND o.ai_analysis_status = 'completed' AND o.ai_analysis IS NOT NULL
       AND (o.ai_model = p_model OR o.ai_model LIKE p_model || '-____-__-__')
     ORDER BY o.md5_sum IS NOT DISTINCT FROM me.md5_sum DESC, o.file_size DESC NULLS LAST,
              o.ai_analyzed_at DESC NULLS LAST, o.media_id
     LIMIT 1;
$$;

NOTIFY pgrst, 'reload schema';
