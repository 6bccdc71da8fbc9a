"""The randomized store-equals-truth suite's machinery: operations, a per-CRM adapter, the runner.

An *interleaving* is a list of operations (frozen dataclasses with readable reprs, so a shrunk
failing case reads as a script): CRM users create, edit (several times inside one timestamp unit
when no ``Tick`` separates the edits), delete (soft or hard), restore, move a deal to another
account and add, edit or remove line items, while sync cycles run with random page sizes,
settle times, injected faults and in-process kills (a cycle aborted after k committed pages; the
next one resumes from the stored checkpoint). Edits can also land *between two pages* of a cycle.

The simulator's clock is frozen in the recent past while the operations run (``Tick`` moves it);
afterwards it runs on past the settle time, N quiet cycles and the hard-delete sweeps run, and
``compare`` checks the store against the simulator's truth field by field: deal name, amount,
stage, owner, account and deleted state; line item deal, quantity and unit price.

Operations refer to records by index (``deal=7`` is the 7th known deal, modulo how many there
are), so every drawn list is valid and shrinks well; one that does not apply (editing a deleted
deal, restoring a live one) is skipped, as a user's click on a missing record would be.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmsync.connectors import build_connector
from crmsync.connectors.base import Page
from crmsync.model import Deal, LineItem, ObjectType
from crmsync.sandbox.core import FaultRule, Knobs, LocalCA, SandboxServer, Simulator
from crmsync.sandbox.hubspot.associations import default_types
from crmsync.sandbox.runner import build_simulator, sandbox_credentials
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.world import PRODUCTS, STAGES, World, generate_world
from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult, SweepRefused, SyncEngine

CRMS = ("salesforce", "hubspot", "pipedrive")
WORLD_NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
DEFAULT_SETTLE_S = {"salesforce": 300.0, "hubspot": 120.0, "pipedrive": 2.0}
FAST_SEARCH = 100  # HubSpot search calls per second, on the simulator and the connection
# Fault injection on the data APIs only (not on logins): Salesforce REST, HubSpot CRM, Pipedrive.
DATA_PATHS = {"salesforce": r"^/services/data/", "hubspot": r"^/crm/", "pipedrive": r"^/(api|v1)/"}
OBJECTS = ("deals", "line_items")


# --- operations --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Create:
    name: int


@dataclass(frozen=True)
class Edit:
    deal: int
    field: str  # name | amount | stage | owner
    value: int


@dataclass(frozen=True)
class Delete:
    deal: int
    hard: bool = False


@dataclass(frozen=True)
class Restore:
    deal: int


@dataclass(frozen=True)
class Reassign:
    """The deal's account (Salesforce AccountId, HubSpot primary company, Pipedrive org_id)."""

    deal: int
    account: int


@dataclass(frozen=True)
class AddItem:
    deal: int
    quantity: int
    price: int


@dataclass(frozen=True)
class EditItem:
    item: int
    quantity: int
    price: int


@dataclass(frozen=True)
class RemoveItem:
    item: int


@dataclass(frozen=True)
class Tick:
    """The CRM's clock moves on (no Tick between two edits: they share one timestamp unit)."""

    ms: int


@dataclass(frozen=True)
class Faults:
    kind: str | None  # 429 | 500 | timeout | truncate | None (faults off)
    percent: int = 10


@dataclass(frozen=True)
class Sweep:
    """The hard-delete sweep (ids the CRM no longer lists are marked deleted), deals and line items."""


@dataclass(frozen=True)
class Cycle:
    """One sync cycle (deals, then line items) at page size ``page``; killed after ``kill_after``
    committed pages of its deals pull; ``meddle`` runs between pages ``meddle_after`` and the next."""

    page: int
    kill_after: int | None = None
    meddle_after: int | None = None
    meddle: tuple[Any, ...] = ()


UserOp = Create | Edit | Delete | Restore | Reassign | AddItem | EditItem | RemoveItem | Tick
Op = UserOp | Faults | Cycle | Sweep


