"""Analyse one cached media file (image, video or PDF) with an OpenAI-compatible vision model.

The work queue (which rows to analyse, claiming them, writing results) lives elsewhere; this
module turns one file into a validated `AnalysisResult` or raises one named exception.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import threading
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pydantic
import tenacity
from openai.types.chat import ChatCompletion
from PIL import Image, ImageOps, UnidentifiedImageError

from social_tui_media.media.frames import PDFIUM_LOCK, UnreadableMedia, fit_rgb, pdf_pages, video_frames  # noqa: F401 (PDFIUM_LOCK: re-exported)
from social_tui_media.media.retry_after import retry_after_seconds
from social_tui_media.settings import ConfigError, Settings

try:  # HEIC/AVIF photos from phones; optional at import time.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

logger = logging.getLogger(__name__)

KINDS = (
    "photo",
    "screenshot",
    "chart",
    "slide",
    "document_page",
    "illustration",
    "video",
    "other",
)
VIDEO_MIME_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm"})
PDF_MIME_TYPE = "application/pdf"

JPEG_QUALITY = 85
PDF_LONG_SIDE = 1024
# Refuse to decode anything larger than this (Pillow's own bomb check starts at ~89 Mpx
# with a warning only); a social-media image is a few megapixels.
MAX_IMAGE_PIXELS = 64_000_000
MAX_COMPLETION_TOKENS = 2048
# The Batch API bills the same model and requests at half the synchronous price.
BATCH_PRICE_FACTOR = 0.5
REQUEST_TIMEOUT_S = 120.0

# USD per 1M tokens (input, output), standard tier, no cached-input discount.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
}

SYSTEM_PROMPT = f"""\
You analyse media attached to social-media posts so they can be searched later.
Reply with a single JSON object and nothing else. It must have exactly these keys:
  "description": string, 1-3 factual sentences on what the media shows.
  "text_in_image": string, all legible text visible in the media, verbatim, in reading
      order, lines separated by "\\n"; "" when there is none. Do not translate or fix it.
  "tags": array of 3-10 short lowercase strings (subjects, objects, themes).
  "kind": one of {", ".join(f'"{k}"' for k in KINDS)}.
Several images are frames of one video (kind "video") or pages of one document; describe
them together as one item."""


class AnalysisConfigError(ConfigError):
    """Analysis cannot start: a setting is missing; the message says which one to set."""


class AnalysisError(Exception):
    """Analysing one file failed; `kind` says how, so the caller can decide to retry later.

    kind: 'bad_output' | 'api_error' | 'rate_limited' | 'unreadable_media' | 'connection'.
    Tokens already spent on the failed attempt are carried for cost accounting.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status_code: int | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens

    @property
    def endpoint_failure(self) -> bool:
        """The vision endpoint failed (unreachable, 5xx, refused credentials), not the item:
        no verdict on the media, so the row is not charged a failed attempt."""
        if self.kind in ("connection", "circuit_open"):
            return True
        return (
            self.kind == "api_error"
            and self.status_code is not None
            and (self.status_code >= 500 or self.status_code in (401, 403))
        )


@dataclass(frozen=True)
class AnalysisResult:
    analysis: dict[str, Any]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    analysis_time_ms: int
    frames: int


@dataclass(frozen=True)
class RetryPolicy:
    """How transient API failures (429, 5xx, 408, connection) are retried."""

    attempts: int = 6
    base_delay: float = 1.0  # first exponential backoff step, seconds
    max_delay: float = 60.0  # cap on every single sleep, Retry-After included


DEFAULT_RETRY_POLICY = RetryPolicy()
BREAKER_FAILURES = 3


class CircuitBreaker:
    """Opens after `threshold` consecutive endpoint failures (connection, 5xx, refused
    credentials; a 429 never counts), across every worker and retry of a run: a broken
    endpoint then costs seconds, not a retry cycle per item. A success closes it again."""

    def __init__(self, threshold: int = BREAKER_FAILURES) -> None:
        self.threshold = threshold
        self.failures = 0
        self.last_error = ""
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold

    def record(self, exc: BaseException | None) -> None:
        with self._lock:
            if exc is None:
                self.failures = 0
            elif _counts_against_endpoint(exc):
                self.failures += 1
                self.last_error = _describe(exc)


def _counts_against_endpoint(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code >= 500 or exc.status_code in (401, 403)
    )


# --------------------------------------------------------------------------- client


