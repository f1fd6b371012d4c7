-- v_profiles_with_stats: each profile with its number of posts (posts grouped by
-- author_username) and its tags as a JSON array, in one query for the profiles screen.

CREATE OR REPLACE VIEW v_profiles_with_stats AS
SELECT pr.profile_id,
       pr.username,
       pr.name,
       pr.platform,
       pr.notes,
       pr.is_active,
       pr.created_at,
       pr.updated_at,
       pr.last_synced_at,
       COALESCE(pc.post_count, 0) AS post_count,
       COALESCE(
           json_agg(json_build_object('tag_id', t.tag_id, 'name', t.name, 'color', t.color,
                                      'description', t.description) ORDER BY t.name)
               FILTER (WHERE t.tag_id IS NOT NULL),
           '[]'::json) AS tags
  FROM profiles pr
  LEFT JOIN (SELECT author_username, COUNT(*) AS post_count
               FROM posts
              GROUP BY author_username) pc ON pc.author_username = pr.username
  LEFT JOIN profile_tags pt ON pt.profile_id = pr.profile_id
  LEFT JOIN tags t ON t.tag_id = pt.tag_id
 GROUP BY pr.profile_id, pc.post_count
 ORDER BY pr.created_at DESC;

COMMENT ON VIEW v_profiles_with_stats IS 'Profiles with their post counts and tags';
