-- A slot in any post is looked up only among cached rows (media_cached_file, the TUI's hook), so
-- only they are indexed: an index of every row's slot key (long and random) was rewritten all
-- over by every import batch, about a fifth of an import's time.
DROP INDEX IF EXISTS idx_media_slot_key;
CREATE INDEX IF NOT EXISTS idx_media_slot_key_cached ON post_media (slot_key)
    WHERE download_status = 'downloaded' AND evicted_at IS NULL;
