"""What every scenario shares: the workspace, clean environments, measured subprocesses, rows.

Each side of a comparison runs as its own process and is measured the same way: wall time
from spawn to exit, the process's own peak RSS (GNU time's %M: the kernel's high-water mark
for exactly that process, not a sampled guess), its CPU time (`os.wait4`), and how busy the
rest of the machine was meanwhile (the machine may be shared).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Settings a developer's shell may carry that must not leak into a measured process.
_SCRUBBED_PREFIXES = ("DATABASE_URL", "SUPABASE", "MEDIA_", "AWS_", "OPENAI", "SENTRY")
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy"}

KB = 1024
MB = 1024 * 1024
GB = 1024 * MB


PYCACHE: Path | None = None  # set by Workspace: where measured processes keep bytecode


class BenchError(Exception):
    """A scenario could not be measured (a tool missing, a process failing); says why."""


# --- results ---------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: both sides, their ratio, the target and whether it is met.

    `ratio` is always "how much better ours is": theirs/ours for times and memory,
    ours/theirs for rates. Above 1 means ours is better.
    """

    scenario: str
    ours: str
    theirs: str
    ratio: float | None
    target: str
    met: bool | None  # None: report only, no target
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # raw numbers, for bench/results/*.json

    @property
    def met_text(self) -> str:
        return {True: "yes", False: "**NO**", None: "—"}[self.met]

    @property
    def ratio_text(self) -> str:
        return "—" if self.ratio is None else f"{self.ratio:.2f}×"


def not_measured(scenario: str, reason: str, target: str = "—") -> Row:
    return Row(scenario, "not measured", "not measured", None, target, None, [reason])


# --- formatting --------------------------------------------------------------------------


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 100 else f"{seconds:.0f} s"


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", GB), ("MB", MB), ("KB", KB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def rate_row(
    scenario: str, count: int, unit: str, seconds: tuple[float, float], notes: list[str], data: dict
) -> Row:
    """A report-only row comparing the rates at which ours and theirs did `count` items in
    `seconds` (ours, theirs); the ratio is ours over theirs, above 1 when ours is faster."""
    ours, theirs = (count / s for s in seconds)
    return Row(
        scenario,
        f"{fmt_rate(ours, unit)} ({fmt_seconds(seconds[0])})",
        f"{fmt_rate(theirs, unit)} ({fmt_seconds(seconds[1])})",
        ours / theirs,
        "report (no target)",
        None,
        notes,
        data,
    )


# --- workspace ---------------------------------------------------------------------------


