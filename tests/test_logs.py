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


def test_scrub_catches_every_spelling_of_a_secret():
    leaks = (
        "Settings(openai_api_key='sk-proj-abcdefghijkl', supabase_api_key='eyJhbGciOiJIUzI1NiJ9.e30.sig')",
        "OPENAI_API_KEY=sk-abcdef123456",
        "Authorization: Bearer sk-zzzzzzzzzzzz",
        "connect to postgresql://postgres:PASSWORD@db.example.com:5432/postgres failed",
        '{"SUPABASE_API_KEY": "eyJhbGciOiJIUzI1NiJ9.e30.sig", "dsn": "https://k@o1.ingest.sentry.io/1"}',
        "headers {'authorization': 'Basic dXNlcjpwYXNz'}",
    )
    for leak in leaks:
        cleaned = scrub(leak)
        for secret in ("sk-proj-abcdefghijkl", "eyJhbGciOiJIUzI1NiJ9", "sk-abcdef123456", "sk-zzzzzzzzzzzz",
                       "PASSWORD", "dXNlcjpwYXNz", "k@o1"):  # fmt: skip
            assert secret not in cleaned, (leak, cleaned)
        assert "[redacted]" in cleaned


def test_settings_never_print_their_secrets():
    from social_tui_media.settings import Settings

    shown = repr(Settings(openai_api_key="sk-proj-abcdef", database_url="postgresql://u:PASSWORD@h/db",
                          supabase_api_key="eyJservice", sentry_dsn="https://key@o1.ingest/1"))  # fmt: skip
    assert not any(s in shown for s in ("sk-proj-abcdef", "PASSWORD", "eyJservice", "key@o1"))
    assert "ai_model='gpt-4o-mini'" in shown


def test_a_crash_with_secrets_in_its_frames_reaches_sentry_without_them(tmp_path):
    import sentry_sdk

    from social_tui_media.settings import Settings

    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dsn = f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
        configure_logging(tmp_path / "media.log", sentry_dsn=dsn)

        def crash(settings: Settings, header: str) -> None:
            raise RuntimeError(f"vision call failed with {header} for {settings.database_url}")

        try:
            crash(
                Settings(
                    openai_api_key="sk-proj-abcdefghijkl", database_url="postgresql://postgres:PASSWORD@h/db"
                ),
                "Authorization: Bearer sk-zzzzzzzzzzzz",
            )
        except RuntimeError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.get_client().close()
        server.shutdown()
    sent = b"".join(_Collector.bodies)
    assert b"vision call failed" in sent
    for secret in (b"sk-proj-abcdefghijkl", b"PASSWORD", b"sk-zzzzzzzzzzzz"):
        assert secret not in sent
