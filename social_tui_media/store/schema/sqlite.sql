-- The embedded SQLite database: the installation's tables, column names and views (see
-- supabase/migrations/20251130223349 to 20251202010717) plus the media pipeline's columns
-- (20251205000000), in SQLite's types: timestamps are ISO-8601 UTC text, booleans 0/1, JSON
-- columns JSON text. Applied on first use; every statement can run twice. The only triggers
-- keep the audit log append-only: the original scripts never write to this database, and this
-- tool fills every column.

CREATE TABLE IF NOT EXISTS posts (
    post_id             TEXT PRIMARY KEY,
    urn                 TEXT UNIQUE NOT NULL,
    full_urn            TEXT,
    platform            TEXT DEFAULT 'linkedin',
    posted_at_timestamp INTEGER NOT NULL,
    author_username     TEXT,
    text_content        TEXT,
    post_type           TEXT,
    url                 TEXT,
    raw_json            TEXT,
    first_seen_at       TEXT,
    is_read             INTEGER DEFAULT 0,
    is_marked           INTEGER DEFAULT 0,
    created_at          TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at          TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    author_name         TEXT,
    last_seen_at        TEXT
);
CREATE INDEX IF NOT EXISTS idx_posts_posted_at ON posts (posted_at_timestamp);
CREATE INDEX IF NOT EXISTS idx_posts_author ON posts (author_username);
CREATE INDEX IF NOT EXISTS idx_posts_first_seen ON posts (first_seen_at);
-- The browser's order, newest post first (20251209000000_media_browse).
CREATE INDEX IF NOT EXISTS idx_posts_browse_order ON posts (posted_at_timestamp DESC, post_id DESC);

