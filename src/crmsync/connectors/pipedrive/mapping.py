"""Field tables: Pipedrive's native records (API v2, v1 users) to canonical records.

Custom fields arrive as 40-hex keys inside ``custom_fields``; ``flatten`` replaces them with the
names from ``/v1/dealFields`` (or ``organizationFields``) before mapping, so mappings and
``extra`` use readable names. v1 timestamps (``YYYY-MM-DD HH:MM:SS``, UTC) become RFC3339 first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from crmsync.connectors.converters import (
    as_bool,
    as_date,
    as_decimal,
    as_id,
    as_int,
    as_percent,
    as_str,
    as_timestamp,
)
from crmsync.connectors.mapping import FieldMap, ObjectMapping
from crmsync.connectors.mapping_code import MAX_LAYOUTS, RowFunction
from crmsync.model import ObjectType, Record

KEY_MARKER = re.compile(r"\[crmsync:([A-Za-z0-9_.:-]{1,120})\]")
_V1_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
BILLING_PERIODS = {"monthly": "MONTHLY", "quarterly": "QUARTERLY", "semi-annually": "SEMIANNUAL",
                   "annually": "ANNUAL", "one-time": "ONE_TIME"}


def _is_closed(value: Any, name: str) -> bool:
    return value in ("won", "lost")


def _is_won(value: Any, name: str) -> bool:
    return value == "won"


def _id_list(value: Any, name: str) -> list[str]:
    single = as_id(value, name)
    return [single] if single else []


def _billing_period(value: Any, name: str) -> str | None:
    text = as_str(value, name)
    return BILLING_PERIODS.get(text, text.upper()) if text else None


def _raw(value: Any, name: str) -> Any:
    return value


def _not(value: Any, name: str) -> bool:
    return not bool(as_bool(value, name))


DEALS = ObjectMapping(
    object_name="deals", object_type=ObjectType.DEAL, source_object="deals", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("title", "name"), FieldMap("value", "amount", as_decimal), FieldMap("currency", "currency"),
        FieldMap("pipeline_id", "pipeline_id", as_id), FieldMap("stage_id", "stage_id", as_id),
        FieldMap("probability", "probability", as_percent), FieldMap("status", "is_closed", _is_closed),
        FieldMap("status", "is_won", _is_won), FieldMap("status", "extra.status"),
        FieldMap("expected_close_date", "close_date", as_date), FieldMap("owner_id", "owner_id", as_id),
        FieldMap("org_id", "account_id", as_id), FieldMap("person_id", "contact_ids", _id_list),
        FieldMap("stage_change_time", "stage_changed_at", as_timestamp),
        FieldMap("deal_type", "deal_type"), FieldMap("lead_source", "lead_source"),
        FieldMap("contract_start", "contract_start", as_date), FieldMap("contract_end", "contract_end", as_date),
    ),
)

ORGANIZATIONS = ObjectMapping(
    object_name="accounts", object_type=ObjectType.ACCOUNT, source_object="organizations", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("name", "name"), FieldMap("owner_id", "owner_id", as_id), FieldMap("address.country", "country"),
        FieldMap("address", "extra.address", _raw), FieldMap("domain", "domain"), FieldMap("industry", "industry"),
        FieldMap("region", "region"), FieldMap("segment", "segment"), FieldMap("employees", "employees", as_int),
    ),
)

PERSONS = ObjectMapping(
    object_name="contacts", object_type=ObjectType.CONTACT, source_object="persons", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("first_name", "first_name"), FieldMap("last_name", "last_name"),
        FieldMap("primary_email", "email"), FieldMap("job_title", "title"),
        FieldMap("org_id", "account_id", as_id), FieldMap("owner_id", "owner_id", as_id),
    ),
)

USERS = ObjectMapping(
    object_name="owners", object_type=ObjectType.OWNER, source_object="users", id_field="id",
    modified_field="modified", created_field="created", deleted_field="is_deleted",
    fields=(
        FieldMap("name", "name"), FieldMap("email", "email"), FieldMap("active_flag", "active", as_bool),
        FieldMap("timezone_name", "timezone"),
    ),
)

PIPELINES = ObjectMapping(
    object_name="pipelines", object_type=ObjectType.PIPELINE, source_object="pipelines", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(FieldMap("name", "name"), FieldMap("order_nr", "display_order", as_int)),
)

STAGES = ObjectMapping(
    object_name="stages", object_type=ObjectType.STAGE, source_object="stages", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("name", "name"), FieldMap("pipeline_id", "pipeline_id", as_id),
        FieldMap("order_nr", "display_order", as_int), FieldMap("deal_probability", "probability", as_percent),
    ),
)

PRODUCTS = ObjectMapping(
    object_name="products", object_type=ObjectType.PRODUCT, source_object="products", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("name", "name"), FieldMap("code", "code"), FieldMap("category", "family"),
        FieldMap("is_deleted", "active", _not), FieldMap("unit_price", "unit_price", as_decimal),
        FieldMap("unit_currency", "currency"), FieldMap("billing_frequency", "billing_period", _billing_period),
    ),
)

DEAL_PRODUCTS = ObjectMapping(
    object_name="line_items", object_type=ObjectType.LINE_ITEM, source_object="deal_products", id_field="id",
    modified_field="update_time", created_field="add_time",
    fields=(
        FieldMap("deal_id", "deal_id", as_id), FieldMap("product_id", "product_id", as_id), FieldMap("name", "name"),
        FieldMap("quantity", "quantity", as_decimal), FieldMap("item_price", "unit_price", as_decimal),
        FieldMap("discount_percent", "discount_percent", as_decimal),
        FieldMap("discount_amount", "discount_amount", as_decimal), FieldMap("sum", "total", as_decimal),
        FieldMap("currency", "currency"), FieldMap("billing_frequency", "billing_period", _billing_period),
        FieldMap("billing_start_date", "service_date", as_date),
    ),
)

ACTIVITIES = ObjectMapping(
    object_name="tasks", object_type=ObjectType.TASK, source_object="activities", id_field="id",
    modified_field="update_time", created_field="add_time", deleted_field="is_deleted",
    fields=(
        FieldMap("subject", "subject"), FieldMap("owner_id", "owner_id", as_id), FieldMap("deal_id", "deal_id", as_id),
        FieldMap("due_date", "due_date", as_date), FieldMap("done", "done", as_bool),
        FieldMap("crmsync_key", "crmsync_key"),
    ),
)

MAPPINGS: dict[str, ObjectMapping] = {m.object_name: m for m in (
    DEALS, ORGANIZATIONS, PERSONS, USERS, PIPELINES, STAGES, PRODUCTS, DEAL_PRODUCTS, ACTIVITIES)}


def v1_time(value: Any) -> Any:
    """v1's ``2024-01-02 03:04:05`` (UTC by Pipedrive's docs) to ``2024-01-02T03:04:05Z``."""
    if isinstance(value, str) and _V1_TIME.match(value):
        return value.replace(" ", "T") + "Z"
    return value


def flatten(raw: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Lift ``custom_fields`` to top-level keys named by the field listing (unknown keys stay hashes)."""
    out = dict(raw)
    custom = out.pop("custom_fields", None)
    if isinstance(custom, Mapping):
        for key, value in custom.items():
            name = names.get(key, key)
            out[name if name not in out else key] = value
    return out


