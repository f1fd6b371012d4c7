"""Safe streaming HTTP downloads of media from URLs found in scraped posts.

One `Fetcher` owns a download's whole life: URL and address checks, a per-host concurrency
cap, manual redirects, retries with backoff, and streaming into a temporary file in the
destination directory while hashing, at no less than a minimum average rate, until the
caller cancels. Nothing the server says is trusted: not its addresses after DNS, not its
Content-Length, not its Content-Type.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.connection import allowed_gai_family

from social_tui_media.media.retry_after import retry_after_seconds
from social_tui_media.media.sniff import looks_like_html

if TYPE_CHECKING:
    from social_tui_media.settings import Settings

__all__ = [
    "FetchError",
    "FetchPolicy",
    "FetchedFile",
    "Fetcher",
    "check_url",
    "is_blocked_address",
    "redact_url",
]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CHUNK_SIZE = 256 * 1024
HEAD_SIZE = 4096
TEMP_PREFIX = ".part-"
# Error and redirect bodies up to this size are read so the connection can be reused.
_DRAIN_LIMIT = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "image/avif,image/webp,image/*,video/*,application/pdf,*/*;q=0.8",
    # Media is already compressed; asking for identity keeps Content-Length comparable.
    "Accept-Encoding": "identity",
    "Accept-Language": "en-US,en;q=0.9",
}

KINDS = frozenset(
    {
        "bad_scheme",
        "blocked_address",
        "dns",
        "too_large",
        "timeout",
        "http_status",
        "truncated",
        "connection",
        "html",
        "too_slow",
        "cancelled",
    }
)
_PERMANENT_KINDS = frozenset({"bad_scheme", "too_large", "html"})
# Temporary, but another attempt in the same run would only repeat them: the next run retries.
# Not retried within a run, but by the next one: a blocked address may be a configuration to fix
# (MEDIA_ALLOW_PRIVATE_HOSTS), so it is no verdict on the slot.
_NOT_RETRIED_NOW = frozenset({"too_slow", "cancelled", "blocked_address"})


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, FetchError) and not exc.permanent and exc.kind not in _NOT_RETRIED_NOW


def _is_permanent(kind: str, status: int | None) -> bool:
    if kind in _PERMANENT_KINDS:
        return True
    if kind == "http_status" and status is not None:
        if 400 <= status < 500:
            return status not in (408, 429)
        # A redirect we cannot follow (no Location, a loop) will not fix itself either.
        return 300 <= status < 400
    return False


class FetchError(Exception):
    """A download failed; `kind` says how, `permanent` says whether retrying can help."""

    def __init__(
        self,
        message: str,
        kind: str,
        *,
        status: int | None = None,
        attempts: int = 0,
        retry_after: float | None = None,
        permanent: bool | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown FetchError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts
        # Seconds the server asked us to wait (Retry-After), used by the retry loop.
        self.retry_after = retry_after
        self.permanent = _is_permanent(kind, status) if permanent is None else permanent

    def __reduce__(self):  # keep kind/status when pickled across processes
        return (self.__class__, (self.args[0], self.kind), self.__dict__.copy())


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 104_857_600
    timeout: float = 30.0  # seconds without a byte arriving (connect and read)
    allow_private: tuple[IPNetwork, ...] = ()
    max_attempts: int = 4
    max_redirects: int = 5
    backoff_base: float = 0.5  # seconds; exponential with jitter, capped at backoff_max
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # never sleep longer than this for Retry-After
    # The bound on a whole transfer, which `timeout` alone is not (a byte every few seconds
    # resets it): once rate_grace seconds have passed, the average must stay at min_rate.
    min_rate: float = 1024.0  # bytes/s
    rate_grace: float = 60.0  # seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        """The policy the environment asks for (MEDIA_MAX_FILE_SIZE, MEDIA_DOWNLOAD_TIMEOUT, ...)."""
        return cls(
            max_bytes=settings.max_file_size,
            timeout=settings.download_timeout,
            min_rate=settings.min_download_rate,
            allow_private=tuple(settings.allow_private_hosts),
        )


@dataclass(frozen=True)
class FetchedFile:
    temp_path: Path  # complete temp file inside dest_dir, mode 0600; caller renames or deletes
    md5_sum: str
    file_size: int
    head: bytes  # first 4096 bytes, for type sniffing
    final_url: str  # after redirects
    attempts: int
    content_type: str | None  # what the server claimed; never trusted for the type


# --- URLs and addresses --------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL without query string, fragment or credentials: safe to log and show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if parts.scheme.lower() not in ("http", "https") and len(shown) > 80:
        shown = shown[:80] + "..."
    return shown


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def _as_address(ip: IPAddress | str) -> IPAddress:
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    return ipaddress.ip_address(ip)


def _as_networks(allow_private: Iterable[IPNetwork | str]) -> tuple[IPNetwork, ...]:
    return tuple(
        n
        if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network))
        else ipaddress.ip_network(n, strict=False)
        for n in allow_private
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form leads to (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _address_category(ip: IPAddress) -> str | None:
    """None for a public address, else the word for why it is not one."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if ip.version == 6 and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "non-public"
    return None


