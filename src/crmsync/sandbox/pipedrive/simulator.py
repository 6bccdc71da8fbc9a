"""``PipedriveSimulator``: a World served as Pipedrive API v2 (v1 for users and field listings).

State lives in lazy ``Table``s (deals, organizations, persons, products, activities) plus deal
products materialised per deal on first change. The user handle (create, edit, move_stage,
delete soft/hard, merge, bulk_import) changes state the way a person in the Pipedrive UI would,
and ``truth`` answers what Pipedrive holds now, in wire form.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from crmsync.sandbox.core import Knobs, Simulator
from crmsync.sandbox.pipedrive.changelog import Changelog
from crmsync.sandbox.pipedrive.fields import DEAL_KEY_BY_NAME
from crmsync.sandbox.pipedrive.hooks import PipedriveHooks, TokenRateLimiter
from crmsync.sandbox.pipedrive.notes import NoteStore
from crmsync.sandbox.pipedrive.rows import (
    PIPELINE_ID,
    Row,
    deal_product_row,
    deal_row,
    epoch,
    org_row,
    org_times,
    person_row,
    person_times,
    pipeline_rows,
    product_row,
    render,
    stage_rows,
    status_of_stage,
    user_row,
)
from crmsync.sandbox.pipedrive.table import Table
from crmsync.sandbox.world import PRODUCTS, STAGES, World

DEFAULT_TOKEN = "pd-sandbox-token"
OBJECTS = ("deals", "organizations", "persons", "products", "activities", "deal_products", "stages",
           "pipelines", "users")
DEAL_WRITABLE = frozenset({
    "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency", "status",
    "probability", "lost_reason", "visible_to", "close_time", "won_time", "lost_time", "expected_close_date",
    "label_ids", "is_archived", "archive_time", "custom_fields", "origin_id", "channel", "channel_id",
})
ACTIVITY_WRITABLE = frozenset({
    "subject", "type", "owner_id", "deal_id", "lead_id", "person_id", "org_id", "project_id", "due_date",
    "due_time", "duration", "busy", "done", "location", "participants", "attendees", "public_description",
    "priority", "note",
})
DEAL_PRODUCT_WRITABLE = frozenset({
    "product_id", "item_price", "quantity", "discount", "discount_type", "tax", "tax_method", "comments",
    "is_enabled", "billing_frequency", "billing_frequency_cycles", "billing_start_date", "product_variation_id",
})


def _loss_reason(world: World, deal_id: int) -> str | None:
    loss = world.loss(world.deals[deal_id - 1])
    return loss[0] if loss else None


class PipedriveSimulator(Simulator):
    name = "pipedrive"

    def __init__(self, world: World, knobs: Knobs | None = None, *, api_tokens: set[str] | None = None) -> None:
        super().__init__(knobs or Knobs(burst_window_s=2.0))
        self.world = world
        self.api_tokens = set(api_tokens or {DEFAULT_TOKEN})
        self.limiter = TokenRateLimiter(self.knobs, self.now)
        self.hooks = PipedriveHooks(self.api_tokens, self.now)
        deals = world.deals
        if any(d.id != n for n, d in enumerate(deals, 1)):
            raise ValueError("World deal ids must be 1..N")
        self.deals = Table(list(range(1, len(deals) + 1)), lambda i: deal_row(deals[i - 1], _loss_reason(world, i)),
                           lambda i: (epoch(deals[i - 1].created_at), epoch(deals[i - 1].modified_at)))
        self.organizations = Table(list(range(1, len(world.accounts) + 1)), lambda i: org_row(world, i),
                                   lambda i: org_times(world, i))
        contact_index = {c.id: n for n, c in enumerate(world.contacts)}
        self.persons = Table(sorted(contact_index), lambda i: person_row(world, contact_index, i),
                             lambda i: person_times(world, i))
        self.products = Table(list(range(1, len(PRODUCTS) + 1)), lambda i: product_row(world, i),
                              lambda i: (epoch(world.now), epoch(world.now)))
        self.activities = Table([], lambda i: {}, lambda i: (0, 0))
        self.notes = NoteStore(self.now_epoch, self._deal_title)
        self.changelog = Changelog(world)
        self.deal_products: dict[int, dict[int, Row]] = {}  # materialised per deal on first change
        self.stages = stage_rows(world)
        self.pipelines = pipeline_rows(world)
        self.users = {o.id: user_row(world, o) for o in world.owners}
        self._next_attachment = 10 * (len(deals) + 1) + 10
        self._status_before_delete: dict[int, str] = {}
        self._base_summary: dict[str, tuple[int, Decimal]] = {}
        for d in deals:
            status = status_of_stage(d.stage)
            count, total = self._base_summary.get(status, (0, Decimal(0)))
            self._base_summary[status] = (count + 1, total + d.amount)

    # --- clock --------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.clock.now()

    def now_epoch(self) -> int:
        return int(self.clock.time())

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock (the 30-day deleted window, daily budget resets)."""
        self.clock.advance(seconds)

    # --- deals ----------------------------------------------------------------------------------
    def deal(self, deal_id: int) -> Row | None:
        return self.deals.get(deal_id)

    def add_deal(self, body: dict[str, Any], *, at: int | None = None) -> Row:
        if not body.get("title"):
            raise ValueError("title is required")
        now = self.now_epoch() if at is None else at
        deal_id = self.deals.next_id
        stage_id = int(body.get("stage_id") or 1)
        self._check_stage(stage_id)
        row: Row = {
            "id": deal_id, "title": None, "creator_user_id": 1, "owner_id": 1, "person_id": None, "org_id": None,
            "pipeline_id": PIPELINE_ID, "stage_id": stage_id, "value": Decimal(0), "currency": "EUR",
            "add_time": now, "update_time": now, "stage_change_time": now, "is_deleted": False,
            "is_archived": False, "archive_time": None, "status": "open", "probability": None, "lost_reason": None,
            "visible_to": 3, "close_time": None, "won_time": None, "lost_time": None, "expected_close_date": None,
            "label_ids": [], "origin": "API", "origin_id": None, "channel": None, "channel_id": None,
            "custom_fields": {key: None for key in DEAL_KEY_BY_NAME.values()},
        }
        self._apply_deal(row, body, now)
        self.deals.put(deal_id, row)
        self.changelog.record(deal_id, None, row, now, int(row.get("owner_id") or 1))
        return row

    def patch_deal(self, deal_id: int, body: dict[str, Any]) -> Row:
        current = self.deals.get(deal_id)
        if current is None or deal_id in self.deals.deleted:
            raise KeyError(deal_id)
        row = dict(current)
        row["custom_fields"] = dict(current.get("custom_fields") or {})
        now = self.now_epoch()
        self._apply_deal(row, body, now)
        # A generated deal's products are derived from the world until it is first stored as a row:
        # keep them as its own before the row is stored, or the edit would drop them.
        self._own_products(deal_id)
        row["update_time"] = now
        self.changelog.record(deal_id, current, row, now, 1)
        self.deals.put(deal_id, row)
        return row

    def _deal_title(self, deal_id: int) -> str | None:
        row = self.deals.get(int(deal_id))
        return None if row is None or int(deal_id) in self.deals.deleted else str(row.get("title") or "")

    def _check_stage(self, stage_id: int) -> None:
        if not any(s["id"] == stage_id for s in self.stages):
            raise ValueError(f"stage_id {stage_id} does not exist")

    def _apply_deal(self, row: Row, body: dict[str, Any], now: int) -> None:
        unknown = set(body) - DEAL_WRITABLE - {"is_deleted"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        for key, value in body.items():
            if key == "custom_fields":
                if not isinstance(value, dict):
                    raise ValueError("custom_fields must be an object")
                for ckey, cvalue in value.items():
                    ckey = DEAL_KEY_BY_NAME.get(ckey, ckey)
                    if ckey not in DEAL_KEY_BY_NAME.values():
                        raise ValueError(f"unknown custom field {ckey}")
                    row["custom_fields"][ckey] = cvalue
            elif key == "value":
                row["value"] = finite_number(value, key) if value is not None else Decimal(0)
            elif key == "stage_id":
                self._check_stage(int(value))
                if int(value) != row["stage_id"]:
                    row["stage_change_time"] = now
                row["stage_id"] = int(value)
            elif key == "status":
                if value not in ("open", "won", "lost"):
                    raise ValueError(f"status {value!r} is not open, won or lost")
                if value != row["status"]:
                    row["close_time"] = now if value in ("won", "lost") else None
                    row["won_time"] = now if value == "won" else None
                    row["lost_time"] = now if value == "lost" else None
                row["status"] = value
            elif key in ("close_time", "won_time", "lost_time", "archive_time") and isinstance(value, str):
                row[key] = int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
            elif key != "is_deleted":
                row[key] = value

    def delete_deal(self, deal_id: int, *, hard: bool = False) -> None:
        if not self.deals.exists(deal_id) or (not hard and deal_id in self.deals.deleted):
            raise KeyError(deal_id)
        if hard:
            self.deals.hard_delete(deal_id)
            self.deal_products.pop(deal_id, None)
        else:
            self._status_before_delete[deal_id] = str((self.deals.get(deal_id) or {}).get("status") or "open")
            self.deals.soft_delete(deal_id, self.now_epoch(), {"is_deleted": True, "status": "deleted"})

    def restore_deal(self, deal_id: int) -> None:
        """Restore a deal deleted within the last 30 days (the UI's "Restore"): live again with the
        status it had, its products with it, ``update_time`` now."""
        self.deals.purge_expired(self.now_epoch())
        if deal_id not in self.deals.deleted:
            raise KeyError(deal_id)
        status = self._status_before_delete.pop(deal_id, "open")
        self.deals.restore(deal_id, self.now_epoch(), {"is_deleted": False, "status": status})

    def deal_summary(self, status: str | None) -> tuple[int, Decimal]:
        """(count, value total) of live, unarchived deals, optionally of one status (``/v1/deals/summary``).

        Base deals are counted from a summary built once; only changed rows are looked at here.
        """
        wanted = (status,) if status else ("open", "won", "lost")
        count = sum(self._base_summary.get(s, (0, Decimal(0)))[0] for s in wanted)
        total = sum((self._base_summary.get(s, (0, Decimal(0)))[1] for s in wanted), Decimal(0))
        n_base = len(self.world.deals)
        for deal_id in set(self.deals.rows) | self.deals.gone:
            if 1 <= deal_id <= n_base:
                base = self.world.deals[deal_id - 1]
                if status_of_stage(base.stage) in wanted:
                    count -= 1
                    total -= base.amount
            row = self.deals.rows.get(deal_id)
            if row is not None and not row["is_deleted"] and not row["is_archived"] and row["status"] in wanted:
                count += 1
                total += Decimal(str(row["value"]))
        return count, total

    # --- deal products ----------------------------------------------------------------------------
    def products_of(self, deal_id: int) -> list[Row]:
        if deal_id in self.deal_products:
            return list(self.deal_products[deal_id].values())
        # a world deal keeps its products when the deal itself is edited or deleted (its row is
        # materialised then, its products only when they change)
        if deal_id in self.deals.gone or not 1 <= deal_id <= len(self.world.deals):
            return []
        deal = self.world.deals[deal_id - 1]
        return [deal_product_row(deal, item, pos) for pos, item in enumerate(self.world.line_items(deal))]

    def _own_products(self, deal_id: int) -> dict[int, Row]:
        if deal_id not in self.deal_products:
            self.deal_products[deal_id] = {r["id"]: r for r in self.products_of(deal_id)}
        return self.deal_products[deal_id]

    def _touch_deal(self, deal_id: int) -> None:
        row = dict(self.deals.materialise(deal_id))
        row["update_time"] = self.now_epoch()
        items = self.products_of(deal_id)
        if items:
            row["value"] = sum((Decimal(str(r["sum"])) for r in items), Decimal(0))
        self.deals.put(deal_id, row)

    def add_deal_product(self, deal_id: int, body: dict[str, Any]) -> Row:
        if self.deals.get(deal_id) is None or deal_id in self.deals.deleted:
            raise KeyError(deal_id)
        missing = {"product_id", "item_price", "quantity"} - set(body)
        if missing:
            raise ValueError(f"missing required fields: {', '.join(sorted(missing))}")
        product = self.products.get(int(body["product_id"]))
        if product is None:
            raise ValueError(f"product_id {body['product_id']} does not exist")
        unknown = set(body) - DEAL_PRODUCT_WRITABLE
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        now = self.now_epoch()
        self._next_attachment += 1
        deal = self.deals.get(deal_id) or {}
        row: Row = {
            "id": self._next_attachment, "deal_id": deal_id, "product_id": product["id"],
            "product_variation_id": None, "name": product["name"], "order_nr": len(self.products_of(deal_id)),
            "quantity": Decimal(0), "item_price": Decimal(0), "sum": Decimal(0), "discount": Decimal(0),
            "discount_type": "percentage", "tax": 0, "tax_method": "none", "currency": deal.get("currency", "EUR"),
            "is_enabled": True, "billing_frequency": "one-time", "billing_frequency_cycles": None,
            "billing_start_date": None, "comments": "", "add_time": now, "update_time": now,
        }
        self._apply_product(row, body)
        self._own_products(deal_id)[row["id"]] = row
        self._touch_deal(deal_id)
        return row

    def patch_deal_product(self, deal_id: int, attachment_id: int, body: dict[str, Any]) -> Row:
        items = self._own_products(deal_id)
        if attachment_id not in items:
            raise KeyError(attachment_id)
        unknown = set(body) - DEAL_PRODUCT_WRITABLE
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        row = dict(items[attachment_id])
        self._apply_product(row, body)
        row["update_time"] = self.now_epoch()
        items[attachment_id] = row
        self._touch_deal(deal_id)
        return row

    def delete_deal_product(self, deal_id: int, attachment_id: int) -> None:
        items = self._own_products(deal_id)
        if attachment_id not in items:
            raise KeyError(attachment_id)
        del items[attachment_id]
        self._touch_deal(deal_id)

    @staticmethod
    def _apply_product(row: Row, body: dict[str, Any]) -> None:
        for key, value in body.items():
            row[key] = finite_number(value, key) if key in ("quantity", "item_price", "discount") else value
        gross = Decimal(str(row["item_price"])) * Decimal(str(row["quantity"]))
        discount = Decimal(str(row["discount"]))
        total = gross - discount if row.get("discount_type") == "amount" else gross * (1 - discount / 100)
        row["sum"] = total.quantize(Decimal("0.01"))

    # --- activities -------------------------------------------------------------------------------
    def add_activity(self, body: dict[str, Any]) -> Row:
        if not body.get("subject"):
            raise ValueError("subject is required")
        unknown = set(body) - ACTIVITY_WRITABLE
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        now = self.now_epoch()
        activity_id = self.activities.next_id
        row: Row = {
            "id": activity_id, "subject": None, "type": "task", "owner_id": 1, "creator_user_id": 1,
            "is_deleted": False, "add_time": now, "update_time": now, "deal_id": None, "lead_id": None,
            "person_id": None, "org_id": None, "project_id": None, "due_date": None, "due_time": None,
            "duration": None, "busy": False, "done": False, "marked_as_done_time": None, "location": None,
            "participants": [], "attendees": [], "public_description": None, "priority": None, "note": None,
        }
        self._apply_activity(row, body, now)
        self.activities.put(activity_id, row)
        return row

    def patch_activity(self, activity_id: int, body: dict[str, Any]) -> Row:
        current = self.activities.get(activity_id)
        if current is None or activity_id in self.activities.deleted:
            raise KeyError(activity_id)
        unknown = set(body) - ACTIVITY_WRITABLE
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        row = dict(current)
        now = self.now_epoch()
        self._apply_activity(row, body, now)
        row["update_time"] = now
        self.activities.put(activity_id, row)
        return row

    @staticmethod
    def _apply_activity(row: Row, body: dict[str, Any], now: int) -> None:
        for key, value in body.items():
            if key == "done" and value and not row.get("done"):
                row["marked_as_done_time"] = now
            row[key] = value

    # --- the user handle ----------------------------------------------------------------------
    def _table(self, object_name: str) -> Table:
        tables = {"deals": self.deals, "organizations": self.organizations, "persons": self.persons,
                  "products": self.products, "activities": self.activities}
        if object_name not in tables:
            raise ValueError(f"unknown object {object_name!r} (expected one of {', '.join(tables)})")
        return tables[object_name]

    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            if object_name == "deals":
                return str(self.add_deal(fields)["id"])
            if object_name == "activities":
                return str(self.add_activity(fields)["id"])
            table = self._table(object_name)
            now = self.now_epoch()
            record_id = table.next_id
            table.put(record_id, {"id": record_id, **fields, "add_time": now, "update_time": now,
                                  "is_deleted": False})
            return str(record_id)

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            rid = int(record_id)
            if object_name == "deals":
                self.patch_deal(rid, fields)
            elif object_name == "activities":
                self.patch_activity(rid, fields)
            else:
                table = self._table(object_name)
                current = table.get(rid)
                if current is None:
                    raise KeyError(record_id)
                table.put(rid, {**current, **fields, "update_time": self.now_epoch()})

    def move_stage(self, deal_id: str, stage: str) -> None:
        with self.lock:
            for definition in STAGES:
                if stage in (definition.key, definition.label, str(definition.order + 1)):
                    body: dict[str, Any] = {"stage_id": definition.order + 1}
                    if definition.is_closed:
                        body["status"] = "won" if definition.is_won else "lost"
                    else:
                        body["status"] = "open"
                    self.patch_deal(int(deal_id), body)
                    return
            raise ValueError(f"unknown stage {stage!r}")

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            rid = int(record_id)
            if object_name == "deals":
                self.delete_deal(rid, hard=hard)
                return
            table = self._table(object_name)
            if not table.exists(rid):
                raise KeyError(record_id)
            if hard:
                table.hard_delete(rid)
            else:
                table.soft_delete(rid, self.now_epoch(), {"is_deleted": True})

    def restore(self, object_name: str, record_id: str) -> None:
        with self.lock:
            rid = int(record_id)
            if object_name == "deals":
                self.restore_deal(rid)
                return
            table = self._table(object_name)
            table.purge_expired(self.now_epoch())
            table.restore(rid, self.now_epoch(), {"is_deleted": False})

    def merge(self, object_name: str, winner_id: str, loser_id: str) -> None:
        """Merge deals: the loser's products move to the winner; the loser is deleted."""
        if object_name != "deals":
            raise ValueError("merge is supported for deals")
        with self.lock:
            winner, loser = int(winner_id), int(loser_id)
            if self.deals.get(winner) is None or self.deals.get(loser) is None:
                raise KeyError(loser_id)
            moved = self.products_of(loser)
            target = self._own_products(winner)
            for item in moved:
                target[item["id"]] = {**item, "deal_id": winner}
            self.deal_products[loser] = {}
            self._touch_deal(winner)
            self.delete_deal(loser)

    def bulk_import(self, object_name: str, rows: list[dict[str, Any]], *, same_timestamp: bool = True) -> list[str]:
        """Create many records at once; with ``same_timestamp`` they all share one update_time."""
        with self.lock:
            if object_name != "deals":
                return [self.create(object_name, row) for row in rows]
            at = self.now_epoch()
            ids = []
            for n, row in enumerate(rows):
                ids.append(str(self.add_deal(row, at=at if same_timestamp else at + n)["id"]))
            return ids

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            if object_name == "stages":
                return [render(r) for r in self.stages]
            if object_name == "pipelines":
                return [render(r) for r in self.pipelines]
            if object_name == "users":
                return list(self.users.values())
            if object_name == "notes":
                return [self.notes.render(r) for r in self.notes.rows.values() if r["active_flag"]]
            if object_name == "deal_products":
                return [render(r) for deal_id in self.deals.all_ids() if deal_id not in self.deals.deleted
                        for r in self.products_of(deal_id)]
            table = self._table(object_name)
            table.purge_expired(self.now_epoch())
            out = []
            for record_id in table.all_ids():
                if record_id in table.deleted and not include_deleted:
                    continue
                row = table.get(record_id)
                if row is not None:
                    out.append(render(row))
            return out

    def api_routes(self) -> list[Any]:
        from crmsync.sandbox.pipedrive.api import api_routes

        return api_routes(self)


def finite_number(value: Any, name: str) -> Decimal:
    """A number field as Pipedrive takes it: NaN and infinities are refused (400), as JSON cannot
    carry them and the real API answers a validation error."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return number
