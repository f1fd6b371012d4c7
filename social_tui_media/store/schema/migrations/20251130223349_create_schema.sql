-- social-tui's schema as first applied (version 20251130223349): nine tables with TEXT ids in
-- the `prefix-xxxxxxxx` form. post_media has only its pre-media-migration columns here; the
-- media migration (20251201123623) adds the rest. IF NOT EXISTS so the file can run again.

CREATE TABLE IF NOT EXISTS posts (
    post_id             TEXT PRIMARY KEY,
    urn                 TEXT UNIQUE NOT NULL,
    full_urn            TEXT,
    platform            TEXT DEFAULT 'linkedin',
    posted_at_timestamp BIGINT NOT NULL,
    author_username     TEXT,
    text_content        TEXT,
    post_type           TEXT,
    url                 TEXT,
    raw_json            TEXT,
    first_seen_at       TIMESTAMPTZ,
    is_read             BOOLEAN DEFAULT FALSE,
    is_marked           BOOLEAN DEFAULT FALSE,
    created_at          TIMESTAMPTZ DEFAULT NOW(),
    updated_at          TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE posts IS 'Scraped social media posts, one row per post identity (urn)';
COMMENT ON COLUMN posts.posted_at_timestamp IS 'Publication time in milliseconds since the epoch';
COMMENT ON COLUMN posts.raw_json IS 'The whole scraped post as JSON text';
COMMENT ON COLUMN posts.is_read IS 'The user has read this post';
COMMENT ON COLUMN posts.is_marked IS 'The user has starred this post for follow-up';
CREATE INDEX IF NOT EXISTS idx_posts_urn ON posts (urn);
CREATE INDEX IF NOT EXISTS idx_posts_posted_at ON posts (posted_at_timestamp);
CREATE INDEX IF NOT EXISTS idx_posts_author ON posts (author_username);
CREATE INDEX IF NOT EXISTS idx_posts_platform ON posts (platform);
CREATE INDEX IF NOT EXISTS idx_posts_first_seen ON posts (first_seen_at);
CREATE INDEX IF NOT EXISTS idx_posts_is_read ON posts (is_read);
CREATE INDEX IF NOT EXISTS idx_posts_is_marked ON posts (is_marked);

CREATE TABLE IF NOT EXISTS download_runs (
    run_id        TEXT PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    status        TEXT DEFAULT 'running',
    script_name   TEXT,
    platform      TEXT DEFAULT 'linkedin',
    posts_fetched INTEGER DEFAULT 0,
    posts_new     INTEGER DEFAULT 0,
    posts_updated INTEGER DEFAULT 0,
    error_message TEXT,
    system_info   TEXT,
    created_at    TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE download_runs IS 'One row per scraping/import session';
COMMENT ON COLUMN download_runs.status IS 'running, completed or failed';
COMMENT ON COLUMN download_runs.system_info IS 'JSON text: hostname, platform, script';
CREATE INDEX IF NOT EXISTS idx_runs_started_at ON download_runs (started_at);
CREATE INDEX IF NOT EXISTS idx_runs_status ON download_runs (status);

CREATE TABLE IF NOT EXISTS data_downloads (
    download_id      TEXT PRIMARY KEY,
    post_id          TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    run_id           TEXT REFERENCES download_runs (run_id) ON DELETE SET NULL,
    downloaded_at    TIMESTAMPTZ NOT NULL,
    total_reactions  INTEGER DEFAULT 0,
    stats_json       TEXT,
    raw_json         TEXT,
    source_file_path TEXT,
    created_at       TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE data_downloads IS 'Engagement snapshot of a post, one per post per run';
CREATE INDEX IF NOT EXISTS idx_downloads_post_id ON data_downloads (post_id);
CREATE INDEX IF NOT EXISTS idx_downloads_run_id ON data_downloads (run_id);
CREATE INDEX IF NOT EXISTS idx_downloads_downloaded_at ON data_downloads (downloaded_at);

CREATE TABLE IF NOT EXISTS profiles (
    profile_id     TEXT PRIMARY KEY,
    username       TEXT UNIQUE NOT NULL,
    name           TEXT NOT NULL,
    platform       TEXT DEFAULT 'linkedin',
    is_active      BOOLEAN DEFAULT TRUE,
    notes          TEXT,
    post_count     INTEGER DEFAULT 0,
    last_synced_at TIMESTAMPTZ,
    created_at     TIMESTAMPTZ DEFAULT NOW(),
    updated_at     TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE profiles IS 'Monitored social media profiles';
COMMENT ON COLUMN profiles.is_active IS 'The profile is currently monitored';
CREATE INDEX IF NOT EXISTS idx_profiles_username ON profiles (username);
CREATE INDEX IF NOT EXISTS idx_profiles_active ON profiles (is_active);

CREATE TABLE IF NOT EXISTS tags (
    tag_id      TEXT PRIMARY KEY,
    name        TEXT UNIQUE NOT NULL,
    description TEXT,
    color       TEXT DEFAULT 'cyan',
    created_at  TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE tags IS 'Labels for profiles and posts';
CREATE INDEX IF NOT EXISTS idx_tags_name ON tags (name);

CREATE TABLE IF NOT EXISTS profile_tags (
    profile_tag_id TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
    tag_id         TEXT NOT NULL REFERENCES tags (tag_id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE (profile_id, tag_id)
);
COMMENT ON TABLE profile_tags IS 'Which tags a profile carries';
CREATE INDEX IF NOT EXISTS idx_profile_tags_profile ON profile_tags (profile_id);
CREATE INDEX IF NOT EXISTS idx_profile_tags_tag ON profile_tags (tag_id);

CREATE TABLE IF NOT EXISTS post_tags (
    post_tag_id  TEXT PRIMARY KEY,
    post_id      TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    tag_id       TEXT NOT NULL REFERENCES tags (tag_id) ON DELETE CASCADE,
    confidence   REAL,
    applied_by   TEXT DEFAULT 'ai',
    system_notes TEXT,
    created_at   TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE (post_id, tag_id)
);
COMMENT ON TABLE post_tags IS 'Which tags a post carries, with the tagger''s confidence';
COMMENT ON COLUMN post_tags.confidence IS 'Confidence of an automatic tag, 0.0 to 1.0';
COMMENT ON COLUMN post_tags.applied_by IS 'ai, user or system';
CREATE INDEX IF NOT EXISTS idx_post_tags_post ON post_tags (post_id);
CREATE INDEX IF NOT EXISTS idx_post_tags_tag ON post_tags (tag_id);
CREATE INDEX IF NOT EXISTS idx_post_tags_applied_by ON post_tags (applied_by);

-- status has no CHECK: the scripts write 'queued', the TUI writes 'pending'.
CREATE TABLE IF NOT EXISTS action_queue (
    action_id     TEXT PRIMARY KEY,
    post_id       TEXT REFERENCES posts (post_id) ON DELETE CASCADE,
    action_type   TEXT NOT NULL,
    action_params TEXT,
    status        TEXT DEFAULT 'queued',
    priority      INTEGER DEFAULT 0,
    scheduled_for TIMESTAMPTZ,
    executed_at   TIMESTAMPTZ,
    user_notes    TEXT,
    system_notes  TEXT,
    created_at    TIMESTAMPTZ DEFAULT NOW(),
    updated_at    TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE action_queue IS 'Actions queued on posts';
CREATE INDEX IF NOT EXISTS idx_actions_post_id ON action_queue (post_id);
CREATE INDEX IF NOT EXISTS idx_actions_status ON action_queue (status);
CREATE INDEX IF NOT EXISTS idx_actions_scheduled ON action_queue (scheduled_for);
CREATE INDEX IF NOT EXISTS idx_actions_priority ON action_queue (priority DESC);

CREATE TABLE IF NOT EXISTS post_media (
    media_id           TEXT PRIMARY KEY,
    post_id            TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    media_type         TEXT NOT NULL,
    media_url          TEXT NOT NULL,
    local_file_path    TEXT,
    file_size          INTEGER,
    mime_type          TEXT,
    width              INTEGER,
    height             INTEGER,
    ai_analysis_status TEXT DEFAULT 'pending',
    ai_analysis        TEXT,
    ai_analyzed_at     TIMESTAMPTZ,
    created_at         TIMESTAMPTZ DEFAULT NOW(),
    updated_at         TIMESTAMPTZ DEFAULT NOW()
);
COMMENT ON TABLE post_media IS 'Media found in posts, with their AI analysis';
COMMENT ON COLUMN post_media.media_url IS 'The full signed URL as scraped';
COMMENT ON COLUMN post_media.ai_analysis_status IS 'pending, processing, completed or failed';
CREATE INDEX IF NOT EXISTS idx_media_post_id ON post_media (post_id);
CREATE INDEX IF NOT EXISTS idx_media_analysis_status ON post_media (ai_analysis_status);
CREATE INDEX IF NOT EXISTS idx_media_type ON post_media (media_type);
