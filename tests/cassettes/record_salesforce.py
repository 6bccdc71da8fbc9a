"""Record ``tests/cassettes/salesforce/connector_flow.yaml`` from the Salesforce sandbox.

Run from the repository root: ``python tests/cassettes/record_salesforce.py``. It starts the
simulator over TLS on loopback, runs the connector flow of ``test_salesforce_cassette.run_flow``
under vcrpy and writes the cassette with Authorization headers, login form fields and tokens
filtered out.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "connectors"))

from test_salesforce_cassette import CASSETTE, DEALS, make_vcr, run_flow, settings  # noqa: E402

from crmsync.connectors.salesforce import SalesforceConnector  # noqa: E402
from crmsync.sandbox import LocalCA, SandboxServer, generate_world  # noqa: E402
from crmsync.sandbox.salesforce import SalesforceSimulator  # noqa: E402


def main() -> None:
    sim = SalesforceSimulator(generate_world(7, DEALS, now=dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)))
    ca = LocalCA.create()
    CASSETTE.parent.mkdir(parents=True, exist_ok=True)
    CASSETTE.unlink(missing_ok=True)
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    try:
        creds = sim.credentials
        conn = settings(server.url, {"client_id": creds.client_id, "client_secret": creds.client_secret,
                                     "username": creds.username, "password": creds.password}, ca.ca_path)
        with make_vcr("all").use_cassette(str(CASSETTE)):
            connector = SalesforceConnector(conn)
            result = run_flow(connector)
            connector.close()
    finally:
        server._server.force_exit = True
        server.stop()
    pulled = sum(len(p.records) for p in result["pages"])
    print(f"recorded {CASSETTE.relative_to(ROOT)}: {pulled} deals pulled, count={result['count']}")


if __name__ == "__main__":
    main()
