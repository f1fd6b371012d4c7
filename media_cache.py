"""The media cache's functions under the module name the installation's scripts import:
`get_media_cache_path`, `download_and_cache_media`, `verify_cached_media`, `calculate_md5`."""

from social_tui_media.media.cache import (
    calculate_md5,
    download_and_cache_media,
    get_media_cache_path,
    verify_cached_media,
)

__all__ = ["calculate_md5", "download_and_cache_media", "get_media_cache_path", "verify_cached_media"]
