"""The org's data and every write to it, validated the way Salesforce validates.

Both the REST API and the user handle (``SalesforceSimulator.create/edit/...``) go through
``OrgData``, so a human edit and an API write bump ``LastModifiedDate``/``SystemModstamp`` alike.
Failures raise ``WriteError`` carrying Salesforce's ``statusCode``/``errorCode`` and message.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal, InvalidOperation
from typing import Any

from crmsync.sandbox.clock import SimClock
from crmsync.sandbox.salesforce.evaluate import sf_datetime
from crmsync.sandbox.salesforce.ids import is_valid_id, make_id, to18
from crmsync.sandbox.salesforce.schema import NUMBER_TYPES, SObjectType, sobject
from crmsync.sandbox.salesforce.tables import Table
from crmsync.sandbox.salesforce.world_rows import (
    FORECAST,
    WorldRows,
    created_row,
    empty_tables,
    history_row,
    opportunity_history_row,
    user_id,
)
from crmsync.sandbox.world import STAGES, World

Row = dict[str, Any]
STAGE_BY_LABEL = {s.label.casefold(): s for s in STAGES}
# Built with the simulator; the large secondary tables (accounts, contacts, leads, line items, stage
# history) are loaded from the World on first use so a million-deal org starts quickly.
HISTORY_TRIGGERS = ("StageName", "Amount", "Probability", "CloseDate")  # what writes an OpportunityHistory row
EAGER = ("User", "Opportunity", "OpportunityStage", "Pricebook2", "Product2", "PricebookEntry", "Task", "Note")


class WriteError(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []
        self.http_status = http_status

    def as_item(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_rest(self) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            body["fields"] = self.fields
        return [body]


def not_found() -> WriteError:
    return WriteError("NOT_FOUND", "The requested resource does not exist", http_status=404)


class OrgData:
    def __init__(self, world: World, clock: SimClock | None = None) -> None:
        self.world = world
        self.clock = clock or SimClock()
        self.tables: dict[str, Table] = empty_tables()
        self._pending = WorldRows(world).loaders()
        self._load_lock = threading.Lock()
        for name in EAGER:
            self._pending.pop(name)(self.tables[name])
        self.api_user = user_id(1)
        self._clock_lock = threading.Lock()
        self._last_stamp = ""
        self._cascaded: dict[str, list[str]] = {}  # opportunity -> line items deleted with it

    # --- lookups --------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        sobj = sobject(name)
        if sobj is None:
            raise WriteError("NOT_FOUND", f"The requested resource does not exist: sObject type '{name}' "
                             "is not supported.", http_status=404)
        if sobj.name in self._pending:
            with self._load_lock:
                loader = self._pending.pop(sobj.name, None)
                if loader is not None:
                    loader(self.tables[sobj.name])
        return self.tables[sobj.name]

    def _record_created(self, row: Row, stamp: str, by: str) -> None:
        """A new opportunity: a "created" field-history row and the first OpportunityHistory row."""
        history = self.table("OpportunityFieldHistory")
        history.insert(created_row(make_id(history.sobj.prefix, history.next_number), row["Id"], stamp, by))
        history.next_number += 1
        self._record_snapshot(row, None, stamp, by)

    def _record_stage_change(self, opportunity_id: str, old: str | None, new: str, stamp: str, by: str) -> None:
        history = self.table("OpportunityFieldHistory")
        record_id = make_id(history.sobj.prefix, history.next_number)
        history.next_number += 1
        history.insert(history_row(record_id, opportunity_id, old, new, stamp, by))

    def _record_snapshot(self, row: Row, before: Row | None, stamp: str, by: str) -> None:
        """An OpportunityHistory row: the stage, amount, probability and close date after a change."""
        table = self.table("OpportunityHistory")
        record_id = make_id(table.sobj.prefix, table.next_number)
        table.next_number += 1
        table.insert(opportunity_history_row(
            record_id, row["Id"], row["StageName"], row.get("Amount"), row.get("CloseDate"), row.get("Probability"),
            row.get("ForecastCategoryName"), row.get("CurrencyIsoCode"), stamp, by,
            prev_amount=before.get("Amount") if before else None,
            prev_close=before.get("CloseDate") if before else None))

    def get_live(self, name: str, record_id: str) -> Row:
        table = self.table(name)
        if not is_valid_id(record_id):
            raise not_found()
        row = table.get(to18(record_id))
        if row is None:
            raise not_found()
        if row.get("IsDeleted"):
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted", http_status=404)
        return row

    def now_stamp(self) -> str:
        with self._clock_lock:
            # whole seconds: Salesforce keeps SystemModstamp/LastModifiedDate to the second (the
            # milliseconds are always .000), so records written in one second tie on it
            stamp = sf_datetime(self.clock.now().replace(microsecond=0))
            self._last_stamp = max(stamp, self._last_stamp)
            return self._last_stamp

    # --- validation -----------------------------------------------------------------------
    def clean(self, sobj: SObjectType, values: dict[str, Any], *, insert: bool) -> Row:
        out: Row = {}
        for key, value in values.items():
            if key == "attributes":
                continue
            name = sobj.resolve(key)
            if name is None:
                raise WriteError("INVALID_FIELD", f"No such column '{key}' on sobject of type {sobj.name}", [key])
            if not sobj.writable(name):
                raise WriteError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                 f"Unable to create/update fields: {name}. Please check the security settings "
                                 "of this field and verify that it is read/write for your profile or "
                                 "permission set.", [name])
            out[name] = _coerce_value(sobj, name, value)
            limit = sobj.max_lengths.get(name)
            if limit is not None and isinstance(out[name], str) and len(out[name]) > limit:
                raise WriteError("STRING_TOO_LONG", f"{name}: data value too large: {out[name][:40]}... "
                                 f"(max length={limit})", [name])
        if insert:
            missing = [f for f in sobj.required if out.get(f) in (None, "")]
            if missing:
                raise WriteError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                 missing)
        else:
            empty = [f for f in sobj.required if f in out and out[f] in (None, "")]
            if empty:
                raise WriteError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(empty)}]",
                                 empty)
        if sobj.name == "Opportunity" and out.get("StageName") is not None \
                and str(out["StageName"]).casefold() not in STAGE_BY_LABEL:
            raise WriteError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                             f"Stage: bad value for restricted picklist field: {out['StageName']}", ["StageName"])
        return out

    # --- writes ---------------------------------------------------------------------------
    def create(self, name: str, values: dict[str, Any], *, stamp: str | None = None,
               by: str | None = None) -> str:
        table = self.table(name)
        sobj = table.sobj
        fields = self.clean(sobj, values, insert=True)
        stamp = stamp or self.now_stamp()
        record_id = make_id(sobj.prefix, table.next_number)
        table.next_number += 1
        who = by or self.api_user
        row: Row = {f: None for f in sobj.fields}
        row.update({"Id": record_id, "IsDeleted": False, "CreatedDate": stamp, "CreatedById": who,
                    "LastModifiedDate": stamp, "LastModifiedById": who, "SystemModstamp": stamp})
        if "OwnerId" in sobj.fields:
            row["OwnerId"] = who
        row.update(fields)
        _derive(sobj, row, fields, stamp, created=True)
        table.insert(row)
        if sobj.name == "Opportunity":
            self._record_created(row, stamp, who)
        return record_id

    def update(self, name: str, record_id: str, values: dict[str, Any], *, stamp: str | None = None,
               by: str | None = None, if_unmodified_since: dt.datetime | None = None) -> None:
        table = self.table(name)
        row = self.get_live(name, record_id)
        fields = self.clean(table.sobj, values, insert=False)
        if if_unmodified_since is not None:
            last = dt.datetime.strptime(row["LastModifiedDate"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
            if last > if_unmodified_since:
                raise WriteError("PRECONDITION_FAILED", "The requested resource has been modified since "
                                 f"{if_unmodified_since:%a, %d %b %Y %H:%M:%S GMT}", http_status=412)
        self._apply(table, row, fields, stamp or self.now_stamp(), by or self.api_user)

    def _apply(self, table: Table, row: Row, fields: Row, stamp: str, by: str) -> None:
        before = dict(row)
        row.update(fields)
        _derive(table.sobj, row, fields, stamp, created=False)
        if table.sobj.name == "Opportunity":
            if row["StageName"] != before["StageName"]:
                self._record_stage_change(row["Id"], before["StageName"], row["StageName"], stamp, by)
            if any(row.get(f) != before.get(f) for f in HISTORY_TRIGGERS):
                self._record_snapshot(row, before, stamp, by)
        row["LastModifiedDate"] = stamp
        row["LastModifiedById"] = by
        table.reindex(row["Id"], before, stamp)
        row["SystemModstamp"] = stamp
        table.update_ext(row["Id"], before, row)

    def upsert(self, name: str, ext_field: str, value: str, values: dict[str, Any], *,
               update_only: bool = False) -> tuple[str, bool]:
        table = self.table(name)
        field = table.sobj.resolve(ext_field)
        if field is None or (field not in table.sobj.external_ids and field != "Id"):
            raise WriteError("NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                             f"{ext_field}", http_status=404)
        body = {k: v for k, v in values.items() if (table.sobj.resolve(k) or k) != field}
        if field == "Id":
            matches = [to18(value)] if value and is_valid_id(value) and table.get(to18(value)) else []
        else:
            matches = [m for m in table.find_external(field, value) if not (table.get(m) or {}).get("IsDeleted")]
        if len(matches) > 1:
            raise WriteError("MULTIPLE_RECORDS", f"More than one record found for external id field {field}",
                             http_status=300)
        if matches:
            self.update(name, matches[0], body)
            return matches[0], False
        if update_only:
            raise not_found()
        return self.create(name, {**body, field: value}), True

    def delete(self, name: str, record_id: str, *, hard: bool = False, stamp: str | None = None) -> None:
        table = self.table(name)
        if not is_valid_id(record_id):
            raise not_found()
        record_id = to18(record_id)
        row = table.get(record_id)
        if row is None or (row.get("IsDeleted") and not hard):
            raise WriteError("ENTITY_IS_DELETED", "entity is deleted", http_status=404) if row else not_found()
        stamp = stamp or self.now_stamp()
        if table.sobj.name == "Opportunity":
            # master-detail: the products go with their opportunity (to the recycle bin, or for good)
            for child in self._line_items_of(record_id):
                child_row = self.tables["OpportunityLineItem"].get(child)
                if child_row is not None and (hard or not child_row.get("IsDeleted")):
                    if not child_row.get("IsDeleted"):
                        self._cascaded.setdefault(record_id, []).append(child)
                    self.delete("OpportunityLineItem", child, hard=hard, stamp=stamp)
            if hard:
                self._cascaded.pop(record_id, None)
        if not row.get("IsDeleted"):
            table.deleted_log.append((record_id, stamp))
        if hard or "IsDeleted" not in table.sobj.fields or not table.sobj.replicable:
            table.remove(record_id)
            return
        before = dict(row)
        row["IsDeleted"] = True
        row["LastModifiedDate"] = stamp
        table.reindex(record_id, before, stamp)
        row["SystemModstamp"] = stamp

    def undelete(self, name: str, record_id: str) -> None:
        """``undelete()``: a record from the recycle bin is live again. Its SystemModstamp (and
        LastModifiedDate) move to now, and getDeleted no longer lists it."""
        table = self.table(name)
        if not is_valid_id(record_id):
            raise not_found()
        record_id = to18(record_id)
        row = table.get(record_id)
        if row is None:
            raise not_found()  # hard-deleted (purged from the recycle bin): gone for good
        if not row.get("IsDeleted"):
            raise WriteError("UNDELETE_FAILED", "Entity is not in the recycle bin")
        stamp = self.now_stamp()
        before = dict(row)
        row["IsDeleted"] = False
        row["LastModifiedDate"] = stamp
        table.reindex(record_id, before, stamp)
        row["SystemModstamp"] = stamp
        table.deleted_log[:] = [entry for entry in table.deleted_log if entry[0] != record_id]
        for child in self._cascaded.pop(record_id, []):  # the products deleted with it come back
            child_row = self.tables["OpportunityLineItem"].get(child)
            if child_row is not None and child_row.get("IsDeleted"):
                self.undelete("OpportunityLineItem", child)

    def _line_items_of(self, opportunity_id: str) -> list[str]:
        """Ids of an opportunity's line items, live or in the recycle bin, without building the
        rows not built yet (a world row's source is its (deal, position))."""
        items = self.table("OpportunityLineItem")
        found = []
        for item_id, row in list(items.rows.items()):
            parent = row.get("OpportunityId") if type(row) is dict else make_id("006", row[0].id)
            if parent == opportunity_id:
                found.append(item_id)
        return sorted(found)

    def merge(self, name: str, winner_id: str, loser_id: str) -> None:
        table = self.table(name)
        winner = self.get_live(name, winner_id)
        loser = self.get_live(name, loser_id)
        stamp = self.now_stamp()
        fill = {k: v for k, v in loser.items() if winner.get(k) is None and v is not None
                and table.sobj.writable(k) and k not in ("MasterRecordId",)}
        self._apply(table, winner, fill, stamp, self.api_user)
        self.delete(name, loser["Id"], stamp=stamp)
        loser["MasterRecordId"] = winner["Id"]


def _derive(sobj: SObjectType, row: Row, fields: Row, stamp: str, *, created: bool) -> None:
    """Formula-like fields Salesforce computes itself."""
    if sobj.name == "Opportunity":
        if "StageName" in fields:
            stage = STAGE_BY_LABEL[str(row["StageName"]).casefold()]
            row["StageName"] = stage.label
            row.update(IsClosed=stage.is_closed, IsWon=stage.is_won, ForecastCategoryName=FORECAST[stage.key])
            if "Probability" not in fields:
                row["Probability"] = stage.probability * 100
            row["LastStageChangeDate"] = stamp
        if "CloseDate" in fields and row.get("CloseDate"):
            close = dt.date.fromisoformat(row["CloseDate"])
            row["FiscalYear"] = Decimal(close.year)
            row["FiscalQuarter"] = Decimal((close.month - 1) // 3 + 1)
    if sobj.name in ("Lead", "Contact", "User") and ({"FirstName", "LastName"} & fields.keys()):
        row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
    if sobj.name == "Task":
        row["IsClosed"] = row.get("Status") == "Completed"
    if sobj.name == "OpportunityLineItem":
        qty, price, disc = row.get("Quantity"), row.get("UnitPrice"), row.get("Discount") or Decimal(0)
        if qty is not None and price is not None:
            row["TotalPrice"] = (qty * price * (1 - disc / 100)).quantize(Decimal("0.01"))


def _coerce_value(sobj: SObjectType, name: str, value: Any) -> Any:
    ftype = sobj.fields[name]
    if value is None:
        return None
    try:
        if ftype in NUMBER_TYPES:
            if isinstance(value, bool):
                raise ValueError
            return Decimal(str(value))
        if ftype == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if ftype == "date":
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        if ftype == "datetime":
            text = str(value).replace("Z", "+00:00")
            if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
                text = text[:-2] + ":" + text[-2:]
            parsed = dt.datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                raise ValueError
            return sf_datetime(parsed)
        if ftype in ("ref", "id"):
            text = str(value)
            if not text:
                return None
            if not is_valid_id(text):
                raise WriteError("MALFORMED_ID", f"{name}: id value of incorrect type: {text}", [name])
            return to18(text)
        if isinstance(value, dict | list):
            raise ValueError
        return str(value)
    except (ValueError, InvalidOperation) as exc:
        raise WriteError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                         f"{name}: value not of required type: {str(value)[:80]}", [name]) from exc


__all__ = ["OrgData", "WriteError", "not_found"]