def build_response_models(model: type[pydantic.BaseModel] = ChatCompletion) -> None:
    """Build the SDK's response models (pydantic builds them lazily on first use) before any
    worker thread parses a response: that first build is not thread-safe, and two workers
    parsing their first answers at once failed with "type object 'Choice' has no attribute
    '__pydantic_core_schema__'"."""
    pending, seen = [model], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        current.model_rebuild()
        for info in current.model_fields.values():
            annotations = [info.annotation]
            while annotations:
                annotation = annotations.pop()
                annotations += typing.get_args(annotation)
                if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
                    pending.append(annotation)


def make_client(settings: Settings) -> openai.OpenAI:
    """An OpenAI client for the configured server, with the SDK's own retries turned off."""
    if not settings.openai_api_key:
        raise AnalysisConfigError(
            "OPENAI_API_KEY is not set: set it in .env "
            "(any non-empty value for a local OpenAI-compatible server)"
        )
    build_response_models()
    return openai.OpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
    )


# --------------------------------------------------------------------------- cost


def _price_key(model: str) -> str:
    name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o-mini" (routers)
    return re.sub(r"-\d{4}-\d{2}-\d{2}$", "", name)  # "gpt-4o-mini-2024-07-18"


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float:
    """Estimated USD cost of a call from the price table (at the Batch API's price with
    `batch`: BATCH_PRICE_FACTOR of it); 0.0 for a model not in it."""
    price = PRICES_PER_MTOK.get(_price_key(model))
    if price is None:
        return 0.0
    cost = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
    return cost * BATCH_PRICE_FACTOR if batch else cost


# --------------------------------------------------------------------------- images


