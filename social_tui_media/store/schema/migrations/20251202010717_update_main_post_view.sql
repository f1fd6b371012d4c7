-- v_main_post_view, final form: the TUI's post list. It reads posts.raw_json as jsonb, so
-- the posts columns it uses cannot be renamed or retyped while it exists.

CREATE OR REPLACE VIEW v_main_post_view AS
SELECT p.post_id,
       p.platform,
       p.urn,
       to_char(to_timestamp(p.posted_at_timestamp / 1000.0), 'YYYY-MM-DD HH24:MI:SS') AS posted_at_formatted,
       p.author_username,
       substring(p.text_content FROM 1 FOR 50) AS text_preview,
       CASE
           WHEN p.raw_json::jsonb -> 'media' ->> 'type' = 'images'
                AND jsonb_typeof(p.raw_json::jsonb -> 'media' -> 'images') = 'array'
                AND jsonb_array_length(p.raw_json::jsonb -> 'media' -> 'images') > 1
               THEN '📷(' || jsonb_array_length(p.raw_json::jsonb -> 'media' -> 'images') || ')'
           WHEN p.raw_json::jsonb -> 'media' ->> 'type' IN ('image', 'images', 'video', 'document') THEN '📷'
           ELSE ''
       END AS media_indicator,
       CASE WHEN p.is_marked THEN '★' ELSE '' END || COALESCE(aq.action_types, '') AS marked_indicator,
       p.first_seen_at,
       p.raw_json
  FROM posts p
  LEFT JOIN (SELECT post_id, string_agg(DISTINCT action_type, ',') AS action_types
               FROM action_queue
              GROUP BY post_id) aq ON aq.post_id = p.post_id
 ORDER BY p.posted_at_timestamp DESC;

COMMENT ON VIEW v_main_post_view IS 'The TUI''s post list: formatted date, text preview, media and action markers';
