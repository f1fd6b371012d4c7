"""The media cache under the module name the installation's scripts import, with its API
(`download_and_cache_media`, `download_multiple_media`, `find_cached_by_url`, ...) backed by
the safe fetcher and the content-addressed cache, and the TUI's hook:

    from media_cache import cached_media
    found = cached_media(url=post["media"]["url"])   # or cached_media(post_id=...)
    if found: show(found.local_path, found.thumbnail_path)   # never fetches anything
"""

from social_tui_media.media.cache import (
    CachedFile,
    cached_media,
    calculate_md5,
    download_and_cache_media,
    download_multiple_media,
    find_cached_by_md5,
    find_cached_by_url,
    format_size,
    get_cache_stats,
    get_media_cache_path,
    verify_cached_media,
)

__all__ = [
    "CachedFile", "cached_media", "calculate_md5", "download_and_cache_media", "download_multiple_media",
    "find_cached_by_md5", "find_cached_by_url", "format_size", "get_cache_stats", "get_media_cache_path",
    "verify_cached_media",
]  # fmt: skip
