"""Call and engagement signals per deal and lead: pure, built from stored calls and CRM records.

Rules read them as ``signals.<name>`` fields (scoring points, hygiene conditions), the handoff
note lists ``highlights`` and ``stakeholders_met``. A call is matched to deals by the CRM objects
the call system linked it to (Gong context: the Opportunity id) when those ids are this
connection's; otherwise by its external participants' emails: contact -> account -> the account's
deals open at the time of the call. A lead is matched by its email.

``EngagementSummary`` is the per-person input engagement sources fill (sales engagement tools:
opens, replies; calls: meetings held); ``engagement_from_calls`` fills it from calls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from crmsync.activity import Call
from crmsync.model import Contact, Deal, Lead

COMPETITOR_TRACKERS = ("Competitors", "Competition", "Competitor")
PRICING_TRACKERS = ("Pricing", "Price")
NEXT_STEP_SECTIONS = ("Next steps", "Next Steps", "Action items")


@dataclass(frozen=True, slots=True)
class EngagementSummary:
    """What one person (by email) did: emails opened and replied to, meetings held, last touch."""

    email: str
    opens: int = 0
    replies: int = 0
    meetings: int = 0
    last_engaged_at: dt.datetime | None = None

    def merged(self, other: EngagementSummary) -> EngagementSummary:
        last = max((t for t in (self.last_engaged_at, other.last_engaged_at) if t is not None), default=None)
        return EngagementSummary(self.email, self.opens + other.opens, self.replies + other.replies,
                                 self.meetings + other.meetings, last)


@dataclass(frozen=True, slots=True)
class Signals:
    """Signals of one deal or lead. ``call_source`` is true when a call system covers the record's
    connection, so a rule can tell "no calls" from "no call data"."""

    call_source: bool = False
    calls_held: int = 0
    calls_30d: int = 0
    last_call_at: dt.datetime | None = None
    days_since_call: int | None = None
    competitor_mentioned: bool = False
    pricing_discussed: bool = False
    next_steps_agreed: bool = False  # the latest call agreed next steps
    champion_on_call: bool | None = None  # None: no champion contact known
    opens: int = 0
    replies: int = 0
    meetings: int = 0
    last_engaged_at: dt.datetime | None = None
    competitors: tuple[str, ...] = field(default=())
    highlights: tuple[str, ...] = field(default=())
    stakeholders_met: tuple[str, ...] = field(default=())


SIGNAL_FIELDS = tuple(f for f in Signals.__dataclass_fields__ if f not in ("competitors", "highlights",
                                                                           "stakeholders_met"))


def engagement_from_calls(calls: Iterable[Call]) -> dict[str, EngagementSummary]:
    """One meeting per call attended, per external participant's email."""
    out: dict[str, EngagementSummary] = {}
    for call in calls:
        for party in call.parties:
            if party.affiliation == "Internal" or not party.email:
                continue
            one = EngagementSummary(party.email, meetings=1, last_engaged_at=call.started)
            out[party.email] = out[party.email].merged(one) if party.email in out else one
    return out


def merge_engagement(*sources: Mapping[str, EngagementSummary]) -> dict[str, EngagementSummary]:
    """One summary per email from several sources (calls, a sales-engagement tool...)."""
    out: dict[str, EngagementSummary] = {}
    for source in sources:
        for email, summary in source.items():
            key = email.lower()
            out[key] = out[key].merged(summary) if key in out else replace(summary, email=key)
    return out


def champion_of(deal: Deal, contacts: Mapping[str, Contact], by_account: Mapping[str, list[Contact]]) -> Contact | None:
    """The deal's champion: the account contact whose title or email is the deal's ``champion``
    field, else the deal's primary contact when a champion is named."""
    named = deal.extra.get("champion")
    if not named:
        return None
    wanted = str(named).strip().lower()
    for c in by_account.get(deal.account_id or "", []):
        if (c.title or "").strip().lower() == wanted or (c.email or "").lower() == wanted:
            return c
    return contacts.get(deal.contact_ids[0]) if deal.contact_ids else None


