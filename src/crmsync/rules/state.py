"""Durable routing state (round-robin credits, capacity counters, assignments).

Rules stay pure over a ``RoutingState``: an in-memory one for tests and simulations, and a thin
store-backed one that reads ``store.get_state(namespace, key)`` and writes, in the caller's
transaction, ``tx.set_state(namespace, key, value)``. Values are JSON-compatible.
"""

from __future__ import annotations

from typing import Any, Protocol


class RoutingState(Protocol):
    def get(self, namespace: str, key: str) -> Any | None: ...

    def set(self, namespace: str, key: str, value: Any) -> None: ...


class InMemoryRoutingState:
    """Dict-backed state; ``snapshot()`` / ``copy()`` support simulations that must not persist."""

    def __init__(self, data: dict[tuple[str, str], Any] | None = None) -> None:
        self.data: dict[tuple[str, str], Any] = dict(data or {})

    def get(self, namespace: str, key: str) -> Any | None:
        return self.data.get((namespace, key))

    def set(self, namespace: str, key: str, value: Any) -> None:
        self.data[(namespace, key)] = value

    def copy(self) -> InMemoryRoutingState:
        import copy

        return InMemoryRoutingState(copy.deepcopy(self.data))


class _StoreReader(Protocol):
    def get_state(self, namespace: str, key: str) -> Any | None: ...


class _StateWriter(Protocol):
    def set_state(self, namespace: str, key: str, value: Any) -> None: ...


class StoreRoutingState:
    """Reads through to the store, buffers writes; ``flush(tx)`` writes them in the caller's unit
    of work, so state advances in the same commit as the decisions that used it."""

    def __init__(self, store: _StoreReader) -> None:
        self._store = store
        self._cache: dict[tuple[str, str], Any] = {}
        self._dirty: dict[tuple[str, str], Any] = {}

    def get(self, namespace: str, key: str) -> Any | None:
        k = (namespace, key)
        if k not in self._cache:
            self._cache[k] = self._store.get_state(namespace, key)
        return self._cache[k]

    def set(self, namespace: str, key: str, value: Any) -> None:
        self._cache[(namespace, key)] = value
        self._dirty[(namespace, key)] = value

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def flush(self, tx: _StateWriter) -> int:
        count = 0
        for (namespace, key), value in self._dirty.items():
            tx.set_state(namespace, key, value)
            count += 1
        self._dirty.clear()
        return count

    def discard(self) -> None:
        """Forget unflushed writes (the transaction rolled back)."""
        for k in self._dirty:
            self._cache.pop(k, None)
        self._dirty.clear()
