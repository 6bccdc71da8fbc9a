"""A full re-evaluation split across two processes with ``fork``.

Scoring and hygiene read only the record and the context, so they can run anywhere; routing,
handoff and renewal advance the routing state and open counts and must run once per record, in
record order, here. The split:

- a forked worker evaluates scoring and hygiene for the tail of the records (``CHILD_SHARE``) and
  sends the decisions back through a pipe (pickled rows, plus per record how many scoring and
  how many hygiene decisions it made);
- meanwhile this process runs every step for the head of the records, then routing, handoff and
  renewal for the tail (so durable state advances in record order, as in the sequential loop);
- the tail's decisions are merged back per record in the sequential order (scoring, routing,
  hygiene, handoff, renewal).

The result is the same list as ``Plan.run``. If the worker fails (killed, out of memory, a rule
raising), this process evaluates the tail itself, which gives the same decisions or raises the
same error the sequential loop would. Without ``fork`` (or for small inputs) nothing is split.

It is off by default (``CRMSYNC_RULES_WORKERS`` unset): on the 2-core development machine the
split saved at best ~3% for 1M deals (15.0 s against 15.5 s with the other core idle) and lost
10% when one other process was busy. Its overheads are the transfer (about 2.7 us per decision
to pickle in the worker, 1 us to load here, against ~5 us to make one) and copy-on-write: both
processes write reference counts into every record page they touch, so each copies them. It can
pay where more idle cores are available; turn it on with ``CRMSYNC_RULES_WORKERS=2`` (or
``auto``: only when the other cores are idle) or ``evaluate(..., workers=2)``.
"""

from __future__ import annotations

import os
import pickle
import signal
from array import array
from collections.abc import Sequence
from itertools import accumulate, starmap
from typing import Any

from crmsync.rules.decisions import Decision
from crmsync.rules.engine import LIVE_TYPES, Plan

PARALLEL_MIN_RECORDS = 50_000  # below this the fork and the transfer cost more than they save
CHILD_SHARE = 0.5  # fraction of the records whose scoring and hygiene the worker evaluates
WORKERS_ENV = "CRMSYNC_RULES_WORKERS"  # 1 (default), 2 or auto, for evaluate(workers=None)

_OK = b"K"
_FAILED = b"F"
_HEADER = 9  # status byte + payload length (8 bytes, big endian)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def should_split(size: int, workers: int | None) -> bool:
    """Whether ``evaluate`` should fork. ``workers`` 1: never; 2 or more: always (when ``fork``
    exists). None: as ``CRMSYNC_RULES_WORKERS`` says, for at least ``PARALLEL_MIN_RECORDS``
    records: unset or 1 never (the default: see the module notes), 2 always, ``auto`` when the
    other core is idle (``core_free``)."""
    if not hasattr(os, "fork") or size < 2:
        return False
    if workers is not None:
        return workers >= 2
    env = os.environ.get(WORKERS_ENV, "").strip().lower()
    if size < PARALLEL_MIN_RECORDS:
        return False
    if env == "auto":
        return core_free()
    return env.isdigit() and int(env) >= 2


def core_free() -> bool:
    """Whether the other cores are idle enough for the worker: the split costs about 40% more CPU
    in total (pickling the tail's decisions and reading them back), which only pays off when the
    worker runs beside this process rather than taking turns with it. Measured on 2 cores with one
    other busy process (load ~1.2), the split was slower than the sequential loop (16.4 s against
    15.0 s for 1M deals), so it needs the one-minute load average (which counts this process)
    below ``cores - 1``."""
    cores = available_cores()
    if cores < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except OSError:
        return True
    return load < cores - 1


def evaluate_split(plan: Plan, records: Sequence[Any]) -> list[Decision]:
    live = [r for r in records if not r.deleted and r.object_type in LIVE_TYPES]
    n = len(live)
    cut = n - int(n * CHILD_SHARE)
    if cut <= 0 or cut >= n:
        return plan.run(live)
    head, tail = live[:cut], live[cut:]
    try:
        worker = _Worker(plan, tail)
    except OSError:  # no fork possible now (process limit, memory): the sequential loop
        return plan.run(live)
    try:
        out = plan.run(head)
        stateful, marks = plan.run_stateful(tail)
        received = worker.result()
    finally:
        worker.close()
    counts: Sequence[int]
    if received is None:
        pure, counts = plan.run_pure(tail)
    else:
        pure, counts = received
    return _merge(out, pure, counts, stateful, marks)


def _merge(
    out: list[Decision],
    pure: list[Decision],
    counts: Sequence[int],
    stateful: list[Decision],
    marks: list[tuple[int, int, int]],
) -> list[Decision]:
    """Append the tail's decisions to ``out`` in the sequential order. ``counts`` alternates the
    scoring and hygiene decision counts of each tail record; ``marks`` names the tail records with
    routing (and handoff/renewal) decisions, which go between their scoring and hygiene (and after)."""
    if not marks:
        out += pure
        return out
    offsets = list(accumulate(counts, initial=0))  # record j: scoring at [2j, 2j+1), hygiene to 2j+2
    pos = taken = 0
    for j, routed, after in marks:
        middle, end = offsets[2 * j + 1], offsets[2 * j + 2]
        out += pure[pos:middle]
        if routed:
            out += stateful[taken : taken + routed]
            taken += routed
        out += pure[middle:end]
        if after:
            out += stateful[taken : taken + after]
            taken += after
        pos = end
    out += pure[pos:]
    return out


def _rows(decisions: list[Decision]) -> list[tuple[Any, ...]]:
    return [
        (d.rule_kind, d.rule_name, d.object_type, d.connection, d.source_id, d.action, d.fields, d.reason,
         d.idempotency_key, d.rule_set)
        for d in decisions
    ]


class _Worker:
    """The forked process evaluating scoring and hygiene for ``records``."""

    def __init__(self, plan: Plan, records: list[Any]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        if pid == 0:  # the worker: never returns, never runs the parent's cleanup
            code = 1
            try:
                os.close(read_fd)
                code = _work(plan, records, write_fd)
            finally:
                os._exit(code)
        os.close(write_fd)
        self.pid: int | None = pid
        self.fd: int | None = read_fd

    def result(self) -> tuple[list[Decision], Sequence[int]] | None:
        """The worker's decisions and counts, or None when it failed."""
        assert self.fd is not None
        header = _read_exactly(self.fd, _HEADER)
        if header is None or header[:1] != _OK:
            return None
        payload = _read_exactly(self.fd, int.from_bytes(header[1:], "big"))
        if payload is None or self._wait() != 0:
            return None
        rows, counts = pickle.loads(payload)
        del payload
        return list(starmap(Decision, rows)), counts

    def _wait(self) -> int:
        if self.pid is None:
            return -1
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.pid is not None:  # not collected: we are unwinding from an error
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait()


def _work(plan: Plan, records: list[Any], fd: int) -> int:
    try:
        pure, counts = plan.run_pure(records)
        payload = pickle.dumps((_rows(pure), array("L", counts)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent evaluates these records itself and meets the error there
        _write_all(fd, _FAILED + bytes(_HEADER - 1))
        return 1
    _write_all(fd, _OK + len(payload).to_bytes(_HEADER - 1, "big"))
    _write_all(fd, payload)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytearray | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            return None
        got += n
    view.release()
    return buf
