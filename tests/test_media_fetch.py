"""media_fetch against a real loopback server: safety checks, limits, retries, temp files."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import pickle
import socket
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path

import pytest

from devtools.media_server import MediaTestServer, iter_body
from social_tui_media import settings as config
from social_tui_media.media.fetch import (
    FetchedFile,
    Fetcher,
    FetchError,
    FetchPolicy,
    check_url,
    is_blocked_address,
    redact_url,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
MIB = 1 << 20


def fast_policy(**overrides) -> FetchPolicy:
    values = dict(
        timeout=1.0,
        allow_private=LOOPBACK,
        backoff_base=0.01,
        backoff_max=0.05,
        max_attempts=3,
    )
    values.update(overrides)
    return FetchPolicy(**values)


@pytest.fixture
def server():
    with MediaTestServer() as srv:
        yield srv


@pytest.fixture
def fetcher():
    with Fetcher(fast_policy()) as f:
        yield f


@pytest.fixture
def make_fetcher():
    made: list[Fetcher] = []

    def make(max_per_host: int = 5, **overrides) -> Fetcher:
        f = Fetcher(fast_policy(**overrides), max_per_host=max_per_host)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


# Socket connections are observed through the interpreter's audit events (no mocking):
# a blocked destination must be refused before any socket connects to it.
_connect_log: list[tuple] | None = None
_hook_installed = False


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _connect_log is not None:
        _connect_log.append(args[1])


@pytest.fixture
def connect_log():
    global _connect_log, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    _connect_log = []
    try:
        yield _connect_log
    finally:
        _connect_log = None


def body_of(size: int, prefix: bytes = JPEG_HEAD) -> bytes:
    return b"".join(iter_body(prefix, size))


def leftovers(directory: Path) -> list[Path]:
    return list(directory.iterdir())


# --- success path ----------------------------------------------------------------------------


def test_fetch_streams_body_into_private_temp_file_with_md5(server, fetcher, tmp_path):
    body = body_of(3 * MIB + 123)
    url = server.add("/dms/image/a", body, "image/jpeg")

    fetched = fetcher.fetch_to_dir(url + "?e=1&t=sig", tmp_path)

    assert isinstance(fetched, FetchedFile)
    assert fetched.temp_path.parent == tmp_path
    assert fetched.temp_path.name.startswith(".part-")
    assert fetched.temp_path.read_bytes() == body
    assert fetched.md5_sum == hashlib.md5(body).hexdigest()
    assert fetched.file_size == len(body)
    assert fetched.head == body[:4096]
    assert fetched.content_type == "image/jpeg"
    assert fetched.final_url == url + "?e=1&t=sig"
    assert fetched.attempts == 1
    assert stat.S_IMODE(fetched.temp_path.stat().st_mode) == 0o600


def test_temp_file_name_starts_with_the_callers_prefix(server, fetcher, tmp_path):
    url = server.add("/a", body_of(1000))

    fetched = fetcher.fetch_to_dir(url, tmp_path, prefix=".part-4242-")

    assert fetched.temp_path.name.startswith(".part-4242-")
    assert fetched.temp_path.parent == tmp_path
    with pytest.raises(ValueError):
        fetcher.fetch_to_dir(url, tmp_path, prefix="../escape-")


def test_chunked_body_without_content_length_is_fetched_whole(server, fetcher, tmp_path):
    body = body_of(MIB + 7)
    url = server.add("/chunked", body, chunked=True)

    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.md5_sum == hashlib.md5(body).hexdigest()
    assert fetched.file_size == len(body)


def test_connections_are_reused_between_fetches(server, fetcher, tmp_path, connect_log):
    url = server.add("/a", body_of(1000))

    for _ in range(3):
        fetcher.fetch_to_dir(url, tmp_path).temp_path.unlink()

    assert server.count("/a") == 3
    assert len(connect_log) == 1


def test_server_content_type_is_reported_not_trusted(server, fetcher, tmp_path):
    url = server.add("/lie", b"%PDF-1.4 not really", "image/jpeg")

    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.content_type == "image/jpeg"
    assert fetched.head.startswith(b"%PDF-")


# --- redirects -------------------------------------------------------------------------------


def test_redirects_are_followed_and_each_hop_requested_once(server, fetcher, tmp_path):
    body = body_of(5000)
    final = server.add("/final", body, "image/jpeg")
    server.add("/hop2", b"", redirect_to=final + "?v=2")
    start = server.add("/hop1", b"", redirect_to="/hop2")  # relative Location

    fetched = fetcher.fetch_to_dir(start, tmp_path)

    assert fetched.final_url == final + "?v=2"
    assert fetched.md5_sum == hashlib.md5(body).hexdigest()
    assert [server.count(p) for p in ("/hop1", "/hop2", "/final")] == [1, 1, 1]
    assert fetched.attempts == 1


def test_more_redirects_than_allowed_fail_permanently(server, make_fetcher, tmp_path):
    url = server.add("/loop", b"", redirect_to="/loop")
    fetcher = make_fetcher(max_redirects=3)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "http_status"
    assert info.value.permanent
    assert "redirected more than 3 times" in str(info.value)
    assert server.count("/loop") == 4  # the first request plus three followed redirects


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/final",
        "http://[::ffff:10.0.0.1]/x",
        "http://0.0.0.0:{port}/final",
    ],
)
def test_redirect_to_blocked_address_fails_before_connecting(server, fetcher, tmp_path, connect_log, target):
    port = int(server.base_url.rsplit(":", 1)[1])
    server.add("/final", b"secret")
    start = server.add("/hop", b"", redirect_to=target.format(port=port))

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(start, tmp_path)

    assert info.value.kind == "blocked_address"
    assert not info.value.permanent and info.value.attempts <= 1  # no verdict; the next run tries
    assert "MEDIA_ALLOW_PRIVATE_HOSTS" in str(info.value)
    assert server.count("/hop") == 1
    assert server.count("/final") == 0
    # The only connection ever opened went to the allowed loopback server.
    assert connect_log and {addr[:2] for addr in connect_log} == {("127.0.0.1", port)}
    assert leftovers(tmp_path) == []


def test_redirect_to_other_scheme_is_refused(server, fetcher, tmp_path):
    start = server.add("/hop", b"", redirect_to="file:///etc/passwd")

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(start, tmp_path)

    assert info.value.kind == "bad_scheme"
    assert info.value.attempts == 1


# --- address and scheme checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(document.cookie)",
        "ftp://example.com/image.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "//example.com/no-scheme.jpg",
        "http:///no-host",
    ],
)
def test_non_http_urls_are_refused_without_any_request(make_fetcher, tmp_path, url, connect_log):
    with pytest.raises(FetchError) as info:
        make_fetcher().fetch_to_dir(url, tmp_path)

    assert info.value.kind == "bad_scheme"
    assert info.value.permanent
    assert info.value.attempts == 0
    assert connect_log == []


def test_loopback_server_is_blocked_unless_allowed(server, tmp_path, connect_log):
    url = server.add("/a", body_of(100))

    with Fetcher(FetchPolicy(timeout=1)) as strict, pytest.raises(FetchError) as info:
        strict.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "blocked_address"
    assert not info.value.permanent and info.value.attempts <= 1  # no verdict; the next run tries
    assert "127.0.0.1, a loopback address" in str(info.value)
    assert server.count("/a") == 0
    assert connect_log == []


def test_host_name_resolving_to_loopback_is_blocked_at_connect_time(server, tmp_path, connect_log):
    port = server.base_url.rsplit(":", 1)[1]
    server.add("/a", body_of(100))

    with Fetcher(FetchPolicy(timeout=1, max_attempts=1)) as strict:
        with pytest.raises(FetchError) as info:
            strict.fetch_to_dir(f"http://localhost:{port}/a?t=secret", tmp_path)

    assert info.value.kind == "blocked_address"
    assert "localhost resolves to" in str(info.value)
    assert "secret" not in str(info.value)
    assert server.count("/a") == 0
    assert connect_log == []


def test_host_name_connects_only_to_the_checked_address(server, tmp_path, connect_log):
    port = int(server.base_url.rsplit(":", 1)[1])
    body = body_of(2000)
    server.add("/a", body)
    allow = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

    with Fetcher(fast_policy(allow_private=allow)) as f:
        fetched = f.fetch_to_dir(f"http://localhost:{port}/a", tmp_path)

    assert fetched.md5_sum == hashlib.md5(body).hexdigest()
    assert connect_log
    assert all(ipaddress.ip_address(addr[0]).is_loopback for addr in connect_log)
    assert all(addr[1] == port for addr in connect_log)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_blocked(address):
    assert is_blocked_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.140", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_not_blocked(address):
    assert not is_blocked_address(ipaddress.ip_address(address))


def test_allow_private_exempts_only_its_networks():
    allow = (ipaddress.ip_network("10.1.0.0/16"),)

    assert not is_blocked_address(ipaddress.ip_address("10.1.2.3"), allow)
    assert not is_blocked_address(ipaddress.ip_address("::ffff:10.1.2.3"), allow)
    assert is_blocked_address(ipaddress.ip_address("10.2.0.1"), allow)
    assert is_blocked_address(ipaddress.ip_address("127.0.0.1"), allow)


def test_check_url_refuses_literal_private_addresses_but_not_names():
    with pytest.raises(FetchError) as info:
        check_url("http://192.168.0.10/x.jpg?sig=1")
    assert info.value.kind == "blocked_address"
    assert "192.168.0.10, a private address" in str(info.value)

    check_url("https://media.licdn.com/dms/image/v2/x")  # names are checked at connect time
    check_url("http://192.168.0.10/x.jpg", allow_private=("192.168.0.0/24",))


# --- size limits -----------------------------------------------------------------------------


def test_oversize_content_length_fails_before_the_body_is_read(server, make_fetcher, tmp_path):
    url = server.add("/big", JPEG_HEAD, "image/jpeg", streamed_size=64 * MIB)
    fetcher = make_fetcher(max_bytes=MIB)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url + "?t=secret", tmp_path)

    assert info.value.kind == "too_large"
    assert info.value.permanent
    assert info.value.attempts == 1
    assert str(info.value) == (f"{url} is 64 MB; limit is 1 MB (MEDIA_MAX_FILE_SIZE)")
    assert leftovers(tmp_path) == []
    assert server.wait_idle()
    assert server.bytes_sent("/big") < 16 * MIB


def test_oversize_body_without_content_length_stops_while_streaming(server, make_fetcher, tmp_path):
    url = server.add("/big", JPEG_HEAD, streamed_size=64 * MIB, chunked=True)
    fetcher = make_fetcher(max_bytes=MIB)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "too_large"
    assert info.value.attempts == 1
    assert leftovers(tmp_path) == []
    assert server.wait_idle()
    assert server.bytes_sent("/big") < 16 * MIB


def test_body_exactly_at_the_limit_is_accepted(server, make_fetcher, tmp_path):
    url = server.add("/edge", JPEG_HEAD, streamed_size=MIB, chunked=True)

    fetched = make_fetcher(max_bytes=MIB).fetch_to_dir(url, tmp_path)

    assert fetched.file_size == MIB


# --- broken bodies ---------------------------------------------------------------------------


def test_truncated_body_is_retried_then_reported(server, fetcher, tmp_path):
    url = server.add("/short", body_of(500_000), truncate_to=100_000)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "truncated"
    assert not info.value.permanent
    assert info.value.attempts == 3
    assert server.count("/short") == 3
    assert leftovers(tmp_path) == []


def test_html_page_served_as_jpeg_is_a_permanent_failure(server, fetcher, tmp_path):
    page = b"\xef\xbb\xbf\n  <!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    url = server.add("/login", page, "image/jpeg", streamed_size=32 * MIB)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "html"
    assert info.value.permanent
    assert "server returned an HTML page" in str(info.value)
    assert server.count("/login") == 1
    assert leftovers(tmp_path) == []
    assert server.wait_idle()
    assert server.bytes_sent("/login") < 16 * MIB  # detected from the first bytes


def test_stalled_download_times_out(server, make_fetcher, tmp_path):
    url = server.add("/stall", body_of(100_000), stall_after=10_000)
    fetcher = make_fetcher(max_attempts=1)

    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)
    elapsed = time.monotonic() - started

    assert info.value.kind == "timeout"
    assert not info.value.permanent
    assert 0.9 <= elapsed < 5
    assert "MEDIA_DOWNLOAD_TIMEOUT" in str(info.value)
    assert leftovers(tmp_path) == []


def test_trickling_body_fails_as_too_slow_once_the_grace_period_is_over(server, make_fetcher, tmp_path):
    # A byte every 0.1 s: no read waits long enough to time out, and the body never ends.
    url = server.add("/trickle", body_of(100_000), trickle_every=0.1)
    fetcher = make_fetcher(timeout=1.0, min_rate=1000, rate_grace=0.5)

    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)
    elapsed = time.monotonic() - started

    assert info.value.kind == "too_slow"
    assert not info.value.permanent  # the next run tries again
    assert info.value.attempts == 1 and server.count("/trickle") == 1  # but this run does not
    assert 0.5 <= elapsed < 3
    assert "B/s" in str(info.value)
    assert "slower than MEDIA_MIN_DOWNLOAD_RATE=1000 for 0.5 s" in str(info.value)
    assert leftovers(tmp_path) == []


def test_slow_body_above_the_minimum_rate_completes(server, make_fetcher, tmp_path):
    body = body_of(40)
    url = server.add("/steady", body, trickle_every=0.02)  # about 50 bytes/s
    fetcher = make_fetcher(timeout=1.0, min_rate=10, rate_grace=0.2)

    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.temp_path.read_bytes() == body


def test_server_that_never_answers_times_out(make_fetcher, tmp_path):
    with MediaTestServer(latency=10) as slow:
        url = slow.add("/a", body_of(100))
        with pytest.raises(FetchError) as info:
            make_fetcher(max_attempts=1, timeout=0.5).fetch_to_dir(url, tmp_path)

    assert info.value.kind == "timeout"


def test_refused_connection_is_retried_then_reported(make_fetcher, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(FetchError) as info:
        make_fetcher(max_attempts=2).fetch_to_dir(f"http://127.0.0.1:{port}/x", tmp_path)

    assert info.value.kind == "connection"
    assert info.value.attempts == 2
    assert "refused" in str(info.value).lower()


def test_unresolvable_host_is_a_dns_error(make_fetcher, tmp_path):
    with pytest.raises(FetchError) as info:
        make_fetcher(max_attempts=1).fetch_to_dir("http://no-such-host.invalid/x", tmp_path)

    assert info.value.kind == "dns"
    assert "no-such-host.invalid" in str(info.value)


# --- cancelling (Ctrl-C) ----------------------------------------------------------------------


def fetch_in_thread(fetcher: Fetcher, url: str, directory: Path) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["fetched"] = fetcher.fetch_to_dir(url, directory)
        except FetchError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def assert_cancelled_at_once(fetcher: Fetcher, thread: threading.Thread, result: dict) -> FetchError:
    started = time.monotonic()
    fetcher.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 1
    error = result["error"]
    assert error.kind == "cancelled" and not error.permanent
    return error


def test_cancel_ends_a_read_waiting_on_a_silent_server_at_once(server, make_fetcher, tmp_path):
    url = server.add("/silent", body_of(100_000), stall_after=10_000)
    fetcher = make_fetcher(timeout=30.0)
    thread, result = fetch_in_thread(fetcher, url, tmp_path)
    wait_for(lambda: leftovers(tmp_path) and server.bytes_sent("/silent") == 10_000)

    assert_cancelled_at_once(fetcher, thread, result)

    assert server.count("/silent") == 1
    assert leftovers(tmp_path) == []


def test_cancel_ends_a_trickling_transfer_at_once(server, make_fetcher, tmp_path):
    url = server.add("/drip", body_of(100_000), trickle_every=0.5)
    fetcher = make_fetcher(timeout=30.0)
    thread, result = fetch_in_thread(fetcher, url, tmp_path)
    wait_for(lambda: leftovers(tmp_path))

    assert_cancelled_at_once(fetcher, thread, result)

    assert leftovers(tmp_path) == []


def test_cancel_ends_a_request_still_waiting_for_its_response(make_fetcher, tmp_path):
    with MediaTestServer(latency=10) as slow:
        url = slow.add("/late", body_of(100))
        fetcher = make_fetcher(timeout=30.0)
        thread, result = fetch_in_thread(fetcher, url, tmp_path)
        wait_for(lambda: slow.count("/late") == 1)

        assert_cancelled_at_once(fetcher, thread, result)

    assert leftovers(tmp_path) == []


def test_cancel_ends_a_wait_between_retries(server, make_fetcher, tmp_path):
    url = server.add("/busy", body_of(100), fail_times=5, fail_status=503, retry_after=30)
    fetcher = make_fetcher(max_attempts=3)
    thread, result = fetch_in_thread(fetcher, url, tmp_path)
    wait_for(lambda: server.count("/busy") == 1)
    time.sleep(0.1)  # into the 30 s Retry-After wait

    assert_cancelled_at_once(fetcher, thread, result)

    assert server.count("/busy") == 1


def test_a_cancelled_fetcher_sends_no_request(server, make_fetcher, tmp_path):
    url = server.add("/after", body_of(100))
    fetcher = make_fetcher()
    fetcher.cancel()

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "cancelled"
    assert server.count("/after") == 0


# --- HTTP status and retries -----------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(server, fetcher, tmp_path):
    body = body_of(1000)
    url = server.add("/limited", body, fail_times=1, fail_status=429, retry_after=1)

    started = time.monotonic()
    fetched = fetcher.fetch_to_dir(url, tmp_path)
    elapsed = time.monotonic() - started

    assert fetched.md5_sum == hashlib.md5(body).hexdigest()
    assert fetched.attempts == 2
    assert server.count("/limited") == 2
    assert elapsed >= 0.95


def test_retry_after_as_http_date_is_honoured(server, fetcher, tmp_path):
    when = formatdate(time.time() + 2, usegmt=True)
    url = server.add("/busy", body_of(1000), fail_times=1, fail_status=503, retry_after=when)

    started = time.monotonic()
    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.attempts == 2
    assert time.monotonic() - started >= 0.9  # the date has one-second resolution


def test_retry_after_is_capped(server, make_fetcher, tmp_path):
    url = server.add("/busy", body_of(1000), fail_times=1, fail_status=429, retry_after=3600)
    fetcher = make_fetcher(retry_after_max=0.2)

    started = time.monotonic()
    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.attempts == 2
    assert time.monotonic() - started < 2


def test_503_twice_then_success(server, make_fetcher, tmp_path):
    body = body_of(4000)
    url = server.add("/flaky", body, fail_times=2, fail_status=503)

    fetched = make_fetcher(max_attempts=4).fetch_to_dir(url, tmp_path)

    assert fetched.attempts == 3
    assert server.count("/flaky") == 3
    assert fetched.temp_path.read_bytes() == body
    assert leftovers(tmp_path) == [fetched.temp_path]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_temporary_statuses_are_retried(server, fetcher, tmp_path, status):
    url = server.add("/t", body_of(1000), fail_times=1, fail_status=status)

    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.attempts == 2
    assert server.count("/t") == 2


def test_persistent_500_gives_up_after_max_attempts(server, fetcher, tmp_path):
    url = server.add("/down", b"oops", status=500)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url, tmp_path)

    assert info.value.kind == "http_status"
    assert info.value.status == 500
    assert not info.value.permanent
    assert info.value.attempts == 3
    assert server.count("/down") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_permanent_and_fetched_once(server, fetcher, tmp_path, status):
    url = server.add("/expired", b"<html>denied</html>", "text/html", status=status)

    with pytest.raises(FetchError) as info:
        fetcher.fetch_to_dir(url + "?e=1764877600&t=SIGNATURE", tmp_path)

    assert info.value.kind == "http_status"
    assert info.value.status == status
    assert info.value.permanent
    assert info.value.attempts == 1
    assert server.count("/expired") == 1
    assert "SIGNATURE" not in str(info.value)
    assert f"{url} answered HTTP {status}" in str(info.value)


def test_logs_never_contain_query_strings(server, fetcher, tmp_path, caplog):
    url = server.add("/down", b"oops", status=503)

    with caplog.at_level(logging.DEBUG, logger="social_tui_media.media.fetch"), pytest.raises(FetchError):
        fetcher.fetch_to_dir(url + "?t=SIGNATURE", tmp_path)

    ours = [r.getMessage() for r in caplog.records if r.name == "social_tui_media.media.fetch"]
    assert len(ours) == 2  # one line per retry
    assert not any("SIGNATURE" in message for message in ours)


# --- concurrency -----------------------------------------------------------------------------


def test_per_host_cap_limits_requests_in_flight(make_fetcher, tmp_path):
    fetcher = make_fetcher(max_per_host=2)
    with MediaTestServer(latency=0.3) as slow:
        urls = [slow.add(f"/m{i}", body_of(2000 + i)) for i in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda u: fetcher.fetch_to_dir(u, tmp_path), urls))
        max_in_flight = slow.max_in_flight

    assert max_in_flight == 2
    assert len({r.temp_path for r in results}) == 6
    assert [r.file_size for r in results] == [2000 + i for i in range(6)]


def test_fetcher_is_safe_to_share_between_threads(server, make_fetcher, tmp_path):
    bodies = {f"/p{i}": body_of(50_000 + i * 997) for i in range(12)}
    urls = {server.add(path, body): body for path, body in bodies.items()}
    fetcher = make_fetcher(max_per_host=4)
    errors: list[Exception] = []

    def run(url: str) -> None:
        try:
            fetched = fetcher.fetch_to_dir(url, tmp_path)
            assert fetched.temp_path.read_bytes() == urls[url]
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(u,)) for u in urls for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(leftovers(tmp_path)) == 24


def test_environment_proxy_settings_are_ignored(server, fetcher, tmp_path, monkeypatch):
    # A proxy would receive the request instead of the checked address.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{dead_port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = server.add("/direct", body_of(1000))

    fetched = fetcher.fetch_to_dir(url, tmp_path)

    assert fetched.file_size == 1000
    assert server.count("/direct") == 1


# --- small pieces ----------------------------------------------------------------------------


def test_redact_url_drops_query_fragment_and_credentials():
    assert (
        redact_url("https://user:pw@media.licdn.com:443/dms/x?e=1&t=sig#frag")
        == "https://media.licdn.com:443/dms/x"
    )


def test_policy_from_settings_uses_the_media_settings():
    settings = config.Settings(
        max_file_size=1234,
        download_timeout=7.5,
        min_download_rate=2048,
        allow_private_hosts=config.parse_networks("10.0.0.0/8, ::1"),
    )

    policy = FetchPolicy.from_settings(settings)

    assert policy.max_bytes == 1234
    assert policy.timeout == 7.5
    assert (policy.min_rate, policy.rate_grace) == (2048, 60.0)
    assert policy.allow_private == settings.allow_private_hosts


def test_fetch_error_survives_pickling():
    error = FetchError("x answered HTTP 503", "http_status", status=503, attempts=4)

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.kind, copy.status, copy.attempts, copy.permanent) == ("http_status", 503, 4, False)
    assert str(copy) == "x answered HTTP 503"
