"""Custom fields as Pipedrive keeps them: 40-hex-char keys inside ``custom_fields``.

The keys are derived from the field name (sha1), so they are stable across runs and look like
Pipedrive's generated hashes. ``deal_fields()`` is the ``/v1/dealFields`` listing (standard
fields first, then the custom ones) a client uses to map key -> name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from crmsync.sandbox.world import DEAL_CUSTOM_FIELDS


@dataclass(frozen=True, slots=True)
class CustomField:
    name: str
    field_type: str  # Pipedrive field types: varchar, text, date, double, ...

    @property
    def key(self) -> str:
        return field_key("deal", self.name)


def field_key(entity: str, name: str) -> str:
    return hashlib.sha1(f"crmsync-sandbox:{entity}:{name}".encode()).hexdigest()


DEAL_CUSTOM: tuple[CustomField, ...] = (
    *(CustomField(name, "varchar") for name in DEAL_CUSTOM_FIELDS),
    CustomField("lead_source", "varchar"),
    CustomField("deal_type", "varchar"),
    CustomField("contract_start", "date"),
    CustomField("contract_end", "date"),
    CustomField("handoff_done", "varchar"),
    CustomField("crmsync_key", "varchar"),
    # written by crmsync's example scoring rules (an admin creates them once per company)
    CustomField("crmsync_score", "double"),
    CustomField("crmsync_grade", "varchar"),
)
DEAL_KEY_BY_NAME: dict[str, str] = {f.name: f.key for f in DEAL_CUSTOM}
DEAL_NAME_BY_KEY: dict[str, str] = {f.key: f.name for f in DEAL_CUSTOM}

ORG_CUSTOM: tuple[CustomField, ...] = tuple(
    CustomField(name, ftype) for name, ftype in (("domain", "varchar"), ("industry", "varchar"), ("region", "varchar"),
                                                 ("segment", "varchar"), ("employees", "double")))
ORG_KEY_BY_NAME: dict[str, str] = {f.name: field_key("organization", f.name) for f in ORG_CUSTOM}

_STANDARD_DEAL_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "ID", "double"), ("title", "Title", "varchar"), ("creator_user_id", "Creator", "user"),
    ("owner_id", "Owner", "user"), ("value", "Value", "monetary"), ("currency", "Currency", "varchar"),
    ("person_id", "Contact person", "people"), ("org_id", "Organization", "org"),
    ("pipeline_id", "Pipeline", "double"), ("stage_id", "Stage", "enum"), ("status", "Status", "enum"),
    ("probability", "Probability", "double"), ("add_time", "Deal created", "date"),
    ("update_time", "Update time", "date"), ("stage_change_time", "Last stage change", "date"),
    ("close_time", "Deal closed on", "date"), ("won_time", "Won time", "date"),
    ("lost_time", "Lost time", "date"), ("lost_reason", "Lost reason", "varchar"),
    ("expected_close_date", "Expected close date", "date"), ("visible_to", "Visible to", "visible_to"),
    ("label_ids", "Label", "set"),
)

ACTIVITY_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "ID", "double"), ("subject", "Subject", "varchar"), ("type", "Type", "varchar"),
    ("owner_id", "Assigned to user", "user"), ("deal_id", "Deal", "double"), ("person_id", "Contact person", "people"),
    ("org_id", "Organization", "org"), ("due_date", "Due date", "date"), ("due_time", "Due time", "time"),
    ("duration", "Duration", "time"), ("done", "Done", "enum"), ("note", "Note", "text"),
    ("add_time", "Add time", "date"), ("update_time", "Update time", "date"),
)


def _field(n: int, key: str, name: str, field_type: str, *, custom: bool) -> dict[str, Any]:
    return {
        "id": n, "key": key, "name": name, "order_nr": n, "field_type": field_type,
        "add_time": "2020-01-01T00:00:00Z", "update_time": "2020-01-01T00:00:00Z",  # date-time per the v1 spec
        "last_updated_by_user_id": 1, "created_by_user_id": 1, "active_flag": True, "edit_flag": custom,
        "index_visible_flag": True, "details_visible_flag": True, "add_visible_flag": True,
        "important_flag": False, "bulk_edit_allowed": True, "searchable_flag": custom,
        "filtering_allowed": True, "sortable_flag": True, "mandatory_flag": key == "title",
    }


def deal_fields() -> list[dict[str, Any]]:
    out = [_field(n, key, name, ftype, custom=False) for n, (key, name, ftype) in enumerate(_STANDARD_DEAL_FIELDS, 1)]
    base = len(out)
    out += [_field(base + n, f.key, f.name, f.field_type, custom=True) for n, f in enumerate(DEAL_CUSTOM, 1)]
    return out


def organization_fields() -> list[dict[str, Any]]:
    return [_field(n, ORG_KEY_BY_NAME[f.name], f.name, f.field_type, custom=True) for n, f in enumerate(ORG_CUSTOM, 1)]


def activity_fields() -> list[dict[str, Any]]:
    return [_field(n, key, name, ftype, custom=False) for n, (key, name, ftype) in enumerate(ACTIVITY_FIELDS, 1)]
