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

The Batch API (`/v1/files`, `/v1/batches`) lives in `server.batch_api`: batches answer their
lines with the same script and rules when first retrieved, as `batch_api.scenarios` says
(completed, in progress, expired, failed, cancelled); `batch_api.support = 404` (or 405) plays
a server without it. Every call, synchronous or from a batch line, is in `calls` (`via`).
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
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
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

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
        body = self._read_body()
        if self._authorised() and not self._batch_api("GET", body):
            self._send_error(404, f"Unknown path {self.path}", "invalid_request_error", None)

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            self._send_error(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                "invalid_request_error",
                None,
            )
            return False
        return True

    def _batch_api(self, method: str, body: bytes) -> bool:
        """Answer /v1/files and /v1/batches requests; False for any other path."""
        parts = urlsplit(self.path)
        if not parts.path.startswith(("/v1/files", "/v1/batches")):
            return False
        content_type = self.headers.get("Content-Type", "")
        status, payload = self.server.owner.batch_api.handle(
            method, parts.path, parts.query, content_type, body
        )
        if status == 0:  # drop the connection without an answer
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        elif isinstance(payload, bytes):
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self._send_json(status, payload)
        return True

    def do_POST(self) -> None:
        body = self._read_body()
        owner = self.server.owner
        if not self._authorised() or self._batch_api("POST", body):
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
        status, payload, headers = _status_answer(code, extras)
        self._send_json(status, payload, headers)

    def _send_completion(
        self,
        request: dict[str, Any],
        images: list[dict],
        text: str,
        content: str,
        finish_reason: str = "stop",
    ) -> None:
        self._send_json(200, _completion(request, images, text, content, finish_reason))

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


