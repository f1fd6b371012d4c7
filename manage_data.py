"""`python manage_data.py import DIR`: import scraped post files, then download their media.

Also the module the installation's other scripts import from (`extract_and_store_media`,
`import_directory`), backed by the media pipeline.
"""

import sys

from social_tui_media.cli.manage_data import main
from social_tui_media.jobs.import_posts import extract_and_store_media, import_directory

__all__ = ["extract_and_store_media", "import_directory", "main"]

if __name__ == "__main__":
    sys.exit(main())
