"""`python manage_data.py import DIR`: import scraped post files, then download their media.

Also the module the installation's other scripts import from, with its API backed by the
media pipeline: `get_post_urn`, `create_download_run`, `complete_download_run`,
`extract_and_store_media`, `import_directory`, and `import_and_download(directory)`, one call
for update_data.py that imports a directory and downloads its media.
"""

import sys

from social_tui_media.cli.manage_data import main
from social_tui_media.jobs.import_posts import (
    complete_download_run,
    create_download_run,
    extract_and_store_media,
    get_post_urn,
    import_and_download,
    import_directory,
)

__all__ = [
    "complete_download_run", "create_download_run", "extract_and_store_media", "get_post_urn",
    "import_and_download", "import_directory", "main",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