@dataclass(frozen=True)
class Scenario:
    crm: str
    deals: int  # size of the generated world
    settle: float | None  # settle_seconds option (None: the CRM's default)
    search_lag_ms: int  # HubSpot search index lag while the operations run
    ops: tuple[Op, ...]
    attempts: int = 8  # max_attempts per request: with 2, injected faults fail whole runs


class Killed(BaseException):
    """An in-process kill: the cycle stops after a committed page, as a SIGKILL would (a
    BaseException, so the engine does not log it as a crash of its own)."""


class Mismatch(AssertionError):
    pass


# --- views compared field by field ----------------------------------------------------------------
@dataclass(frozen=True)
class DealView:
    name: str | None
    amount: Decimal | None
    stage: str | None
    owner: str | None
    account: str | None


@dataclass(frozen=True)
class ItemView:
    deal: str | None
    quantity: Decimal | None
    price: Decimal | None


def _dec(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# --- per-CRM user actions and truth ----------------------------------------------------------------
class Adapter:
    """What a CRM user does, in the CRM's own objects and fields, and what the CRM holds."""

    kind: str
    deal_object: str
    item_object: str

    def __init__(self, sim: Simulator, world: World) -> None:
        self.sim = sim
        self.world = world

    # actions
    def create_deal(self, n: int) -> str:
        raise NotImplementedError

    def edit(self, deal_id: str, field_name: str, value: int) -> None:
        if field_name == "stage":
            self.sim.move_stage(deal_id, STAGES[value % len(STAGES)].key)
            return
        self.sim.edit(self.deal_object, deal_id, self.deal_fields(field_name, value))

    def deal_fields(self, field_name: str, value: int) -> dict[str, Any]:
        raise NotImplementedError

    def owner(self, value: int) -> int:
        owners = [o.id for o in self.world.owners if o.active] or [o.id for o in self.world.owners]
        return owners[value % len(owners)]

    def account(self, value: int) -> int:
        return self.world.accounts[value % len(self.world.accounts)].id

    def reassign(self, deal_id: str, account: int) -> None:
        raise NotImplementedError

    def add_item(self, deal_id: str, quantity: int, price: int) -> str:
        raise NotImplementedError

    def edit_item(self, item_id: str, deal_id: str, quantity: int, price: int) -> None:
        raise NotImplementedError

    def remove_item(self, item_id: str, deal_id: str) -> None:
        raise NotImplementedError

    # truth
    def deals(self) -> tuple[dict[str, DealView], set[str]]:
        """(live deals by id, ids of soft-deleted deals)."""
        raise NotImplementedError

    def items(self) -> dict[str, ItemView]:
        """Live line items of live deals, by id."""
        raise NotImplementedError

    def item_ids_of(self, deal_id: str) -> list[str]:
        return sorted(i for i, view in self.items().items() if view.deal == deal_id)


class SalesforceAdapter(Adapter):
    kind, deal_object, item_object = "salesforce", "Opportunity", "OpportunityLineItem"

    def create_deal(self, n: int) -> str:
        return self.sim.create("Opportunity", {"Name": f"New deal {n}", "StageName": "Qualification",
                                               "CloseDate": "2027-01-31", "Amount": 1000 + n,
                                               "AccountId": make_id("001", self.account(n))})

    def deal_fields(self, field_name: str, value: int) -> dict[str, Any]:
        if field_name == "name":
            return {"Name": f"Renamed {value}"}
        if field_name == "amount":
            return {"Amount": Decimal(value * 125) / 100}
        return {"OwnerId": make_id("005", self.owner(value))}

    def reassign(self, deal_id: str, account: int) -> None:
        self.sim.edit("Opportunity", deal_id, {"AccountId": make_id("001", self.account(account))})

    def add_item(self, deal_id: str, quantity: int, price: int) -> str:
        n = price % len(PRODUCTS) + 1
        return self.sim.create("OpportunityLineItem", {
            "OpportunityId": deal_id, "PricebookEntryId": make_id("01u", n), "Product2Id": make_id("01t", n),
            "Quantity": quantity, "UnitPrice": Decimal(price * 10) / 100})

    def edit_item(self, item_id: str, deal_id: str, quantity: int, price: int) -> None:
        self.sim.edit("OpportunityLineItem", item_id, {"Quantity": quantity, "UnitPrice": Decimal(price * 10) / 100})

    def remove_item(self, item_id: str, deal_id: str) -> None:
        self.sim.delete("OpportunityLineItem", item_id)

    def deals(self) -> tuple[dict[str, DealView], set[str]]:
        live: dict[str, DealView] = {}
        deleted: set[str] = set()
        for row in self.sim.truth("Opportunity", include_deleted=True):
            if row["IsDeleted"]:
                deleted.add(row["Id"])
                continue
            live[row["Id"]] = DealView(_text(row["Name"]), _dec(row["Amount"]), _text(row["StageName"]),
                                       _text(row["OwnerId"]), _text(row["AccountId"]))
        return live, deleted

    def items(self) -> dict[str, ItemView]:
        return {row["Id"]: ItemView(_text(row["OpportunityId"]), _dec(row["Quantity"]), _dec(row["UnitPrice"]))
                for row in self.sim.truth("OpportunityLineItem")}


class HubSpotAdapter(Adapter):
    kind, deal_object, item_object = "hubspot", "deals", "line_items"

    def create_deal(self, n: int) -> str:
        return self.sim.create("deals", {"dealname": f"New deal {n}", "dealstage": "qualification",
                                         "pipeline": "default", "amount": str(1000 + n),
                                         "associations": {"companies": [self.account(n)]}})

    def deal_fields(self, field_name: str, value: int) -> dict[str, Any]:
        if field_name == "name":
            return {"dealname": f"Renamed {value}"}
        if field_name == "amount":
            return {"amount": str(Decimal(value * 125) / 100)}
        return {"hubspot_owner_id": str(self.owner(value))}

    def reassign(self, deal_id: str, account: int) -> None:
        """A user changes the deal's (primary) company: no modification date changes, as in HubSpot."""
        sim: Any = self.sim
        for company in list(sim.associations.get("deals", int(deal_id), "companies")):
            sim.dissociate("deals", deal_id, "companies", str(company))
        with sim.lock:
            sim.associations.add("deals", int(deal_id), "companies", self.account(account),
                                 default_types("deals", "companies", primary=True))

    def add_item(self, deal_id: str, quantity: int, price: int) -> str:
        product = PRODUCTS[price % len(PRODUCTS)]
        return self.sim.create("line_items", {"name": product.name, "quantity": str(quantity),
                                              "price": str(Decimal(price * 10) / 100),
                                              "associations": {"deals": [int(deal_id)]}})

    def edit_item(self, item_id: str, deal_id: str, quantity: int, price: int) -> None:
        self.sim.edit("line_items", item_id, {"quantity": str(quantity), "price": str(Decimal(price * 10) / 100)})

    def remove_item(self, item_id: str, deal_id: str) -> None:
        self.sim.delete("line_items", item_id)

    def deals(self) -> tuple[dict[str, DealView], set[str]]:
        sim: Any = self.sim
        live: dict[str, DealView] = {}
        deleted: set[str] = set()
        for row in sim.truth("deals", include_deleted=True):
            if row["archived"]:
                deleted.add(row["id"])
                continue
            props = row["properties"]
            companies = sim.associations.get("deals", int(row["id"]), "companies")
            primary = sorted(c for c, types in companies.items() if any(t.get("typeId") == 5 for t in types))
            chosen = (primary or sorted(companies))[:1]
            live[row["id"]] = DealView(_text(props.get("dealname")), _dec(props.get("amount")),
                                       _text(props.get("dealstage")), _text(props.get("hubspot_owner_id")),
                                       str(chosen[0]) if chosen else None)
        return live, deleted

    def items(self) -> dict[str, ItemView]:
        sim: Any = self.sim
        out: dict[str, ItemView] = {}
        for row in sim.truth("line_items"):
            deals = sorted(sim.associations.get("line_items", int(row["id"]), "deals"))
            props = row["properties"]
            out[row["id"]] = ItemView(str(deals[0]) if deals else None, _dec(props.get("quantity")),
                                      _dec(props.get("price")))
        return out


class PipedriveAdapter(Adapter):
    kind, deal_object, item_object = "pipedrive", "deals", "deal_products"

    def create_deal(self, n: int) -> str:
        return self.sim.create("deals", {"title": f"New deal {n}", "value": 1000 + n, "currency": "EUR",
                                         "org_id": self.account(n)})

    def deal_fields(self, field_name: str, value: int) -> dict[str, Any]:
        if field_name == "name":
            return {"title": f"Renamed {value}"}
        if field_name == "amount":
            return {"value": str(Decimal(value * 125) / 100)}
        return {"owner_id": self.owner(value)}

    def reassign(self, deal_id: str, account: int) -> None:
        self.sim.edit("deals", deal_id, {"org_id": self.account(account)})

    def add_item(self, deal_id: str, quantity: int, price: int) -> str:
        sim: Any = self.sim
        with sim.lock:
            row = sim.add_deal_product(int(deal_id), {"product_id": price % len(PRODUCTS) + 1, "quantity": quantity,
                                                      "item_price": str(Decimal(price * 10) / 100)})
        return str(row["id"])

    def edit_item(self, item_id: str, deal_id: str, quantity: int, price: int) -> None:
        sim: Any = self.sim
        with sim.lock:
            sim.patch_deal_product(int(deal_id), int(item_id),
                                   {"quantity": quantity, "item_price": str(Decimal(price * 10) / 100)})

    def remove_item(self, item_id: str, deal_id: str) -> None:
        sim: Any = self.sim
        with sim.lock:
            sim.delete_deal_product(int(deal_id), int(item_id))

    def deals(self) -> tuple[dict[str, DealView], set[str]]:
        live: dict[str, DealView] = {}
        deleted: set[str] = set()
        for row in self.sim.truth("deals", include_deleted=True):
            rid = str(row["id"])
            if row["is_deleted"]:
                deleted.add(rid)
                continue
            live[rid] = DealView(_text(row["title"]), _dec(row["value"]), _text(row["stage_id"]),
                                 _text(row["owner_id"]), _text(row["org_id"]))
        return live, deleted

    def items(self) -> dict[str, ItemView]:
        return {str(row["id"]): ItemView(_text(row["deal_id"]), _dec(row["quantity"]), _dec(row["item_price"]))
                for row in self.sim.truth("deal_products")}


ADAPTERS: dict[str, type[Adapter]] = {"salesforce": SalesforceAdapter, "hubspot": HubSpotAdapter,
                                      "pipedrive": PipedriveAdapter}


# --- the store's side ----------------------------------------------------------------------------
def stored_deals(store: Store, connection: str) -> tuple[dict[str, DealView], set[str]]:
    live: dict[str, DealView] = {}
    deleted: set[str] = set()
    for record in store.iter_records(ObjectType.DEAL, connection=connection, include_deleted=True):
        assert isinstance(record, Deal)
        if record.deleted:
            deleted.add(record.source_id)
        else:
            live[record.source_id] = DealView(record.name, record.amount, record.stage_id, record.owner_id,
                                              record.account_id)
    return live, deleted


def stored_items(store: Store, connection: str) -> dict[str, ItemView]:
    out: dict[str, ItemView] = {}
    for record in store.iter_records(ObjectType.LINE_ITEM, connection=connection):
        assert isinstance(record, LineItem)
        out[record.source_id] = ItemView(record.deal_id, record.quantity, record.unit_price)
    return out


def compare(adapter: Adapter, store: Store, connection: str, *, associations: bool = True) -> list[str]:
    """Every difference between the store and the CRM, as readable lines (empty: equal).
    ``associations=False`` leaves out the deal's account and the line item's deal."""
    problems: list[str] = []
    truth, truth_deleted = adapter.deals()
    stored, stored_deleted = stored_deals(store, connection)
    for deal_id in sorted(set(truth) | set(stored)):
        want, got = truth.get(deal_id), stored.get(deal_id)
        if want is None:
            state = "soft-deleted" if deal_id in truth_deleted else "hard-deleted"
            problems.append(f"deal {deal_id}: live in the store, {state} in the CRM ({got})")
        elif got is None:
            where = "deleted in the store" if deal_id in stored_deleted else "missing from the store"
            problems.append(f"deal {deal_id}: live in the CRM, {where} (CRM: {want})")
        else:
            for name in ("name", "amount", "stage", "owner", "account"):
                if name == "account" and not associations:
                    continue
                if getattr(want, name) != getattr(got, name):
                    problems.append(f"deal {deal_id}.{name}: CRM {getattr(want, name)!r}, store {getattr(got, name)!r}")
    truth_items = adapter.items()
    items = stored_items(store, connection)
    for item_id in sorted(set(truth_items) | set(items)):
        want_item, got_item = truth_items.get(item_id), items.get(item_id)
        if want_item is None:
            problems.append(f"line item {item_id}: live in the store, not in the CRM ({got_item})")
        elif got_item is None:
            problems.append(f"line item {item_id}: in the CRM, not live in the store (CRM: {want_item})")
        elif want_item != got_item and (associations or replace(want_item, deal=got_item.deal) != got_item):
            problems.append(f"line item {item_id}: CRM {want_item}, store {got_item}")
    return problems


# --- the world under test ---------------------------------------------------------------------------
@dataclass
class Rig:
    """One CRM simulator on loopback, its adapter, and the store the syncs write to."""

    kind: str
    world: World
    sim: Simulator
    server: SandboxServer
    ca: LocalCA
    store: Store
    adapter: Adapter
    known_deals: list[str] = field(default_factory=list)
    known_items: dict[str, str] = field(default_factory=dict)  # item id -> its deal id
    log: list[str] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)  # user operations that applied, by kind
    crashes: list[str] = field(default_factory=list)

    @property
    def connection_name(self) -> str:
        return f"truth-{self.kind}"

    def connection(self, **options: Any) -> ConnectionSettings:
        base: dict[str, Any] = {}
        if self.kind == "salesforce":
            base |= {"bulk_threshold": 10_000_000, "max_wait_seconds": 0.2}
        elif self.kind == "hubspot":
            base |= {"max_wait_seconds": 0.2, "search_per_second": FAST_SEARCH,
                     "limits_raised": True}  # the simulator's search limit is raised too
        else:
            base |= {"max_wait_s": 0.2}
        return ConnectionSettings.model_validate({
            "name": self.connection_name, "kind": self.kind, "base_url": self.server.url,
            "ca_bundle": str(self.ca.ca_path) if self.kind == "salesforce" else None,
            "credentials": sandbox_credentials(self.kind, self.sim),
            "objects": list(OBJECTS), "options": {**base, **options},
        })


