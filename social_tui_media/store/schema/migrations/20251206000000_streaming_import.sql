-- `manage_data.py import` streams its posts and writes them a batch at a time, so a file of
-- any size imports in flat memory and at a steady rate. Two functions change for that:
--
-- * media_insert_data_downloads: the import writes each batch's stats rows as it goes, instead
--   of holding every post's row until the end. A post met again later in the same import gets
--   the same download_id (the import derives it from the post), so its second row replaces the
--   first: one row per post per import, the last one seen, as before. The function updates a
--   row whose download_id exists (an id given twice in one call: its last row) and returns the
--   ids whose row it replaced, so the import counts each post once as new or updated. Its
--   return type changes, so the old function is dropped first.
--
-- * media_upsert_slots: each batch's slots are found with one index probe per slot (LATERAL
--   ... LIMIT 1). Joined as a set, the planner chose hash joins over every primary row of
--   post_media whenever the table's statistics were missing or stale (a new database, or
--   during a large import before autovacuum runs): each batch read the whole table three
--   times, and 100,000 posts took minutes. Same results as before.

DROP FUNCTION IF EXISTS media_insert_data_downloads(JSONB);

CREATE OR REPLACE FUNCTION media_insert_data_downloads(p_rows JSONB)
RETURNS TABLE (download_id TEXT)
LANGUAGE sql SECURITY INVOKER AS $$
    WITH offered AS (
        SELECT DISTINCT ON (r.download_id) r.*
          FROM ROWS FROM (jsonb_to_recordset(p_rows) AS (download_id TEXT, post_id TEXT, run_id TEXT,
               downloaded_at TIMESTAMPTZ, total_reactions INTEGER, stats_json TEXT, raw_json TEXT,
               source_file_path TEXT)) WITH ORDINALITY AS r(download_id, post_id, run_id, downloaded_at,
               total_reactions, stats_json, raw_json, source_file_path, n)
         ORDER BY r.download_id, r.n DESC),
    written AS (
        INSERT INTO data_downloads AS d (download_id, post_id, run_id, downloaded_at, total_reactions,
                                         stats_json, raw_json, source_file_path, created_at)
        SELECT o.download_id, o.post_id, o.run_id, o.downloaded_at, coalesce(o.total_reactions, 0),
               o.stats_json, o.raw_json, o.source_file_path, NOW()
          FROM offered o
        ON CONFLICT (download_id) DO UPDATE SET
            post_id = EXCLUDED.post_id,
            run_id = EXCLUDED.run_id,
            downloaded_at = EXCLUDED.downloaded_at,
            total_reactions = EXCLUDED.total_reactions,
            stats_json = EXCLUDED.stats_json,
            raw_json = EXCLUDED.raw_json,
            source_file_path = EXCLUDED.source_file_path
        RETURNING d.download_id, d.xmax <> 0 AS replaced)  -- xmax is 0 on a row this statement inserted
    SELECT written.download_id FROM written WHERE written.replaced;
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
      CROSS JOIN LATERAL (SELECT o.media_id FROM post_media o
                           WHERE o.post_id = r.post_id AND o.slot_key = r.slot_key AND o.duplicate_of IS NULL
                           LIMIT 1) stored
     WHERE m.media_id = stored.media_id;
    WITH new_rows AS (
        INSERT INTO post_media AS m (media_id, post_id, media_type, media_url, slot_key, slot_role, "position",
                                     url_expires_at, ai_analysis_status, ai_analysis_log, created_at, updated_at)
        SELECT r.media_id, r.post_id, r.media_type, r.media_url, r.slot_key, r.slot_role, r."position",
               r.url_expires_at, 'not_started', '[]'::jsonb, NOW(), NOW()
          FROM media_offered_slots(p_rows) r
          LEFT JOIN LATERAL (SELECT o.media_id FROM post_media o
                              WHERE o.post_id = r.post_id AND o.slot_key = r.slot_key AND o.duplicate_of IS NULL
                              LIMIT 1) stored ON TRUE
         WHERE stored.media_id IS NULL
        ON CONFLICT (post_id, slot_key) WHERE duplicate_of IS NULL DO NOTHING
        RETURNING m.media_id)
    SELECT coalesce(array_agg(new_rows.media_id), '{}') INTO added FROM new_rows;
    RETURN QUERY
        SELECT stored.media_id, r.post_id, r.slot_key, stored.media_id = ANY(added)
          FROM media_offered_slots(p_rows) r
          CROSS JOIN LATERAL (SELECT o.media_id FROM post_media o
                               WHERE o.post_id = r.post_id AND o.slot_key = r.slot_key AND o.duplicate_of IS NULL
                               LIMIT 1) stored;
END;
$$;
