"""The structured JSON-lines log (`MEDIA_LOG_FILE`): one object per line with a correlation id
per run (`run_id`) and per item (`media_id`, `post_id` when the record carries them).
Signed URL query strings and credentials never reach it."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from social_tui_media.ids import PREFIX_RUN, generate_aws_id
from social_tui_media.settings import ConfigError

_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")
# name=value, name: value, name='value' (a repr), "name": "value" (JSON), for any name holding one of these.
_SECRET = re.compile(
    r"""(?i)([\w-]*(?:api[_-]?key|secret|password|passwd|token|authorization|dsn)[\w-]*['"]?\s*[=:]\s*)"""
    r"""(?:(?:bearer|basic)\s+)?('[^']*'|"[^"]*"|[^\s,;)}\]]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE)
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_CONTEXT_KEYS = ("media_id", "post_id", "md5_sum", "url", "worker", "event")
_HANDLER_NAME = "social-tui-media-jsonl"
_TERMINAL_HANDLER_NAME = "social-tui-media-stderr"


def scrub(text: str) -> str:
    """Drop URL query strings (signed CDN tokens), passwords in URLs, bearer tokens, API keys and
    the value of anything named like a secret."""
    text = _URL_PASSWORD.sub(r"\1[redacted]@", _URL_QUERY.sub(r"\1?[redacted]", text))
    text = _BEARER.sub(r"\1 [redacted]", _SECRET.sub(r"\1[redacted]", text))
    return _API_KEY.sub("[redacted]", text)


def record_context(record: logging.LogRecord) -> dict[str, str]:
    """The item ids a record carries (`media_id`, `post_id`, ...), scrubbed."""
    values = ((key, getattr(record, key, None)) for key in _CONTEXT_KEYS)
    return {key: scrub(str(value)) for key, value in values if value is not None}


class JsonLinesFormatter(logging.Formatter):
    def __init__(self, run_id: str):
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": self.run_id,
            "message": scrub(record.getMessage()),
        }
        entry.update(record_context(record))
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TerminalFormatter(logging.Formatter):
    """`-v` on stderr: time, level, logger and the scrubbed message with its item ids."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={value}" for key, value in record_context(record).items())
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname.lower():7} {record.name}: {scrub(record.getMessage())}"
        return f"{line}  [{context}]" if context else line


_SECRET_NAME = re.compile(r"(?i)api[_-]?key|secret|password|passwd|token|authorization|cookie|dsn")


def scrub_value(value: Any) -> Any:
    """A JSON-like value with every string scrubbed and every secret-named field's value dropped."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: "[redacted]" if isinstance(k, str) and _SECRET_NAME.search(k) and v else scrub_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


def _scrub_event(event: dict, hint: dict) -> dict:
    """Sentry events and breadcrumbs get the same scrubbing as the log file."""
    return scrub_value(event)


def configure_sentry(dsn: str, run_id: str) -> None:
    try:
        import sentry_sdk
    except ImportError:
        raise ConfigError(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install 'social-tui-media[sentry]'"
        ) from None

    # No local variables, request bodies or personal data leave the process; what does is scrubbed.
    sentry_sdk.init(
        dsn=dsn,
        before_send=_scrub_event,
        before_breadcrumb=lambda crumb, hint: _scrub_event(crumb, hint),
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
    )
    sentry_sdk.set_tag("run_id", run_id)


def configure_logging(
    log_file: Path,
    run_id: str | None = None,
    level: int = logging.INFO,
    sentry_dsn: str | None = None,
    stderr_level: int | None = None,
) -> str:
    """Send this process's log records to the JSON-lines file (and errors to Sentry when a
    DSN is set; to stderr from `stderr_level` when given); returns the run's correlation id."""
    run_id = run_id or generate_aws_id(PREFIX_RUN)
    if sentry_dsn:
        configure_sentry(sentry_dsn, run_id)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() in (_HANDLER_NAME, _TERMINAL_HANDLER_NAME):
            root.removeHandler(handler)
            handler.close()
    if stderr_level is not None:
        terminal = logging.StreamHandler()
        terminal.set_name(_TERMINAL_HANDLER_NAME)
        terminal.setLevel(stderr_level)
        terminal.setFormatter(TerminalFormatter())
        root.addHandler(terminal)
    lowest = min(level, stderr_level or level)
    root.setLevel(min(root.level, lowest) if root.level else lowest)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        os.chmod(log_file, 0o600)
    except OSError:
        return run_id  # a log we cannot write must not stop the job
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(level)
    handler.setFormatter(JsonLinesFormatter(run_id))
    root.addHandler(handler)
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer", "httpx", "httpcore", "openai", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run_id
