"""Run the whole media job offline on the bundled sample posts.

Serves the samples' media from a loopback server (the real CDN is never contacted), imports
the posts into the embedded SQLite database with their media, analyses the images with a
loopback OpenAI-compatible server, verifies the cache and shows the stats.

    python demo.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SAMPLES = ROOT / "samples"
DEMO_POSTS = ROOT / "data" / "demo_posts"


DEMO_PORT = 47831  # a fixed port keeps the media URLs, hence the media slots, the same every run


def start_media_server(server_class):
    try:
        return server_class(port=DEMO_PORT)
    except OSError:  # the port is taken: the demo still runs, with new slots for the new host
        return server_class()


def main() -> int:
    from devtools.media_server import MediaTestServer, rewrite_hosts, serve_samples
    from devtools.openai_server import OpenAITestServer

    os.chdir(ROOT)
    sample_files = sorted(SAMPLES.glob("posts_*.json"))
    with start_media_server(MediaTestServer) as media, OpenAITestServer() as vision:
        serve_samples(media, sample_files)
        DEMO_POSTS.mkdir(parents=True, exist_ok=True)
        for source in sample_files:
            (DEMO_POSTS / source.name).write_text(rewrite_hosts(source.read_text(), media.base_url))
        home = Path(os.environ.get("SOCIAL_TUI_HOME") or ROOT).resolve()
        (home / "data").mkdir(parents=True, exist_ok=True)
        os.environ.update(  # the home's own SQLite file, whatever a .env names
            DATABASE_URL=f"sqlite:///{home / 'data' / 'social_tui.db'}",
            MEDIA_ALLOW_PRIVATE_HOSTS="127.0.0.1/32",
            OPENAI_BASE_URL=vision.base_url,
            OPENAI_API_KEY="demo-key-for-the-loopback-server",
        )
        from social_tui_media.cli import manage_data, manage_media

        steps = [
            ("manage_data.py", manage_data.main, ["import", str(DEMO_POSTS)]),
            ("manage_media.py", manage_media.main, ["analyze", "--status", "not_started", "--workers", "2"]),
            ("manage_media.py", manage_media.main, ["verify-cache"]),
            ("manage_media.py", manage_media.main, ["stats"]),
        ]
        for script, run, argv in steps:
            print(f"\n$ python {script} {' '.join(argv)}", file=sys.stderr)
            code = run(argv)
            if code != 0:
                print(f"demo step failed with exit code {code}", file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
