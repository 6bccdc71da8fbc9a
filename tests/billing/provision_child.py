"""Run the won-deal flow for one World deal against a sandbox URL (the SIGKILL test's child)."""

from __future__ import annotations

import datetime as dt
import sys

from crmsync.billing.catalog import load_catalog
from crmsync.billing.mapping import build_mapping
from crmsync.billing.won_deals import provision
from crmsync.connectors.meteroid import MeteroidConnector
from crmsync.sandbox import generate_world
from crmsync.sandbox.records import deal_record, line_records
from crmsync.settings import ConnectionSettings


def main(url: str, key: str, seed: int, deals: int, now: str, deal_id: int) -> None:
    world = generate_world(seed, deals, now=dt.datetime.fromisoformat(now))
    conn = MeteroidConnector(ConnectionSettings(name="billing", kind="meteroid", base_url=url,
                                                credentials={"api_key": key}))
    catalog = load_catalog(conn)
    mapping = build_mapping([p.code for p in world.products], catalog)
    wdeal = world.deals[deal_id - 1]
    print("provisioning", flush=True)
    result = provision(deal_record(world, wdeal, "sf"), line_records(world, wdeal, "sf"), connector=conn,
                       catalog=catalog, mapping=mapping)
    print(result.status, result.error, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
