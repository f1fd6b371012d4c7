"""The baseline: how the older social-tui scripts downloaded media, one URL after another.

    python bench/sequential_fetch.py URLS_FILE OUT_DIR

`requests.get(url)` per URL (the whole body in memory, as those scripts did), then the
bytes are written to a file. Bounded: one request per listed URL, 60 s timeout each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests


def main(urls_file: str, out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    urls = [line.strip() for line in Path(urls_file).read_text().splitlines() if line.strip()]
    for index, url in enumerate(urls):
        response = requests.get(url, timeout=60)
        if response.status_code != 200:
            failed += 1
            continue
        (out / f"{index:05d}").write_bytes(response.content)
    print(f"{len(urls) - failed} downloaded, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
