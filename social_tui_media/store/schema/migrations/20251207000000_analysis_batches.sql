-- Analysis through the OpenAI Batch API (half price, results within 24 hours), and identical
-- bytes analysed once. Additions only; every statement can run again.
--
--   * media_analysis_batches: one row per batch, written BEFORE anything is sent (record
--     first, then submit): `preparing` until the provider's batch id is recorded, `submitted`
--     until its results are applied, then `completed`, `expired`, `failed`, `cancelled`, or
--     `abandoned` (never created at the provider: its rows went back to the queue).
--   * post_media.ai_batch_id: the batch a `started` row belongs to. Such a row is not a dead
--     owner's claim: no lease expiry or dead-process takeover claims it until its batch ends.
--   * media_shareable_analysis: the ONE lookup of the row whose analysis another row can share.

ALTER TABLE post_media ADD COLUMN IF NOT EXISTS ai_batch_id TEXT;
COMMENT ON COLUMN post_media.ai_batch_id IS 'The analysis batch (media_analysis_batches) this started row waits in';
CREATE INDEX IF NOT EXISTS idx_media_ai_batch ON post_media (ai_batch_id) WHERE ai_batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_media_md5_completed ON post_media (md5_sum, ai_model)
    WHERE ai_analysis_status = 'completed';

