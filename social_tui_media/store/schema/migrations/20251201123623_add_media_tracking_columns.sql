-- Media tracking (media_handling_spec.md, "Migration: add_media_tracking_columns.sql").

-- Add MD5 checksum column for file integrity verification
ALTER TABLE post_media ADD COLUMN md5_sum TEXT;

-- Add S3 archive URL column for cloud storage reference
ALTER TABLE post_media ADD COLUMN archive_url TEXT;

-- Rows written with the old default ('pending') or none would violate the new CHECK.
UPDATE post_media SET ai_analysis_status = 'not_started'
 WHERE ai_analysis_status IS NULL
    OR ai_analysis_status NOT IN ('not_started', 'started', 'completed', 'failed');

-- Update ai_analysis_status to use enum-like constraint
ALTER TABLE post_media
  DROP CONSTRAINT IF EXISTS post_media_ai_analysis_status_check;

ALTER TABLE post_media
  ADD CONSTRAINT post_media_ai_analysis_status_check
  CHECK (ai_analysis_status IN ('not_started', 'started', 'completed', 'failed'));

-- Change default value for ai_analysis_status
ALTER TABLE post_media
  ALTER COLUMN ai_analysis_status SET DEFAULT 'not_started';

-- Add ai_analysis_log column for detailed logging
ALTER TABLE post_media ADD COLUMN ai_analysis_log JSONB;

-- Update comments
COMMENT ON COLUMN post_media.md5_sum IS 'MD5 checksum of the media file for integrity verification';
COMMENT ON COLUMN post_media.archive_url IS 'S3 URL for archived copy of media';
COMMENT ON COLUMN post_media.ai_analysis_status IS 'Status: not_started, started, completed, failed';
COMMENT ON COLUMN post_media.ai_analysis_log IS 'Detailed log of AI analysis attempts and results';

-- Add index for MD5 lookups (deduplication)
CREATE INDEX idx_media_md5_sum ON post_media(md5_sum);

-- Add index for archive status tracking
CREATE INDEX idx_media_archive_url ON post_media(archive_url) WHERE archive_url IS NOT NULL;
