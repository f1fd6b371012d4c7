-- Backfill completes a post's media, not only posts with none: it asks which slots of these
-- posts are stored already (any row of the slot, a duplicate's included) and adds the rest.
-- media_posts_with_media answered only "has any row", so a post with its first image stored
-- never got its thumbnail, document, article image or reshared media.
DROP FUNCTION IF EXISTS media_posts_with_media(TEXT[]);

-- A page at a time in (post_id, slot_key) order: pass the last pair as p_after_* for the next.
CREATE OR REPLACE FUNCTION media_slot_keys(p_post_ids TEXT[], p_after_post_id TEXT DEFAULT NULL,
    p_after_slot_key TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 1000)
RETURNS TABLE (post_id TEXT, slot_key TEXT)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
    SELECT DISTINCT m.post_id, m.slot_key FROM post_media m
     WHERE m.post_id = ANY(p_post_ids)
       AND (p_after_post_id IS NULL OR (m.post_id, m.slot_key) > (p_after_post_id, p_after_slot_key))
     ORDER BY m.post_id, m.slot_key
     LIMIT p_limit;
$$;

NOTIFY pgrst, 'reload schema';
