"""The store: one interface (`interface`), three back ends, chosen here from the settings.

Callers import from this package; only `open_store` and `as_store` know the back ends.
"""

from __future__ import annotations

from typing import Any

from social_tui_media.settings import Settings
from social_tui_media.store.interface import MediaStore, StoreError


def open_store(settings: Settings) -> MediaStore:
    """The store the settings point at: PostgreSQL, Supabase REST, or embedded SQLite."""
    url = settings.store_url
    if url.startswith(("postgres://", "postgresql://")):
        from social_tui_media.store.postgres import PostgresStore

        return PostgresStore(url)
    if url == "supabase-rest":
        from social_tui_media.store.rest import RestStore

        return RestStore(settings.supabase_url or "", settings.supabase_api_key or "")
    if url.startswith("sqlite:///"):
        from social_tui_media.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    raise StoreError(
        f"DATABASE_URL {url.split('://')[0]}://... is not supported: use sqlite:///path or postgresql://..."
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` to a file path."""
    path = url[len("sqlite:///") :]
    if not path:
        raise StoreError("DATABASE_URL sqlite:/// needs a file path, e.g. sqlite:///data/social_tui.db")
    return path


def as_store(client: Any) -> MediaStore:
    """Accept a store, or a supabase-py `Client` as existing scripts pass one."""
    if hasattr(client, "upsert_media"):
        return client
    if hasattr(client, "table") and hasattr(client, "rpc"):
        from social_tui_media.store.rest import RestStore

        return RestStore.from_client(client)
    raise TypeError(f"expected a media store or a supabase Client, got {type(client).__name__}")
