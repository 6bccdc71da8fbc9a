"""The mirror tests run on the push path's sandboxes (``tests/sync/conftest.py``)."""

from __future__ import annotations

from sync.conftest import Env, local_ca, sandbox, start_env

__all__ = ["Env", "local_ca", "sandbox", "start_env"]
