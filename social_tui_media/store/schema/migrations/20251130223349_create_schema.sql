-- Base schema shared by every social-tui tool: scraped posts, their download history,
-- profiles and tags, the action queue, and the media found in posts.

CREATE TABLE IF NOT EXISTS posts (
    post_id            TEXT PRIMARY KEY,
    urn                TEXT NOT NULL UNIQUE,
    full_urn           TEXT,
    platform           TEXT NOT NULL DEFAULT 'linkedin',
    posted_at_timestamp BIGINT,
    posted_at          TIMESTAMPTZ,
    author_username    TEXT,
    author_name        TEXT,
    text_content       TEXT,
    post_url           TEXT,
    post_type          TEXT,
    raw_json           JSONB,
    first_seen_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_seen_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_posts_posted_at ON posts(posted_at);
CREATE INDEX IF NOT EXISTS idx_posts_author ON posts(author_username);

CREATE TABLE IF NOT EXISTS download_runs (
    run_id          TEXT PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at    TIMESTAMPTZ,
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed')),
    source_path     TEXT,
    script_name     TEXT,
    posts_processed INTEGER NOT NULL DEFAULT 0,
    posts_new       INTEGER NOT NULL DEFAULT 0,
    posts_updated   INTEGER NOT NULL DEFAULT 0,
    error_count     INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS data_downloads (
    download_id     TEXT PRIMARY KEY,
    post_id         TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    run_id          TEXT NOT NULL REFERENCES download_runs(run_id) ON DELETE CASCADE,
    downloaded_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    total_reactions INTEGER,
    stats_json      JSONB,
    raw_json        JSONB,
    source_file     TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_data_downloads_post ON data_downloads(post_id, downloaded_at);
CREATE INDEX IF NOT EXISTS idx_data_downloads_run ON data_downloads(run_id);

CREATE TABLE IF NOT EXISTS profiles (
    profile_id   TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    name         TEXT,
    headline     TEXT,
    profile_url  TEXT,
    notes        TEXT,
    is_active    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS tags (
    tag_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    color       TEXT,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS profile_tags (
    profile_id TEXT NOT NULL REFERENCES profiles(profile_id) ON DELETE CASCADE,
    tag_id     TEXT NOT NULL REFERENCES tags(tag_id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (profile_id, tag_id)
);

CREATE TABLE IF NOT EXISTS post_tags (
    post_id    TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    tag_id     TEXT NOT NULL REFERENCES tags(tag_id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (post_id, tag_id)
);

CREATE TABLE IF NOT EXISTS action_queue (
    action_id    TEXT PRIMARY KEY,
    post_id      TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    action_type  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    payload      JSONB,
    notes        TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_action_queue_status ON action_queue(status);

CREATE TABLE IF NOT EXISTS post_media (
    media_id           TEXT PRIMARY KEY,
    post_id            TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
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
CREATE INDEX IF NOT EXISTS idx_post_media_post ON post_media(post_id);
