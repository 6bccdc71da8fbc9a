"""What the REST and Bulk 2.0 handlers use of their simulator (``SalesforceSimulator``).

They take this protocol instead of the simulator class, so ``simulator`` imports ``rest`` and
``bulk`` and neither imports it back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from crmsync.sandbox.clock import SimClock
from crmsync.sandbox.salesforce.data import OrgData


class OrgHost(Protocol):
    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def clock(self) -> SimClock: ...

    @property
    def data(self) -> OrgData: ...
