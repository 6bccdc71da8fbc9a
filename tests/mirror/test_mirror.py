"""A two-way HubSpot <-> Salesforce deal mirror over the sandboxes settles: no ping-pong (no
writes once both sides agree), every deal once on each side, both sides equal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crmsync.mirror.plan import plan_mirror
from crmsync.mirror.runner import changed_deals, link_index, load_links, run_mirror
from crmsync.model import ObjectType
from crmsync.sandbox.world import STAGES
from crmsync.settings import MirrorSettings
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine
from crmsync.sync.outbox import drain

from .conftest import Env

N_DEALS = 1000


def _pull(store: Store, env: Env) -> None:
    connector = env.connector()
    try:
        results = SyncEngine(store, connector, env.conn).sync(["deals"])
        assert all(r.status == "ok" for r in results), results
    finally:
        connector.close()


def _drain(store: Store, env: Env) -> Any:
    connector = env.connector()
    try:
        return drain(store, connector, env.conn)
    finally:
        connector.close()


def _writes(env: Env) -> int:
    """Write requests the simulator received (reads and searches excluded)."""
    routes = env.sim.log.snapshot()["by_route"]
    total = 0
    for route, n in routes.items():
        method, path = route.split(" ", 1)
        if method in ("PATCH", "PUT", "DELETE") or (method == "POST" and not any(s in path for s in ("search", "batch/read", "/query", "oauth2"))):
            total += n
    return total


def _owner_map(hs: Env, sf: Env) -> dict[str, str]:
    """HubSpot owner id -> Salesforce user id, matched by e-mail (what an admin would configure)."""
    sf_by_email = {u["Email"]: u["Id"] for u in sf.sim.truth("User")}
    return {str(o["id"]): sf_by_email[o["email"]] for o in hs.sim.truth("owners", include_deleted=True) if o["email"] in sf_by_email}


def test_two_way_mirror_of_1000_deals_settles(sandbox: Callable[..., Env], store: Store) -> None:
    hs = sandbox("hubspot", deals=N_DEALS, name="hs")
    sf = sandbox("salesforce", deals=0, name="sf")
    mirror = MirrorSettings(
        name="hs-sf", source="hs", target="sf", direction="two_way",
        stage_map={s.key: s.label for s in STAGES}, owner_map=_owner_map(hs, sf),
        field_map={f: f for f in ("name", "amount", "stage_id", "close_date", "owner_id")},
        field_owner={"close_date": "target", "owner_id": "target"},
    )

    def cycle() -> tuple[int, int, int]:
        before = _writes(hs) + _writes(sf)
        _pull(store, hs)
        _pull(store, sf)
        run = run_mirror(store, mirror)
        assert run.plan.issues == []
        pushed = _drain(store, hs).done + _drain(store, sf).done
        failed = store.outbox_counts().get("failed", 0)
        assert failed == 0, [i.last_error for i in store.outbox_items(status="failed")][:5]
        return run.enqueued, pushed, _writes(hs) + _writes(sf) - before

    def settle(max_cycles: int = 6) -> list[tuple[int, int, int]]:
        history = [cycle()]
        while history[-1] != (0, 0, 0):
            assert len(history) < max_cycles, f"no settling: {history}"
            history.append(cycle())
        return history

    first = settle()
    assert first[0][0] == N_DEALS  # one create per deal
    assert len(sf.sim.truth("Opportunity")) == N_DEALS
    assert len(hs.sim.truth("deals")) == N_DEALS  # nothing created back

    # humans edit both sides: an owned field on each side, and a source-owned field on the target
    hs_ids = [str(d["id"]) for d in hs.sim.truth("deals")[:3]]
    pairs = link_index(load_links(store, ["hs", "sf"]))
    sf_of = {h: pairs[("hs", h)][1] for h in hs_ids}
    hs.sim.edit("deals", hs_ids[0], {"amount": "777.77"})
    sf.sim.edit("Opportunity", sf_of[hs_ids[1]], {"CloseDate": "2031-01-31"})
    sf.sim.edit("Opportunity", sf_of[hs_ids[2]], {"Amount": 1})  # HubSpot owns amount: reverted
    new_sf = sf.sim.create("Opportunity", {"Name": "Born in Salesforce", "StageName": "Negotiation",
                                           "CloseDate": "2030-06-30", "Amount": 4200})
    second = settle()
    assert second[0][1] >= 4, second
    counts_after = (hs.sim.log.snapshot()["total"], sf.sim.log.snapshot()["total"])
    assert cycle() == (0, 0, 0)  # and it stays quiet: only reads from here on
    assert cycle() == (0, 0, 0)
    assert (hs.sim.log.snapshot()["total"], sf.sim.log.snapshot()["total"]) > counts_after  # pulls still ran

    sf_rows = {r["Id"]: r for r in sf.sim.truth("Opportunity")}
    hs_rows = {str(r["id"]): r["properties"] for r in hs.sim.truth("deals")}
    assert Decimal(str(sf_rows[sf_of[hs_ids[0]]]["Amount"])) == Decimal("777.77")
    assert hs_rows[hs_ids[1]]["closedate"].startswith("2031-01-31")
    assert Decimal(str(sf_rows[sf_of[hs_ids[2]]]["Amount"])) == Decimal(hs_rows[hs_ids[2]]["amount"])
    born = [h for h, p in hs_rows.items() if p["dealname"] == "Born in Salesforce"]
    assert len(born) == 1 and pairs.get(("sf", new_sf)) is None  # linked after the create came back
    assert link_index(load_links(store, ["hs", "sf"]))[("sf", new_sf)] == ("hs", born[0])
    assert len(sf_rows) == N_DEALS + 1 and len(hs_rows) == N_DEALS + 1

    # both sides equal: planning over every deal on both sides finds nothing to write
    everything = plan_mirror(mirror, changed_source=changed_deals(store, "hs", None),
                             changed_target=changed_deals(store, "sf", None),
                             links=link_index(load_links(store, ["hs", "sf"])),
                             records={(d.connection, d.source_id): d
                                      for c in ("hs", "sf") for d in changed_deals(store, c, None)})
    assert everything.items == [] and everything.in_sync == N_DEALS + 1
    assert store.count(ObjectType.DEAL, "sf") == N_DEALS + 1
    assert dt.datetime.now(dt.UTC)  # tz-aware clock only
