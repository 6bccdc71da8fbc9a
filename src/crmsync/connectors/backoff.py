"""How long a transport waits before retrying: the same policy for every CRM.

- The server named a wait (``Retry-After``, a rate-limit reset): wait that, plus up to 10% (at
  most 1 s) so that workers throttled together do not all come back in the same instant; never
  longer than ``max_wait_s`` (a header asking for an hour does not hang a cycle for an hour -
  the next attempt or the next cycle tries again).
- Otherwise exponential backoff with jitter: ``initial * 2**(attempt-1)``, drawn between half and
  all of it, capped at ``cap`` and ``max_wait_s``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from tenacity import RetryCallState


def retry_wait(state: RetryCallState, *, initial: float, max_wait_s: float, cap: float | None = None,
               rand: Callable[[], float] = random.random) -> float:
    exc = state.outcome.exception() if state.outcome else None
    hinted = getattr(exc, "retry_after", None)
    if hinted is not None:
        base = max(0.0, float(hinted))
        return min(max_wait_s, base + min(1.0, 0.1 * base) * rand())
    ceiling = max_wait_s if cap is None else min(cap, max_wait_s)
    step = min(ceiling, initial * 2 ** (state.attempt_number - 1))
    return step * (0.5 + 0.5 * rand())
