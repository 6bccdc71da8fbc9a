"""Notes on Salesforce: the classic ``Note`` sObject (ParentId, Title ≤80, Body ≤32,000).

Note takes no custom fields, so the crmsync key cannot be an external id as it is for tasks and
deals. It travels as a marker at the end of the Title instead: ``<first line of the body> [crmsync:KEY]``
(a key too long for the Title is replaced by ``#`` + the first 24 hex digits of its SHA-256).
A create first reads the notes of the batch's parents (``SELECT Id, ParentId, Title FROM Note
WHERE ParentId IN (...)``, one query per 200 parents) and answers an existing marker with
``created=False``; the rest go out in ``POST composite/sobjects`` calls of 200. A note needs a
parent: canonical ``deal_id`` or ``lead_id`` (both become ParentId).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from crmsync.connectors.base import PushItem, PushResult
from crmsync.connectors.salesforce.host import NotesHost
from crmsync.connectors.salesforce.soql import soql

TITLE_MAX = 80
BODY_MAX = 32_000
BATCH = 200
NATIVE = {"body": "Body", "owner_id": "OwnerId", "title": "Title", "private": "IsPrivate"}
PARENTS = ("deal_id", "lead_id")


def note_marker(key: str) -> str:
    marker = f"[crmsync:{key}]"
    if len(marker) <= TITLE_MAX - 20:
        return marker
    return f"[crmsync:#{hashlib.sha256(key.encode()).hexdigest()[:24]}]"


def note_title(body: str, key: str | None, title: str | None = None) -> str:
    """``<title or first body line> [crmsync:KEY]`` cut to fit Salesforce's 80 characters."""
    marker = note_marker(key) if key else ""
    text = (title or next((line.strip() for line in body.splitlines() if line.strip()), "") or "crmsync note")
    room = TITLE_MAX - len(marker) - (1 if marker else 0)
    if len(text) > room:
        text = text[:max(0, room - 1)].rstrip() + "…"
    return f"{text} {marker}".strip() if marker else text


def note_record(item: PushItem) -> dict[str, Any]:
    """Canonical note fields -> a Note record (ValueError for what Salesforce would refuse)."""
    parents = [str(item.fields[k]) for k in PARENTS if item.fields.get(k) not in (None, "")]
    if len(parents) != 1:
        raise ValueError("a Salesforce note needs exactly one parent (deal_id or lead_id)")
    body = str(item.fields.get("body") or "")
    if len(body) > BODY_MAX:
        raise ValueError(f"note body longer than {BODY_MAX} characters")
    record: dict[str, Any] = {"ParentId": parents[0]}
    for key, value in item.fields.items():
        if key in PARENTS or key == "title":
            continue
        if key not in NATIVE:
            raise ValueError(f"notes: no Salesforce Note field for {key!r}")
        if value is not None:
            record[NATIVE[key]] = value
    record["Title"] = note_title(body, item.idempotency_key, item.fields.get("title"))
    return record


def push_notes(pusher: NotesHost, items: Sequence[PushItem], indexes: Sequence[int]) -> dict[int, PushResult]:
    out: dict[int, PushResult] = {}
    records: dict[int, dict[str, Any]] = {}
    for item, index in zip(items, indexes, strict=True):
        if item.operation not in ("create", "upsert"):
            out[index] = PushResult(item.ref, False, item.source_id, error=f"notes: {item.operation} is not supported")
            continue
        try:
            records[index] = note_record(item)
        except ValueError as exc:
            out[index] = PushResult(item.ref, False, item.source_id, error=str(exc))
    by_index = dict(zip(indexes, items, strict=True))
    existing = _existing(pusher, [records[i] for i in records if by_index[i].idempotency_key])
    to_create: list[int] = []
    for index, record in records.items():
        key = by_index[index].idempotency_key
        found = existing.get((record["ParentId"][:15], note_marker(key))) if key else None
        if found is not None:
            out[index] = PushResult(by_index[index].ref, True, found, created=False)
        else:
            to_create.append(index)
    for start in range(0, len(to_create), BATCH):
        chunk = to_create[start:start + BATCH]
        pusher.c.check_budget(push=True)
        body = {"allOrNone": False, "records": [{"attributes": {"type": "Note"}, **records[i]} for i in chunk]}
        answer = pusher.collection("POST", "composite/sobjects", body)
        out.update(pusher.results([by_index[i] for i in chunk], chunk, answer, created=True))
    return out


def _existing(pusher: NotesHost, records: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(15-char ParentId, marker) -> Note Id, for the notes of these parents that carry a marker."""
    parents = sorted({r["ParentId"] for r in records})
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(parents), BATCH):
        rows = pusher.c.query(soql("SELECT Id, ParentId, Title FROM Note WHERE ParentId IN {}",
                                   parents[start:start + BATCH]), include_deleted=False)
        for row in rows:
            marker = str(row.get("Title") or "").rsplit(" ", 1)[-1]
            if marker.startswith("[crmsync:") and marker.endswith("]"):
                found.setdefault((str(row["ParentId"])[:15], marker), str(row["Id"]))
    return found