def page_options(kind: str, page: int) -> dict[str, Any]:
    if kind == "salesforce":
        return {"page_size": page}
    if kind == "hubspot":
        return {"search_page_size": page, "association_batch": max(1, page), "prefetch": page % 2 == 0}
    return {"page_limit": page, "prefetch": page % 2 == 0}


@contextmanager
def rig(kind: str, store: Store, ca: LocalCA, deals: int, seed: int = 11) -> Iterator[Rig]:
    # the world's stamps lie well before the instant the CRM's clock is frozen at (a CRM never
    # holds a stamp ahead of its own clock)
    world = generate_world(seed, deals, now=WORLD_NOW)
    sim = build_simulator(kind, world, Knobs(timeout_s=0.3))
    server = SandboxServer(sim.build_app(), tls=ca if kind == "salesforce" else None, name=f"truth-{kind}").start()
    try:
        yield Rig(kind, world, sim, server, ca, store, ADAPTERS[kind](sim, world))
    finally:
        server.stop()


# --- running an interleaving -------------------------------------------------------------------------
class Runner:
    def __init__(self, rig_: Rig, scenario: Scenario) -> None:
        self.rig = rig_
        self.scenario = scenario
        self.sim = rig_.sim
        self.adapter = rig_.adapter
        self.settle = scenario.settle

    def options(self, page: int) -> dict[str, Any]:
        out = page_options(self.rig.kind, page)
        if self.settle is not None:
            out["settle_seconds"] = self.settle
        return out

    def engine(self, page: int, **extra: Any) -> SyncEngine:
        conn = self.rig.connection(**self.options(page), max_attempts=self.scenario.attempts, **extra)
        return SyncEngine(self.rig.store, build_connector(conn), conn)

    # the user's side
    def _deal(self, ref: int, *, live: bool = True) -> str | None:
        """The ``ref``-th live deal (or soft-deleted one, for a restore), in creation order."""
        truth, deleted = self.adapter.deals()
        pool = [d for d in self.rig.known_deals if (d in truth if live else d in deleted)]
        return pool[ref % len(pool)] if pool else None

    def _item(self, ref: int) -> tuple[str, str] | None:
        items = self.adapter.items()
        live = sorted((i, view.deal) for i, view in items.items() if view.deal is not None)
        if not live:
            return None
        item_id, deal_id = live[ref % len(live)]
        assert deal_id is not None
        return item_id, deal_id

    def apply(self, op: UserOp) -> None:
        if self._apply(op):
            self.rig.applied[type(op).__name__] += 1

    def _apply(self, op: UserOp) -> bool:
        """Apply one user operation; False when it did not apply (nothing to act on)."""
        a = self.adapter
        if isinstance(op, Tick):
            self.sim.clock.advance(op.ms / 1000)
            return True
        if isinstance(op, Create):
            self.rig.known_deals.append(a.create_deal(op.name))
            return True
        if isinstance(op, Restore):
            deal_id = self._deal(op.deal, live=False)
            if deal_id is None:
                return False
            self.sim.restore(a.deal_object, deal_id)
            return True
        if isinstance(op, EditItem | RemoveItem):
            found = self._item(op.item)
            if found is None:
                return False
            item_id, deal_id = found
            if isinstance(op, EditItem):
                a.edit_item(item_id, deal_id, op.quantity, op.price)
            else:
                a.remove_item(item_id, deal_id)
            return True
        deal_id = self._deal(op.deal)
        if deal_id is None:
            return False
        if isinstance(op, Edit):
            a.edit(deal_id, op.field, op.value)
        elif isinstance(op, Delete):
            self.sim.delete(a.deal_object, deal_id, hard=op.hard)
        elif isinstance(op, Reassign):
            a.reassign(deal_id, op.account)
        elif isinstance(op, AddItem):
            a.add_item(deal_id, op.quantity, op.price)
        return True

    # the sync's side
    def faults(self, op: Faults) -> None:
        rules = [] if op.kind is None else [FaultRule(path=DATA_PATHS[self.rig.kind], kind=op.kind,  # type: ignore[arg-type]
                                                      probability=op.percent / 100, retry_after=0.01)]
        self.sim.knobs.update({"faults": rules})

    def cycle(self, op: Cycle, **extra: Any) -> None:
        engine = self.engine(op.page, **extra)
        meddled = False

        def progress(result: ObjectResult, page: Page) -> None:
            nonlocal meddled
            if result.object_name != "deals":
                return
            if op.meddle_after is not None and result.pages >= op.meddle_after and not meddled:
                meddled = True
                for inner in op.meddle:
                    self.apply(inner)
            if op.kill_after is not None and result.pages >= op.kill_after:
                raise Killed(f"killed after page {result.pages}")

        try:
            for name in OBJECTS:
                result = engine.run(name, mode="sync", progress=progress)
                if result.status != "ok":
                    self.rig.log.append(f"{name}: {result.status} {result.error}")
                    self.rig.applied["failed run"] += 1
        except Killed:
            self.rig.log.append("killed")
            self.rig.applied["kill"] += 1
        except Exception as exc:  # a crash (not a classified connector error) is a bug of its own
            self.rig.crashes.append(f"{type(exc).__name__}: {exc}")
        finally:
            engine.connector.close()

    def sweep(self, *, confirm: bool = False) -> None:
        """The hard-delete sweeps. Unconfirmed, a sweep that would delete more than
        ``delete_sweep_max_share`` of a small world refuses and marks nothing (by design); the
        settle phase confirms, as the user told so by the refusal would."""
        engine = self.engine(7)
        try:
            for name in OBJECTS:
                engine.sweep_deletes(name, confirm=confirm)
            self.rig.applied["sweep"] += 1
        except SweepRefused:
            self.rig.applied["sweep refused"] += 1
        except Exception as exc:  # faults may be on: a failed sweep changes nothing
            self.rig.log.append(f"sweep: {type(exc).__name__}: {exc}")
        finally:
            engine.connector.close()

    def backfill(self, page: int) -> None:
        engine = self.engine(page)
        try:
            for name in OBJECTS:
                for _ in range(5):  # faults may fail a run; the next resumes from its checkpoint
                    if engine.backfill(name).status == "ok":
                        break
        finally:
            engine.connector.close()

    def run(self) -> None:
        clock = self.sim.clock
        if self.rig.kind == "hubspot":
            self.sim.knobs.update({"search_per_second": FAST_SEARCH})
        # the first sync of a new connection, before the users start
        self.backfill(50)
        truth, _ = self.adapter.deals()
        self.rig.known_deals = sorted(truth, key=lambda i: (len(i), i))
        # the CRM's clock stands in the recent past (never ahead of real time while frozen)
        clock.freeze(math.floor(time.time()) - 300 + 0.25)
        if self.scenario.search_lag_ms:
            self.sim.knobs.update({"search_lag_s": self.scenario.search_lag_ms / 1000})
        for op in self.scenario.ops:
            if isinstance(op, Cycle):
                self.cycle(op)
            elif isinstance(op, Faults):
                self.faults(op)
            elif isinstance(op, Sweep):
                self.sweep()
            else:
                self.apply(op)

    def settle_and_check(self, quiet_cycles: int = 2) -> list[str]:
        """The edits have stopped: faults off, the clock runs past the settle time, quiet cycles and
        the sweeps run; then the differences between the store and the CRM (empty: equal)."""
        self.sim.knobs.update({"faults": [], "search_lag_s": 0.0})
        settle = self.settle if self.settle is not None else DEFAULT_SETTLE_S[self.rig.kind]
        self.sim.clock.advance(settle + 2)
        self.sim.clock.run()
        for _ in range(quiet_cycles):
            self.cycle(Cycle(page=7))
        self.sweep(confirm=True)
        self.cycle(Cycle(page=7))
        hubspot = self.rig.kind == "hubspot"
        # HubSpot: association changes (a deal's company, a line item's deal) do not move
        # hs_lastmodifieddate, so incremental cycles cannot see them; everything else must be equal now.
        problems = compare(self.adapter, self.rig.store, self.rig.connection_name, associations=not hubspot)
        if hubspot and not problems:
            # ...and after the connector's periodic association refresh pass (association_refresh_hours,
            # default 24 h: made due now), the associations too.
            self.cycle(Cycle(page=7), association_refresh_hours=0)
            problems = compare(self.adapter, self.rig.store, self.rig.connection_name)
        return [*(f"crash: {c}" for c in self.rig.crashes), *problems]


