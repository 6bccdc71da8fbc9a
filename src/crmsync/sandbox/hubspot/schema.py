"""HubSpot's object types and property definitions, and how written values are checked.

Every property value on the wire is a string (or null). Datetime properties are ISO
``YYYY-MM-DDTHH:MM:SS.sssZ``; date properties ``YYYY-MM-DD``; both accept epoch milliseconds on
write. A bad value raises ``PropertyError`` with HubSpot's error code, which the routes turn into
a 400 (single writes) or an item in a 207's ``errors`` (batches).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from crmsync.sandbox.world import DEAL_CUSTOM_FIELDS, STAGES

UTC = dt.UTC

# object name -> (objectTypeId, singular used in v3 association type names)
OBJECT_TYPES: dict[str, tuple[str, str]] = {
    "contacts": ("0-1", "contact"),
    "companies": ("0-2", "company"),
    "deals": ("0-3", "deal"),
    "products": ("0-7", "product"),
    "line_items": ("0-8", "line_item"),
    "tasks": ("0-27", "task"),
    "notes": ("0-46", "note"),
}
TYPE_IDS = {type_id: name for name, (type_id, _) in OBJECT_TYPES.items()}
SINGULAR_NAMES = {singular: name for name, (_, singular) in OBJECT_TYPES.items()}


def object_name(segment: str) -> str | None:
    """``deals``, ``0-3``, ``deal`` -> ``deals``; None for an object type the sandbox lacks."""
    if segment in OBJECT_TYPES:
        return segment
    if segment in TYPE_IDS:
        return TYPE_IDS[segment]
    return SINGULAR_NAMES.get(segment.lower())


class PropertyError(ValueError):
    def __init__(self, code: str, message: str, property_name: str) -> None:
        super().__init__(message)
        self.code = code
        self.property_name = property_name


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    type: str  # string | number | datetime | date | bool | enumeration
    read_only: bool = False
    options: tuple[str, ...] = ()
    unique: bool = False


def _props(*specs: Prop) -> dict[str, Prop]:
    return {p.name: p for p in specs}


_COMMON = (
    Prop("hs_object_id", "number", read_only=True),
    Prop("createdate", "datetime", read_only=True),
    Prop("hs_lastmodifieddate", "datetime", read_only=True),
    Prop("hubspot_owner_id", "enumeration"),
)
MEDDIC = ("metrics", "economic_buyer", "decision_criteria", "decision_process", "identified_pain", "champion")


def deal_custom_property(field: str) -> str:
    """World custom field -> HubSpot property (the MEDDIC ones carry a ``meddic_`` prefix)."""
    return f"meddic_{field}" if field in MEDDIC else field


PROPERTIES: dict[str, dict[str, Prop]] = {
    "deals": _props(
        *_COMMON,
        Prop("dealname", "string"),
        Prop("amount", "number"),
        Prop("dealstage", "enumeration", options=tuple(s.key for s in STAGES)),
        Prop("pipeline", "enumeration", options=("default",)),
        Prop("closedate", "datetime"),
        Prop("deal_currency_code", "string"),
        Prop("dealtype", "string"),
        Prop("lead_source", "string"),
        Prop("hs_deal_stage_probability", "number", read_only=True),
        Prop("hs_is_closed", "bool", read_only=True),
        Prop("hs_is_closed_won", "bool", read_only=True),
        Prop("hs_v2_date_entered_current_stage", "datetime", read_only=True),
        *(Prop(f"hs_v2_date_{edge}_{s.key}", "datetime", read_only=True) for s in STAGES
          for edge in ("entered", "exited")),
        Prop("closed_lost_reason", "string"),
        Prop("competitor", "string"),
        Prop("notes_last_updated", "datetime"),
        Prop("hs_merged_object_ids", "string", read_only=True),
        Prop("contract_start", "date"),
        Prop("contract_end", "date"),
        Prop("handoff_done", "bool"),
        Prop("crmsync_key", "string", unique=True),
        # custom properties crmsync's example scoring rules write (created once per portal)
        Prop("crmsync_score", "number"),
        Prop("crmsync_grade", "string"),
        *(Prop(deal_custom_property(f), "bool" if f == "discount_approved" else
               "enumeration" if f == "billing_period" else "string",
               options=("MONTHLY", "QUARTERLY", "SEMIANNUAL", "ANNUAL") if f == "billing_period" else ())
          for f in DEAL_CUSTOM_FIELDS),
    ),
    "companies": _props(
        *_COMMON,
        Prop("name", "string"), Prop("domain", "string"), Prop("industry", "string"), Prop("country", "string"),
        Prop("sales_region", "string"), Prop("segment", "string"), Prop("numberofemployees", "number"),
        Prop("annualrevenue", "number"), Prop("hs_merged_object_ids", "string", read_only=True),
    ),
    "contacts": _props(
        *_COMMON,
        Prop("lastmodifieddate", "datetime", read_only=True),
        Prop("firstname", "string"), Prop("lastname", "string"), Prop("email", "string", unique=True),
        Prop("jobtitle", "string"), Prop("associatedcompanyid", "number"),
        Prop("hs_merged_object_ids", "string", read_only=True),
    ),
    "products": _props(
        *_COMMON,
        Prop("name", "string"), Prop("hs_sku", "string"), Prop("description", "string"),
        Prop("price", "number"), Prop("product_family", "string"),
        Prop("recurringbillingfrequency", "enumeration",
             options=("monthly", "quarterly", "per_six_months", "annually")),
        Prop("hs_recurring_billing_period", "string"), Prop("hs_product_active", "bool"),
    ),
    "line_items": _props(
        *_COMMON,
        Prop("name", "string"), Prop("hs_product_id", "number"), Prop("hs_sku", "string"),
        Prop("quantity", "number"), Prop("price", "number"), Prop("list_price", "number"),
        Prop("hs_discount_percentage", "number"), Prop("discount", "number"), Prop("amount", "number"),
        Prop("hs_line_item_currency_code", "string"),
        Prop("recurringbillingfrequency", "enumeration",
             options=("monthly", "quarterly", "per_six_months", "annually")),
        Prop("hs_recurring_billing_period", "string"), Prop("hs_term_in_months", "number"),
        Prop("hs_recurring_billing_start_date", "date"),
    ),
    "tasks": _props(
        *_COMMON,
        Prop("hs_task_subject", "string"), Prop("hs_task_body", "string"),
        Prop("hs_task_status", "enumeration", options=("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED",
                                                        "DEFERRED")),
        Prop("hs_task_priority", "enumeration", options=("LOW", "MEDIUM", "HIGH")),
        Prop("hs_task_type", "enumeration", options=("CALL", "EMAIL", "TODO")),
        Prop("hs_timestamp", "datetime"), Prop("crmsync_key", "string", unique=True),
    ),
    "notes": _props(
        *_COMMON,
        Prop("hs_note_body", "string"), Prop("hs_timestamp", "datetime"),
        Prop("crmsync_key", "string", unique=True),
    ),
}

# What a list/get/search answers when the request names no properties (HubSpot's defaults).
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "products": ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
    "line_items": ("amount", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_product_id", "name",
                   "price", "quantity"),
    "tasks": ("createdate", "hs_lastmodifieddate", "hs_object_id", "hs_task_subject", "hs_timestamp"),
    "notes": ("createdate", "hs_lastmodifieddate", "hs_object_id", "hs_note_body", "hs_timestamp"),
}
# Search always adds these to whatever was asked for.
SEARCH_ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
MODIFIED_PROPERTIES = frozenset({"hs_lastmodifieddate", "lastmodifieddate"})


def iso_ms(ms: int) -> str:
    """Epoch ms -> ``2024-03-31T12:00:00.000Z``."""
    seconds, millis = divmod(ms, 1000)
    return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def to_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000) if value.microsecond == 0 else round(value.timestamp() * 1000)


def parse_ms(value: str) -> int:
    """Epoch ms string, ISO datetime or ISO date -> epoch ms (ValueError otherwise)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return to_ms(dt.datetime(day.year, day.month, day.day, tzinfo=UTC))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("naive datetime")
    return to_ms(parsed)


