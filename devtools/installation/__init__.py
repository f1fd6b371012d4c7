"""An existing social-tui installation, as people run it before this project touches it.

`build_installation` applies the installation's own migrations (the first nine files of
`supabase/migrations/`, one per row of its history) and its dashboard security pass to an empty PostgreSQL database, recording the
history the way the Supabase CLI does. `OriginalScripts` replays the SQL the original scripts
send (through PostgREST) so the rows look exactly like theirs, and `seed_installation` uses it
to fill the installation. `snapshot` captures everything for before/after comparisons.
A test fixture: never imported by product code.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from social_tui_media.store.migrations import BASELINE, MIGRATIONS_DIR

HERE = Path(__file__).resolve().parent
SECURITY_PASS = HERE / "security_pass.sql"

HISTORY_VARIANTS = ("cli_history", "media_other_version", "no_history")
MEDIA_VERSION = "20251201123623"
MEDIA_OTHER_VERSION = "20251201203830"

# Table -> primary key, in the order the schema creates them.
PRIMARY_KEYS = {
    "posts": "post_id",
    "download_runs": "run_id",
    "data_downloads": "download_id",
    "profiles": "profile_id",
    "tags": "tag_id",
    "profile_tags": "profile_tag_id",
    "post_tags": "post_tag_id",
    "action_queue": "action_id",
    "post_media": "media_id",
}
TABLES = tuple(PRIMARY_KEYS)
VIEWS = ("v_main_post_view", "v_post_engagement_history", "v_profiles_with_stats")


def migration_files() -> list[Path]:
    """The installation's migration files, in the order they were applied."""
    return [p for p in sorted(MIGRATIONS_DIR.glob("*.sql")) if p.stem.partition("_")[0] in BASELINE]


def recorded_version(path: Path, variant: str) -> str:
    """The version under which `variant` records the migration file `path`."""
    version = path.stem.partition("_")[0]
    if variant == "media_other_version" and version == MEDIA_VERSION:
        return MEDIA_OTHER_VERSION
    return version


def build_installation(conninfo: str, variant: str) -> None:
    """Turn an empty database into an installation: the nine migrations, each in its own
    transaction and recorded as `variant` says, then the security pass (never recorded)."""
    if variant not in HISTORY_VARIANTS:
        raise ValueError(f"unknown history variant {variant!r}; choose one of {HISTORY_VARIANTS}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if variant != "no_history":
            conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations"
                " (version TEXT NOT NULL PRIMARY KEY, statements TEXT[], name TEXT)"
            )
        for path in migration_files():
            sql = path.read_text()
            with conn.transaction():
                conn.execute(sql)
                if variant != "no_history":
                    conn.execute(
                        "INSERT INTO supabase_migrations.schema_migrations (version, statements, name)"
                        " VALUES (%s, %s, %s)",
                        (recorded_version(path, variant), [sql], path.stem.partition("_")[2]),
                    )
        with conn.transaction():
            conn.execute(SECURITY_PASS.read_text())


def generate_aws_id(prefix: str) -> str:
    """An id in the installation's format: `prefix-` and 8 lowercase hex digits."""
    return f"{prefix}-{secrets.token_hex(4)}"


def get_post_urn(post: dict) -> str | None:
    """A post's identity: `full_urn`, else `urn.activity_urn`/`urn.ugcPost_urn`, else a string `urn`."""
    urn = post.get("full_urn")
    if not urn and "urn" in post:
        raw = post["urn"]
        urn = (raw.get("activity_urn") or raw.get("ugcPost_urn")) if isinstance(raw, dict) else raw
    return urn


def _now() -> datetime:
    return datetime.now(UTC)


