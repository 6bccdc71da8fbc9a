"""OutreachConnector: prospects, accounts, sequences, sequence states, mailboxes and engagement
events (mailings, calls) from Outreach API v2, and enrolments pushed idempotently.

Pulls are incremental passes of ``filter[updatedAt]=<since>..inf`` with ``sort=updatedAt`` that follow
``links.next`` (Outreach's cursor paging), checkpointed after every page with the one cursor rule
(``connectors.cursor`` through the shared ``Checkpoint``: whole-second stamps, settle 2 s).

Pushes (``sequence_states``):

- ``create`` enrols a person: it finds the prospect by email (``filter[emails]``), creates it if
  missing, then looks up a sequence state of that prospect in that sequence and creates one only
  if there is none (``prospect``, ``sequence`` and ``mailbox`` relationships). A push repeated after a
  crash between the CRM's answer and the outbox's booking therefore finds the first state and
  answers with it: exactly one sequence state per person and sequence.
- ``update`` with ``action`` (``pause``, ``resume``, ``finish``) calls ``/sequenceStates/{id}/actions/...``;
  finishing a finished state is a success.

I/O only: no database, no rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crmsync.connectors.base import (
    FatalError,
    PushItem,
    PushResult,
    Quarantined,
    Usage,
)
from crmsync.connectors.cursor import StampRule, settle_seconds
from crmsync.connectors.engagement import EngagementPage, EngagementRecord, NativeShapes, push_sequence_states
from crmsync.connectors.outreach.http import DEFAULT_BASE_URL, NotFoundError, OutreachHttp, ValidationError
from crmsync.connectors.pipedrive.incremental import Checkpoint
from crmsync.settings import ConnectionSettings

#: connector object name -> API path segment
OBJECTS = {
    "users": "users", "mailboxes": "mailboxes", "sequences": "sequences", "accounts": "accounts",
    "prospects": "prospects", "sequence_states": "sequenceStates", "mailings": "mailings", "calls": "calls",
}
DEFAULT_PAGE_SIZE = 100  # page[size]: Outreach allows up to 1,000
SETTLE_S = 2.0


class OutreachConnector(NativeShapes):
    kind = "outreach"
    push_batch_size = 20

    def __init__(self, conn: ConnectionSettings, *, http: OutreachHttp | None = None) -> None:
        self.name = conn.name
        verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
        self.http = http or OutreachHttp(
            conn.base_url or DEFAULT_BASE_URL, access_token=conn.secret("access_token"),
            client_id=conn.secret("client_id"), client_secret=conn.secret("client_secret"),
            refresh_token=conn.secret("refresh_token"), verify=verify,
            timeout=float(conn.options.get("timeout_s", 30)), max_wait_s=float(conn.options.get("max_wait_s", 60)))
        self.page_size = int(conn.options.get("page_size", DEFAULT_PAGE_SIZE))
        self.stamp_rule = StampRule(unit_s=1.0, settle_s=settle_seconds(conn.options, SETTLE_S))

    @property
    def usage(self) -> Usage:
        return self.http.usage

    def objects(self) -> Sequence[str]:
        return tuple(OBJECTS)

    # --- reads ------------------------------------------------------------------------------------
    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[EngagementPage]:
        if object_name not in OBJECTS:
            raise FatalError(f"outreach: unknown object {object_name!r} (expected one of {', '.join(OBJECTS)})")
        checkpoint = Checkpoint.from_dict(dict(cursor) if cursor else None)
        start, next_url = checkpoint.begin(int(since.timestamp()) if since else None)
        while True:
            if next_url:
                doc, read_at = self.http.request("GET", next_url)
            else:
                params: dict[str, Any] = {"page[size]": self.page_size, "sort": "updatedAt", "count": "false"}
                low = _iso(start) if start is not None else "neginf"
                high = _iso(int(until.timestamp())) if until else "inf"
                params["filter[updatedAt]"] = f"{low}..{high}"
                doc, read_at = self.http.request("GET", "/api/v2/" + OBJECTS[object_name], params=params)
            records: list[EngagementRecord] = []
            bad: list[Quarantined] = []
            newest: int | None = None
            for raw in doc.get("data") or []:
                try:
                    record = flatten(self.name, object_name, raw)
                except (KeyError, TypeError, ValueError) as exc:
                    bad.append(Quarantined(object_name, str(raw.get("id") if isinstance(raw, dict) else ""),
                                           raw if isinstance(raw, dict) else {}, f"malformed resource: {exc}"))
                    continue
                at = int(record.modified_at.timestamp())
                newest = at if newest is None else max(newest, at)
                if checkpoint.accept(int(record.source_id), at, read_at, self.stamp_rule):
                    records.append(record)
            checkpoint.page_read(newest, read_at, self.stamp_rule)
            next_url = (doc.get("links") or {}).get("next")
            checkpoint.page_done(next_url)
            yield EngagementPage(records, checkpoint.to_dict(), bad, api_calls=1, done=next_url is None)
            if not next_url:
                return

    def get(self, object_name: str, source_id: str) -> EngagementRecord | None:
        try:
            doc, _ = self.http.request("GET", f"/api/v2/{OBJECTS[object_name]}/{int(source_id)}")
        except NotFoundError:
            return None
        return flatten(self.name, object_name, doc["data"])

    def find(self, object_name: str, filters: Mapping[str, Any]) -> list[EngagementRecord]:
        """Every resource matching ``filters`` (``{"emails": x}``, ``{"prospect": 5}`` -> ``[id]``)."""
        params: dict[str, Any] = {"page[size]": self.page_size, "count": "false", "sort": "id"}
        for key, value in filters.items():
            params[f"filter[{key}][id]" if isinstance(value, int) else f"filter[{key}]"] = str(value)
        out: list[EngagementRecord] = []
        url: str | None = None
        while True:
            doc, _ = (self.http.request("GET", url) if url
                      else self.http.request("GET", "/api/v2/" + OBJECTS[object_name], params=params))
            out.extend(flatten(self.name, object_name, raw) for raw in doc.get("data") or [])
            url = (doc.get("links") or {}).get("next")
            if not url:
                return out

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        doc, _ = self.http.request("GET", "/api/v2/" + OBJECTS[object_name], params={"page[size]": 1})
        return int((doc.get("meta") or {}).get("count") or 0)

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        url: str | None = None
        params = {"page[size]": 1000, "sort": "id", "count": "false"}
        while True:
            doc, _ = (self.http.request("GET", url) if url
                      else self.http.request("GET", "/api/v2/" + OBJECTS[object_name], params=params))
            yield [str(raw["id"]) for raw in doc.get("data") or []]
            url = (doc.get("links") or {}).get("next")
            if not url:
                return

    # --- writes -----------------------------------------------------------------------------------
    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return push_sequence_states("outreach", items, self._enrol, self._act)

    def _enrol(self, item: PushItem) -> PushResult:
        f = item.fields
        email = str(f.get("email") or "").strip()
        if not email:
            return PushResult(item.ref, False, error="enrolment without an email address")
        try:
            sequence_id, mailbox_id = int(f["sequence_id"]), int(f["mailbox_id"])
        except (KeyError, TypeError, ValueError):
            return PushResult(item.ref, False, error="enrolment needs sequence_id and mailbox_id")
        prospects = self.find("prospects", {"emails": email})
        fresh = not prospects  # a prospect created just now is in no sequence: no state to look up
        if prospects:
            prospect_id = int(prospects[0].source_id)
        else:
            attributes = {"emails": [email], "firstName": f.get("first_name"), "lastName": f.get("last_name"),
                          "title": f.get("title"), "company": f.get("company"),
                          "tags": ["crmsync"], "externalSource": f.get("crm_ref")}
            doc, _ = self.http.request("POST", "/api/v2/prospects", body={"data": {
                "type": "prospect", "attributes": {k: v for k, v in attributes.items() if v is not None}}})
            prospect_id = int(doc["data"]["id"])
        existing = [] if fresh else self.find("sequence_states", {"prospect": prospect_id, "sequence": sequence_id})
        if existing:
            return PushResult(item.ref, True, source_id=existing[0].source_id, created=False)
        try:
            doc, _ = self.http.request("POST", "/api/v2/sequenceStates", body={"data": {
                "type": "sequenceState", "relationships": {
                    "prospect": {"data": {"type": "prospect", "id": prospect_id}},
                    "sequence": {"data": {"type": "sequence", "id": sequence_id}},
                    "mailbox": {"data": {"type": "mailbox", "id": mailbox_id}}}}})
        except ValidationError as exc:
            # e.g. "already active in this sequence" raced in by another client: look again
            again = self.find("sequence_states", {"prospect": prospect_id, "sequence": sequence_id})
            if again:
                return PushResult(item.ref, True, source_id=again[0].source_id, created=False)
            return PushResult(item.ref, False, error=str(exc))
        return PushResult(item.ref, True, source_id=str(doc["data"]["id"]), created=True)

    def _act(self, item: PushItem) -> PushResult:
        action = str(item.fields.get("action") or "")
        if action not in ("pause", "resume", "finish") or not item.source_id:
            return PushResult(item.ref, False, error=f"unknown sequence-state action {action!r}")
        try:
            self.http.request("POST", f"/api/v2/sequenceStates/{int(item.source_id)}/actions/{action}", body={})
        except NotFoundError:
            return PushResult(item.ref, False, error=f"sequence state {item.source_id} does not exist")
        except ValidationError as exc:
            current = self.get("sequence_states", item.source_id)
            if current is not None and current.data.get("state") == "finished":
                return PushResult(item.ref, True, source_id=item.source_id)  # already out: nothing left to do
            return PushResult(item.ref, False, error=str(exc))
        return PushResult(item.ref, True, source_id=item.source_id)

    def close(self) -> None:
        self.http.close()


def flatten(connection: str, object_name: str, raw: Mapping[str, Any]) -> EngagementRecord:
    """A JSON:API resource object as one flat dict: attributes plus ``<relationship>Id``."""
    attributes = dict(raw["attributes"])
    data: dict[str, Any] = {**attributes}
    for name, rel in (raw.get("relationships") or {}).items():
        target = rel.get("data") if isinstance(rel, dict) else None
        if isinstance(target, dict):
            data[f"{name}Id"] = str(target["id"])
        elif target is None and isinstance(rel, dict) and "data" in rel:
            data[f"{name}Id"] = None
    modified = dt.datetime.fromisoformat(str(attributes["updatedAt"]).replace("Z", "+00:00"))
    if modified.tzinfo is None:
        raise ValueError("updatedAt without a timezone")
    return EngagementRecord(connection, object_name, str(int(raw["id"])), modified.astimezone(dt.UTC), data)


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