class Workspace:
    """A temp directory for one benchmark run; never inside the repository."""

    def __init__(self, keep: bool = False) -> None:
        import tempfile

        global PYCACHE
        self.root = Path(tempfile.mkdtemp(prefix="social-tui-bench-"))
        self.keep = keep
        PYCACHE = self.root / "pycache"

    def dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove(self, *parts: str) -> None:
        shutil.rmtree(self.root.joinpath(*parts), ignore_errors=True)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without project settings or proxies, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k.lower() not in _PROXY_VARS
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if PYCACHE is not None:
        # Bytecode goes to the workspace, not the repository, and is reused from run to run
        # as an installed checkout's __pycache__ would be (see warm_up()).
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def project_env(ws_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for the project's CLIs: one database, a cache and a log inside `ws_dir`."""
    return clean_env(
        DATABASE_URL=database_url,
        MEDIA_CACHE_DIR=str(ws_dir / "cache" / "media"),
        MEDIA_ALLOW_PRIVATE_HOSTS="127.0.0.1",
        MEDIA_LOG_FILE=str(ws_dir / "log" / "media.log"),
        SOCIAL_TUI_HOME=str(ws_dir),
        **extra,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # absolute path: sqlite:////abs/path


def aws_env(ws_dir: Path, **extra: str) -> dict[str, str]:
    """Fake credentials and no profile files or instance metadata: nothing leaves loopback."""
    empty = ws_dir / "empty-aws-config"
    empty.touch()
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


# --- measured processes --------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    command: list[str]
    returncode: int
    seconds: float  # wall clock, spawn to exit
    max_rss: int  # bytes: the process's own peak resident set (GNU time's %M)
    cpu_seconds: float  # user + system of the process (and anything it waited for)
    server_cpu_seconds: float  # this benchmark process meanwhile: the loopback servers' work
    background_cores: float  # other processes on the machine, averaged over the run
    stdout: str
    stderr: str

    @property
    def cores_used(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    def tail(self, lines: int = 12) -> str:
        text = (self.stderr.strip() + "\n" + self.stdout.strip()).strip()
        return "\n".join(text.splitlines()[-lines:])

    def summary(self) -> dict:
        return {
            "seconds": round(self.seconds, 3), "max_rss": self.max_rss, "cpu_seconds": round(self.cpu_seconds, 2),
            "server_cpu_seconds": round(self.server_cpu_seconds, 2),
            "background_cores": round(self.background_cores, 2), "command": " ".join(self.command),
        }  # fmt: skip


MEASUREMENTS: list[Measured] = []  # every measured run, for the load summary
_CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (steal included)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> tuple[int, Any, bool]:
    """Wait for a process started in its own session; kill the whole group after `timeout`
    seconds. Returns its wait status, its resource usage and whether it was killed."""
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    return status, usage, killed.is_set()


def run_measured(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    check: bool = True,
    ok_codes: tuple[int, ...] = (0,),
) -> Measured:
    """Run one process to completion and measure it; killed after `timeout` seconds.

    Peak RSS comes from GNU time wrapped around the command: `wait4()` here would report
    at least this benchmark's own RSS (Linux folds the parent's RSS into a forked child's
    maximum), while GNU time forks the command from its own ~1 MB image. stdout/stderr go
    to files, so no pipe can fill up and stall the process under test.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    out_path, err_path, rss_path = cwd / f".out-{tag}", cwd / f".err-{tag}", cwd / f".rss-{tag}"
    wrapped = (
        [GNU_TIME, "-f", "%M", "-o", str(rss_path), *map(str, command)]
        if Path(GNU_TIME).exists()
        else command
    )
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy_before, self_before = machine_busy_seconds(), _self_cpu_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        status, usage, killed = wait_or_kill(proc, timeout)
        seconds = time.perf_counter() - started
        busy = machine_busy_seconds() - busy_before
        server_cpu = _self_cpu_seconds() - self_before
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    max_rss = -1
    with contextlib.suppress(OSError, ValueError, IndexError):
        max_rss = int(rss_path.read_text().split()[-1]) * 1024  # GNU time reports KiB
    for path in (out_path, err_path, rss_path):
        path.unlink(missing_ok=True)
    cpu = usage.ru_utime + usage.ru_stime
    measured = Measured(
        command=[str(c) for c in command],
        returncode=proc.returncode,
        seconds=seconds,
        max_rss=max_rss,
        cpu_seconds=cpu,
        server_cpu_seconds=server_cpu,
        background_cores=max(0.0, busy - cpu - server_cpu) / seconds if seconds else 0.0,
        stdout=stdout,
        stderr=stderr,
    )
    MEASUREMENTS.append(measured)
    if killed:
        name = Path(command[1] if command[0] == PYTHON else command[0]).name
        raise BenchError(f"{name} did not finish within {timeout:.0f} s; killed:\n{measured.tail()}")
    if check and measured.returncode not in ok_codes:
        raise BenchError(
            f"`{' '.join(measured.command[:4])} ...` exited {measured.returncode}:\n{measured.tail()}"
        )
    return measured


def wait_for_quiet(max_seconds: float, threshold: float = 0.3, window: float = 5.0) -> float:
    """Wait (at most `max_seconds`) until other processes use under `threshold` cores.

    The machine may be shared; returns the background load of the last window.
    """
    deadline = time.monotonic() + max_seconds
    while True:
        before = machine_busy_seconds() - _self_cpu_seconds()
        time.sleep(window)
        load = (machine_busy_seconds() - _self_cpu_seconds() - before) / window
        if load < threshold or time.monotonic() >= deadline:
            return load
        log(f"other processes use {load:.2f} cores; waiting for a quieter machine")


def check_stored(conn, count: int, media: int, what: str) -> None:
    """Fail the scenario unless the import stored exactly `count` posts and `media` media rows
    (`conn`: a sqlite3 or psycopg connection)."""
    stored = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    stored_media = conn.execute("SELECT count(*) FROM post_media").fetchone()[0]
    if (stored, stored_media) != (count, media):
        raise BenchError(f"{what} stored {stored} posts / {stored_media} media; expected {count} / {media}")


def raw_insert_floor(backend: str, target: str, directory: Path, cwd: Path):
    """`bench/raw_insert.py`: the floor an import is compared with, measured the same way."""
    return run_measured(
        bench_script("raw_insert.py", backend, target, str(directory)), env=clean_env(), cwd=cwd, timeout=600
    )


def project_cli(script: str, *args: str) -> list[str]:
    """`python <repo>/<script> args...`, as a user runs it."""
    return [PYTHON, str(ROOT / script), *args]


def bench_script(name: str, *args: str) -> list[str]:
    """A helper script of the benchmark itself (baselines), run as its own process."""
    return [PYTHON, str(BENCH / name), *args]


def require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"`{name}` is not installed ({install_hint}; see bench/README.md)")
    return path


# --- PostgreSQL ----------------------------------------------------------------------------


def _database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def throwaway_postgres(migrate: bool = True) -> Iterator[str]:
    """A fresh PostgreSQL database (migrated, unless told not to), dropped afterwards."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            name = f"social_tui_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}") from None
    url = _database_url(PG_ADMIN_URL, name)
    try:
        if migrate:
            from social_tui_media.store.migrations import apply_pending

            apply_pending(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


WARM_UP_IMPORTS = (
    "social_tui_media.cli.manage_data, social_tui_media.cli.manage_media, social_tui_media.jobs.archive, "
    "social_tui_media.jobs.analyze, social_tui_media.jobs.download, social_tui_media.store.sqlite, "
    "social_tui_media.store.postgres, social_tui_media.store.migrations, boto3, botocore.session, "
    "s3transfer.manager, openai, av, pypdfium2, requests, awscli.clidriver, social_tui_media.cli.browse, "
    "textual_image.widget"
)


def warm_up(ws: Workspace) -> None:
    """Compile the project and its libraries into the workspace's bytecode cache, once.

    A checkout in use has its __pycache__; without this the first measured run of each
    command would pay for compiling every module (about 1 s), which users do not.
    """
    env = clean_env(PYTHONPATH=str(ROOT))
    command = [PYTHON, "-c", f"import importlib\nfor m in '{WARM_UP_IMPORTS}'.split(', '):\n"
               "    try: importlib.import_module(m)\n    except ImportError: pass"]  # fmt: skip
    subprocess.run(command, env=env, cwd=ws.root, check=True, timeout=300, capture_output=True)
    for args in (["manage_data.py", "--help"], ["manage_media.py", "--help"]):
        subprocess.run(project_cli(*args), env=env, cwd=ws.root, check=True, timeout=120, capture_output=True)


def log(message: str) -> None:
    """Progress of the benchmark itself, on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """What a scenario gets: the workspace and the scale (quick mode is ~10× smaller)."""

    ws: Workspace
    quick: bool = False

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full
