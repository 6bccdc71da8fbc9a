"""Run one outbox drain in a separate process (used by the SIGKILL test).

Usage: ``python drain_child.py ARGS.json`` where the JSON holds ``store_url`` and ``conn`` (the
ConnectionSettings fields with plain-text sandbox credentials). With ``CRMSYNC_TEST_KILL_AFTER_PUSH=1``
the drain kills this process right after the CRM answered the push, before any bookkeeping.
"""

from __future__ import annotations

import json
import sys

from crmsync.connectors import build_connector
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.outbox import drain


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        args = json.load(fh)
    conn = ConnectionSettings.model_validate(args["conn"])
    store = Store.open(args["store_url"])
    connector = build_connector(conn)
    try:
        result = drain(store, connector, conn)
    finally:
        connector.close()
    print(json.dumps(result.counts()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