def _to_data_url(image: Image.Image, max_side: int) -> str:
    """Downscale to fit max_side (keeping aspect), flatten to RGB and JPEG-encode."""
    image = fit_rgb(image, max_side)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_data_url(path: Path, max_side: int) -> str:
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise AnalysisError(
                    "unreadable_media",
                    f"{path.name} is {image.width}x{image.height}; refusing to decode "
                    f"more than {MAX_IMAGE_PIXELS:,} pixels",
                )
            scale = min(1.0, max_side / max(image.size))
            # JPEG can decode at 1/2, 1/4, 1/8 scale directly: much less work for big photos.
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            image = ImageOps.exif_transpose(image)
            return _to_data_url(image, max_side)
    except Image.DecompressionBombError as exc:
        raise AnalysisError("unreadable_media", f"{path.name}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise AnalysisError("unreadable_media", f"{path.name} is not a readable image: {exc}") from None


def _pdf_pages(path: Path, pages: int) -> list[Image.Image]:
    try:
        return pdf_pages(path, pages, PDF_LONG_SIDE)
    except UnreadableMedia as exc:
        raise AnalysisError("unreadable_media", str(exc)) from None


def prepare_images(
    path: Path,
    mime_type: str,
    thumbnail_path: Path | None = None,
    max_side: int = 1536,
    frames: int = 4,
    pages: int = 3,
) -> list[str]:
    """The JPEG data URLs to send for one media file: the image, video frames or PDF pages.

    A video whose frames cannot be decoded falls back to its thumbnail. Raises
    AnalysisError('unreadable_media') when nothing usable can be produced.
    """
    path = Path(path)
    mime = mime_type.split(";", 1)[0].strip().lower()
    if mime in VIDEO_MIME_TYPES or mime.startswith("video/"):
        images = video_frames(path, frames)
        if images:
            return [_to_data_url(image, max_side) for image in images]
        if thumbnail_path is not None and Path(thumbnail_path).is_file():
            logger.info("video %s: no decodable frame; using thumbnail", path.name)
            return [_image_data_url(Path(thumbnail_path), max_side)]
        raise AnalysisError(
            "unreadable_media",
            f"{path.name}: no video frame could be decoded and no thumbnail",
        )
    if mime == PDF_MIME_TYPE:
        images = _pdf_pages(path, pages)
        if not images:
            raise AnalysisError("unreadable_media", f"{path.name}: the PDF has no pages")
        return [_to_data_url(image, max_side) for image in images]
    if mime.startswith("image/"):
        return [_image_data_url(path, max_side)]
    raise AnalysisError("unreadable_media", f"{path.name}: cannot analyse media of type {mime_type!r}")


# --------------------------------------------------------------------------- request


def _user_text(mime_type: str, image_count: int) -> str:
    mime = mime_type.split(";", 1)[0].strip().lower()
    if mime.startswith("video/") and image_count > 1:
        return f"These are {image_count} frames of one video, in time order. Reply in JSON."
    if mime.startswith("video/"):
        return "This is a still (a frame or the thumbnail) of one video. Reply in JSON."
    if mime == PDF_MIME_TYPE:
        return f"These are the first {image_count} pages of one PDF. Reply in JSON."
    return "Analyse this image. Reply in JSON."


def _build_messages(mime_type: str, data_urls: list[str]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": _user_text(mime_type, len(data_urls))}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in data_urls]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]


def build_request(
    model: str, path: Path, mime_type: str, thumbnail_path: Path | None = None
) -> dict[str, Any]:
    """The chat-completions request body that analyses one media file: what the synchronous
    call sends and what a Batch API line carries, so both ask exactly the same question.
    Raises AnalysisError('unreadable_media') when the file gives nothing to send."""
    messages = _build_messages(mime_type, prepare_images(Path(path), mime_type, thumbnail_path))
    return {
        "model": model,
        "messages": messages,
        "response_format": {"type": "json_object"},
        "temperature": 0,
        "max_tokens": MAX_COMPLETION_TOKENS,
    }


def request_frames(body: dict[str, Any]) -> int:
    """How many images (the picture, video frames or PDF pages) a request body carries."""
    content = body["messages"][-1]["content"]
    return sum(1 for part in content if part.get("type") == "image_url")


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            # An exhausted quota or billing limit does not clear by waiting.
            return exc.code != "insufficient_quota" and exc.type != "insufficient_quota"
        # 501 Not Implemented and 505 are answers about the endpoint, not passing trouble.
        return exc.status_code == 408 or (exc.status_code >= 500 and exc.status_code not in (501, 505))
    return False


def _wait_strategy(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_random_exponential(multiplier=policy.base_delay, max=policy.max_delay)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
        if retry_after is not None and math.isfinite(retry_after):
            return min(retry_after, policy.max_delay)
        return min(backoff(state), policy.max_delay)

    return wait


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "vision API call failed (attempt %d): %s; retrying in %.2fs",
        state.attempt_number,
        _describe(exc),
        state.next_action.sleep if state.next_action else 0.0,
    )


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _first_line(body["message"])
    if isinstance(body, str) and body.strip():
        return _first_line(body)
    return _first_line(exc.message or "")


def _first_line(text: str, limit: int = 200) -> str:
    """An error body as one short line: never a whole HTML page in the terminal or the log."""
    line = next((ln.strip() for ln in re.sub(r"<[^>]+>", "\n", text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"{exc.status_code}: {_api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


def _call_api(
    client: openai.OpenAI,
    body: dict[str, Any],
    policy: RetryPolicy,
    breaker: CircuitBreaker | None = None,
) -> Any:
    """One chat completion, retrying transient failures; API failures become AnalysisError."""
    breaker = breaker or CircuitBreaker()
    if breaker.open:
        raise AnalysisError("circuit_open", f"vision endpoint stopped answering: {breaker.last_error}")

    def attempt() -> Any:
        try:
            response = client.chat.completions.create(**body)
        except openai.OpenAIError as exc:
            breaker.record(exc)
            raise
        breaker.record(None)
        return response

    retrying = tenacity.Retrying(
        stop=tenacity.stop_any(tenacity.stop_after_attempt(max(1, policy.attempts)), lambda _: breaker.open),
        wait=_wait_strategy(policy),
        retry=tenacity.retry_if_exception(_is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except openai.APIConnectionError as exc:
        raise AnalysisError("connection", f"cannot reach the vision API: {exc}") from exc
    except openai.APIStatusError as exc:
        kind = "rate_limited" if _is_transient(exc) and exc.status_code == 429 else "api_error"
        raise AnalysisError(kind, _describe(exc), status_code=exc.status_code) from exc
    except openai.OpenAIError as exc:
        raise AnalysisError("api_error", f"{type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- reply


class _BadOutput(ValueError):
    """The model's reply is not the JSON object we asked for."""


_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def _clean_tags(raw: Iterable[Any]) -> list[str]:
    tags: list[str] = []
    for tag in raw:
        if not isinstance(tag, str):
            raise _BadOutput(f'"tags" holds a non-string: {tag!r}')
        tag = tag.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _parse_analysis(content: str | None) -> dict[str, Any]:
    """Validate a model reply into {description, text_in_image, tags, kind}; raise _BadOutput."""
    if content is None or not content.strip():
        raise _BadOutput("the reply is empty")
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadOutput(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _BadOutput(f"JSON {type(data).__name__}, not an object")
    missing = [key for key in ("description", "text_in_image", "tags", "kind") if key not in data]
    if missing:
        raise _BadOutput(f"missing {', '.join(missing)}")
    for key in ("description", "text_in_image", "kind"):
        if not isinstance(data[key], str):
            raise _BadOutput(f'"{key}" is {type(data[key]).__name__}, not a string')
    if not isinstance(data["tags"], list):
        raise _BadOutput(f'"tags" is {type(data["tags"]).__name__}, not a list')
    kind = data["kind"].strip().lower().replace(" ", "_").replace("-", "_")
    if kind not in KINDS:
        logger.info("model answered kind %r; recording 'other'", data["kind"])
        kind = "other"
    return {
        "description": data["description"].strip(),
        "text_in_image": data["text_in_image"].strip(),
        "tags": _clean_tags(data["tags"]),
        "kind": kind,
    }


def _read_reply(response: Any) -> dict[str, Any]:
    """The validated analysis in a chat completion; _BadOutput quoting the reply if not."""
    choice = response.choices[0] if response.choices else None
    if choice is None:
        raise _BadOutput("the response has no choices")
    content = choice.message.content
    try:
        if choice.finish_reason == "length":
            raise _BadOutput(f"reply cut off at {MAX_COMPLETION_TOKENS} tokens")
        return _parse_analysis(content)
    except _BadOutput as exc:
        reply = content or getattr(choice.message, "refusal", None) or ""
        raise _BadOutput(f"{exc}; the reply began {reply[:200]!r}") from None


def analyze_media(
    client: openai.OpenAI,
    model: str,
    path: Path,
    mime_type: str,
    thumbnail_path: Path | None = None,
    *,
    retry_policy: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
) -> AnalysisResult:
    """Analyse one cached media file; raise AnalysisError (with its kind) when it cannot."""
    started = time.monotonic()
    name = Path(path).name
    body = build_request(model, Path(path), mime_type, thumbnail_path)
    frames = request_frames(body)
    prompt_tokens = completion_tokens = 0
    problem = ""
    for attempt in (1, 2):  # a bad reply is asked for once more, then given up on
        try:
            response = _call_api(client, body, retry_policy or DEFAULT_RETRY_POLICY, breaker)
        except AnalysisError as exc:
            exc.prompt_tokens += prompt_tokens
            exc.completion_tokens += completion_tokens
            raise
        usage = getattr(response, "usage", None)
        prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens += getattr(usage, "completion_tokens", 0) or 0
        try:
            analysis = _read_reply(response)
        except _BadOutput as exc:
            problem = str(exc)
            logger.warning("%s: bad model output (attempt %d): %s", name, attempt, problem)
            continue
        used_model = getattr(response, "model", None) or model
        # A server may report a name missing from the price table (a proxy's alias).
        cost = estimate_cost(used_model, prompt_tokens, completion_tokens) or (
            estimate_cost(model, prompt_tokens, completion_tokens)
        )
        elapsed_ms = int((time.monotonic() - started) * 1000)
        logger.info(
            "%s analysed by %s: %d images, %d+%d tokens, $%.5f, %d ms",
            name,
            used_model,
            frames,
            prompt_tokens,
            completion_tokens,
            cost,
            elapsed_ms,
        )
        return AnalysisResult(
            analysis=analysis,
            model=used_model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            analysis_time_ms=elapsed_ms,
            frames=frames,
        )
    raise AnalysisError(
        "bad_output",
        f"the model twice failed to return the JSON asked for: {problem}",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def read_batch_answer(body: Any, model: str) -> AnalysisResult:
    """A Batch API answer (a chat completion's JSON) checked exactly like a synchronous reply,
    costed at the batch price; AnalysisError('bad_output') with its tokens when it is not the
    analysis asked for. A batch answer is never asked for again: a bad one fails its item."""
    try:
        response = ChatCompletion.model_validate(body)
    except (pydantic.ValidationError, TypeError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AnalysisError("bad_output", f"the batch answer is not a chat completion: {first}") from None
    usage = response.usage
    prompt_tokens = (usage.prompt_tokens if usage else 0) or 0
    completion_tokens = (usage.completion_tokens if usage else 0) or 0
    try:
        analysis = _read_reply(response)
    except _BadOutput as exc:
        raise AnalysisError(
            "bad_output", str(exc), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        ) from None
    used_model = response.model or model
    cost = estimate_cost(used_model, prompt_tokens, completion_tokens, batch=True) or (
        estimate_cost(model, prompt_tokens, completion_tokens, batch=True)
    )
    return AnalysisResult(analysis, used_model, prompt_tokens, completion_tokens, cost, 0, 0)
