-- v_post_engagement_history, final form: the zero point is the earlier of posted_at and the first download.
-- The earlier versions of this view are recorded but empty here: a fresh database needs only
-- this final form (CREATE OR REPLACE keeps the same columns).

CREATE OR REPLACE VIEW v_post_engagement_history AS
WITH zero_point AS (
    -- LEAST ignores NULL: a post without downloads starts at its publication time.
    SELECT p.post_id,
           LEAST(to_timestamp(p.posted_at_timestamp / 1000.0), MIN(dd.downloaded_at)) AS zero_time
      FROM posts p
      LEFT JOIN data_downloads dd ON dd.post_id = p.post_id
     GROUP BY p.post_id, p.posted_at_timestamp
)
SELECT p.post_id,
       p.urn AS post_urn,
       p.author_username,
       z.zero_time AS downloaded_at,
       0 AS reactions,
       0 AS comments,
       0 AS reposts,
       0 AS views,
       '{}'::jsonb AS stats_json,
       'virtual_initial_point'::text AS download_id,
       NULL::text AS run_id
  FROM posts p
  JOIN zero_point z ON z.post_id = p.post_id
UNION ALL
SELECT dd.post_id,
       p.urn AS post_urn,
       p.author_username,
       dd.downloaded_at,
       COALESCE(dd.total_reactions, (dd.stats_json::jsonb ->> 'total_reactions')::integer, 0) AS reactions,
       COALESCE((dd.stats_json::jsonb ->> 'comments')::integer, 0) AS comments,
       COALESCE((dd.stats_json::jsonb ->> 'reposts')::integer,
                (dd.stats_json::jsonb ->> 'shares')::integer, 0) AS reposts,
       COALESCE((dd.stats_json::jsonb ->> 'views')::integer, 0) AS views,
       dd.stats_json::jsonb AS stats_json,
       dd.download_id,
       dd.run_id
  FROM data_downloads dd
  JOIN posts p ON p.post_id = dd.post_id;

COMMENT ON VIEW v_post_engagement_history IS
    'Engagement over time per post: a zero point at the earlier of publication and first download, then every snapshot';
