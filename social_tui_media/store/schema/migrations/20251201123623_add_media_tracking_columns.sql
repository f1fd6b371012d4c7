-- The media-handling spec's post_media migration as the installation applied it: checksum,
-- archive URL, analysis log, a status CHECK that still allows the seed's 'pending', the new
-- default 'not_started'. Every statement is safe to run again; no row is rewritten.

ALTER TABLE post_media ADD COLUMN IF NOT EXISTS md5_sum TEXT;
ALTER TABLE post_media ADD COLUMN IF NOT EXISTS archive_url TEXT;
ALTER TABLE post_media ADD COLUMN IF NOT EXISTS ai_analysis_log JSONB;

ALTER TABLE post_media DROP CONSTRAINT IF EXISTS post_media_ai_analysis_status_check;
ALTER TABLE post_media ADD CONSTRAINT post_media_ai_analysis_status_check
    CHECK (ai_analysis_status IN ('not_started', 'started', 'completed', 'failed', 'pending'));
ALTER TABLE post_media ALTER COLUMN ai_analysis_status SET DEFAULT 'not_started';

COMMENT ON TABLE post_media IS 'Media found in posts: local cache, S3 archive and AI analysis';
COMMENT ON COLUMN post_media.md5_sum IS 'MD5 of the cached file, for integrity checks and deduplication';
COMMENT ON COLUMN post_media.archive_url IS 'S3 URL of the archived copy';
COMMENT ON COLUMN post_media.ai_analysis_status IS 'not_started, started, completed or failed (pending: older rows)';
COMMENT ON COLUMN post_media.ai_analysis_log IS 'Events of downloads and analysis attempts';

CREATE INDEX IF NOT EXISTS idx_media_md5_sum ON post_media (md5_sum);
CREATE INDEX IF NOT EXISTS idx_media_archive_url ON post_media (archive_url) WHERE archive_url IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_media_ai_status_created ON post_media (ai_analysis_status, created_at)
    WHERE ai_analysis_status IN ('not_started', 'started');