class OriginalScripts:
    """The writes of the original social-tui scripts, column for column, on one connection.

    Each method runs one statement (committed at once when the connection is in autocommit)
    and returns the id it created.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        columns = ", ".join(row)
        placeholders = ", ".join(["%s"] * len(row))
        self.conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(row.values()))

    def _insert_new(self, table: str, id_column: str, prefix: str, row: dict[str, Any], *stamps: str) -> str:
        """Insert a row under a new `{prefix}-…` id, the columns in `stamps` set to now, as the
        scripts do; returns the id."""
        new_id = generate_aws_id(prefix)
        self._insert(table, {id_column: new_id, **row, **dict.fromkeys(stamps, _now())})
        return new_id

    def create_run(self, script_name: str = "update_data.py", platform: str = "linkedin") -> str:
        """`create_download_run`: a run in status 'running'."""
        system_info = {"hostname": socket.gethostname(), "platform": platform, "script": script_name}
        row = {
            "status": "running",
            "script_name": script_name,
            "platform": platform,
            "system_info": json.dumps(system_info),
        }
        return self._insert_new("download_runs", "run_id", "run", row, "started_at", "created_at")

    def complete_run(
        self, run_id: str, processed: int, new: int, updated: int = 0, error_message: str | None = None
    ) -> None:
        """`complete_download_run`: 'failed' with an error message, else 'completed'."""
        self.conn.execute(
            "UPDATE download_runs SET completed_at = %s, status = %s, posts_fetched = %s, posts_new = %s,"
            " posts_updated = %s, error_message = %s WHERE run_id = %s",
            (
                _now(),
                "failed" if error_message else "completed",
                processed,
                new,
                updated,
                error_message,
                run_id,
            ),
        )

    def insert_post(self, post: dict) -> str:
        """Import one post: a new `posts` row, or nothing for a known urn. Returns the post's id
        either way (the import then records a data_downloads row under it)."""
        urn = get_post_urn(post)
        if not urn:
            raise ValueError("the post has no urn")
        known = self.conn.execute("SELECT post_id FROM posts WHERE urn = %s", (urn,)).fetchone()
        if known:
            return known[0]
        row = {
            "urn": urn,
            "full_urn": post.get("full_urn"),
            "platform": "linkedin",
            "posted_at_timestamp": (post.get("posted_at") or {}).get("timestamp"),
            "author_username": (post.get("author") or {}).get("username", ""),
            "text_content": post.get("text", ""),
            "post_type": post.get("post_type", "regular"),
            "url": post.get("url"),
            "raw_json": json.dumps(post),
            "is_read": False,
            "is_marked": False,
        }
        return self._insert_new("posts", "post_id", "p", row, "first_seen_at", "created_at", "updated_at")

    def insert_data_download(
        self, post_id: str, run_id: str | None, post: dict, source_file_path: str
    ) -> str:
        """One engagement snapshot of the post in this run (stats and post as JSON text)."""
        stats = post.get("stats") or {}
        row = {
            "post_id": post_id,
            "run_id": run_id,
            "total_reactions": stats.get("total_reactions", 0),
            "stats_json": json.dumps(stats),
            "raw_json": json.dumps(post),
            "source_file_path": source_file_path,
        }
        return self._insert_new("data_downloads", "download_id", "dl", row, "downloaded_at", "created_at")

    def insert_media(self, post_id: str, media_url: str, media_type: str, **cached: Any) -> str:
        """`extract_and_store_media`: one row per URL; `cached` holds what a download found
        (local_file_path, md5_sum, file_size, mime_type, width, height). The log is
        `json.dumps([...])`, so the jsonb column holds a JSON *string*."""
        details = {key: cached.get(key) for key in ("file_size", "mime_type", "md5_sum")}
        event = {
            "timestamp": _now().isoformat(),
            "event": "media_downloaded",
            "status": "success",
            "details": details,
        }
        row = {
            "post_id": post_id,
            "media_type": media_type,
            "media_url": media_url,
            **dict.fromkeys(("local_file_path", "md5_sum", "file_size", "mime_type", "width", "height")),
            **cached,
            "ai_analysis_status": "not_started",
            "ai_analysis_log": Jsonb(json.dumps([event])),
        }
        return self._insert_new("post_media", "media_id", "med", row, "created_at", "updated_at")

    def insert_youtube_media(self, post_id: str, media_url: str, media_type: str = "video") -> str:
        """The YouTube fetcher's row: only media_id, post_id, media_type, media_url."""
        row = {"post_id": post_id, "media_type": media_type, "media_url": media_url}
        return self._insert_new("post_media", "media_id", "med", row)

    def insert_pending_media(self, post_id: str, media_url: str, media_type: str = "image") -> str:
        """A row left in the seed schema's status 'pending' (still allowed by the CHECK)."""
        row = {
            "post_id": post_id,
            "media_type": media_type,
            "media_url": media_url,
            "ai_analysis_status": "pending",
        }
        return self._insert_new("post_media", "media_id", "med", row)

    def record_analysis(self, media_id: str, analysis: dict) -> None:
        """An analysis script's result: status 'completed', the analysis as JSON text."""
        self.conn.execute(
            "UPDATE post_media SET ai_analysis_status = 'completed', ai_analysis = %s, ai_analyzed_at = now()"
            " WHERE media_id = %s",
            (json.dumps(analysis), media_id),
        )

    def insert_profile(
        self, username: str, name: str, platform: str = "linkedin", notes: str | None = None
    ) -> str:
        """The profile manager's new monitored profile."""
        row = {"username": username, "name": name, "platform": platform, "is_active": True, "notes": notes}
        return self._insert_new("profiles", "profile_id", "prf", row, "created_at", "updated_at")

    def insert_tag(self, name: str, description: str | None = None, color: str = "cyan") -> str:
        """The tag manager's new tag."""
        row = {"name": name, "description": description, "color": color}
        return self._insert_new("tags", "tag_id", "tag", row, "created_at")

    def tag_profile(self, profile_id: str, tag_id: str) -> str:
        """Link a profile to a tag."""
        row = {"profile_id": profile_id, "tag_id": tag_id}
        return self._insert_new("profile_tags", "profile_tag_id", "pft", row, "created_at")

    def tag_post(
        self, post_id: str, tag_id: str, confidence: float | None = None, applied_by: str = "ai"
    ) -> str:
        """Link a post to a tag, as the AI tagger (with a confidence) or a user does."""
        row = {"post_id": post_id, "tag_id": tag_id, "confidence": confidence, "applied_by": applied_by}
        return self._insert_new("post_tags", "post_tag_id", "ptg", row, "created_at")

    def queue_action(self, post_id: str, action_type: str, status: str = "queued") -> str:
        """An action on a post: 'queued' by the scripts, 'pending' by the TUI."""
        row = {"post_id": post_id, "action_type": action_type, "status": status}
        return self._insert_new("action_queue", "action_id", "act", row, "created_at")

    def mark_post(self, post_id: str) -> None:
        """The TUI's star on a post."""
        self.conn.execute(
            "UPDATE posts SET is_marked = true, updated_at = %s WHERE post_id = %s", (_now(), post_id)
        )


