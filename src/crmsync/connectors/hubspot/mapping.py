"""HubSpot field tables: native properties (flattened out of ``properties``) -> canonical records.

Every property not named here lands in ``record.extra`` (MEDDIC and handoff properties, the
``crmsync_key``...). Deals' ``account_id``/``contact_ids`` and line items' ``deal_id`` come from
associations, which the connector fills in after mapping.
"""

from __future__ import annotations

from typing import Any

from crmsync.connectors.converters import as_bool, as_date, as_decimal, as_id, as_int, as_timestamp
from crmsync.connectors.mapping import FieldMap, ObjectMapping
from crmsync.model import ModelError, ObjectType

ENVELOPE = frozenset({"createdAt", "updatedAt", "archived", "archivedAt", "hs_object_id", "objectWriteTraceId",
                      "createdate"})
FREQUENCIES = {"monthly": "MONTHLY", "quarterly": "QUARTERLY", "per_six_months": "SEMIANNUAL",
               "annually": "ANNUAL", "one_time": "ONE_TIME"}


def as_period(value: Any, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return FREQUENCIES[str(value)]
    except KeyError:
        raise ModelError(f"{name}: {value!r} is not a billing frequency") from None


def as_task_done(value: Any, name: str) -> bool | None:
    return None if value in (None, "") else str(value) == "COMPLETED"


DEALS = ObjectMapping(
    "deals", ObjectType.DEAL, "deals", "id", "hs_lastmodifieddate",
    (
        FieldMap("dealname", "name"),
        FieldMap("amount", "amount", as_decimal),
        FieldMap("deal_currency_code", "currency"),
        FieldMap("pipeline", "pipeline_id", as_id),
        FieldMap("dealstage", "stage_id", as_id),
        FieldMap("hs_deal_stage_probability", "probability", as_decimal),
        FieldMap("hs_is_closed", "is_closed", as_bool),
        FieldMap("hs_is_closed_won", "is_won", as_bool),
        FieldMap("closedate", "close_date", as_date),
        FieldMap("hubspot_owner_id", "owner_id", as_id),
        FieldMap("dealtype", "deal_type"),
        FieldMap("lead_source", "lead_source"),
        FieldMap("hs_v2_date_entered_current_stage", "stage_changed_at", as_timestamp),
        FieldMap("notes_last_updated", "last_activity_at", as_timestamp),
        FieldMap("contract_start", "contract_start", as_date),
        FieldMap("contract_end", "contract_end", as_date),
    ),
    created_field="createdate", ignore=ENVELOPE,
)
ACCOUNTS = ObjectMapping(
    "accounts", ObjectType.ACCOUNT, "companies", "id", "hs_lastmodifieddate",
    (
        FieldMap("name", "name"), FieldMap("domain", "domain"), FieldMap("industry", "industry"),
        FieldMap("country", "country"), FieldMap("sales_region", "region"), FieldMap("segment", "segment"),
        FieldMap("numberofemployees", "employees", as_int), FieldMap("annualrevenue", "annual_revenue", as_decimal),
        FieldMap("hubspot_owner_id", "owner_id", as_id),
    ),
    created_field="createdate", ignore=ENVELOPE,
)
CONTACTS = ObjectMapping(
    "contacts", ObjectType.CONTACT, "contacts", "id", "lastmodifieddate",
    (
        FieldMap("firstname", "first_name"), FieldMap("lastname", "last_name"), FieldMap("email", "email"),
        FieldMap("jobtitle", "title"), FieldMap("associatedcompanyid", "account_id", as_id),
        FieldMap("hubspot_owner_id", "owner_id", as_id),
    ),
    created_field="createdate", ignore=ENVELOPE | {"hs_lastmodifieddate"},
)
LINE_ITEMS = ObjectMapping(
    "line_items", ObjectType.LINE_ITEM, "line_items", "id", "hs_lastmodifieddate",
    (
        FieldMap("name", "name"), FieldMap("hs_product_id", "product_id", as_id),
        FieldMap("hs_sku", "product_code"), FieldMap("quantity", "quantity", as_decimal),
        FieldMap("price", "unit_price", as_decimal), FieldMap("list_price", "list_price", as_decimal),
        FieldMap("hs_discount_percentage", "discount_percent", as_decimal),
        FieldMap("discount", "discount_amount", as_decimal), FieldMap("amount", "total", as_decimal),
        FieldMap("hs_line_item_currency_code", "currency"),
        FieldMap("recurringbillingfrequency", "billing_period", as_period),
        FieldMap("hs_term_in_months", "term_months", as_int),
        FieldMap("hs_recurring_billing_start_date", "service_date", as_date),
    ),
    created_field="createdate", ignore=ENVELOPE,
)
PRODUCTS = ObjectMapping(
    "products", ObjectType.PRODUCT, "products", "id", "hs_lastmodifieddate",
    (
        FieldMap("name", "name"), FieldMap("hs_sku", "code"), FieldMap("product_family", "family"),
        FieldMap("price", "unit_price", as_decimal), FieldMap("hs_product_active", "active", as_bool),
        FieldMap("recurringbillingfrequency", "billing_period", as_period),
    ),
    created_field="createdate", ignore=ENVELOPE,
)
TASKS = ObjectMapping(
    "tasks", ObjectType.TASK, "tasks", "id", "hs_lastmodifieddate",
    (
        FieldMap("hs_task_subject", "subject"), FieldMap("hubspot_owner_id", "owner_id", as_id),
        FieldMap("hs_timestamp", "due_date", as_date), FieldMap("hs_task_status", "done", as_task_done),
        FieldMap("crmsync_key", "crmsync_key"),
    ),
    created_field="createdate", ignore=ENVELOPE,
)
OWNERS = ObjectMapping(
    "owners", ObjectType.OWNER, "owners", "id", "updatedAt",
    (FieldMap("name", "name"), FieldMap("email", "email"), FieldMap("active", "active", as_bool),
     FieldMap("team", "team")),
    created_field="createdAt", ignore=frozenset({"firstName", "lastName", "archived", "createdAt"}),
)
PIPELINES = ObjectMapping(
    "pipelines", ObjectType.PIPELINE, "pipelines", "id", "updatedAt",
    (FieldMap("label", "name"), FieldMap("displayOrder", "display_order", as_int)),
    created_field="createdAt", ignore=frozenset({"stages", "archived", "createdAt"}),
)
STAGES = ObjectMapping(
    "stages", ObjectType.STAGE, "pipeline_stages", "id", "updatedAt",
    (
        FieldMap("label", "name"), FieldMap("pipelineId", "pipeline_id", as_id),
        FieldMap("displayOrder", "display_order", as_int),
        FieldMap("metadata.probability", "probability", as_decimal),
        FieldMap("metadata.isClosed", "is_closed", as_bool), FieldMap("isWon", "is_won", as_bool),
    ),
    created_field="createdAt", ignore=frozenset({"archived", "createdAt"}),
)

MAPPINGS: dict[str, ObjectMapping] = {m.object_name: m for m in (DEALS, ACCOUNTS, CONTACTS, LINE_ITEMS, PRODUCTS,
                                                                  TASKS, OWNERS, PIPELINES, STAGES)}
# Properties asked for on top of the mapped ones, so they reach ``extra``.
EXTRA_PROPERTIES: dict[str, tuple[str, ...]] = {
    "deals": ("meddic_metrics", "meddic_economic_buyer", "meddic_decision_criteria", "meddic_decision_process",
              "meddic_identified_pain", "meddic_champion", "use_case", "success_criteria",
              "technical_requirements", "billing_period", "discount_approved", "handoff_done", "crmsync_key",
              "hs_merged_object_ids"),
    "accounts": ("hs_merged_object_ids",),
    "contacts": ("hs_merged_object_ids",),
}


def flatten(obj: dict[str, Any]) -> dict[str, Any]:
    """A v3 object -> one dict: its properties plus id, createdAt, updatedAt, archived(At)."""
    raw: dict[str, Any] = dict(obj.get("properties") or {})
    for key in ("id", "createdAt", "updatedAt", "archived", "archivedAt"):
        if key in obj:
            raw[key] = obj[key]
    return raw


def flatten_owner(owner: dict[str, Any]) -> dict[str, Any]:
    raw = dict(owner)
    names = [owner.get("firstName"), owner.get("lastName")]
    raw["name"] = " ".join(n for n in names if n) or None
    raw["active"] = not owner.get("archived", False)
    teams = owner.get("teams") or []
    primary = next((t for t in teams if t.get("primary")), teams[0] if teams else None)
    raw["team"] = primary.get("name") if primary else None
    return raw


def flatten_stage(stage: dict[str, Any], pipeline_id: str) -> dict[str, Any]:
    raw = dict(stage)
    raw["pipelineId"] = pipeline_id
    meta = stage.get("metadata") or {}
    raw["isWon"] = str(meta.get("isClosed")) == "true" and str(meta.get("probability")) in ("1", "1.0")
    return raw
