"""`python manage_media.py COMMAND`: list, download, verify, archive and analyse post media.

The commands live in `social_tui_media.cli.manage_media`; `--help` lists them.
"""

import sys

from social_tui_media.cli.manage_media import main

if __name__ == "__main__":
    sys.exit(main())