CREATE TABLE IF NOT EXISTS download_runs (
    run_id        TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    completed_at  TEXT,
    status        TEXT DEFAULT 'running',
    script_name   TEXT,
    platform      TEXT DEFAULT 'linkedin',
    posts_fetched INTEGER DEFAULT 0,
    posts_new     INTEGER DEFAULT 0,
    posts_updated INTEGER DEFAULT 0,
    error_message TEXT,
    system_info   TEXT,
    created_at    TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    source_path   TEXT,
    error_count   INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_runs_started_at ON download_runs (started_at);

CREATE TABLE IF NOT EXISTS data_downloads (
    download_id      TEXT PRIMARY KEY,
    post_id          TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    run_id           TEXT REFERENCES download_runs (run_id) ON DELETE SET NULL,
    downloaded_at    TEXT NOT NULL,
    total_reactions  INTEGER DEFAULT 0,
    stats_json       TEXT,
    raw_json         TEXT,
    source_file_path TEXT,
    created_at       TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_downloads_post_id ON data_downloads (post_id);
CREATE INDEX IF NOT EXISTS idx_downloads_run_id ON data_downloads (run_id);

CREATE TABLE IF NOT EXISTS profiles (
    profile_id     TEXT PRIMARY KEY,
    username       TEXT UNIQUE NOT NULL,
    name           TEXT NOT NULL,
    platform       TEXT DEFAULT 'linkedin',
    is_active      INTEGER DEFAULT 1,
    notes          TEXT,
    post_count     INTEGER DEFAULT 0,
    last_synced_at TEXT,
    created_at     TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at     TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE IF NOT EXISTS tags (
    tag_id      TEXT PRIMARY KEY,
    name        TEXT UNIQUE NOT NULL,
    description TEXT,
    color       TEXT DEFAULT 'cyan',
    created_at  TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE IF NOT EXISTS profile_tags (
    profile_tag_id TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
    tag_id         TEXT NOT NULL REFERENCES tags (tag_id) ON DELETE CASCADE,
    created_at     TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    UNIQUE (profile_id, tag_id)
);

CREATE TABLE IF NOT EXISTS post_tags (
    post_tag_id  TEXT PRIMARY KEY,
    post_id      TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    tag_id       TEXT NOT NULL REFERENCES tags (tag_id) ON DELETE CASCADE,
    confidence   REAL,
    applied_by   TEXT DEFAULT 'ai',
    system_notes TEXT,
    created_at   TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    UNIQUE (post_id, tag_id)
);

CREATE TABLE IF NOT EXISTS action_queue (
    action_id     TEXT PRIMARY KEY,
    post_id       TEXT REFERENCES posts (post_id) ON DELETE CASCADE,
    action_type   TEXT NOT NULL,
    action_params TEXT,
    status        TEXT DEFAULT 'queued',
    priority      INTEGER DEFAULT 0,
    scheduled_for TEXT,
    executed_at   TEXT,
    user_notes    TEXT,
    system_notes  TEXT,
    created_at    TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at    TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE IF NOT EXISTS post_media (
    media_id             TEXT PRIMARY KEY,
    post_id              TEXT NOT NULL REFERENCES posts (post_id) ON DELETE CASCADE,
    media_type           TEXT NOT NULL,
    media_url            TEXT NOT NULL,
    local_file_path      TEXT,
    file_size            INTEGER,
    mime_type            TEXT,
    width                INTEGER,
    height               INTEGER,
    ai_analysis_status   TEXT DEFAULT 'not_started'
                         CHECK (ai_analysis_status IN ('not_started', 'started', 'completed', 'failed', 'pending')),
    ai_analysis          TEXT,
    ai_analyzed_at       TEXT,
    created_at           TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    updated_at           TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    md5_sum              TEXT,
    archive_url          TEXT,
    ai_analysis_log      TEXT,
    slot_key             TEXT,
    slot_role            TEXT,
    position             INTEGER NOT NULL DEFAULT 0,
    duplicate_of         TEXT,
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
    ai_cost_usd          REAL,
    ai_batch_id          TEXT,
    text_status          TEXT NOT NULL DEFAULT 'not_started'
                         CHECK (text_status IN ('not_started', 'started', 'completed', 'failed')),
    text_claimed_by      TEXT,
    text_claimed_at      TEXT,
    extracted_text       TEXT,
    text_segments        TEXT,
    text_engine          TEXT,
    text_extracted_at    TEXT,
    phash                TEXT,
    near_group_id        TEXT
);
CREATE INDEX IF NOT EXISTS idx_media_post_id ON post_media (post_id);
CREATE INDEX IF NOT EXISTS idx_media_md5_sum ON post_media (md5_sum);
CREATE INDEX IF NOT EXISTS idx_media_archive_url ON post_media (archive_url) WHERE archive_url IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_media_post_slot ON post_media (post_id, slot_key) WHERE duplicate_of IS NULL;
-- A slot in any post, for the TUI's hook (find_cached): only cached rows are looked up, so only
-- they are indexed; an index of every slot key (long, random) slowed imports by a fifth.
DROP INDEX IF EXISTS idx_media_slot_key;
CREATE INDEX IF NOT EXISTS idx_media_slot_key_cached ON post_media (slot_key)
    WHERE download_status = 'downloaded' AND evicted_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_media_download_queue ON post_media (download_status, url_expires_at)
    WHERE download_status <> 'downloaded';
CREATE INDEX IF NOT EXISTS idx_media_ai_queue ON post_media (ai_analysis_status)
    WHERE ai_analysis_status <> 'completed';
CREATE INDEX IF NOT EXISTS idx_media_ai_batch ON post_media (ai_batch_id) WHERE ai_batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_media_md5_completed ON post_media (md5_sum, ai_model)
    WHERE ai_analysis_status = 'completed';

-- Analysis batches sent to the OpenAI Batch API (20251207000000_analysis_batches).
CREATE TABLE IF NOT EXISTS media_analysis_batches (
    batch_id          TEXT PRIMARY KEY,
    status            TEXT NOT NULL DEFAULT 'preparing'
                      CHECK (status IN ('preparing', 'submitted', 'completed', 'expired', 'failed',
                                        'cancelled', 'abandoned')),
    model             TEXT NOT NULL,
    api_base          TEXT,
    owner             TEXT,
    provider_batch_id TEXT UNIQUE,
    input_file_id     TEXT,
    output_file_id    TEXT,
    error_file_id     TEXT,
    item_count        INTEGER NOT NULL DEFAULT 0,
    request_count     INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    saved_usd         REAL NOT NULL DEFAULT 0,
    error             TEXT,
    created_at        TEXT NOT NULL,
    submitted_at      TEXT,
    finished_at       TEXT,
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_analysis_batches_open ON media_analysis_batches (created_at)
    WHERE status IN ('preparing', 'submitted');

-- The append-only audit log (20251208000000): presigned URLs, exports, file deletions.
CREATE TABLE IF NOT EXISTS media_audit (
    audit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')),
    actor_user  TEXT NOT NULL,
    actor_host  TEXT NOT NULL,
    action      TEXT NOT NULL,
    media_id    TEXT,
    target      TEXT,
    reason      TEXT,
    details     TEXT
);
CREATE INDEX IF NOT EXISTS idx_media_audit_occurred_at ON media_audit (occurred_at);
CREATE INDEX IF NOT EXISTS idx_media_audit_media_id ON media_audit (media_id) WHERE media_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS media_audit_no_update BEFORE UPDATE ON media_audit
BEGIN
    SELECT RAISE(ABORT, 'media_audit is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER IF NOT EXISTS media_audit_no_delete BEFORE DELETE ON media_audit
BEGIN
    SELECT RAISE(ABORT, 'media_audit is append-only: DELETE is not allowed');
END;

CREATE INDEX IF NOT EXISTS idx_media_text_queue ON post_media (text_status) WHERE text_status <> 'completed';
CREATE INDEX IF NOT EXISTS idx_media_near_group ON post_media (near_group_id) WHERE near_group_id IS NOT NULL;

-- `manage_media.py search` (20251210000001 and 20251211000000 on PostgreSQL): FTS5 documents,
-- porter stemming, kept current by triggers. A post has one document (post_search, rowid = the
-- posts row's rowid: its text and author), written once when it is imported. A media row with
-- text of its own (an analysis, extracted text) has a document of all it says (media_search,
-- rowid = the post_media row's rowid: the text in the media, the analysis' description and
-- tags, and its post's text and author); one without is found by its post's document. So an
-- import tokenises each post's text once, whatever its number of media.
CREATE VIRTUAL TABLE IF NOT EXISTS media_search USING fts5(
    image_text, description, tags, post_text, author,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS post_search USING fts5(
    post_text, author,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- A post's document: its text and its author (username and name). A media row's document
-- holds it too.
CREATE VIEW IF NOT EXISTS post_doc_source AS
SELECT rowid AS rowid, post_id, text_content AS post_text,
       trim(coalesce(author_username, '') || ' ' || coalesce(author_name, '')) AS author
  FROM posts;

CREATE VIEW IF NOT EXISTS media_doc_source AS
SELECT m.rowid AS rowid,
       nullif(trim(coalesce(m.extracted_text, '') || char(10) ||
              coalesce(CASE WHEN json_valid(m.ai_analysis) AND json_type(m.ai_analysis, '$.text_in_image') = 'array'
                            THEN (SELECT group_concat(value, ' ') FROM json_each(m.ai_analysis, '$.text_in_image'))
                            WHEN json_valid(m.ai_analysis) THEN json_extract(m.ai_analysis, '$.text_in_image') END,
                       ''), char(10) || ' '), '') AS image_text,
       CASE WHEN json_valid(m.ai_analysis) THEN json_extract(m.ai_analysis, '$.description')
            ELSE m.ai_analysis END AS description,
       CASE WHEN json_valid(m.ai_analysis) AND json_type(m.ai_analysis, '$.tags') = 'array'
            THEN (SELECT group_concat(value, ' ') FROM json_each(m.ai_analysis, '$.tags')) END AS tags,
       p.post_text, p.author, m.post_id AS post_id
  FROM post_media m JOIN post_doc_source p ON p.post_id = m.post_id
 WHERE m.ai_analysis IS NOT NULL OR coalesce(m.extracted_text, '') <> '';  -- text of its own

-- The view and triggers of the first search index (one document per media row, each repeating
-- its post's text); a database from then is re-indexed below, once.
DROP VIEW IF EXISTS media_search_source;
DROP TRIGGER IF EXISTS media_search_insert;
DROP TRIGGER IF EXISTS media_search_update;
DROP TRIGGER IF EXISTS media_search_delete;
DROP TRIGGER IF EXISTS media_search_post_update;
DELETE FROM media_search WHERE NOT EXISTS (SELECT 1 FROM post_search);
INSERT INTO media_search (rowid, image_text, description, tags, post_text, author)
SELECT rowid, image_text, description, tags, post_text, author FROM media_doc_source
 WHERE NOT EXISTS (SELECT 1 FROM post_search);
INSERT INTO post_search (rowid, post_text, author)
SELECT rowid, post_text, author FROM post_doc_source WHERE NOT EXISTS (SELECT 1 FROM post_search);

-- The WHEN repeats media_doc_source's rule so that an import's rows (none has text yet) skip the view.
CREATE TRIGGER IF NOT EXISTS media_doc_insert AFTER INSERT ON post_media
WHEN NEW.ai_analysis IS NOT NULL OR coalesce(NEW.extracted_text, '') <> '' BEGIN
    INSERT INTO media_search (rowid, image_text, description, tags, post_text, author)
    SELECT rowid, image_text, description, tags, post_text, author FROM media_doc_source
     WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER IF NOT EXISTS media_doc_update AFTER UPDATE OF ai_analysis, extracted_text, post_id ON post_media
WHEN OLD.ai_analysis IS NOT NEW.ai_analysis OR OLD.extracted_text IS NOT NEW.extracted_text
     OR OLD.post_id IS NOT NEW.post_id
BEGIN
    DELETE FROM media_search WHERE rowid = OLD.rowid;
    INSERT INTO media_search (rowid, image_text, description, tags, post_text, author)
    SELECT rowid, image_text, description, tags, post_text, author FROM media_doc_source
     WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER IF NOT EXISTS media_doc_delete AFTER DELETE ON post_media BEGIN
    DELETE FROM media_search WHERE rowid = OLD.rowid;
END;

CREATE TRIGGER IF NOT EXISTS post_doc_insert AFTER INSERT ON posts BEGIN
    INSERT INTO post_search (rowid, post_text, author)
    SELECT rowid, post_text, author FROM post_doc_source WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER IF NOT EXISTS post_doc_update AFTER UPDATE OF text_content, author_username, author_name ON posts
WHEN OLD.text_content IS NOT NEW.text_content OR OLD.author_username IS NOT NEW.author_username
     OR OLD.author_name IS NOT NEW.author_name
BEGIN
    DELETE FROM post_search WHERE rowid = OLD.rowid;
    INSERT INTO post_search (rowid, post_text, author)
    SELECT rowid, post_text, author FROM post_doc_source WHERE rowid = NEW.rowid;
    DELETE FROM media_search WHERE rowid IN (SELECT rowid FROM post_media WHERE post_id = NEW.post_id);
    INSERT INTO media_search (rowid, image_text, description, tags, post_text, author)
    SELECT rowid, image_text, description, tags, post_text, author FROM media_doc_source
     WHERE post_id = NEW.post_id;
END;

CREATE TRIGGER IF NOT EXISTS post_doc_delete AFTER DELETE ON posts BEGIN
    DELETE FROM post_search WHERE rowid = OLD.rowid;
END;

-- The TUI's views, with the same columns as on PostgreSQL.
CREATE VIEW IF NOT EXISTS v_main_post_view AS
SELECT p.post_id, p.platform, p.urn,
       strftime('%Y-%m-%d %H:%M:%S', p.posted_at_timestamp / 1000.0, 'unixepoch') AS posted_at_formatted,
       p.author_username,
       substr(p.text_content, 1, 50) AS text_preview,
       CASE
           WHEN json_extract(p.raw_json, '$.media.type') = 'images'
                AND json_array_length(p.raw_json, '$.media.images') > 1
               THEN '📷(' || json_array_length(p.raw_json, '$.media.images') || ')'
           WHEN json_extract(p.raw_json, '$.media.type') IN ('image', 'images', 'video', 'document') THEN '📷'
           ELSE ''
       END AS media_indicator,
       CASE WHEN p.is_marked THEN '★' ELSE '' END || coalesce(aq.action_types, '') AS marked_indicator,
       p.first_seen_at, p.raw_json
  FROM posts p
  LEFT JOIN (SELECT post_id, group_concat(DISTINCT action_type) AS action_types
               FROM action_queue GROUP BY post_id) aq ON aq.post_id = p.post_id
 ORDER BY p.posted_at_timestamp DESC;

CREATE VIEW IF NOT EXISTS v_post_engagement_history AS
SELECT p.post_id, p.urn AS post_urn, p.author_username,
       min(strftime('%Y-%m-%dT%H:%M:%f+00:00', p.posted_at_timestamp / 1000.0, 'unixepoch'),
           coalesce((SELECT min(d.downloaded_at) FROM data_downloads d WHERE d.post_id = p.post_id), '9999'))
           AS downloaded_at,
       0 AS reactions, 0 AS comments, 0 AS reposts, 0 AS views, '{}' AS stats_json,
       'virtual_initial_point' AS download_id, NULL AS run_id
  FROM posts p
UNION ALL
SELECT dd.post_id, p.urn AS post_urn, p.author_username, dd.downloaded_at,
       coalesce(dd.total_reactions, json_extract(dd.stats_json, '$.total_reactions'), 0) AS reactions,
       coalesce(json_extract(dd.stats_json, '$.comments'), 0) AS comments,
       coalesce(json_extract(dd.stats_json, '$.reposts'), json_extract(dd.stats_json, '$.shares'), 0) AS reposts,
       coalesce(json_extract(dd.stats_json, '$.views'), 0) AS views,
       dd.stats_json, dd.download_id, dd.run_id
  FROM data_downloads dd JOIN posts p ON p.post_id = dd.post_id;

CREATE VIEW IF NOT EXISTS v_profiles_with_stats AS
SELECT pr.profile_id, pr.username, pr.name, pr.platform, pr.notes, pr.is_active, pr.created_at,
       pr.updated_at, pr.last_synced_at,
       coalesce((SELECT count(*) FROM posts p WHERE p.author_username = pr.username), 0) AS post_count,
       coalesce((SELECT json_group_array(json_object('tag_id', t.tag_id, 'name', t.name, 'color', t.color,
                                                    'description', t.description))
                   FROM profile_tags pt JOIN tags t ON t.tag_id = pt.tag_id
                  WHERE pt.profile_id = pr.profile_id), '[]') AS tags
  FROM profiles pr
 ORDER BY pr.created_at DESC;
