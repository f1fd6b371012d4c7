"""A loopback HTTP media server with latency and failure modes, for tests, demo and benchmarks.

    with MediaTestServer(latency=0.05) as server:
        url = server.add("/dms/image/x", jpeg_bytes, "image/jpeg", fail_times=2)
        ...
        assert server.count("/dms/image/x") == 3

It serves registered paths (query strings ignored for matching, but recorded), and can
fail, redirect, stall, trickle, truncate, chunk and stream gigabytes of generated content.
`serve_samples` registers real JPEG/MP4/PDF content for every CDN URL in sample posts.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import random
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

_SEND_CHUNK = 64 * 1024
_PAD_BLOCK_SIZE = 1 << 20
_STALL_MAX_SECONDS = 60.0


class RequestRecord(NamedTuple):
    method: str
    path: str
    query: str


@dataclass
class _Route:
    body: bytes
    content_type: str
    status: int | None = None
    fail_times: int = 0
    fail_status: int = 503
    retry_after: float | str | None = None
    redirect_to: str | None = None
    stall_after: int | None = None
    trickle_every: float | None = None  # seconds between single body bytes
    truncate_to: int | None = None
    chunked: bool = False
    streamed_size: int | None = None
    hits: int = 0  # requests seen, for fail_times

    @property
    def size(self) -> int:
        return self.streamed_size if self.streamed_size is not None else len(self.body)


_MODES = frozenset(
    {
        "status",
        "fail_times",
        "fail_status",
        "retry_after",
        "redirect_to",
        "stall_after",
        "trickle_every",
        "truncate_to",
        "chunked",
        "streamed_size",
    }
)


@functools.lru_cache(maxsize=1)
def _pad_block() -> bytes:
    return random.Random(20251125).randbytes(_PAD_BLOCK_SIZE)


def iter_body(body: bytes, size: int | None = None, chunk_size: int = _SEND_CHUNK) -> Iterator[bytes]:
    """The bytes the server sends for a path: `body`, padded to `size` with fixed filler.

    Generated on the fly, so a 1 GB body never sits in memory; tests hash it to compare.
    """
    total = len(body) if size is None else size
    sent = 0
    while sent < min(len(body), total):
        piece = body[sent : min(sent + chunk_size, total)]
        yield piece
        sent += len(piece)
    block = _pad_block()
    while sent < total:
        offset = (sent - len(body)) % _PAD_BLOCK_SIZE
        n = min(chunk_size, total - sent, _PAD_BLOCK_SIZE - offset)
        yield block[offset : offset + n]
        sent += n


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stalled handlers must not hold up stop()
    request_queue_size = 128  # benchmarks open many connections at once
    owner: MediaTestServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = _STALL_MAX_SECONDS + 5  # idle keep-alive connections end eventually

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("media test server: " + format, *args)

    def setup(self) -> None:
        super().setup()
        self.server.owner._track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track_connection(self.connection, open_=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = parts.path
        owner._record(RequestRecord(self.command, path, parts.query))
        owner._enter()
        try:
            if owner.latency:
                owner._stopping.wait(owner.latency)
            route, hit = owner._hit(path)
            if route is None:
                self._reply(404, b"not found", "text/plain", send_body)
            elif route.status is not None:
                self._reply(route.status, route.body, route.content_type, send_body, route)
            elif hit <= route.fail_times:
                body = f"failure {hit} of {route.fail_times}".encode()
                self._reply(route.fail_status, body, "text/plain", send_body, route)
            elif route.redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", route.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send_content(path, route, send_body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        finally:
            owner._leave()

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str,
        send_body: bool,
        route: _Route | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if route is not None and route.retry_after is not None:
            value = route.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            self.send_header("Retry-After", str(value))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_content(self, path: str, route: _Route, send_body: bool) -> None:
        owner = self.server.owner
        total = route.size
        self.send_response(200)
        self.send_header("Content-Type", route.content_type)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        if not send_body:
            return
        cut = route.stall_after if route.stall_after is not None else route.truncate_to
        limit = total if cut is None else min(cut, total)
        sent = 0
        trickle = route.trickle_every
        for piece in iter_body(route.body, total, chunk_size=1 if trickle is not None else _SEND_CHUNK):
            if sent >= limit:
                break
            piece = piece[: limit - sent]
            if route.chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            sent += len(piece)
            owner._add_sent(path, len(piece))
            if trickle is not None and owner._stopping.wait(trickle):
                self.close_connection = True
                return
        if route.stall_after is not None:
            self.wfile.flush()
            owner._stopping.wait(_STALL_MAX_SECONDS)
            self.close_connection = True
            return
        if route.truncate_to is not None and route.truncate_to < total:
            self.wfile.flush()
            self.close_connection = True
            return
        if route.chunked:
            self.wfile.write(b"0\r\n\r\n")


class MediaTestServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 (random port) with per-path failure modes."""

    def __init__(self, latency: float = 0.0, port: int = 0) -> None:
        self.latency = latency
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._routes: dict[str, _Route] = {}
        self._requests: list[RequestRecord] = []
        self._sent: dict[str, int] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    # -- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="media-test-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, release stalled handlers and close every connection."""
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> MediaTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- configuration

    def add(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        **mode: object,
    ) -> str:
        """Serve `body` at `path` (query ignored) in the given mode; return its full URL."""
        unknown = set(mode) - _MODES
        if unknown:
            raise TypeError(f"unknown MediaTestServer mode(s): {', '.join(sorted(unknown))}")
        path = urlsplit(path).path or "/"
        if not path.startswith("/"):
            path = "/" + path
        route = _Route(body=bytes(body), content_type=content_type, **mode)  # type: ignore[arg-type]
        with self._lock:
            self._routes[path] = route
        return self.base_url + path

    # -- observations

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def count(self, path: str) -> int:
        """How many requests arrived for `path` (any query string)."""
        path = urlsplit(path).path
        with self._lock:
            return sum(1 for r in self._requests if r.path == path)

    def bytes_sent(self, path: str) -> int:
        """Body bytes written for `path` so far (they may still sit in socket buffers)."""
        with self._lock:
            return self._sent.get(urlsplit(path).path, 0)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self.in_flight == 0, timeout)

    def clear(self) -> None:
        """Forget recorded requests and statistics (routes and their failure counters stay)."""
        with self._lock:
            self._requests.clear()
            self._sent.clear()
            self.max_in_flight = self.in_flight

    # -- called by handler threads

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _hit(self, path: str) -> tuple[_Route | None, int]:
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return None, 0
            route.hits += 1
            return route, route.hits

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._idle:
            self.in_flight -= 1
            self._idle.notify_all()

    def _add_sent(self, path: str, n: int) -> None:
        with self._lock:
            self._sent[path] = self._sent.get(path, 0) + n

    def _track_connection(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


# --- sample content ----------------------------------------------------------------------

# The samples' README promises one dedup pair: this carousel slot (post ...100009) carries
# the same bytes as post ...100000's single image, under a different URL.
_SAME_BYTES_AS = {"DBC469CC94C4B47": "DECA26941BC5187"}
_FIXED_SIZE = {"DECA26941BC5187": (800, 800)}
_DEFAULT_IMAGE_SIZE = (320, 240)
_MAX_SIDE = 4096


def _colour(seed: str, offset: int = 0) -> tuple[int, int, int]:
    digest = hashlib.sha256(seed.encode()).digest()
    return (digest[offset], digest[offset + 1], digest[offset + 2])


@functools.cache
def _jpeg(seed: str, width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), _colour(seed))
    ImageDraw.Draw(image).rectangle(
        (width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=_colour(seed, 3)
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _video_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different types across versions
            continue
        return name
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


@functools.cache
def _mp4(seed: str, width: int = 64, height: int = 48, frames: int = 10, fps: int = 10) -> bytes:
    import av
    from PIL import Image

    out = io.BytesIO()
    container = av.open(out, "w", format="mp4")
    try:
        stream = container.add_stream(_video_codec(), rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        base = _colour(seed)
        for i in range(frames):
            colour = tuple((c + 20 * i) % 256 for c in base)
            frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), colour))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return out.getvalue()