CREATE TABLE IF NOT EXISTS media_analysis_batches (
    batch_id          TEXT PRIMARY KEY,
    status            TEXT NOT NULL DEFAULT 'preparing'
                      CHECK (status IN ('preparing', 'submitted', 'completed', 'expired', 'failed',
                                        'cancelled', 'abandoned')),
    model             TEXT NOT NULL,
    api_base          TEXT,
    owner             TEXT,
    provider_batch_id TEXT UNIQUE,
    input_file_id     TEXT,
    output_file_id    TEXT,
    error_file_id     TEXT,
    item_count        INTEGER NOT NULL DEFAULT 0,
    request_count     INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd          NUMERIC(12, 6) NOT NULL DEFAULT 0,
    saved_usd         NUMERIC(12, 6) NOT NULL DEFAULT 0,
    error             TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    submitted_at      TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
COMMENT ON TABLE media_analysis_batches IS 'Analysis batches sent to the OpenAI Batch API (manage_media.py analyze --batch)';
COMMENT ON COLUMN media_analysis_batches.owner IS 'host:pid:nonce of the process preparing the batch';
COMMENT ON COLUMN media_analysis_batches.saved_usd IS 'What the applied requests would have cost more at the synchronous price';
CREATE INDEX IF NOT EXISTS idx_analysis_batches_open ON media_analysis_batches (created_at)
    WHERE status IN ('preparing', 'submitted');
ALTER TABLE media_analysis_batches ENABLE ROW LEVEL SECURITY;

-- The one rule for which rows analysis may take (replaces the earlier form): a row waiting in a
-- batch is never taken over, whatever its lease or owner says.
CREATE OR REPLACE FUNCTION media_analysis_claimable(m post_media, p_statuses TEXT[], p_lease_seconds INTEGER,
    p_dead_workers TEXT[] DEFAULT '{}')
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT m.download_status = 'downloaded' AND m.evicted_at IS NULL AND m.local_file_path IS NOT NULL
       AND (media_ai_status(m.ai_analysis_status) = ANY(p_statuses)
            OR (m.ai_analysis_status = 'started' AND m.ai_batch_id IS NULL
                AND (m.ai_claimed_at IS NULL
                     OR m.ai_claimed_at < NOW() - make_interval(secs => p_lease_seconds)
                     OR m.ai_claimed_by = ANY(p_dead_workers))));
$$;

-- The processes holding analysis claims; a batch's rows belong to no process.
CREATE OR REPLACE FUNCTION media_analysis_claimants() RETURNS TABLE (claimant TEXT)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ai_claimed_by FROM post_media
     WHERE ai_claimed_by IS NOT NULL AND ai_analysis_status = 'started' AND ai_batch_id IS NULL;
$$;

-- Claim up to p_limit rows into a batch and record the batch (if new, and only with rows),
-- atomically: the rows become `started` under the batch, with p_event logged. Only the batch's
-- owner may add rows, and only while it is `preparing`.
CREATE OR REPLACE FUNCTION media_claim_analysis_batch(p_batch_id TEXT, p_model TEXT, p_api_base TEXT,
    p_owner TEXT, p_worker TEXT, p_limit INTEGER, p_lease_seconds INTEGER, p_statuses TEXT[], p_event JSONB,
    p_media_ids TEXT[] DEFAULT NULL, p_dead_workers TEXT[] DEFAULT '{}')
RETURNS SETOF post_media
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    n INTEGER;
    stored media_analysis_batches;
BEGIN
    SELECT * INTO stored FROM media_analysis_batches WHERE batch_id = p_batch_id FOR UPDATE;
    IF FOUND AND (stored.status <> 'preparing' OR stored.owner IS DISTINCT FROM p_owner) THEN
        RETURN;
    END IF;
    RETURN QUERY
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
           ai_batch_id = p_batch_id,
           ai_analysis_log = media_log_array(m.ai_analysis_log) || jsonb_build_array(p_event),
           updated_at = NOW()
      FROM picked
     WHERE m.media_id = picked.media_id
    RETURNING m.*;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN  -- a batch is recorded with its first rows, never empty
        INSERT INTO media_analysis_batches AS b (batch_id, status, model, api_base, owner, item_count)
        VALUES (p_batch_id, 'preparing', p_model, p_api_base, p_owner, n)
        ON CONFLICT (batch_id) DO UPDATE SET item_count = b.item_count + n, updated_at = NOW();
    END IF;
END;
$$;

-- Batches, oldest first: the open ones (preparing, submitted) or all.
CREATE OR REPLACE FUNCTION media_analysis_batches(p_open_only BOOLEAN DEFAULT TRUE)
RETURNS SETOF media_analysis_batches
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT * FROM media_analysis_batches
     WHERE NOT p_open_only OR status IN ('preparing', 'submitted')
     ORDER BY created_at, batch_id;
$$;

-- The rows still waiting in a batch (id and bytes), in media_id order, a page at a time.
CREATE OR REPLACE FUNCTION media_batch_members(p_batch_id TEXT, p_after TEXT DEFAULT NULL,
    p_limit INTEGER DEFAULT 1000)
RETURNS TABLE (media_id TEXT, md5_sum TEXT)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT m.media_id, m.md5_sum FROM post_media m
     WHERE m.ai_batch_id = p_batch_id AND m.ai_analysis_status = 'started'
       AND (p_after IS NULL OR m.media_id > p_after)
     ORDER BY m.media_id
     LIMIT p_limit;
$$;

-- Set columns of one batch (p_fields: column -> JSON value), only while it is in one of
-- p_from_statuses (NULL: any): the step that moves a batch on is taken once. True when it was.
CREATE OR REPLACE FUNCTION media_update_analysis_batch(p_batch_id TEXT, p_fields JSONB,
    p_from_statuses TEXT[] DEFAULT NULL)
RETURNS BOOLEAN
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    assignments TEXT;
    n INTEGER;
BEGIN
    SELECT string_agg(format('%I = r.%I', key, key), ', ')
      INTO assignments
      FROM jsonb_object_keys(coalesce(p_fields, '{}'::jsonb)) AS key;
    EXECUTE format('UPDATE media_analysis_batches b SET %s updated_at = NOW()
                      FROM jsonb_populate_record(NULL::media_analysis_batches, $1) AS r
                     WHERE b.batch_id = $2 AND ($3 IS NULL OR b.status = ANY($3))',
                   coalesce(assignments || ',', ''))
      USING p_fields, p_batch_id, p_from_statuses;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n = 1;
END;
$$;

-- Finish one row of a batch with its result (completed or failed), appending p_events (a JSON
-- array) to its log; only a row still waiting in that batch, so a result is never applied twice.
CREATE OR REPLACE FUNCTION media_finish_batch_item(p_batch_id TEXT, p_media_id TEXT, p_status TEXT,
    p_analysis JSONB, p_model TEXT, p_prompt_tokens INTEGER, p_completion_tokens INTEGER, p_cost NUMERIC,
    p_events JSONB)
RETURNS BOOLEAN
LANGUAGE plpgsql SECURITY INVOKER AS $$
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
        ai_batch_id = NULL,
        ai_analysis_log = media_log_array(ai_analysis_log) || coalesce(p_events, '[]'::jsonb),
        updated_at = NOW()
     WHERE media_id = p_media_id AND ai_batch_id = p_batch_id AND ai_analysis_status = 'started';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n = 1;
END;
$$;

-- Hand every row still waiting in a batch back, uncharged, as it was before (a row analysed
-- before keeps `completed` and its analysis), logging p_event on each. Returns how many.
CREATE OR REPLACE FUNCTION media_release_analysis_batch(p_batch_id TEXT, p_event JSONB) RETURNS INTEGER
LANGUAGE sql SECURITY INVOKER AS $$
    WITH released AS (
        UPDATE post_media
           SET ai_analysis_status = CASE WHEN ai_analysis IS NOT NULL THEN 'completed' ELSE 'not_started' END,
               ai_claimed_by = NULL, ai_claimed_at = NULL, ai_batch_id = NULL,
               ai_analysis_log = media_log_array(ai_analysis_log) || jsonb_build_array(p_event),
               updated_at = NOW()
         WHERE ai_batch_id = p_batch_id AND ai_analysis_status = 'started'
        RETURNING 1)
    SELECT count(*)::int FROM released;
$$;

-- The row whose analysis this row can share, or none: a completed row holding the same bytes
-- (md5) analysed by the same model (a dated snapshot of it counts: gpt-4o-mini-2024-07-18).
-- The one place that decides what "the same media" means for analysis.
CREATE OR REPLACE FUNCTION media_shareable_analysis(p_media_id TEXT, p_model TEXT)
RETURNS SETOF post_media
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT o.* FROM post_media me
      JOIN post_media o ON o.md5_sum = me.md5_sum AND o.media_id <> me.media_id
     WHERE me.media_id = p_media_id AND me.md5_sum IS NOT NULL
       AND o.ai_analysis_status = 'completed' AND o.ai_analysis IS NOT NULL
       AND (o.ai_model = p_model OR o.ai_model LIKE p_model || '-____-__-__')
     ORDER BY o.ai_analyzed_at DESC NULLS LAST, o.media_id
     LIMIT 1;
$$;

-- The batch figures behind `manage_media.py stats`, as one JSON object.
CREATE OR REPLACE FUNCTION media_batch_counts() RETURNS JSONB
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT jsonb_build_object(
        'batches_open', count(*) FILTER (WHERE status IN ('preparing', 'submitted')),
        'batch_items_open', coalesce(sum(item_count) FILTER (WHERE status IN ('preparing', 'submitted')), 0),
        'batch_oldest_open_at', min(coalesce(submitted_at, created_at))
                                FILTER (WHERE status IN ('preparing', 'submitted')),
        'batch_cost_usd', coalesce(sum(cost_usd), 0),
        'batch_saved_usd', coalesce(sum(saved_usd), 0))
      FROM media_analysis_batches;
$$;

NOTIFY pgrst, 'reload schema';