def _blocked_reason(ip: IPAddress, allow_private: tuple[IPNetwork, ...]) -> str | None:
    if any(ip in net for net in allow_private):
        return None
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _blocked_reason(embedded, allow_private)
    return _address_category(ip)


def is_blocked_address(ip: IPAddress | str, allow_private: Iterable[IPNetwork | str] = ()) -> bool:
    """True when connecting to `ip` could reach a non-public host (and it is not allowed)."""
    return _blocked_reason(_as_address(ip), _as_networks(allow_private)) is not None


def check_url(url: str, allow_private: Iterable[IPNetwork | str] = ()) -> None:
    """Reject anything but an http(s) URL with a host, and literal blocked addresses.

    Host names are not resolved here (this is safe to call offline); every address a name
    resolves to is checked when the connection is made.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise FetchError(f"{shown} is not a valid URL; check the post's data", "bad_scheme") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        what = f"a {scheme}: URL" if scheme else "a URL without a scheme"
        raise FetchError(f"{shown} is {what}; only http and https media are downloaded", "bad_scheme")
    if not host:
        raise FetchError(f"{shown} has no host; check the post's data", "bad_scheme")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    reason = _blocked_reason(ip, _as_networks(allow_private))
    if reason is not None:
        raise FetchError(
            f"{shown} points at {ip}, a {reason} address; allow it with MEDIA_ALLOW_PRIVATE_HOSTS",
            "blocked_address",
        )


# --- connections pinned to checked addresses -------------------------------------------------


class _AddressBlocked(Exception):
    """Raised inside urllib3 before connecting; not an OSError so nothing wraps it."""

    def __init__(self, host: str, ip: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {ip}, a {reason} address")
        self.host, self.ip, self.reason = host, ip, reason


class _ResolveFailed(Exception):
    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"cannot resolve {host}: {detail}")
        self.host, self.detail = host, detail


class _Cancelled(Exception):
    """`Fetcher.cancel()` was called; raised where that is noticed, inside urllib3 too (not an
    OSError, so nothing wraps it). `_attempt` turns it into FetchError kind "cancelled"."""


class _LiveConnections:
    """The connection each thread's request is using, so `cancel()` can end a blocked read.

    A read that waits for a silent server returns only when its socket times out; shutting
    the socket down from another thread ends it at once, and a thread that starts a request
    after the cancel is refused (`enter` and `_new_conn` check).
    """

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._by_thread: dict[int, HTTPConnection] = {}

    def enter(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._by_thread[threading.get_ident()] = conn
        if self.cancelled.is_set():
            raise _Cancelled

    def leave(self) -> None:
        with self._lock:
            self._by_thread.pop(threading.get_ident(), None)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            for conn in self._by_thread.values():
                sock = conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        # The plain socket's shutdown, for TLS sockets too: wakes the reader.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _PinnedConnectionMixin:
    """Resolve, check every address, then connect to exactly those checked addresses.

    `self.host` stays the name from the URL, so the Host header, SNI and certificate checks
    are all against the name; only the socket goes to the checked IP (no DNS rebinding).
    """

    allow_private: tuple[IPNetwork, ...] = ()
    live: _LiveConnections | None = None

    def request(self, *args, **kwargs) -> None:
        if self.live is not None:
            self.live.enter(self)
        super().request(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        if self.live is not None and self.live.cancelled.is_set():
            raise _Cancelled
        host = self._dns_host
        try:
            infos = socket.getaddrinfo(host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _ResolveFailed(host, exc.strerror or str(exc)) from None
        except UnicodeError:
            raise _ResolveFailed(host, "not a valid host name") from None
        targets = []
        for family, socktype, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            reason = _blocked_reason(ip, self.allow_private)
            if reason is not None:
                raise _AddressBlocked(host, str(ip), reason)
            if (family, sockaddr) not in [(t[0], t[3]) for t in targets]:
                targets.append((family, socktype, proto, sockaddr))
        if not targets:
            raise _ResolveFailed(host, "no addresses")

        error: OSError | None = None
        for family, socktype, proto, sockaddr in targets:
            sock = socket.socket(family, socktype, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is None or isinstance(self.timeout, (int, float)):
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            if self.live is not None and self.live.cancelled.is_set():
                sock.close()  # cancelled while connecting: cancel() could not reach this socket
                raise _Cancelled
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        assert error is not None
        if isinstance(error, socket.timeout):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


def _pinned_pool_classes(allow_private: tuple[IPNetwork, ...], live: _LiveConnections) -> dict[str, type]:
    attrs = {"allow_private": allow_private, "live": live}
    http_conn = type("PinnedHTTPConnection", (_PinnedConnectionMixin, HTTPConnection), attrs)
    https_conn = type("PinnedHTTPSConnection", (_PinnedConnectionMixin, HTTPSConnection), attrs)
    return {
        "http": type("PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class _PinnedAdapter(HTTPAdapter):
    def __init__(
        self, allow_private: tuple[IPNetwork, ...], pool_maxsize: int, live: _LiveConnections
    ) -> None:
        # Set before super().__init__, which builds the pool manager.
        self._pool_classes = _pinned_pool_classes(allow_private, live)
        super().__init__(pool_connections=32, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


# --- helpers -----------------------------------------------------------------------------


def format_size(n: int) -> str:
    """A byte count as a person reads it: `512 bytes`, `1.5 KB`, `212 MB`."""
    if n < 1024:
        return f"{n} bytes"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            value = f"{n / scale:.1f}".rstrip("0").rstrip(".")
            return f"{value} {unit}"
    return f"{n} bytes"  # pragma: no cover


def _content_length(resp: requests.Response) -> int | None:
    raw = resp.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _is_encoded(resp: requests.Response) -> bool:
    return resp.headers.get("Content-Encoding", "").strip().lower() not in ("", "identity")


def _root_cause(exc: BaseException) -> str:
    """A short description of what went wrong on the wire, without any URL in it."""
    seen = set()
    current: BaseException | None = exc
    found: BaseException | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = nxt or current.__cause__ or current.__context__
    if found is not None:
        return found.strerror
    return type(exc).__name__


def _release(resp: requests.Response) -> None:
    """Close a response we will not use; read a small body first so the connection is reused."""
    length = _content_length(resp)
    if length is not None and length <= _DRAIN_LIMIT:
        with contextlib.suppress(Exception):
            for _ in resp.iter_content(_DRAIN_LIMIT):
                pass
    resp.close()


def _status_hint(status: int) -> str:
    if status in (401, 403, 410):
        return "the signed URL has probably expired; re-scrape the post for a fresh URL"
    if status == 404:
        return "nothing is at this URL any more"
    if status == 429:
        return "rate limited; retried after the server's Retry-After"
    if status == 408 or status >= 500:
        return "a temporary server problem; retried with backoff"
    if 300 <= status < 400:
        return "a redirect without a usable Location header"
    return "the server refused the request"


# --- the fetcher ------------------------------------------------------------------------


class Fetcher:
    """Downloads URLs to temp files safely; one instance is shared by all download threads."""

    def __init__(self, policy: FetchPolicy, max_per_host: int = 5) -> None:
        if max_per_host < 1:
            raise ValueError("max_per_host must be at least 1")
        self.policy = policy
        self.max_per_host = max_per_host
        self._allow = _as_networks(policy.allow_private)
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the environment: we check addresses
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep no cookies
        session.headers.clear()
        session.headers.update(_HEADERS)
        self._live = _LiveConnections()
        adapter = _PinnedAdapter(self._allow, pool_maxsize=max(max_per_host, 10), live=self._live)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def cancel(self) -> None:
        """Abandon every download in progress and refuse new ones (Ctrl-C): each raises
        FetchError kind "cancelled" within moments and leaves no temp file. For good."""
        self._live.cancel()

    @property
    def cancelled(self) -> bool:
        return self._live.cancelled.is_set()

    def fetch_to_dir(self, url: str, dest_dir: Path, *, prefix: str = TEMP_PREFIX) -> FetchedFile:
        """Download `url` into a complete 0600 temp file in `dest_dir`, or raise FetchError.

        The temp file's name starts with `prefix` (the cache puts its pid there to recognise
        a crashed run's leftovers). Retries temporary failures; on any failure no temp file
        is left behind.
        """
        dest_dir = Path(dest_dir)
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"temp file prefix {prefix!r} must be a plain file name part")
        check_url(url, self._allow)
        attempts = [0]
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.policy.max_attempts)),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_worth_retrying),
            before_sleep=self._log_retry(url),
            sleep=self._live.cancelled.wait,  # a backoff ends early when the run is cancelled
            reraise=True,
        )
        started = time.monotonic()
        try:
            fetched = retrying(self._attempt, url, dest_dir, prefix, attempts)
        except FetchError as exc:
            exc.attempts = attempts[0]
            raise
        logger.debug(
            "fetched %s: %s in %.2f s, %d attempt(s)",
            redact_url(url),
            format_size(fetched.file_size),
            time.monotonic() - started,
            fetched.attempts,
        )
        return fetched

    # -- retry plumbing

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, FetchError) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.retry_after_max)
        # Exponential with jitter: base * 2^(n-1) + U(0, base), capped.
        base = self.policy.backoff_base
        delay = base * 2 ** (retry_state.attempt_number - 1) + random.uniform(0, base)
        return min(delay, self.policy.backoff_max)

    @staticmethod
    def _log_retry(url: str):
        shown = redact_url(url)

        def log(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            kind = getattr(exc, "kind", type(exc).__name__)
            sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
            logger.warning(
                "attempt %d for %s failed (%s); retrying in %.1f s",
                retry_state.attempt_number,
                shown,
                kind,
                sleep,
            )

        return log

    @contextlib.contextmanager
    def _host_slot(self, host: str) -> Iterator[None]:
        with self._slots_lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(self.max_per_host)
        with slot:
            yield

    # -- one attempt: redirects, status, body

    def _attempt(self, url: str, dest_dir: Path, prefix: str, attempts: list[int]) -> FetchedFile:
        attempts[0] += 1
        try:
            return self._follow(url, dest_dir, prefix, attempts[0])
        except (FetchError, _Cancelled):
            # Whatever a cancelled transfer ended with (a shut-down socket reads as a cut body).
            if self.cancelled:
                raise FetchError(
                    f"{redact_url(url)}: download abandoned (interrupted)", "cancelled"
                ) from None
            raise

    def _follow(self, url: str, dest_dir: Path, prefix: str, attempt: int) -> FetchedFile:
        current = url
        for hop in range(self.policy.max_redirects + 1):
            if hop:
                check_url(current, self._allow)
            host = (urlsplit(current).hostname or "").lower()
            with self._host_slot(host), self._in_flight():
                started = time.monotonic()
                resp = self._get(current)
                try:
                    status = resp.status_code
                    if status in _REDIRECT_STATUSES:
                        location = resp.headers.get("Location")
                        if not location:
                            raise self._status_error(resp, current)
                        _release(resp)
                        next_url = urljoin(current, location)
                        logger.debug(
                            "%s redirects (%d) to %s",
                            redact_url(current),
                            status,
                            redact_url(next_url),
                        )
                        current = next_url
                        continue
                    if not 200 <= status < 300:
                        raise self._status_error(resp, current)
                    return self._stream_to_temp(resp, current, dest_dir, prefix, attempt, started)
                finally:
                    resp.close()
        raise FetchError(
            f"{redact_url(url)} redirected more than {self.policy.max_redirects} times; "
            "the link is probably a redirect loop",
            "http_status",
            status=status,
        )

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """One request and its body: refused once cancelled, and known to `cancel()` meanwhile."""
        if self.cancelled:
            raise _Cancelled
        try:
            yield
        finally:
            self._live.leave()

    def _get(self, url: str) -> requests.Response:
        shown = redact_url(url)
        timeout = self.policy.timeout
        try:
            return self._session.get(url, stream=True, allow_redirects=False, timeout=(timeout, timeout))
        except _AddressBlocked as exc:
            raise FetchError(
                f"{shown}: {exc.host} resolves to {exc.ip}, a {exc.reason} address; "
                "allow it with MEDIA_ALLOW_PRIVATE_HOSTS",
                "blocked_address",
            ) from None
        except _ResolveFailed as exc:
            raise FetchError(
                f"{shown}: cannot resolve {exc.host} ({exc.detail}); check the URL and DNS",
                "dns",
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise FetchError(
                f"{shown}: could not connect within {timeout:g} s (MEDIA_DOWNLOAD_TIMEOUT)",
                "timeout",
            ) from None
        except requests.exceptions.ReadTimeout:
            raise FetchError(
                f"{shown}: no response within {timeout:g} s (MEDIA_DOWNLOAD_TIMEOUT)", "timeout"
            ) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ):
            raise FetchError(f"{shown} is not a valid URL", "bad_scheme") from None
        except requests.exceptions.SSLError as exc:
            raise FetchError(
                f"{shown}: TLS failed ({_root_cause(exc)}); the server's certificate does not "
                "match its name or is not trusted",
                "connection",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(
                f"{shown}: connection failed ({_root_cause(exc)}); check the network",
                "connection",
            ) from None

    def _status_error(self, resp: requests.Response, url: str) -> FetchError:
        status = resp.status_code
        retry_after = None
        if status in (429, 503):
            retry_after = retry_after_seconds(resp.headers)
        _release(resp)
        reason = f" {resp.reason}" if resp.reason else ""
        return FetchError(
            f"{redact_url(url)} answered HTTP {status}{reason}: {_status_hint(status)}",
            "http_status",
            status=status,
            retry_after=retry_after,
        )

    def _iter_body(self, resp: requests.Response, shown: str, started: float) -> Iterator[bytes]:
        """The body as it arrives: each piece is what one socket read got, so between any two
        pieces the transfer's pace is checked, however slowly the bytes come."""
        timeout = self.policy.timeout
        received = 0
        while True:
            self._check_pace(shown, started, received)
            try:
                chunk = resp.raw.read1(CHUNK_SIZE, decode_content=True)
            except ReadTimeoutError:
                raise FetchError(
                    f"{shown}: no data for {timeout:g} s (MEDIA_DOWNLOAD_TIMEOUT)", "timeout"
                ) from None
            except ProtocolError as exc:
                raise FetchError(
                    f"{shown}: the connection closed before the whole body arrived ({_root_cause(exc)}); retried",
                    "truncated",
                ) from None
            except SSLError as exc:
                raise FetchError(
                    f"{shown}: connection failed while downloading ({_root_cause(exc)})",
                    "connection",
                ) from None
            except (HTTPError, OSError) as exc:
                raise FetchError(f"{shown}: download failed ({_root_cause(exc)})", "connection") from None
            if not chunk:
                if self.cancelled:  # a shut-down socket ends a body without a length like a complete one
                    raise _Cancelled
                return
            received += len(chunk)
            yield chunk

    def _check_pace(self, shown: str, started: float, received: int) -> None:
        """Raise when the run was cancelled, or when the transfer, past its grace period, has
        averaged less than the policy's minimum rate."""
        if self.cancelled:
            raise _Cancelled
        elapsed = time.monotonic() - started
        min_rate, grace = self.policy.min_rate, self.policy.rate_grace
        if elapsed >= grace and elapsed > 0 and received < min_rate * elapsed:
            raise FetchError(
                f"{shown}: arrived at {received / elapsed:.0f} B/s ({format_size(received)} in "
                f"{elapsed:.1f} s), slower than MEDIA_MIN_DOWNLOAD_RATE={min_rate:g} for {grace:g} s; "
                "lower it to allow slower servers",
                "too_slow",
            )

    def _stream_to_temp(
        self, resp: requests.Response, url: str, dest_dir: Path, prefix: str, attempt: int, started: float
    ) -> FetchedFile:
        shown = redact_url(url)
        limit = self.policy.max_bytes
        length = _content_length(resp)
        # With a Content-Encoding, Content-Length counts encoded bytes, not the file's.
        expected = None if _is_encoded(resp) else length
        if expected is not None and expected > limit:
            raise FetchError(
                f"{shown} is {format_size(expected)}; limit is {format_size(limit)} (MEDIA_MAX_FILE_SIZE)",
                "too_large",
            )

        tmp = tempfile.NamedTemporaryFile(dir=dest_dir, prefix=prefix, delete=False)
        temp_path = Path(tmp.name)
        complete = False
        try:
            os.fchmod(tmp.fileno(), 0o600)
            md5 = hashlib.md5()
            size = 0
            head = b""
            with tmp:
                for chunk in self._iter_body(resp, shown, started):
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(
                            f"{shown} is more than {format_size(limit)}; limit is "
                            f"{format_size(limit)} (MEDIA_MAX_FILE_SIZE)",
                            "too_large",
                        )
                    if len(head) < HEAD_SIZE:
                        head += chunk[: HEAD_SIZE - len(head)]
                        if looks_like_html(head):
                            raise self._html_error(shown)
                    md5.update(chunk)
                    tmp.write(chunk)
            if expected is not None and size < expected:
                raise FetchError(
                    f"{shown}: got {size} of {expected} bytes before the connection closed; retried",
                    "truncated",
                )
            complete = True
        finally:
            if not complete:
                tmp.close()
                temp_path.unlink(missing_ok=True)
        return FetchedFile(
            temp_path=temp_path,
            md5_sum=md5.hexdigest(),
            file_size=size,
            head=head,
            final_url=url,
            attempts=attempt,
            content_type=resp.headers.get("Content-Type"),
        )

    @staticmethod
    def _html_error(shown: str) -> FetchError:
        return FetchError(
            f"{shown}: server returned an HTML page, not media (usually a login or error "
            "page); check the URL or re-scrape the post",
            "html",
        )
