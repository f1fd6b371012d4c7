"""A small OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

    with OpenAITestServer(latency=0.05) as server:
        server.script(("status", 429, {"Retry-After": "1"}), "malformed")  # then 'ok'
        server.reject_image_size(333, 222, 400, "Invalid image.")
        client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)

Behaviours, consumed one per request in order; when the script runs out every request is
answered 'ok':
  'ok'                              a valid JSON analysis derived from the request
  'malformed'                       content that is not JSON ("Sure! Here is ...")
  ('content', text[, finish_reason]) exactly this assistant content ('length': cut off)
  ('status', code)                  an OpenAI-style error body with that HTTP status
  ('status', code, message)         ... with this message
  ('status', code, headers)         ... with these headers (e.g. {'Retry-After': '1'})
  ('status', code, message, headers)
  ('error', code, error_object[, headers])  this exact {"error": error_object} body
  'disconnect'                      close the connection without answering
Image rules (`reject_image_sha256`, `reject_image_size`) are checked before the script, so
one item among several analysed concurrently can be made to fail deterministically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from PIL import Image

Behaviour = str | tuple[Any, ...]

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests. Please try again shortly.",
}


@dataclass(frozen=True)
class _ImageRule:
    sha256: frozenset[str] | None
    size: tuple[int, int] | None
    status: int
    message: str

    def matches(self, image: dict[str, Any]) -> bool:
        if self.sha256 is not None and image["sha256"] in self.sha256:
            return True
        return self.size is not None and image["size"] == self.size


_MALFORMED = "Sure! Here is a description of the image: a test picture with no text."


def _ok_content(images: list[dict[str, Any]]) -> str:
    """A valid analysis that shows what the server received."""
    width, height = images[0]["size"] if images else (0, 0)
    return json.dumps(
        {
            "description": f"{len(images)} image(s); first image {width}x{height}",
            "text_in_image": "",
            "tags": ["test"],
            "kind": "photo",
        }
    )


def _image_tokens(width: int, height: int) -> int:
    """Roughly how OpenAI bills a high-detail image: 85 + 170 per 512 px tile."""
    if width <= 0 or height <= 0:
        return 85
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def _decode_image(url: str) -> dict[str, Any]:
    """sha256 of the image bytes and the decoded size; size (0, 0) when undecodable."""
    info: dict[str, Any] = {"sha256": None, "size": (0, 0), "bytes": 0}
    if not url.startswith("data:") or "," not in url:
        return info
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=False)
    except ValueError:
        return info
    info["sha256"] = hashlib.sha256(raw).hexdigest()
    info["bytes"] = len(raw)
    # An undecodable image keeps size (0, 0): the server reports, the test judges.
    with (
        contextlib.suppress(OSError, ValueError, SyntaxError),
        Image.open(io.BytesIO(raw)) as image,
    ):
        info["size"] = image.size
        info["format"] = image.format
    return info


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `calls`, not stderr

    def do_GET(self) -> None:
        self._read_body()
        self._send_error(404, f"Unknown path {self.path}", "invalid_request_error", None)

    def do_POST(self) -> None:
        body = self._read_body()
        owner = self.server.owner
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            self._send_error(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                "invalid_request_error",
                None,
            )
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error", None)
            return
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._send_error(400, "We could not parse the JSON body of your request.", None, None)
            return
        images, text = _request_parts(request)
        behaviour = owner._next_behaviour(request, images, len(body))
        if owner.latency > 0:
            time.sleep(owner.latency)
        self._respond(behaviour, request, images, text)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _respond(
        self,
        behaviour: Behaviour,
        request: dict[str, Any],
        images: list[dict],
        text: str,
    ) -> None:
        kind = behaviour if isinstance(behaviour, str) else behaviour[0]
        if kind == "disconnect":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        elif kind == "status":
            self._send_status(int(behaviour[1]), behaviour[2:])
        elif kind == "error":
            headers = behaviour[3] if len(behaviour) > 3 else None
            self._send_json(int(behaviour[1]), {"error": behaviour[2]}, headers)
        elif kind == "malformed":
            self._send_completion(request, images, text, _MALFORMED)
        elif kind == "content":
            finish_reason = behaviour[2] if len(behaviour) > 2 else "stop"
            self._send_completion(request, images, text, str(behaviour[1]), finish_reason)
        else:
            self._send_completion(request, images, text, _ok_content(images))

    def _send_status(self, code: int, extras: tuple[Any, ...]) -> None:
        message, headers = _DEFAULT_MESSAGES.get(code, f"Server error {code}."), {}
        for extra in extras:
            if isinstance(extra, dict):
                headers = extra
            elif extra is not None:
                message = str(extra)
        default_type = "server_error" if code >= 500 else "invalid_request_error"
        err_type, err_code = _ERROR_TYPES.get(code, (default_type, None))
        self._send_error(code, message, err_type, err_code, headers)

    def _send_completion(
        self,
        request: dict[str, Any],
        images: list[dict],
        text: str,
        content: str,
        finish_reason: str = "stop",
    ) -> None:
        prompt_tokens = 10 + len(text) // 4 + sum(_image_tokens(*i["size"]) for i in images)
        completion_tokens = max(1, len(content) // 4)
        message = {"role": "assistant", "content": content, "refusal": None}
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "unknown"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _send_error(
        self,
        status: int,
        message: str,
        err_type: str | None,
        code: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        self._send_json(status, body, headers)

    def _send_json(
        self,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)


def _request_parts(request: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Decoded images and the concatenated text of every message."""
    images: list[dict[str, Any]] = []
    texts: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url)
                images.append(_decode_image(url))
    return images, "\n".join(texts)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAITestServer


