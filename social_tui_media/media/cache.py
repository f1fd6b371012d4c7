"""The content-addressed media cache: `{root}/{images,videos,documents}/{md5}.{ext}`.

Owns a file's whole life in the cache: admitting fetched bytes (type from magic bytes,
atomic rename, 0600), adopting legacy files, finding and verifying what is cached, and
evicting the least recently used files that have a verified archive copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from social_tui_media.media.sniff import probe_dimensions, sniff_media_kind
from social_tui_media.settings import load_settings

if TYPE_CHECKING:  # requests and the fetcher load only for commands that download
    from social_tui_media.media.fetch import Fetcher

log = logging.getLogger(__name__)

CATEGORIES = ("images", "videos", "documents")
CATEGORY_BY_MEDIA_TYPE = {"image": "images", "video": "videos", "document": "documents"}
TEMP_PREFIX = ".part-"
HASH_CHUNK = 1024 * 1024
HEAD_BYTES = 4096


class MediaRejected(Exception):
    """The bytes are not media we keep (unknown type); permanent for this URL."""

    kind = "unknown_type"
    permanent = True


@dataclass(frozen=True)
class CachedMedia:
    """A verified file in the cache."""

    md5_sum: str
    local_path: Path
    file_size: int
    mime_type: str
    width: int | None
    height: int | None
    duration_seconds: float | None = None

    def as_spec_dict(self) -> dict:
        """The dict `download_and_cache_media` promises."""
        return {
            "md5_sum": self.md5_sum,
            "local_path": self.local_path,
            "file_size": self.file_size,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
        }


def calculate_md5(file_path: Path) -> str:
    """MD5 of a file, read once into one reused buffer (hashlib releases the GIL: threads scale)."""
    with open(file_path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def verify_cached_media(local_path: Path, expected_md5: str) -> bool:
    """True when the file exists and its bytes hash to `expected_md5`."""
    try:
        return calculate_md5(Path(local_path)) == expected_md5
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MediaCache:
    """One cache root. Thread safe: every write is a rename of a private temp file."""

    def __init__(self, root: Path, legacy_dir: Path | None = None):
        self.root = Path(root)
        self.legacy_dir = legacy_dir if legacy_dir is not None else self.root.parent / "images"

    # layout -----------------------------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create the cache directories, private to this user (0700)."""
        for directory in (self.root, *(self.root / c for c in CATEGORIES)):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)

    def path_for(self, category: str, md5_sum: str, extension: str) -> Path:
        if category not in CATEGORIES:
            raise ValueError(f"unknown cache category {category!r}; expected one of {CATEGORIES}")
        return self.root / category / f"{md5_sum}.{extension.lstrip('.').lower()}"

    def temp_prefix(self) -> str:
        """Temp files carry the writer's pid so a later run can tell a crash's leftovers."""
        return f"{TEMP_PREFIX}{os.getpid()}-"

    def clean_leftovers(self) -> int:
        """Delete temp files left by processes that are gone; returns how many."""
        removed = 0
        for directory in (self.root, *(self.root / c for c in CATEGORIES)):
            if not directory.is_dir():
                continue
            for path in directory.glob(f"{TEMP_PREFIX}*"):
                pid_text = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
                if pid_text.isdigit() and _pid_alive(int(pid_text)):
                    continue
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d partial downloads left by earlier runs", removed)
        return removed

    def cached_files(self) -> list[Path]:
        """Every complete file in the cache (temp files excluded)."""
        files = []
        for category in CATEGORIES:
            directory = self.root / category
            if directory.is_dir():
                files += [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
        return files

    def usage(self) -> tuple[int, int]:
        """(file count, total bytes) of the cache."""
        files = self.cached_files()
        return len(files), sum(p.stat().st_size for p in files)

    # admitting files --------------------------------------------------------------------

    def admit(self, temp_path: Path, md5_sum: str, file_size: int, head: bytes) -> CachedMedia:
        """Move a complete temp file to its content address. The temp file is gone afterwards."""
        try:
            kind = sniff_media_kind(head)
            if kind is None:
                raise MediaRejected(
                    f"content is not a supported image, video or PDF (starts with {head[:8]!r})"
                )
            dims = probe_dimensions(temp_path, kind)
            final = self.path_for(kind.category, md5_sum, kind.extension)
            os.chmod(temp_path, 0o600)
            if final.exists() and final.stat().st_size == file_size:
                temp_path.unlink()  # the same bytes are already cached: keep one copy
            else:
                os.replace(temp_path, final)
        finally:
            temp_path.unlink(missing_ok=True)
        return CachedMedia(
            md5_sum, final, file_size, kind.mime_type, dims.width, dims.height, dims.duration_seconds
        )

    def admit_copy(self, source: Path, move: bool = False) -> CachedMedia:
        """Hash a file already on disk (one pass) while copying it into the cache."""
        self.ensure_dirs()
        digest = hashlib.md5()
        head = b""
        size = 0
        with open(source, "rb") as src, self._temp_file() as (handle, temp_path):
            while block := src.read(HASH_CHUNK):
                if len(head) < HEAD_BYTES:
                    head += block[: HEAD_BYTES - len(head)]
                digest.update(block)
                handle.write(block)
                size += len(block)
        cached = self.admit(temp_path, digest.hexdigest(), size, head)
        if move:
            Path(source).unlink(missing_ok=True)
        return cached

    @contextmanager
    def _temp_file(self) -> Iterator[tuple[BinaryIO, Path]]:
        """A private temp file in the cache root, removed if the block fails."""
        fd, name = tempfile.mkstemp(prefix=self.temp_prefix(), dir=self.root)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, path
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def admit_url(self, fetcher: Fetcher, url: str) -> tuple[CachedMedia, int]:
        """Download a URL into the cache; returns the file and the HTTP attempts it took."""
        self.ensure_dirs()
        fetched = fetcher.fetch_to_dir(url, self.root, prefix=self.temp_prefix())
        return self.admit(
            fetched.temp_path, fetched.md5_sum, fetched.file_size, fetched.head
        ), fetched.attempts

    def legacy_file(self, url: str) -> Path | None:
        """The older scripts' cache file for a URL (`cache/images/{md5 of the URL}.{ext}`)."""
        if not self.legacy_dir.is_dir():
            return None
        stem = hashlib.md5(url.encode("utf-8")).hexdigest()
        for candidate in sorted(self.legacy_dir.glob(f"{stem}.*")):
            if candidate.is_file() and candidate.stat().st_size > 0:
                return candidate
        return None

    def find(self, md5_sum: str) -> Path | None:
        """A cached file with these bytes' hash, whatever its extension."""
        for category in CATEGORIES:
            for candidate in (self.root / category).glob(f"{md5_sum}.*"):
                if candidate.is_file():
                    return candidate
        return None

    def confined(self, path: str | Path | None, legacy_too: bool = False) -> Path | None:
        """`path` (as a database row holds it) resolved, when it lies inside the cache root (or,
        with `legacy_too`, the older scripts' cache to adopt from); else None. Paths read from
        the database are never used for a file operation before passing here."""
        if not path:
            return None
        resolved = Path(path).resolve()
        roots = (self.root, self.legacy_dir) if legacy_too else (self.root,)
        return resolved if any(resolved.is_relative_to(r.resolve()) for r in roots) else None

    def file_of(self, row: dict) -> Path | None:
        """The cached file a row points at, confined to the cache, when it is there; else None.
        Every reader that shows, copies or thumbnails a file goes through here: the one place
        a read of a cached file happens (and could be recorded)."""
        if row.get("evicted_at") or row.get("download_status") not in (None, "downloaded"):
            return None
        path = self.confined(row.get("local_file_path"))
        return path if path is not None and path.is_file() else None

    def thumbnail_of(self, row: dict) -> Path | None:
        """The row's thumbnail (`{root}/thumbs/{md5}.webp`), made now when missing; None when the
        file is not cached or gives no thumbnail (one log line)."""
        from social_tui_media.media.thumbnails import ensure_thumbnail, thumbnail_path

        md5_sum = row.get("md5_sum")
        if not md5_sum:
            return None
        made = thumbnail_path(self.root, md5_sum)
        if made.is_file():
            return made
        source = self.file_of(row)
        return ensure_thumbnail(self.root, source, md5_sum, row.get("mime_type")) if source else None

    def remove(self, path: Path) -> None:
        """Delete a file of the cache; a path outside the cache root is refused."""
        inside = self.confined(path)
        if inside is None:
            raise ValueError(f"{path} is outside the cache {self.root}: not deleted")
        inside.unlink(missing_ok=True)


# The installation's media_cache API, on the configured cache --------------------------------

MEDIA_TYPE_BY_CATEGORY = {category: media_type for media_type, category in CATEGORY_BY_MEDIA_TYPE.items()}


@dataclass(frozen=True)
class CachedFile:
    """What the TUI needs to show a media item from the cache."""

    media_id: str
    post_id: str
    local_path: Path
    mime_type: str | None
    md5_sum: str | None
    thumbnail_path: Path | None  # `{cache}/thumbs/{md5}.webp` (made on first ask), None when none can be


def _settings_cache() -> MediaCache:
    return MediaCache(load_settings().cache_dir)


def get_media_cache_path(media_type: str, md5_sum: str, extension: str) -> Path:
    """The cache path of a file: `{MEDIA_CACHE_DIR}/{images|videos|documents}/{md5}.{ext}`."""
    category = CATEGORY_BY_MEDIA_TYPE.get(media_type, media_type)
    return _settings_cache().path_for(category, md5_sum, extension)


def _result(cached: CachedMedia, url: str) -> dict:
    return {
        **cached.as_spec_dict(),
        "media_type": MEDIA_TYPE_BY_CATEGORY.get(cached.local_path.parent.name, "image"),
        "extension": cached.local_path.suffix.lstrip("."),
        "url": url,
    }


def download_and_cache_media(media_url: str, media_type: str | None = None, timeout: float = 30) -> dict:
    """Download a URL safely into the cache; the dict the installation's scripts read
    (md5_sum, local_path, file_size, mime_type, media_type, width, height, extension, url).
    Raises FetchError or MediaRejected. `media_type` is the caller's expectation only: the
    stored type comes from the bytes; `timeout` is the seconds without progress allowed."""
    from social_tui_media.media.fetch import Fetcher, FetchPolicy

    settings = replace(load_settings(), download_timeout=float(timeout))
    with Fetcher(FetchPolicy.from_settings(settings), settings.max_concurrent) as fetcher:
        cached, _ = MediaCache(settings.cache_dir).admit_url(fetcher, media_url)
    if CATEGORY_BY_MEDIA_TYPE.get(media_type or "") not in (None, cached.local_path.parent.name):
        log.info("expected %s, got %s", media_type, cached.mime_type)
    return _result(cached, media_url)


def download_multiple_media(urls: list[str], max_workers: int = 5) -> list[dict]:
    """Download several URLs in parallel; one dict per URL in order, `{"url", "error"}` on failure."""
    from social_tui_media.media.fetch import Fetcher, FetchError, FetchPolicy

    settings = load_settings()
    cache = MediaCache(settings.cache_dir)

    def one(url: str) -> dict:
        try:
            return _result(cache.admit_url(fetcher, url)[0], url)
        except (FetchError, MediaRejected, OSError) as error:
            log.warning("download failed: %s", error)
            return {"url": url, "error": str(error)}

    with Fetcher(FetchPolicy.from_settings(settings), settings.max_concurrent) as fetcher:
        with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
            return list(pool.map(one, urls))


def find_cached_by_md5(md5_sum: str) -> Path | None:
    """The cached file holding these bytes, whatever its type, or None."""
    return _settings_cache().find(md5_sum)


def cached_media(post_id: str | None = None, url: str | None = None, store: Any = None) -> CachedFile | None:
    """The TUI's hook: the cached file of a post's first media (`post_id`) or of a media URL as
    the TUI has it, under any of its signatures (`url`), or None. Never fetches anything; one
    database read (pass an open `store` to reuse its connection, else one is opened). A file
    found counts as used (batched: see `store.usage`), so eviction keeps what the TUI shows."""
    from social_tui_media.store import open_store
    from social_tui_media.store.interface import slot_key
    from social_tui_media.store.usage import usage_recorder

    settings = load_settings()
    own = store is None
    store = store or open_store(settings)
    try:
        row = store.find_cached(post_id=post_id, slot_key=slot_key(url) if url else None)
    finally:
        if own:
            store.close()
    cache = MediaCache(settings.cache_dir)
    local_path = cache.file_of(row) if row is not None else None
    if row is None or local_path is None:
        return None
    usage_recorder(settings).touch(row["media_id"])  # a read: eviction follows last use
    return CachedFile(
        row["media_id"], row["post_id"], local_path, row.get("mime_type"), row.get("md5_sum"),
        cache.thumbnail_of(row),  # made now, once, when missing
    )  # fmt: skip


def find_cached_by_url(url: str) -> Path | None:
    """The cached file of a media URL (any signature of it): from the store, else the older
    scripts' `cache/images/{md5 of the URL}` file. Never fetches anything."""
    found = cached_media(url=url)
    return found.local_path if found else _settings_cache().legacy_file(url)


def get_cache_stats() -> dict:
    """Files and bytes in the cache, in total and per category."""
    cache = _settings_cache()
    files = cache.cached_files() if cache.root.is_dir() else []
    sizes = {path: path.stat().st_size for path in files}
    by_category = {
        category: {
            "files": sum(1 for p in files if p.parent.name == category),
            "bytes": sum(s for p, s in sizes.items() if p.parent.name == category),
        }
        for category in CATEGORIES
    }
    total = sum(sizes.values())
    return {
        "cache_dir": str(cache.root),
        "total_files": len(files),
        "total_size": total,
        "total_size_formatted": format_size(total),
        "by_category": by_category,
    }


def format_size(n: int) -> str:
    """A byte count as a person reads it: `512 bytes`, `1.5 KB`, `212 MB`."""
    from social_tui_media.media.fetch import format_size as readable  # requests loads only when asked

    return readable(n)