def run_scenario(scenario: Scenario, store: Store, ca: LocalCA, stats: Counter[str] | None = None) -> list[str]:
    """Run one interleaving, settle, and return the differences (``stats`` counts what happened)."""
    with rig(scenario.crm, store, ca, scenario.deals) as r:
        runner = Runner(r, scenario)
        try:
            runner.run()
            return runner.settle_and_check()
        finally:
            if stats is not None:
                stats.update(r.applied)
                for status, n in r.sim.log.snapshot()["by_status"].items():
                    if status not in ("200", "201", "204"):
                        stats[f"HTTP {status}"] += int(n)


def describe(scenario: Scenario, problems: list[str], limit: int = 12) -> str:
    lines = [f"{scenario.crm}: the store differs from the CRM after the edits stopped and the cycles ran",
             *problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    lines.append("interleaving:")
    lines.extend(f"  {op!r}" for op in scenario.ops)
    return "\n".join(lines)


# --- stores ---------------------------------------------------------------------------------------
def truncate_all(store: Store) -> None:
    """Empty every table of a PostgreSQL store (a fresh store per example, without a new database)."""
    from sqlalchemy import text

    from crmsync.store.tables import ALL_TABLES

    names = ", ".join(f'"{table.name}"' for table in ALL_TABLES)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@contextmanager
def sqlite_store(directory: Path) -> Iterator[Store]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"truth-{time.monotonic_ns()}.db"
    store = Store.open(f"sqlite:///{path}")
    store.upgrade()
    try:
        yield store
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- what Hypothesis draws ------------------------------------------------------------------------------
SETTLE_CHOICES: dict[str, tuple[float | None, ...]] = {
    "salesforce": (None, 0.0, 1.0, 5.0), "hubspot": (None, 1.0, 5.0), "pipedrive": (None, 0.0, 1.0, 4.0)}
MIN_OPS, MAX_OPS = 8, 30  # ticks and meddles stay well inside the 300 s the clock is frozen behind real time


def strategies() -> Any:
    """(user_op, op) strategies; imported lazily so the harness works without Hypothesis."""
    from hypothesis import strategies as st

    ref = st.integers(0, 60)
    user_op = st.one_of(
        st.builds(Create, st.integers(0, 999)),
        st.builds(Edit, ref, st.sampled_from(["name", "amount", "stage", "owner"]), st.integers(0, 99)),
        st.builds(Edit, ref, st.sampled_from(["name", "amount", "stage", "owner"]), st.integers(0, 99)),
        st.builds(Delete, ref, st.booleans()),
        st.builds(Restore, ref),
        st.builds(Reassign, ref, st.integers(0, 99)),
        st.builds(AddItem, ref, st.integers(1, 9), st.integers(1, 999)),
        st.builds(EditItem, st.integers(0, 200), st.integers(1, 9), st.integers(1, 999)),
        st.builds(RemoveItem, st.integers(0, 200)),
        st.builds(Tick, st.sampled_from([1, 250, 600, 1000, 1500])),
    )
    cycle = st.builds(Cycle, st.integers(1, 8), st.none() | st.integers(1, 4), st.none() | st.integers(1, 3),
                      st.lists(user_op, max_size=3).map(tuple))
    faults = st.builds(Faults, st.sampled_from([None, "429", "500", "timeout", "truncate"]),
                       st.sampled_from([5, 15, 30]))
    op = st.one_of(user_op, user_op, cycle, cycle, faults, st.just(Sweep()))
    return user_op, op


def scenarios(crm: str) -> Any:
    from hypothesis import strategies as st

    _, op = strategies()
    lag = st.sampled_from([0, 300]) if crm == "hubspot" else st.just(0)
    return st.builds(Scenario, st.just(crm), st.sampled_from([20, 30, 40]), st.sampled_from(SETTLE_CHOICES[crm]),
                     lag, st.lists(op, min_size=MIN_OPS, max_size=MAX_OPS).map(tuple), st.sampled_from([8, 2]))