@functools.cache
def _pdf(seed: str, pages: int = 3) -> bytes:
    """A minimal valid PDF with one line of text per page, written by hand."""
    label = hashlib.sha256(seed.encode()).hexdigest()[:12]
    page_ids = [4 + 2 * i for i in range(pages)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % pid for pid in page_ids)
        + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, pid in enumerate(page_ids):
        text = f"BT /F1 24 Tf 72 720 Td (Slide {i + 1} of {pages} - {label}) Tj ET".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (pid + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _valid_side(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_SIDE:
        return value
    return None


def sample_media(path: str, width: int | None = None, height: int | None = None) -> tuple[bytes, str]:
    """Deterministic real content for a CDN path: (bytes, content type).

    `/dms/image/...` is a JPEG (width x height, default 320x240, colour from the path),
    `/playlist/vid/...` a one-second MP4, `/dms/document/...` a three-page PDF; anything
    else is a JPEG. The same path always gives the same bytes.
    """
    path = urlsplit(path).path
    if "/playlist/vid/" in path:
        return _mp4(path), "video/mp4"
    if "/dms/document/" in path:
        return _pdf(path), "application/pdf"
    seed = path
    shared = [target for alias, target in _SAME_BYTES_AS.items() if alias in path]
    shared += [media_id for media_id in _FIXED_SIZE if media_id in path]
    if shared:
        # Both slots of the dedup pair: one seed and one size, so identical bytes.
        seed = shared[0]
        width, height = _FIXED_SIZE[seed]
    w = _valid_side(width) or _DEFAULT_IMAGE_SIZE[0]
    h = _valid_side(height) or _DEFAULT_IMAGE_SIZE[1]
    return _jpeg(seed, w, h), "image/jpeg"


def _posts_in(data: object) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("matching_elements"), list):
        data = data["matching_elements"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return []
    return [post for post in data if isinstance(post, dict)]


def _is_cdn_url(value: str) -> bool:
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return False
    return host == "licdn.com" or host.endswith(".licdn.com")


def _media_urls(value: object) -> Iterator[tuple[str, object, object]]:
    """(url, width, height) for every CDN url/thumbnail string below `value`."""
    if isinstance(value, list):
        for item in value:
            yield from _media_urls(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("url", "thumbnail") and isinstance(item, str):
                if _is_cdn_url(item):
                    yield item, value.get("width"), value.get("height")
            elif isinstance(item, (dict, list)):
                yield from _media_urls(item)


def serve_samples(server: MediaTestServer, posts_json_paths: Iterable[str | Path]) -> dict[str, str]:
    """Register sample content for every CDN media URL in the given post files.

    Returns {original URL: the same URL on `server`} (path and query kept, host rewritten).
    Files that are not valid JSON are skipped with a warning.
    """
    sizes: dict[str, tuple[object, object]] = {}
    urls: dict[str, str] = {}
    for json_path in posts_json_paths:
        try:
            data = json.loads(Path(json_path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("skipping %s: %s", json_path, exc)
            continue
        for post in _posts_in(data):
            for key in ("media", "article", "reshared_post"):
                for url, width, height in _media_urls(post.get(key)):
                    parts = urlsplit(url)
                    query = f"?{parts.query}" if parts.query else ""
                    urls[url] = server.base_url + parts.path + query
                    known = sizes.get(parts.path)
                    if known is None or (known[0] is None and width is not None):
                        sizes[parts.path] = (width, height)
    for path, (width, height) in sizes.items():
        body, content_type = sample_media(path, _valid_side(width), _valid_side(height))
        server.add(path, body, content_type)
    return urls


def rewrite_hosts(post_json_text: str, base_url: str) -> str:
    """Point a post file's CDN URLs (media.licdn.com, dms.licdn.com) at `base_url`."""
    base = base_url.rstrip("/")
    escaped_base = base.replace("/", "\\/")
    for host in ("media.licdn.com", "dms.licdn.com"):
        post_json_text = post_json_text.replace(f"https://{host}", base)
        post_json_text = post_json_text.replace(f"https:\\/\\/{host}", escaped_base)
    return post_json_text
