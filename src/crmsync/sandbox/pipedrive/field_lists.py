"""``GET /v1/personFields``, ``/v1/productFields``, ``/v1/noteFields``: the field listings of the items
the sandbox keeps, in the shape of ``/v1/dealFields`` (``fields._field``).

Pipedrive's v1 spec (``openapi-v1.yml``: "Returns data about all person fields", "... product fields",
"... note fields"; 20 tokens each; ``start``/``limit`` on persons and products) gives the shape, not a
company's list: the entries here are the columns the sandbox serves for each item (standard fields,
not editable), under their v1 keys. Singer's tap-pipedrive reads all three while it discovers.
"""

from __future__ import annotations

from typing import Any

from crmsync.sandbox.pipedrive.fields import _field

PERSON_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "ID", "double"), ("name", "Name", "varchar"), ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"), ("owner_id", "Owner", "user"), ("org_id", "Organization", "org"),
    ("email", "Email", "varchar"), ("phone", "Phone", "phone"), ("job_title", "Job title", "varchar"),
    ("label_ids", "Labels", "set"), ("add_time", "Person created", "date"), ("update_time", "Update time", "date"),
    ("visible_to", "Visible to", "enum"),
)
PRODUCT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "ID", "double"), ("name", "Name", "varchar"), ("code", "Product code", "varchar"),
    ("description", "Description", "text"), ("unit", "Unit", "varchar"), ("tax", "Tax", "double"),
    ("category", "Category", "enum"), ("owner_id", "Owner", "user"), ("prices", "Unit prices", "double"),
    ("billing_frequency", "Billing frequency", "enum"), ("add_time", "Add time", "date"),
    ("update_time", "Update time", "date"), ("visible_to", "Visible to", "enum"),
)
NOTE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("id", "ID", "double"), ("content", "Content", "text"), ("deal_id", "Deal", "double"),
    ("person_id", "Person", "people"), ("org_id", "Organization", "org"), ("user_id", "User", "user"),
    ("add_time", "Add time", "date"), ("update_time", "Update time", "date"),
)


def listing(fields: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
    return [_field(n, key, name, ftype, custom=False) for n, (key, name, ftype) in enumerate(fields, 1)]


def person_fields() -> list[dict[str, Any]]:
    return listing(PERSON_FIELDS)


def product_fields() -> list[dict[str, Any]]:
    return listing(PRODUCT_FIELDS)


def note_fields() -> list[dict[str, Any]]:
    return listing(NOTE_FIELDS)
