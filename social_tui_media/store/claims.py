"""Who holds a claim: `host:pid:nonce` worker ids, and telling a dead local owner's claims."""

from __future__ import annotations

import os
import socket


def worker_id() -> str:
    """host:pid:nonce, so a claim names the process that holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def is_dead_local_worker(claimant: str) -> bool:
    """True when the claim was made on this host by a process that no longer exists."""
    host, _, rest = claimant.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim_statuses(retry_failed: bool = False, force: bool = False) -> list[str]:
    """Which statuses a run of a queued stage (analysis, text extraction) may claim: `failed` with --retry-failed, all with --force."""
    statuses = ["not_started"]
    if retry_failed or force:
        statuses.append("failed")
    if force:
        statuses.append("completed")
    return statuses
