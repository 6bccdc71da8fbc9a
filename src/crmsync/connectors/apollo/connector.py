"""ApolloConnector: contacts, sequences (emailer campaigns), email accounts and sequence messages.

The engagement store speaks one vocabulary for every tool, so Apollo's objects are handed on under
the same names as Outreach's: ``mailboxes`` (email accounts), ``sequences`` (emailer campaigns),
``prospects`` (contacts, ``emails: [email]``), ``sequence_states`` (one per entry of a contact's
``contact_campaign_statuses``, id ``<contact id>:<campaign id>``), ``mailings`` (emailer messages).

Contacts (and their sequence states) are pulled incrementally: ``contacts/search`` sorted by
``contact_updated_at`` newest first, page by page down to the closed floor of the last pass (the
cursor rule: whole-second stamps, 2 s settle; a pass that read open stamps restarts at their floor).
Apollo pages by number only, so a contact deleted during a pass can shift one contact across a page
boundary; the floor is only raised when a pass ends, so an interrupted pass is read again whole.
The small lists (email accounts, sequences, messages) are read whole each pass.

Pushes (``sequence_states``), as for Outreach: ``create`` finds the contact by email (creates it
with ``run_dedupe``), answers the existing campaign status if the contact was ever in that sequence,
else calls ``add_contact_ids`` from the routed owner's email account; ``update`` ``finish`` / ``pause``
is ``remove_or_stop_contact_ids`` with ``mark_as_finished`` / ``stop``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from crmsync.connectors.base import (
    AuthError,
    BudgetExhausted,
    FatalError,
    PushItem,
    PushResult,
    Quarantined,
    Usage,
)
from crmsync.connectors.cursor import StampRule, lower, next_start, settle_seconds
from crmsync.connectors.engagement import EngagementPage, EngagementRecord, NativeShapes, push_sequence_states
from crmsync.connectors.exchange import send
from crmsync.connectors.json_http import error_text, json_object, rate_limited, refuse, seconds, with_retries
from crmsync.connectors.wire import encode_body
from crmsync.settings import ConnectionSettings

DEFAULT_BASE_URL = "https://api.apollo.io"
OBJECTS = ("mailboxes", "sequences", "prospects", "sequence_states", "mailings")
PER_PAGE = 100


class ApolloHttp:
    def __init__(self, base_url: str, api_key: str, *, verify: Any = True, timeout: float = 30.0,
                 max_attempts: int = 5, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, verify=verify,
                                   headers={"x-api-key": api_key, "accept": "application/json",
                                            "cache-control": "no-cache", "user-agent": "crmsync/0.1"})
        self.usage = Usage()
        self.max_attempts, self.max_wait_s, self._sleep = max_attempts, max_wait_s, sleep

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        return with_retries(lambda: self._once(method, path, params, body), attempts=self.max_attempts,
                            max_wait_s=self.max_wait_s, sleep=self._sleep)

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None) -> tuple[dict[str, Any], float]:
        where = f"{method} {path.split('?')[0]}"
        content = encode_body(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        response, read_at = send(self.client, method, path, where=where, params=params, content=content,
                                 headers=headers)
        self._observe(response)
        if response.status_code == 429:
            if self.usage.remaining is not None and self.usage.remaining <= 0:
                raise BudgetExhausted(f"{where}: daily request limit spent")
            rate_limited(where, seconds(response.headers.get("retry-after")), max_wait_s=self.max_wait_s)
        refuse(where, response, detail=lambda r: error_text(r, "error"), auth_hint="(the API key was refused)")
        return json_object(where, response), read_at

    def _observe(self, response: httpx.Response) -> None:
        h, usage = response.headers, self.usage
        usage.calls += 1
        usage.observed_at = dt.datetime.now(dt.UTC)
        usage.note_server_date(h.get("date"))
        for name, attr in (("x-rate-limit-daily", "limit"), ("x-daily-requests-left", "remaining"),
                           ("x-daily-usage", "used"), ("x-minute-requests-left", "burst_remaining")):
            raw = h.get(name)
            if raw is not None and raw.isdigit():
                setattr(usage, attr, int(raw))


def _epoch(text: Any) -> int:
    parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a timezone")
    return int(parsed.timestamp())


class ApolloConnector(NativeShapes):
    kind = "apollo"
    push_batch_size = 20

    def __init__(self, conn: ConnectionSettings, *, http: ApolloHttp | None = None) -> None:
        key = conn.secret("api_key")
        if http is None and not key:
            raise AuthError(f"connection {conn.name}: credentials.api_key is required")
        self.name = conn.name
        self.http = http or ApolloHttp(conn.base_url or DEFAULT_BASE_URL, str(key),
                                       verify=str(conn.ca_bundle) if conn.ca_bundle else True,
                                       max_wait_s=float(conn.options.get("max_wait_s", 60)))
        self.per_page = int(conn.options.get("per_page", PER_PAGE))
        self.stamp_rule = StampRule(unit_s=1.0, settle_s=settle_seconds(conn.options, 2.0))

    @property
    def usage(self) -> Usage:
        return self.http.usage

    def objects(self) -> Sequence[str]:
        return OBJECTS

    # --- reads ------------------------------------------------------------------------------------
    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[EngagementPage]:
        if object_name in ("prospects", "sequence_states"):
            yield from self._pull_contacts(object_name, dict(cursor or {}))
        elif object_name == "mailboxes":
            doc, _ = self.http.request("GET", "/api/v1/email_accounts")
            rows = [self._record("mailboxes", a["id"], a, {"email": a.get("email")}) for a in doc["email_accounts"]]
            yield EngagementPage(rows, {}, api_calls=1, done=True)
        elif object_name in ("sequences", "mailings"):
            yield from self._pull_list(object_name)
        else:
            raise FatalError(f"apollo: unknown object {object_name!r} (expected one of {', '.join(OBJECTS)})")

    def _record(self, object_name: str, rid: Any, raw: Mapping[str, Any], data: dict[str, Any]) -> EngagementRecord:
        at = raw.get("updated_at") or raw.get("created_at")
        modified = dt.datetime.fromtimestamp(_epoch(at), dt.UTC) if at else dt.datetime.now(dt.UTC)
        return EngagementRecord(self.name, object_name, str(rid), modified, {**dict(raw), **data})

    def _pull_list(self, object_name: str) -> Iterator[EngagementPage]:
        method, path, key = (("POST", "/api/v1/emailer_campaigns/search", "emailer_campaigns")
                             if object_name == "sequences" else ("GET", "/api/v1/emailer_messages/search",
                                                                 "emailer_messages"))
        page = 1
        while True:
            query = {"page": page, "per_page": self.per_page}
            doc, _ = (self.http.request(method, path, body=query) if method == "POST"
                      else self.http.request(method, path, params=query))
            rows = []
            for raw in doc.get(key) or []:
                extra = ({"name": raw.get("name")} if object_name == "sequences" else
                         {"prospectId": raw.get("contact_id"), "sequenceId": raw.get("emailer_campaign_id"),
                          "sequenceStateId": f"{raw.get('contact_id')}:{raw.get('emailer_campaign_id')}",
                          "repliedAt": raw.get("replied_at")})
                rows.append(self._record(object_name, raw["id"], raw, extra))
            pages = int((doc.get("pagination") or {}).get("total_pages") or 0)
            yield EngagementPage(rows, {}, api_calls=1, done=page >= pages)
            if page >= pages:
                return
            page += 1

    def _pull_contacts(self, object_name: str, state: dict[str, Any]) -> Iterator[EngagementPage]:
        """Newest first down to the floor; the floor moves up only when a pass ends."""
        floor = next_start(state.get("watermark"), state.get("open_floor"))
        seen = {str(k): int(v) for k, v in (state.get("seen") or {}).items()}
        page = int(state.get("page") or 1) if state.get("in_pass") else 1
        high = state.get("pass_high") if state.get("in_pass") else None
        open_floor = state.get("pass_open_floor") if state.get("in_pass") else None
        while True:
            doc, read_at = self.http.request("POST", "/api/v1/contacts/search", body={
                "sort_by_field": "contact_updated_at", "sort_ascending": False, "page": page,
                "per_page": self.per_page})
            rows: list[EngagementRecord] = []
            bad: list[Quarantined] = []
            reached_floor = False
            newest: int | None = None
            for raw in doc.get("contacts") or []:
                try:
                    at = _epoch(raw["updated_at"])
                except (KeyError, TypeError, ValueError) as exc:
                    bad.append(Quarantined("contact", str(raw.get("id")), dict(raw), f"updated_at: {exc}"))
                    continue
                if floor is not None and at < floor:
                    reached_floor = True
                    break
                newest = at if newest is None else max(newest, at)
                high = at if high is None else max(high, at)
                if seen.get(str(raw["id"])) == at:
                    continue
                if self.stamp_rule.remember(at, read_at):
                    seen[str(raw["id"])] = at
                rows.extend(self._contact_records(object_name, raw))
            open_floor = lower(open_floor, self.stamp_rule.reached_open(newest, read_at))
            pages = int((doc.get("pagination") or {}).get("total_pages") or 0)
            done = reached_floor or page >= pages
            if done:
                watermark = high if high is not None else state.get("watermark")
                keep = lower(next_start(watermark, open_floor), floor)
                cursor = {"watermark": watermark, "open_floor": open_floor, "in_pass": False,
                          "seen": {k: v for k, v in seen.items() if keep is None or v >= keep}}
            else:
                cursor = {**state, "in_pass": True, "page": page + 1, "pass_high": high,
                          "pass_open_floor": open_floor, "seen": seen}
            yield EngagementPage(rows, cursor, bad, api_calls=1, done=done)
            if done:
                return
            page += 1

    def _contact_records(self, object_name: str, raw: Mapping[str, Any]) -> list[EngagementRecord]:
        if object_name == "prospects":
            return [self._record("prospects", raw["id"], raw, {"emails": [raw["email"]] if raw.get("email") else []})]
        out = []
        for s in raw.get("contact_campaign_statuses") or []:
            sid = f"{raw['id']}:{s['emailer_campaign_id']}"
            out.append(self._record("sequence_states", sid, raw, {
                "prospectId": str(raw["id"]), "sequenceId": str(s["emailer_campaign_id"]),
                "mailboxId": s.get("send_email_from_email_account_id"), "state": s.get("status"),
                "repliedAt": s.get("finished_at") if s.get("inactive_reason") == "replied" else None,
                "contact_campaign_statuses": None}))
        return out

    def find_contact(self, email: str) -> dict[str, Any] | None:
        doc, _ = self.http.request("POST", "/api/v1/contacts/search", body={"q_keywords": email, "per_page": 25})
        return next((c for c in doc.get("contacts") or [] if str(c.get("email") or "").lower() == email.lower()),
                    None)

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        doc, _ = self.http.request("POST", "/api/v1/contacts/search", body={"per_page": 1})
        return int((doc.get("pagination") or {}).get("total_entries") or 0)

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        for page in self.pull("prospects", None):
            yield [r.source_id for r in page.records]

    # --- writes -----------------------------------------------------------------------------------
    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return push_sequence_states("apollo", items, self._enrol, self._stop)

    def _enrol(self, item: PushItem) -> PushResult:
        f = item.fields
        email = str(f.get("email") or "").strip()
        campaign, account = str(f.get("sequence_id") or ""), str(f.get("mailbox_id") or "")
        if not email or not campaign or not account:
            return PushResult(item.ref, False, error="enrolment needs email, sequence_id and mailbox_id")
        contact = self.find_contact(email)
        if contact is None:
            doc, _ = self.http.request("POST", "/api/v1/contacts", body={
                "first_name": f.get("first_name"), "last_name": f.get("last_name"), "email": email,
                "title": f.get("title"), "organization_name": f.get("company"), "run_dedupe": True})
            contact = doc["contact"]
        sid = f"{contact['id']}:{campaign}"
        if any(str(s.get("emailer_campaign_id")) == campaign for s in contact.get("contact_campaign_statuses") or []):
            return PushResult(item.ref, True, source_id=sid, created=False)
        doc, _ = self.http.request("POST", f"/api/v1/emailer_campaigns/{campaign}/add_contact_ids", body={
            "emailer_campaign_id": campaign, "contact_ids": [contact["id"]],
            "send_email_from_email_account_id": account, "sequence_active_in_other_campaigns": False})
        skipped = (doc.get("skipped_contact_ids") or {}).get(contact["id"])
        if skipped == "contacts_already_exists_in_current_campaign":
            return PushResult(item.ref, True, source_id=sid, created=False)
        if skipped:
            return PushResult(item.ref, False, error=f"apollo skipped the contact: {skipped}")
        return PushResult(item.ref, True, source_id=sid, created=True)

    def _stop(self, item: PushItem) -> PushResult:
        action = str(item.fields.get("action") or "")
        mode = {"finish": "mark_as_finished", "pause": "stop"}.get(action)
        contact, _, campaign = str(item.source_id or "").partition(":")
        if mode is None or not contact or not campaign:
            return PushResult(item.ref, False, error=f"apollo: cannot {action!r} sequence state {item.source_id!r}")
        self.http.request("POST", "/api/v1/emailer_campaigns/remove_or_stop_contact_ids", body={
            "emailer_campaign_ids": [campaign], "contact_ids": [contact], "mode": mode})
        return PushResult(item.ref, True, source_id=item.source_id)

    def close(self) -> None:
        self.http.close()