def _owner(row: dict[str, Any]) -> None:
    for key in ("created", "modified", "last_login"):
        row[key] = v1_time(row.get(key))
    if not row.get("modified"):
        row["modified"] = row.get("created")


def _contact(row: dict[str, Any]) -> None:
    emails = row.get("emails") or []
    primary = next((e for e in emails if isinstance(e, Mapping) and e.get("primary")), None)
    row["primary_email"] = (primary or (emails[0] if emails else {})).get("value") if emails else None


def _product(row: dict[str, Any]) -> None:
    prices = row.get("prices") or []
    first = prices[0] if prices and isinstance(prices[0], Mapping) else {}
    row["unit_price"], row["unit_currency"] = first.get("price"), first.get("currency")


def _line_item(row: dict[str, Any]) -> None:
    discount = row.get("discount")
    percentage = row.get("discount_type") in (None, "percentage")
    row["discount_percent"] = discount if percentage else None
    row["discount_amount"] = None if percentage else discount


def _task(row: dict[str, Any]) -> None:
    match = KEY_MARKER.search(str(row.get("note") or ""))
    row["crmsync_key"] = match.group(1) if match else None


#: per-object reshaping after ``flatten`` (the other objects are ``flatten`` alone)
RESHAPE: dict[str, Callable[[dict[str, Any]], None]] = {
    "owners": _owner, "contacts": _contact, "products": _product, "line_items": _line_item, "tasks": _task}


def prepare(object_name: str, raw: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Per-object reshaping before the table applies (still native names, never canonical ones)."""
    row = flatten(raw, names)
    reshape = RESHAPE.get(object_name)
    if reshape is not None:
        reshape(row)
    return row


class Reader:
    """``mapping.to_record(connection, prepare(object_name, raw, names))`` for one object.

    For an object whose preparation is ``flatten`` alone (deals, organizations, pipelines, stages)
    it makes no flattened copy: per row layout (the row's keys and its ``custom_fields`` keys) the
    mapping generates a function reading each value where ``flatten`` would have put it, the layout
    being worked out by ``flatten`` itself on the key names, so renamed custom fields and name
    collisions (the hash key stays) come out as before. Other rows take ``prepare``."""

    def __init__(self, object_name: str, mapping: ObjectMapping, names: Mapping[str, str]) -> None:
        self.object_name = object_name
        self.mapping = mapping
        self.names = names
        self._by_layout: dict[Any, RowFunction | None] = {}
        self._flat_only = object_name not in RESHAPE

    def to_record(self, connection: str, raw: Mapping[str, Any]) -> Record:
        if self._flat_only:
            custom = raw.get("custom_fields")
            if custom is None or type(custom) is dict:
                key = (tuple(raw), None if custom is None else tuple(custom))
                fn = self._by_layout.get(key, _UNSEEN)
                if fn is _UNSEEN:
                    fn = self._function(key)
                if fn is not None:
                    return fn(connection, raw, custom)
        return self.mapping.to_record(connection, prepare(self.object_name, raw, self.names))

    def _function(self, key: tuple[tuple[str, ...], tuple[str, ...] | None]) -> RowFunction | None:
        if len(self._by_layout) >= MAX_LAYOUTS:
            return None
        raw_keys, custom_keys = key
        marks: dict[str, Any] = {k: (0, k) for k in raw_keys}
        if custom_keys is not None:
            marks["custom_fields"] = {k: (1, k) for k in custom_keys}
        fn = self.mapping.compiled.for_layout(tuple(flatten(marks, self.names).items()))
        self._by_layout[key] = fn
        return fn


_UNSEEN: Any = object()


def key_marker(key: str) -> str:
    if not KEY_MARKER.fullmatch(f"[crmsync:{key}]"):
        raise ValueError("idempotency key must be 1-120 characters of A-Z a-z 0-9 _ . : -")
    return f"[crmsync:{key}]"