def _completion(
    request: dict[str, Any], images: list[dict], text: str, content: str, finish_reason: str = "stop"
) -> dict[str, Any]:
    """A chat.completion answering `request` with `content`, with plausible token counts."""
    prompt_tokens = 10 + len(text) // 4 + sum(_image_tokens(*i["size"]) for i in images)
    completion_tokens = max(1, len(content) // 4)
    message = {"role": "assistant", "content": content, "refusal": None}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "unknown"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _status_answer(code: int, extras: tuple[Any, ...]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """An OpenAI-style error: (status, {"error": ...}, headers) for a ('status', code, ...) behaviour."""
    message, headers = _DEFAULT_MESSAGES.get(code, f"Server error {code}."), {}
    for extra in extras:
        if isinstance(extra, dict):
            headers = extra
        elif extra is not None:
            message = str(extra)
    default_type = "server_error" if code >= 500 else "invalid_request_error"
    err_type, err_code = _ERROR_TYPES.get(code, (default_type, None))
    return code, {"error": {"message": message, "type": err_type, "param": None, "code": err_code}}, headers


def _answer(behaviour: Behaviour, request: dict[str, Any], images: list[dict], text: str) -> tuple[int, dict]:
    """What a behaviour answers, as (status, body), for a batch line (no connection to drop)."""
    kind = behaviour if isinstance(behaviour, str) else behaviour[0]
    if kind == "status":
        status, payload, _ = _status_answer(int(behaviour[1]), behaviour[2:])
        return status, payload
    if kind == "error":
        return int(behaviour[1]), {"error": behaviour[2]}
    if kind == "disconnect":
        return _status_answer(500, ())[:2]
    if kind == "malformed":
        return 200, _completion(request, images, text, _MALFORMED)
    if kind == "content":
        finish_reason = behaviour[2] if len(behaviour) > 2 else "stop"
        return 200, _completion(request, images, text, str(behaviour[1]), finish_reason)
    return 200, _completion(request, images, text, _ok_content(images))


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


_EXPIRED_LINE = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
BATCH_SCENARIOS = ("completed", "in_progress", "expired", "failed", "cancelled")


class _BatchApi:
    """`/v1/files` (upload, list, retrieve, content) and `/v1/batches` (create, list, retrieve,
    cancel) in memory. A batch's lines are answered like synchronous requests (the owner's
    script and image rules: a line can be made to fail) when it is first retrieved, as its
    scenario says:
      'completed'        every line answered; failed lines go to the error file
      'in_progress'      never finishes
      ('expired', n)     the first n lines answered, the rest `batch_expired` in the error file
      'failed'           the input was refused: no output at all
      'cancelled'        cancelled before any line ran
    `support`: True, or 404/405 to answer every files and batches request with that status."""

    def __init__(self, owner: OpenAITestServer) -> None:
        self.owner = owner
        self.support: bool | int = True
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.scenarios: deque[Behaviour] = deque()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every files/batches request
        self.fail_create_after_commit = False  # create the batch, then drop the connection (once)

    def reset(self) -> None:
        self.support = True
        self.files.clear()
        self.batches.clear()
        self.scenarios.clear()
        self.requests.clear()
        self.fail_create_after_commit = False

    # ---- what tests read
    def input_lines(self, batch_id: str) -> list[dict[str, Any]]:
        """The parsed lines of a batch's input file."""
        data = self.files[self.batches[batch_id]["input_file_id"]]["bytes"]
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    # ---- requests
    def handle(self, method: str, path: str, query: str, content_type: str, body: bytes) -> tuple[int, Any]:
        with self.owner._lock:
            self.requests.append((method, path))
            if self.support is not True:
                status = int(self.support)
                return status, {"error": {"message": f"{method} {path} is not supported", "type": None,
                                          "param": None, "code": None}}  # fmt: skip
            params = dict(parse_qsl(query))
            parts = path.rstrip("/").split("/")[2:]  # files | batches, then an id, then an action
            if parts[0] == "files":
                return self._files(method, parts[1:], params, content_type, body)
            return self._batches(method, parts[1:], params, body)

    def _not_found(self, what: str) -> tuple[int, dict]:
        return 404, {"error": {"message": f"No such {what}", "type": "invalid_request_error", "param": None,
                               "code": None}}  # fmt: skip

    def _files(self, method, parts, params, content_type, body) -> tuple[int, Any]:
        if method == "POST" and not parts:
            fields = _multipart(content_type, body)
            if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
                return 400, {"error": {"message": "a file with purpose 'batch' is required", "type": None,
                                       "param": None, "code": None}}  # fmt: skip
            file_id = f"file-{uuid.uuid4().hex[:24]}"
            name, data = fields["file"]
            self.files[file_id] = {"bytes": data, "filename": name or "input.jsonl", "purpose": "batch",
                                   "created_at": int(time.time())}  # fmt: skip
            return 200, self._file_object(file_id)
        if method == "GET" and not parts:
            listed = [self._file_object(f) for f in self.files]
            return 200, {
                "object": "list",
                "data": listed[: int(params.get("limit", 10000))],
                "has_more": False,
            }
        if method == "GET" and parts and parts[0] in self.files:
            if len(parts) == 2 and parts[1] == "content":
                return 200, self.files[parts[0]]["bytes"]
            return 200, self._file_object(parts[0])
        return self._not_found("file")

    def _file_object(self, file_id: str) -> dict[str, Any]:
        f = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(f["bytes"]), "created_at": f["created_at"],
                "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}  # fmt: skip

    def _batches(self, method, parts, params, body) -> tuple[int, Any]:
        if method == "POST" and not parts:
            request = json.loads(body or b"{}")
            if request.get("input_file_id") not in self.files:
                return 400, {"error": {"message": "input_file_id is not an uploaded file", "type": None,
                                       "param": "input_file_id", "code": None}}  # fmt: skip
            batch_id = f"batch_{uuid.uuid4().hex[:24]}"
            lines = self._input(request["input_file_id"])
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": request.get("endpoint"),
                "input_file_id": request["input_file_id"], "completion_window": request.get("completion_window"),
                "status": "validating", "created_at": int(time.time()) + len(self.batches),
                "metadata": request.get("metadata"), "output_file_id": None, "error_file_id": None,
                "errors": None, "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "scenario": self.scenarios.popleft() if self.scenarios else "completed",
            }  # fmt: skip
            if self.fail_create_after_commit:
                self.fail_create_after_commit = False
                return 0, None  # the batch exists, but the client never hears so
            return 200, self._batch_object(batch_id)
        if method == "GET" and not parts:
            ordered = sorted(self.batches, key=lambda b: self.batches[b]["created_at"], reverse=True)
            if params.get("after") in self.batches:
                ordered = ordered[ordered.index(params["after"]) + 1 :]
            limit = int(params.get("limit", 20))
            page = [self._batch_object(b) for b in ordered[:limit]]
            return 200, {"object": "list", "data": page, "has_more": len(ordered) > limit,
                         "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None}  # fmt: skip
        if parts and parts[0] in self.batches:
            batch = self.batches[parts[0]]
            if method == "POST" and parts[1:] == ["cancel"]:
                if batch["status"] in ("validating", "in_progress"):
                    batch["status"] = "cancelled"
                    batch["scenario"] = "cancelled"
                return 200, self._batch_object(parts[0])
            if method == "GET" and len(parts) == 1:
                self._progress(parts[0])
                return 200, self._batch_object(parts[0])
        return self._not_found("batch")

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "scenario"}

    def _input(self, file_id: str) -> list[dict[str, Any]]:
        data = self.files[file_id]["bytes"]
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def _write(self, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        self.files[file_id] = {"bytes": data, "filename": "batch_output.jsonl", "purpose": "batch_output",
                               "created_at": int(time.time())}  # fmt: skip
        return file_id

    def _progress(self, batch_id: str) -> None:
        """Take the batch to the end its scenario names, answering its lines on the way."""
        batch = self.batches[batch_id]
        if batch["status"] not in ("validating", "in_progress"):
            return
        scenario = batch["scenario"]
        name = scenario if isinstance(scenario, str) else scenario[0]
        if name == "in_progress":
            batch["status"] = "in_progress"
            return
        if name == "failed":
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_json_line", "line": 1,
                               "message": "This line is not parseable as valid JSON.", "param": None}]}  # fmt: skip
            return
        if name == "cancelled":
            batch["status"] = "cancelled"
            return
        lines = self._input(batch["input_file_id"])
        answered = (
            len(lines) if name == "completed" else int(scenario[1]) if not isinstance(scenario, str) else 0
        )
        output, errors = [], []
        for n, line in enumerate(lines):
            entry = {"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": line.get("custom_id")}
            if n >= answered:
                errors.append({**entry, "response": None, "error": _EXPIRED_LINE})
                continue
            request = line.get("body") or {}
            images, text = _request_parts(request)
            behaviour = self.owner._choose_behaviour(request, images, len(json.dumps(request)), via="batch")
            status, body = _answer(behaviour, request, images, text)
            response = {"status_code": status, "request_id": f"req_{uuid.uuid4().hex[:16]}", "body": body}
            (output if status == 200 else errors).append({**entry, "response": response, "error": None})
        batch["output_file_id"] = self._write(output)
        batch["error_file_id"] = self._write(errors)
        batch["request_counts"] = {"total": len(lines), "completed": len(output), "failed": len(errors)}
        batch["status"] = "completed" if name == "completed" else "expired"


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


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
        self.batch_api = _BatchApi(self)

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
            self.batch_api.reset()

    @property
    def pending(self) -> int:
        """How many scripted behaviours have not been used yet."""
        with self._lock:
            return len(self._script)

    def _next_behaviour(
        self, request: dict[str, Any], images: list[dict[str, Any]], body_bytes: int
    ) -> Behaviour:
        with self._lock:
            return self._choose_behaviour(request, images, body_bytes)

    def _choose_behaviour(
        self, request: dict[str, Any], images: list[dict[str, Any]], body_bytes: int, via: str = "sync"
    ) -> Behaviour:
        """The rules, then the script (the caller holds the lock); the call is recorded."""
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
                "via": via,
                "time": time.monotonic(),
                "request": request if self.keep_requests else None,
            }
        )
        return behaviour
