-- The embedded SQLite database: the same tables, columns and constraints as the PostgreSQL
-- schema after every migration in supabase/migrations/. Timestamps are ISO-8601 UTC text,
-- JSON columns are JSON text. Applied on first use; every statement can run twice.

CREATE TABLE IF NOT EXISTS posts (
    post_id             TEXT PRIMARY KEY,
    urn                 TEXT NOT NULL UNIQUE,
    full_urn            TEXT,
    platform            TEXT NOT NULL DEFAULT 'linkedin',
    posted_at_timestamp INTEGER,
    posted_at           TEXT,
    author_username     TEXT,
    author_name         TEXT,
    text_content        TEXT,
    post_url            TEXT,
    post_type           TEXT,
    raw_json            TEXT,
    first_seen_at       TEXT NOT NULL,
    last_seen_at        TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_posts_posted_at ON posts(posted_at);
CREATE INDEX IF NOT EXISTS idx_posts_author ON posts(author_username);

CREATE TABLE IF NOT EXISTS download_runs (
    run_id          TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    completed_at    TEXT,
    status          TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed')),
    source_path     TEXT,
    script_name     TEXT,
    posts_processed INTEGER NOT NULL DEFAULT 0,
    posts_new       INTEGER NOT NULL DEFAULT 0,
    posts_updated   INTEGER NOT NULL DEFAULT 0,
    error_count     INTEGER NOT NULL DEFAULT 0,
    error_message   TEXT,
    created_at      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS data_downloads (
    download_id     TEXT PRIMARY KEY,
    post_id         TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    run_id          TEXT NOT NULL REFERENCES download_runs(run_id) ON DELETE CASCADE,
    downloaded_at   TEXT NOT NULL,
    total_reactions INTEGER,
    stats_json      TEXT,
    raw_json        TEXT,
    source_file     TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_data_downloads_post ON data_downloads(post_id, downloaded_at);
CREATE INDEX IF NOT EXISTS idx_data_downloads_run ON data_downloads(run_id);

CREATE TABLE IF NOT EXISTS profiles (
    profile_id  TEXT PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    name        TEXT,
    headline    TEXT,
    profile_url TEXT,
    notes       TEXT,
    is_active   INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tags (
    tag_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    color       TEXT,
    description TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS profile_tags (
    profile_id TEXT NOT NULL REFERENCES profiles(profile_id) ON DELETE CASCADE,
    tag_id     TEXT NOT NULL REFERENCES tags(tag_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (profile_id, tag_id)
);

CREATE TABLE IF NOT EXISTS post_tags (
    post_id    TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    tag_id     TEXT NOT NULL REFERENCES tags(tag_id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (post_id, tag_id)
);

CREATE TABLE IF NOT EXISTS action_queue (
    action_id    TEXT PRIMARY KEY,
    post_id      TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    action_type  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    payload      TEXT,
    notes        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_action_queue_status ON action_queue(status);

CREATE TABLE IF NOT EXISTS post_media (
    media_id             TEXT PRIMARY KEY,
    post_id              TEXT NOT NULL REFERENCES posts(post_id) ON DELETE CASCADE,
    media_type           TEXT NOT NULL,
    media_url            TEXT NOT NULL,
    local_file_path      TEXT,
    file_size            INTEGER,
    mime_type            TEXT,
    width                INTEGER,
    height               INTEGER,
    ai_analysis_status   TEXT DEFAULT 'not_started'
                         CHECK (ai_analysis_status IN ('not_started', 'started', 'completed', 'failed')),
    ai_analysis          TEXT,
    ai_analyzed_at       TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    md5_sum              TEXT,
    archive_url          TEXT,
    ai_analysis_log      TEXT NOT NULL DEFAULT '[]',
    slot_key             TEXT NOT NULL,
    slot_role            TEXT,
    position             INTEGER NOT NULL DEFAULT 0,
    url_expires_at       TEXT,
    download_status      TEXT NOT NULL DEFAULT 'pending'
                         CHECK (download_status IN ('pending', 'downloaded', 'failed')),
    download_error       TEXT,
    download_error_kind  TEXT,
    download_permanent   INTEGER NOT NULL DEFAULT 0,
    download_attempts    INTEGER NOT NULL DEFAULT 0,
    downloaded_at        TEXT,
    download_claimed_by  TEXT,
    download_claimed_at  TEXT,
    cache_used_at        TEXT,
    evicted_at           TEXT,
    archived_at          TEXT,
    ai_claimed_by        TEXT,
    ai_claimed_at        TEXT,
    ai_model             TEXT,
    ai_prompt_tokens     INTEGER,
    ai_completion_tokens INTEGER,
    ai_cost_usd          REAL
);
CREATE INDEX IF NOT EXISTS idx_post_media_post ON post_media(post_id);
CREATE INDEX IF NOT EXISTS idx_media_md5_sum ON post_media(md5_sum);
CREATE INDEX IF NOT EXISTS idx_media_archive_url ON post_media(archive_url) WHERE archive_url IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_media_post_slot ON post_media(post_id, slot_key);
CREATE INDEX IF NOT EXISTS idx_media_download_queue ON post_media(download_status, url_expires_at)
    WHERE download_status <> 'downloaded';
CREATE INDEX IF NOT EXISTS idx_media_ai_queue ON post_media(ai_analysis_status)
    WHERE ai_analysis_status <> 'completed';
