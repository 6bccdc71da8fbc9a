"""Webhook deliveries are not replayable: one seen before is acknowledged and ignored.

A delivery is known by a digest of what authenticates it (HubSpot: the v3 signature and its
timestamp; Pipedrive, which does not sign: the body, whose ``meta`` carries the event time). The
digest is recorded in the store (``kv_state``), so a replay to another worker of the same store
is caught too. Records are kept a little longer than the window a delivery is accepted in
(HubSpot refuses timestamps older than five minutes) and pruned as new deliveries come.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from crmsync.model import now_utc
from crmsync.store import Store

NAMESPACE = "webhook_deliveries"
KEEP = dt.timedelta(minutes=15)


class ReplayGuard:
    def __init__(self, store: Store, *, keep: dt.timedelta = KEEP) -> None:
        self.store = store
        self.keep = keep

    def first_time(self, source: str, *parts: bytes | str) -> bool:
        """True the first time this delivery is seen; False for a replay (or a retry of it)."""
        digest = hashlib.sha256(source.encode())
        for part in parts:
            digest.update(b"\x00" + (part.encode() if isinstance(part, str) else part))
        with self.store.transaction() as tx:
            tx.delete_state_before(NAMESPACE, now_utc() - self.keep)
            return tx.add_state_once(NAMESPACE, digest.hexdigest(), {"source": source})