def build_signals(connection: str, calls: Iterable[Call], deals: Iterable[Deal], leads: Iterable[Lead],
                  contacts: Iterable[Contact], now: dt.datetime, *,
                  engagement: Mapping[str, EngagementSummary] | None = None,
                  call_source: bool = True) -> dict[tuple[str, str, str], Signals]:
    deals_by_id = {d.source_id: d for d in deals if not d.deleted}
    contact_list = [c for c in contacts if not c.deleted]
    contacts_by_id = {c.source_id: c for c in contact_list}
    by_account: dict[str, list[Contact]] = {}
    for c in contact_list:
        if c.account_id:
            by_account.setdefault(c.account_id, []).append(c)
    calls_list = sorted(calls, key=lambda c: c.started)
    calls_of = _calls_per_deal(calls_list, deals_by_id, contact_list)
    people = dict(engagement or {})
    out: dict[tuple[str, str, str], Signals] = {}
    for deal_id, deal in deals_by_id.items():
        held = calls_of.get(deal_id, [])
        base = _from_calls(held, now, call_source)
        champion = champion_of(deal, contacts_by_id, by_account)
        if champion is not None and champion.email:
            attended = {p.email for c in held for p in c.parties}
            base = replace(base, champion_on_call=champion.email.lower() in attended)
        emails = {(c.email or "").lower() for c in by_account.get(deal.account_id or "", []) if c.email}
        out[(connection, "deal", deal_id)] = _with_engagement(base, [people[e] for e in emails if e in people])
    out.update(_lead_signals(connection, calls_list, leads, people, now, call_source))
    return out


def _calls_per_deal(calls: list[Call], deals_by_id: Mapping[str, Deal],
                    contacts: list[Contact]) -> dict[str, list[Call]]:
    """Each deal's calls: by the call's CRM context when it names this connection's deal, else by
    the external participants' accounts (deals open at the time of the call)."""
    by_email = {c.email.lower(): c for c in contacts if c.email}
    deals_by_account: dict[str, list[Deal]] = {}
    for d in deals_by_id.values():
        if d.account_id:
            deals_by_account.setdefault(d.account_id, []).append(d)
    calls_of: dict[str, list[Call]] = {}
    for call in calls:
        linked = {r.object_id for r in call.crm_refs if r.object_type in ("Opportunity", "Deal", "deal")
                  and r.object_id in deals_by_id}
        if not linked:
            accounts = {by_email[p.email].account_id for p in call.parties
                        if p.affiliation != "Internal" and p.email in by_email}
            for account in accounts:
                linked.update(d.source_id for d in deals_by_account.get(account or "", [])
                              if _open_at(d, call.started))
        for deal_id in linked:
            calls_of.setdefault(deal_id, []).append(call)
    return calls_of


def _open_at(deal: Deal, when: dt.datetime) -> bool:
    created = deal.created_at is None or deal.created_at <= when
    return created and (not deal.is_closed or deal.close_date is None or deal.close_date >= when.date())


def _lead_signals(connection: str, calls: list[Call], leads: Iterable[Lead], people: Mapping[str, EngagementSummary],
                  now: dt.datetime, call_source: bool) -> dict[tuple[str, str, str], Signals]:
    lead_calls: dict[str, list[Call]] = {}
    for call in calls:
        for p in call.parties:
            if p.email and p.affiliation != "Internal":
                lead_calls.setdefault(p.email, []).append(call)
    out: dict[tuple[str, str, str], Signals] = {}
    for lead in leads:
        if lead.deleted or not lead.email:
            continue
        email = lead.email.lower()
        base = _from_calls(lead_calls.get(email, []), now, call_source)
        out[(connection, "lead", lead.source_id)] = _with_engagement(base, [people[email]] if email in people else [])
    return out


def _from_calls(calls: list[Call], now: dt.datetime, call_source: bool) -> Signals:
    if not calls:
        return Signals(call_source=call_source)
    last = calls[-1]
    competitors = sorted({phrase for c in calls for name, phrases in c.tracker_phrases.items()
                          if name in COMPETITOR_TRACKERS for phrase in phrases})
    met = []
    seen: set[str] = set()
    for c in calls:
        for p in c.parties:
            key = p.email or p.name or ""
            if p.affiliation != "Internal" and key and key not in seen:
                seen.add(key)
                met.append(f"{p.name or p.email}" + (f" ({p.title})" if p.title else ""))
    highlights = tuple(item for c in calls[-3:] for title, items in c.highlights.items() for item in items
                       if title in NEXT_STEP_SECTIONS)
    return Signals(
        call_source=call_source, calls_held=len(calls),
        calls_30d=sum(1 for c in calls if c.started >= now - dt.timedelta(days=30)),
        last_call_at=last.started, days_since_call=(now - last.started).days,
        competitor_mentioned=any(c.trackers.get(n, 0) > 0 for c in calls for n in COMPETITOR_TRACKERS),
        pricing_discussed=any(c.trackers.get(n, 0) > 0 for c in calls for n in PRICING_TRACKERS),
        next_steps_agreed=any(last.highlights.get(s) for s in NEXT_STEP_SECTIONS),
        competitors=tuple(competitors), highlights=highlights, stakeholders_met=tuple(met))


def _with_engagement(base: Signals, people: list[EngagementSummary]) -> Signals:
    if not people:
        return base
    total = people[0]
    for p in people[1:]:
        total = total.merged(p)
    return replace(base, opens=total.opens, replies=total.replies, meetings=total.meetings,
                   last_engaged_at=total.last_engaged_at)