def normalise(object_name: str, name: str, value: object) -> str | None:
    """Check one written value; return the string HubSpot stores (None clears the property)."""
    prop = PROPERTIES[object_name].get(name)
    if prop is None:
        raise PropertyError("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist', name)
    if prop.read_only:
        raise PropertyError("READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.', name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise PropertyError("INVALID_OPTION", f"{value!r} is not a valid value for {name}", name)
    try:
        if prop.type == "number":
            number = Decimal(text)
            if not number.is_finite():
                raise InvalidOperation
            return text
        if prop.type == "datetime":
            return iso_ms(parse_ms(text))
        if prop.type == "date":
            ms = parse_ms(text)
            if ms % 86_400_000:
                raise ValueError("not midnight UTC")
            return iso_ms(ms)[:10]
        if prop.type == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower()
    except (InvalidOperation, ValueError):
        raise PropertyError("INVALID_" + ("INTEGER" if prop.type == "number" else prop.type.upper()),
                            f"{text!r} was not a valid {prop.type} for property {name}", name) from None
    if prop.options and text not in prop.options:
        raise PropertyError("INVALID_OPTION",
                            f"{text} was not one of the allowed options: [{', '.join(prop.options)}]", name)
    if name == "hubspot_owner_id" and not text.isdigit():
        raise PropertyError("INVALID_OWNER_ID", f"{text} is not a valid owner id", name)
    return text
