"""`python backfill_media.py [--start-date D] [--dry-run] [--limit N]`: the same as
`python manage_media.py backfill`, under the name the older scripts used."""

import sys

from social_tui_media.cli.manage_media import backfill_main

if __name__ == "__main__":
    sys.exit(backfill_main())
