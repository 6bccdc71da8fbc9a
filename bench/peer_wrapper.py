"""Run a peer connector with its base URL pointed at the sandbox; nothing else changes.

    <peer venv>/bin/python bench/peer_wrapper.py REAL_BASE SANDBOX_BASE module:function -- ARGS...

Every request the peer sends through ``requests`` to a URL under REAL_BASE goes to SANDBOX_BASE
instead (same path and query), rewritten at the HTTP adapter; then ``module:function`` runs with
ARGS as its command line. Runs inside the peer's own virtualenv: standard library and requests only.
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    real, local, target = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), sys.argv[3]
    args = sys.argv[sys.argv.index("--") + 1:]
    import requests.adapters

    original = requests.adapters.HTTPAdapter.send

    def send(self, request, *rest, **kwargs):  # type: ignore[no-untyped-def]
        if request.url and request.url.startswith(real):
            request.url = local + request.url[len(real):]
        return original(self, request, *rest, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    module, _, function = target.partition(":")
    sys.argv = [module, *args]
    getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    main()
