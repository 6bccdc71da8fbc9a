"""Who runs a run: ``host:pid:start`` of the process, so a later start can tell a run whose
process was killed (shown as *interrupted*) from one still running elsewhere.

``start`` is the process start time in clock ticks since boot (``/proc/<pid>/stat``), so a pid
reused by another process after a kill is not mistaken for the one that started the run. Runs of
another host are never judged here (the distributed worker recovers those through its job locks).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    return stat.rsplit(")", 1)[-1].split()[19]


def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_is_gone(owner: str | None) -> bool:
    """True when ``owner`` is a process of this host that no longer exists (or is another process
    under a reused pid). Unknown owners and other hosts' processes are never judged gone."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return bool(start) and _start_ticks(pid) not in ("", start)