class OpenAITestServer:
    """OpenAI-compatible `/v1/chat/completions` on 127.0.0.1 with scripted failures."""

    def __init__(self, latency: float = 0.0, keep_requests: bool = True) -> None:
        self.latency = latency
        self.keep_requests = keep_requests  # False in benchmarks: requests hold whole images
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._rules: list[_ImageRule] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> Self:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("OpenAITestServer is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- behaviour
    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests (appended to anything still queued)."""
        for behaviour in behaviours:
            kind = behaviour if isinstance(behaviour, str) else behaviour[0]
            if kind not in (
                "ok",
                "malformed",
                "content",
                "status",
                "error",
                "disconnect",
            ):
                raise ValueError(f"unknown behaviour {behaviour!r}")
        with self._lock:
            self._script.extend(behaviours)

    def reject_image_sha256(
        self, hashes: Iterable[str], status: int = 400, message: str = "Invalid image."
    ) -> None:
        """Answer `status` to any request carrying an image whose bytes hash to one of these."""
        with self._lock:
            self._rules.append(_ImageRule(frozenset(hashes), None, status, message))

    def reject_image_size(
        self,
        width: int,
        height: int,
        status: int = 400,
        message: str = "Invalid image.",
    ) -> None:
        """Answer `status` to any request carrying an image that decodes to width x height."""
        with self._lock:
            self._rules.append(_ImageRule(None, (width, height), status, message))

    def reset(self) -> None:
        """Forget calls, script and rules."""
        with self._lock:
            self.calls.clear()
            self._script.clear()
            self._rules.clear()

    @property
    def pending(self) -> int:
        """How many scripted behaviours have not been used yet."""
        with self._lock:
            return len(self._script)

    def _next_behaviour(
        self, request: dict[str, Any], images: list[dict[str, Any]], body_bytes: int
    ) -> Behaviour:
        with self._lock:
            behaviour: Behaviour | None = None
            for rule in self._rules:
                if any(rule.matches(image) for image in images):
                    behaviour = ("status", rule.status, rule.message)
                    break
            if behaviour is None:
                behaviour = self._script.popleft() if self._script else "ok"
            self.calls.append(
                {
                    "model": request.get("model"),
                    "images": len(images),
                    "image_sizes": [image["size"] for image in images],
                    "image_sha256": [image["sha256"] for image in images],
                    "body_bytes": body_bytes,
                    "behaviour": behaviour,
                    "time": time.monotonic(),
                    "request": request if self.keep_requests else None,
                }
            )
            return behaviour
