"""The World in Pipedrive's shapes: native rows (times as epoch ints) and their wire rendering."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from crmsync.sandbox.pipedrive.cursor import to_rfc3339
from crmsync.sandbox.pipedrive.fields import DEAL_CUSTOM_FIELDS, DEAL_KEY_BY_NAME, ORG_KEY_BY_NAME
from crmsync.sandbox.world import PRODUCTS, STAGES, WDeal, WLineItem, World, WOwner, crm_list_price

Row = dict[str, Any]
TIME_FIELDS = frozenset({"add_time", "update_time", "stage_change_time", "close_time", "won_time", "lost_time",
                         "archive_time", "marked_as_done_time"})
PIPELINE_ID = 1
DAY = 86_400
BILLING_FREQUENCY = {"ANNUAL": "annually", "MONTHLY": "monthly", "QUARTERLY": "quarterly",
                     "SEMIANNUAL": "semi-annually"}


def epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def status_of_stage(stage_index: int) -> str:
    stage = STAGES[stage_index]
    return "won" if stage.is_won else "lost" if stage.is_closed else "open"


def deal_row(deal: WDeal, lost_reason: str | None = None) -> Row:
    stage = STAGES[deal.stage]
    status = status_of_stage(deal.stage)
    changed = epoch(deal.stage_changed_at)
    custom: dict[str, Any] = {DEAL_KEY_BY_NAME[name]: value
                              for name, value in zip(DEAL_CUSTOM_FIELDS, deal.custom, strict=True)}
    custom[DEAL_KEY_BY_NAME["lead_source"]] = deal.lead_source
    custom[DEAL_KEY_BY_NAME["deal_type"]] = deal.deal_type
    custom[DEAL_KEY_BY_NAME["contract_start"]] = deal.contract_start.isoformat() if deal.contract_start else None
    custom[DEAL_KEY_BY_NAME["contract_end"]] = deal.contract_end.isoformat() if deal.contract_end else None
    custom[DEAL_KEY_BY_NAME["handoff_done"]] = "true" if deal.handoff_done else "false"
    for name in ("crmsync_key", "crmsync_score", "crmsync_grade"):
        custom[DEAL_KEY_BY_NAME[name]] = None
    return {
        "id": deal.id, "title": deal.name, "creator_user_id": deal.owner_id, "owner_id": deal.owner_id,
        "person_id": deal.contact_id, "org_id": deal.account_id, "pipeline_id": PIPELINE_ID,
        "stage_id": deal.stage + 1, "value": deal.amount, "currency": deal.currency,
        "add_time": epoch(deal.created_at), "update_time": epoch(deal.modified_at), "stage_change_time": changed,
        "is_deleted": False, "is_archived": False, "archive_time": None, "status": status,
        "probability": int(stage.probability * 100), "lost_reason": (lost_reason or "Price") if status == "lost" else None,
        "visible_to": 3, "close_time": changed if stage.is_closed else None,
        "won_time": changed if status == "won" else None, "lost_time": changed if status == "lost" else None,
        "expected_close_date": deal.close_date.isoformat(), "label_ids": [], "origin": "API",
        "origin_id": None, "channel": None, "channel_id": None, "custom_fields": custom,
    }


def org_times(world: World, org_id: int) -> tuple[int, int]:
    now = epoch(world.now)
    add = now - (200 + org_id % 300) * DAY - (org_id * 7_919) % DAY
    return add, min(now, add + (org_id * 37 % 150) * DAY)


def org_row(world: World, org_id: int) -> Row:
    account = world.accounts[org_id - 1]
    add, update = org_times(world, org_id)
    return {
        "id": account.id, "name": account.name, "owner_id": account.owner_id, "add_time": add, "update_time": update,
        "address": {"value": account.country, "country": account.country},
        "is_deleted": False, "visible_to": 3, "label_ids": [],
        "custom_fields": {ORG_KEY_BY_NAME["domain"]: account.domain, ORG_KEY_BY_NAME["industry"]: account.industry,
                          ORG_KEY_BY_NAME["region"]: account.region, ORG_KEY_BY_NAME["segment"]: account.segment,
                          ORG_KEY_BY_NAME["employees"]: account.employees},
    }


def person_times(world: World, person_id: int) -> tuple[int, int]:
    now = epoch(world.now)
    add = now - (150 + person_id % 250) * DAY - (person_id * 104_729) % DAY
    return add, min(now, add + (person_id * 13 % 120) * DAY)


def person_row(world: World, contact_index: dict[int, int], person_id: int) -> Row:
    contact = world.contacts[contact_index[person_id]]
    add, update = person_times(world, person_id)
    owner = world.accounts[contact.account_id - 1].owner_id
    return {
        "id": contact.id, "name": f"{contact.first_name} {contact.last_name}", "first_name": contact.first_name,
        "last_name": contact.last_name, "owner_id": owner, "org_id": contact.account_id,
        "add_time": add, "update_time": update,
        "emails": [{"value": contact.email, "primary": True, "label": "work"}], "phones": [],
        "is_deleted": False, "visible_to": 3, "label_ids": [], "custom_fields": {}, "job_title": contact.title,
    }


def product_row(world: World, product_id: int) -> Row:
    product = PRODUCTS[product_id - 1]
    at = epoch(world.now) - 720 * DAY
    return {
        "id": product_id, "name": product.name, "code": product.code, "description": product.name,
        "unit": product.unit, "tax": 0, "category": product.family, "is_linkable": True, "is_deleted": False,
        "visible_to": 3, "owner_id": 1, "add_time": at, "update_time": at, "billing_frequency": "monthly",
        "billing_frequency_cycles": None,
        "prices": [{"product_id": product_id, "price": crm_list_price(product), "currency": "EUR",
                    "cost": 0, "direct_cost": 0, "notes": ""}],
        "custom_fields": {},
    }


def deal_product_row(deal: WDeal, item: WLineItem, position: int) -> Row:
    at = epoch(deal.created_at)
    months = 12 if item.billing_period == "ANNUAL" else 1
    return {
        "id": item.id, "deal_id": deal.id, "product_id": PRODUCTS.index(item.product) + 1,
        "product_variation_id": None, "name": item.product.name, "order_nr": position, "quantity": item.quantity,
        "item_price": item.unit_price, "sum": item.total, "discount": item.discount_percent,
        "discount_type": "percentage", "tax": 0, "tax_method": "none", "currency": deal.currency,
        "is_enabled": True, "billing_frequency": BILLING_FREQUENCY.get(item.billing_period, "annually"),
        "billing_frequency_cycles": max(1, item.term_months // months),
        "billing_start_date": deal.contract_start.isoformat() if deal.contract_start else None,
        "comments": "", "add_time": at, "update_time": at,
    }


def stage_rows(world: World) -> list[Row]:
    at = epoch(world.now) - 900 * DAY
    return [{"id": s.order + 1, "order_nr": s.order, "name": s.label, "is_deleted": False,
             "deal_probability": int(s.probability * 100), "pipeline_id": PIPELINE_ID,
             "is_deal_rot_enabled": not s.is_closed, "days_to_rotten": None if s.is_closed else 30,
             "add_time": at, "update_time": at} for s in STAGES]


def pipeline_rows(world: World) -> list[Row]:
    at = epoch(world.now) - 900 * DAY
    return [{"id": PIPELINE_ID, "name": "Sales", "order_nr": 0, "is_deleted": False,
             "is_deal_probability_enabled": True, "add_time": at, "update_time": at}]


def v1_time(value: dt.datetime | int | None) -> str | None:
    """v1 timestamps: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if value is None:
        return None
    moment = dt.datetime.fromtimestamp(value, dt.UTC) if isinstance(value, int) else value.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def user_row(world: World, owner: WOwner) -> Row:
    created = world.now - dt.timedelta(days=1000 - owner.id)
    return {
        "id": owner.id, "name": f"{owner.first_name} {owner.last_name}", "email": owner.email,
        "default_currency": "EUR", "locale": "en_US", "lang": 1, "phone": None,
        "activated": owner.active, "last_login": v1_time(world.now - dt.timedelta(days=owner.id % 9)),
        "created": v1_time(created), "modified": v1_time(created + dt.timedelta(days=30)),
        "has_created_company": owner.id == 1, "access": [{"app": "sales", "admin": owner.role == "manager",
                                                         "permission_set_id": "1"}],
        "active_flag": owner.active, "timezone_name": owner.timezone,
        "timezone_offset": "+00:00", "role_id": 1 if owner.role == "manager" else 2,
        "icon_url": None, "is_you": owner.id == 1, "is_deleted": False,
    }


INT64_MAX = 2**63 - 1


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():  # never stored (writes refuse them); a JSON answer cannot carry one
            return None
        if value == value.to_integral_value() and abs(value) <= INT64_MAX:
            return int(value)
        return value  # written exactly as a JSON number from its own digits
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def render(row: Row, *, custom_keys: set[str] | None = None) -> Row:
    """Wire form of a native row: RFC3339 ``Z`` times, numbers for Decimals, no private keys."""
    out: Row = {}
    for key, value in row.items():
        if key.startswith("_"):
            continue
        if key in TIME_FIELDS and isinstance(value, int):
            out[key] = to_rfc3339(value)
        elif key == "custom_fields" and custom_keys is not None and isinstance(value, dict):
            out[key] = {k: _json_value(v) for k, v in value.items() if k in custom_keys}
        else:
            out[key] = _json_value(value)
    return out
