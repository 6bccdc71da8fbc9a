"""Children follow their parent: a line item removed from a deal is removed from the store when
the deal next syncs, not only at the nightly sweep. Against each CRM's simulator and a real store."""

from __future__ import annotations

from faults_harness import Crm

from crmsync.connectors import build_connector
from crmsync.model import LineItem, ObjectType
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine


def _sync(store: Store, crm: Crm) -> None:
    conn = ConnectionSettings.model_validate({**crm.connection_dict(), "objects": ["deals", "line_items"]})
    connector = build_connector(conn)
    try:
        results = SyncEngine(store, connector, conn).sync()
    finally:
        connector.close()
    assert all(r.status == "ok" for r in results), [r.error for r in results]


def _live_items(store: Store, connection: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for record in store.iter_records(ObjectType.LINE_ITEM, connection=connection):
        assert isinstance(record, LineItem)
        if not record.deleted:
            out[record.source_id] = record.deal_id
    return out


def _remove_line_item(crm: Crm, item_id: str, deal_id: str) -> None:
    if crm.kind == "pipedrive":
        crm.sim.delete_deal_product(int(deal_id), int(item_id))  # type: ignore[attr-defined]
    elif crm.kind == "hubspot":
        crm.sim.delete("line_items", item_id)
    else:
        crm.sim.delete("OpportunityLineItem", item_id)


def test_a_line_item_removed_from_a_deal_leaves_the_store_at_the_next_sync(store: Store, crm: Crm) -> None:
    name = crm.connection().name
    _sync(store, crm)
    items = _live_items(store, name)
    by_deal: dict[str, list[str]] = {}
    for item_id, deal_id in items.items():
        if deal_id:
            by_deal.setdefault(deal_id, []).append(item_id)
    deal_id, children = next((d, c) for d, c in sorted(by_deal.items()) if len(c) >= 2)
    removed, kept = children[0], children[1:]

    _remove_line_item(crm, removed, deal_id)
    _sync(store, crm)

    after = _live_items(store, name)
    assert removed not in after
    assert all(k in after for k in kept)
    assert set(after) == set(items) - {removed}