def _image_items(post: dict) -> list[dict]:
    """The post's own images (`media.images`, or `media.url` of a single image)."""
    media = post.get("media") or {}
    if media.get("type") not in ("image", "images"):
        return []
    return [i for i in media.get("images") or [] if i.get("url")] or [{"url": media["url"]}]


def seed_installation(conn: psycopg.Connection, samples: list[dict]) -> dict[str, Any]:
    """Write an installation's worth of rows the way the original scripts do: one completed
    run importing every sample post (a data_downloads row each), media rows of every kind the
    scripts leave, profiles and tags with their links, a starred post, two actions ('queued', 'pending').

    Returns the ids created, by table (`posts`, `post_media`, ...), plus `media`: the media id
    of each kind (`cached`, `analysed`, `youtube`, `pending`), `post_by_urn`, and the
    expected `md5_sum`, `local_file_path` and `ai_analysis` of the rows that have them.
    """
    scripts = OriginalScripts(conn)
    created: dict[str, Any] = {table: [] for table in TABLES}

    run_id = scripts.create_run()
    created["download_runs"].append(run_id)
    post_by_urn: dict[str, str] = {}
    for post in samples:
        post_id = scripts.insert_post(post)
        if post_id not in created["posts"]:
            created["posts"].append(post_id)
        post_by_urn[get_post_urn(post)] = post_id
        created["data_downloads"].append(
            scripts.insert_data_download(post_id, run_id, post, "data/posts_scrape1.json")
        )
    scripts.complete_run(run_id, processed=len(samples), new=len(created["posts"]), updated=0)

    images = [(post_by_urn[get_post_urn(p)], item) for p in samples for item in _image_items(p)]
    videos = [
        (post_by_urn[get_post_urn(p)], p["media"]["url"])
        for p in samples
        if (p.get("media") or {}).get("type") == "video" and p["media"].get("url")
    ]
    if len(images) < 3 or not videos:
        raise ValueError("the samples need at least three images and one video")

    media: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for kind, (post_id, item) in (("cached", images[0]), ("analysed", images[1])):
        md5 = hashlib.md5(f"file bytes of {kind}".encode()).hexdigest()
        path = f"cache/media/images/{md5}.jpg"
        media[kind] = scripts.insert_media(
            post_id,
            item["url"],
            "image",
            local_file_path=path,
            md5_sum=md5,
            file_size=48_213,
            mime_type="image/jpeg",
            width=item.get("width"),
            height=item.get("height"),
        )
        files[media[kind]] = {"md5_sum": md5, "local_file_path": path}
    analysis = {"description": "A chart on a whiteboard", "tags": ["chart", "team"]}
    scripts.record_analysis(media["analysed"], analysis)
    media["youtube"] = scripts.insert_youtube_media(*videos[0])
    media["pending"] = scripts.insert_pending_media(images[-1][0], images[-1][1]["url"])
    created["post_media"] = list(media.values())

    authors = {(p.get("author") or {}).get("username"): p.get("author") or {} for p in samples}
    for username, author in authors.items():
        name = " ".join(filter(None, (author.get("first_name"), author.get("last_name")))) or username
        created["profiles"].append(scripts.insert_profile(username, name))
    created["tags"] = [scripts.insert_tag("cloud", "Cloud computing", "blue"), scripts.insert_tag("hiring")]
    first_profile, first_post = created["profiles"][0], created["posts"][0]
    created["profile_tags"] = [scripts.tag_profile(first_profile, tag) for tag in created["tags"]]
    created["post_tags"] = [scripts.tag_post(first_post, created["tags"][0], confidence=0.87)]
    created["action_queue"] = [
        scripts.queue_action(first_post, "like"),
        scripts.queue_action(created["posts"][1], "comment", status="pending"),
    ]
    scripts.mark_post(first_post)

    created.update(
        media=media,
        post_by_urn=post_by_urn,
        files=files,
        ai_analysis={media["analysed"]: json.dumps(analysis)},
    )
    return created


def snapshot(conn: psycopg.Connection) -> dict[str, dict[str, list]]:
    """Every row of the nine tables ordered by primary key (`tables`), and the column names
    of the three views (`views`)."""
    cur = conn.cursor(row_factory=dict_row)
    tables = {t: cur.execute(f"SELECT * FROM {t} ORDER BY {pk}").fetchall() for t, pk in PRIMARY_KEYS.items()}
    views: dict[str, list] = {v: [] for v in VIEWS}
    for row in cur.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
        (list(VIEWS),),
    ):
        views[row["table_name"]].append(row["column_name"])
    return {"tables": tables, "views": views}
