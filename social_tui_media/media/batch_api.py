"""The OpenAI Batch API: a JSONL file of chat-completion requests uploaded through `/v1/files`,
run as a batch through `/v1/batches` within 24 hours at half price, its answers read back.

This module only talks to the API; which rows go into a batch, and what happens to them, is
the analysis job's business. Every failure is one of two named exceptions with one line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
from openai.types import Batch

from social_tui_media.media.vision import AnalysisConfigError

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
METADATA_KEY = "social_tui_batch_id"  # our batch id, so a batch created by a run that died is found
MAX_REQUESTS = 50_000  # the API's limit per batch
MAX_FILE_BYTES = 150_000_000  # the API takes 200 MB; a claim's worth of lines may still follow
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
ENDED = frozenset({"completed", "expired", "failed", "cancelled"})
UNSUPPORTED = (404, 405)


class BatchUnsupported(AnalysisConfigError):
    """The server has no Batch API (404/405 on /v1/files or /v1/batches): nothing was claimed."""


class BatchApiError(Exception):
    """A Batch API call failed (unreachable, refused); the message says which and why, in one line.
    `definite` is False when the request may have taken effect (the connection dropped)."""

    def __init__(self, message: str, definite: bool = True) -> None:
        super().__init__(message)
        self.definite = definite


def batch_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file: the request `body` for the item `custom_id`."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _failure(what: str, base_url: str, exc: openai.OpenAIError) -> Exception:
    if isinstance(exc, openai.APIStatusError) and exc.status_code in UNSUPPORTED:
        return BatchUnsupported(
            f"the analysis server {base_url} has no Batch API ({what} answers {exc.status_code}): "
            "run `analyze` without --batch"
        )
    if isinstance(exc, openai.APIStatusError):
        message = exc.message.splitlines()[0] if exc.message else ""
        return BatchApiError(f"{what} at {base_url} answered {exc.status_code}: {message}")
    return BatchApiError(f"cannot reach {base_url} for {what}: {exc}", definite=False)


def _base_url(client: openai.OpenAI) -> str:
    return str(client.base_url).rstrip("/")


def check_support(client: openai.OpenAI) -> None:
    """Raise BatchUnsupported unless the server answers both /v1/files and /v1/batches."""
    for what, call in (
        ("/v1/files", lambda: client.files.list(purpose="batch", limit=1)),
        ("/v1/batches", lambda: client.batches.list(limit=1)),
    ):
        try:
            call()
        except openai.OpenAIError as exc:
            raise _failure(what, _base_url(client), exc) from None


def upload_input(client: openai.OpenAI, path: Path) -> str:
    """Upload a batch input file (purpose `batch`); its file id."""
    try:
        with open(path, "rb") as handle:
            uploaded = client.files.create(file=(path.name, handle, "application/jsonl"), purpose="batch")
    except openai.OpenAIError as exc:
        raise _failure("/v1/files", _base_url(client), exc) from None
    log.info("uploaded batch input %s (%d bytes) as %s", path.name, path.stat().st_size, uploaded.id)
    return uploaded.id


def create_batch(client: openai.OpenAI, input_file_id: str, batch_id: str) -> Batch:
    """Start a batch over an uploaded file, tagged with our `batch_id` (see `find_batch`)."""
    try:
        return client.batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={METADATA_KEY: batch_id},
        )
    except openai.OpenAIError as exc:
        raise _failure("/v1/batches", _base_url(client), exc) from None


def find_batch(client: openai.OpenAI, batch_id: str, created_after: float) -> Batch | None:
    """The provider's batch tagged with our `batch_id`, looking back to `created_after` (epoch
    seconds); None when it was never created."""
    try:
        for batch in client.batches.list(limit=100):  # newest first; the SDK pages on
            if (batch.metadata or {}).get(METADATA_KEY) == batch_id:
                return batch
            if batch.created_at < created_after:
                return None
    except openai.OpenAIError as exc:
        raise _failure("/v1/batches", _base_url(client), exc) from None
    return None


def retrieve_batch(client: openai.OpenAI, provider_batch_id: str) -> Batch:
    try:
        return client.batches.retrieve(provider_batch_id)
    except openai.OpenAIError as exc:
        raise _failure(f"/v1/batches/{provider_batch_id}", _base_url(client), exc) from None


def cancel_batch(client: openai.OpenAI, provider_batch_id: str) -> None:
    try:
        client.batches.cancel(provider_batch_id)
    except openai.OpenAIError as exc:
        raise _failure(f"/v1/batches/{provider_batch_id}/cancel", _base_url(client), exc) from None


def result_lines(client: openai.OpenAI, file_id: str) -> Iterator[dict[str, Any]]:
    """The lines of a batch output or error file as dicts; a line that is not a JSON object
    is yielded as {"unreadable": text} so the caller can say so."""
    try:
        content = client.files.content(file_id)
        text = content.text
    except openai.OpenAIError as exc:
        raise _failure(f"/v1/files/{file_id}/content", _base_url(client), exc) from None
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        yield line if isinstance(line, dict) else {"unreadable": raw[:200]}
