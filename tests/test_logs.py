"""The structured log and error reports: JSON lines with correlation ids, nothing secret."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from social_tui_media.logs import configure_logging, scrub


def test_scrub_drops_signed_queries_and_secrets():
    line = "GET https://media.licdn.com/dms/x?e=1&t=SIG failed; api_key=sk-123 password: hunter2"
    cleaned = scrub(line)
    assert "SIG" not in cleaned and "sk-123" not in cleaned and "hunter2" not in cleaned
    assert "https://media.licdn.com/dms/x?[redacted]" in cleaned


def test_log_lines_are_json_with_run_and_item_ids(tmp_path):
    log_file = tmp_path / "log" / "media.log"
    run_id = configure_logging(log_file)
    logging.getLogger("media_test").warning(
        "failed https://h/p?t=SECRET", extra={"media_id": "med-1", "post_id": "p-1"}
    )
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    entry = next(e for e in entries if e["logger"] == "media_test")
    assert entry["run_id"] == run_id and entry["media_id"] == "med-1" and entry["post_id"] == "p-1"
    assert "SECRET" not in log_file.read_text()
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - stdlib naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        _Collector.bodies.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_errors_reach_sentry_scrubbed_when_dsn_is_set(tmp_path):
    import sentry_sdk

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
        configure_logging(tmp_path / "media.log", sentry_dsn=dsn)
        logging.getLogger("media_test").error("upload of https://h/p?X-Amz-Signature=SECRET failed")
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.get_client().close()
        server.shutdown()
    sent = b"".join(_Collector.bodies)
    assert b"upload of https://h/p?[redacted] failed" in sent
    assert b"SECRET" not in sent
