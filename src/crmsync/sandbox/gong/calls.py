"""Gong's data over the seeded World: one Gong user per CRM owner and recorded calls per deal.

Calls are drawn from their own random stream (``gong:<seed>``), so the CRM records stay exactly
as they were. Every deal past its first stage had calls, more the further it got: the deal owner
hosts (an ``Internal`` party with a ``userId``), one or two contacts of the deal's account attend
(``External`` parties with their email addresses). Content is what Gong's AI and trackers report:
tracker hits (``Competitors``, ``Pricing``, ``Next Steps``), topics with durations, highlight
sections (``Next steps`` items when the call agreed any) and a brief.

``planted`` names the deals where a problem was placed on purpose, so tests and the demo can
measure the hygiene findings: late-stage deals whose last call is older than 14 days
(``no_recent_call``) and deals whose champion (the primary contact) never joined a call
(``champion_absent``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from crmsync.sandbox.world import STAGES, World

USER_BASE = 2_345_000_000_000_000_000  # Gong ids are numeric strings of up to 20 digits
CALL_BASE = 7_782_000_000_000_000_000
WORKSPACE_ID = "623457276584334"
COMPETITORS = ("Globex Analytics", "Initrode BI", "Hooli Insights")
LATE_STAGE_MIN_ORDER = 3  # Proposal Sent and Negotiation (see world.STAGES)


def user_id(owner_id: int) -> str:
    return str(USER_BASE + owner_id)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class GongCall:
    """One call as Gong holds it: metadata, parties and content (wire field names)."""

    number: int
    deal_id: int | None
    account_id: int | None
    started: dt.datetime
    meta: dict[str, Any]
    parties: list[dict[str, Any]]
    content: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.meta["id"])


@dataclass
class GongData:
    users: list[dict[str, Any]] = field(default_factory=list)
    calls: list[GongCall] = field(default_factory=list)
    planted: dict[str, set[int]] = field(default_factory=dict)


def build_users(world: World) -> list[dict[str, Any]]:
    created = world.now - dt.timedelta(days=720)
    return [{
        "id": user_id(o.id), "emailAddress": o.email, "created": iso(created), "active": o.active,
        "emailAliases": [], "trustedEmailAddress": None, "firstName": o.first_name, "lastName": o.last_name,
        "title": {"sales": "Account Executive", "cs": "Customer Success Manager", "manager": "Sales Manager"}[o.role],
        "phoneNumber": None, "extension": None, "personalMeetingUrls": [],
        "settings": {"webConferencesRecorded": True, "preventWebConferenceRecording": False,
                     "telephonyCallsImported": False, "emailsImported": True, "preventEmailImport": False,
                     "nonRecordedMeetingsImported": True, "gongConnectEnabled": True},
        "managerId": user_id(o.manager_id) if o.manager_id else None, "meetingConsentPageUrl": None,
        "spokenLanguages": [{"language": "en-US", "primary": True}],
    } for o in world.owners]


def build_calls(world: World) -> GongData:
    rng = random.Random(f"gong:{world.seed}")
    data = GongData(users=build_users(world))
    data.planted = {"no_recent_call": set(), "champion_absent": set()}
    contacts_by_account: dict[int, list[Any]] = {}
    for c in world.contacts:
        contacts_by_account.setdefault(c.account_id, []).append(c)
    owners = {o.id: o for o in world.owners}
    now = world.now
    number = 0
    for deal in world.deals:
        stage = STAGES[deal.stage]
        if deal.stage == 0 or (stage.is_closed and not stage.is_won):
            continue
        people = contacts_by_account.get(deal.account_id, [])
        if not people:
            continue
        order = stage.order
        late_open = not stage.is_closed and order >= LATE_STAGE_MIN_ORDER
        n_calls = min(5, 1 + order // 2 + rng.randint(0, 1))
        end = now if not stage.is_closed else dt.datetime.combine(deal.close_date, dt.time(12), dt.UTC)
        start = deal.created_at
        stale = late_open and rng.random() < 0.15
        if stale:
            data.planted["no_recent_call"].add(deal.id)
            end = min(end, now - dt.timedelta(days=rng.randint(16, 40)))
        elif late_open:  # the last call is recent
            end = min(end, now - dt.timedelta(hours=1))
        if end <= start:
            continue
        champion = next((c for c in people if c.id == deal.contact_id), people[0])
        absent = rng.random() < 0.12 and len(people) > 1
        if absent:
            data.planted["champion_absent"].add(deal.id)
        span = (end - start).total_seconds()
        times = sorted(start + dt.timedelta(seconds=rng.uniform(0.3, 1.0) * span) for _ in range(n_calls))
        if late_open and not stale:
            times[-1] = end - dt.timedelta(days=rng.uniform(0, 10))
            times.sort()
        for k, started in enumerate(times):
            number += 1
            attendees = [c for c in people if not (absent and c is champion)]
            if not absent and len(people) > 1 and rng.random() < 0.4:
                attendees = [champion]
            competitor = rng.random() < 0.25
            pricing = order >= 3 and rng.random() < 0.6
            next_steps = k == len(times) - 1 or rng.random() < 0.5
            data.calls.append(make_call(number, deal.id, deal.account_id, started, owners[deal.owner_id],
                                        attendees, deal.name, rng, competitor=competitor, pricing=pricing,
                                        next_steps=next_steps))
    return data


def make_call(number: int, deal_id: int | None, account_id: int | None, started: dt.datetime, host: Any,
              attendees: list[Any], title: str, rng: random.Random, *, competitor: bool, pricing: bool,
              next_steps: bool) -> GongCall:
    call_id = str(CALL_BASE + number)
    duration = rng.randint(900, 3600)
    started = started.replace(microsecond=0)
    meta = {
        "id": call_id, "url": f"https://app.gong.io/call?id={call_id}", "title": f"{title} - call",
        "scheduled": iso(started), "started": iso(started), "duration": duration,
        "primaryUserId": user_id(host.id), "direction": "Conference", "system": "Zoom", "scope": "External",
        "media": "Video", "language": "eng", "workspaceId": WORKSPACE_ID, "sdrDisposition": None,
        "clientUniqueId": None, "customData": None, "purpose": None,
        "meetingUrl": f"https://zoom.us/j/{number:010d}", "isPrivate": False, "calendarEventId": None,
    }
    parties = [{"id": f"{call_id}1", "emailAddress": host.email, "name": f"{host.first_name} {host.last_name}",
                "title": "Account Executive", "userId": user_id(host.id), "speakerId": f"{call_id}01",
                "affiliation": "Internal", "methods": ["Invitee"], "phoneNumber": None, "context": []}]
    for i, person in enumerate(attendees, start=2):
        parties.append({"id": f"{call_id}{i}", "emailAddress": person.email,
                        "name": f"{person.first_name} {person.last_name}", "title": person.title, "userId": None,
                        "speakerId": f"{call_id}0{i}", "affiliation": "External",
                        "methods": ["Invitee", "Attendee"], "phoneNumber": None, "context": []})
    trackers: list[dict[str, Any]] = [
        {"id": "tr-competitors", "name": "Competitors", "count": rng.randint(1, 4) if competitor else 0,
         "type": "Keyword", "occurrences": [], "phrases": []},
        {"id": "tr-pricing", "name": "Pricing", "count": rng.randint(1, 6) if pricing else 0, "type": "Smart",
         "occurrences": [], "phrases": []},
        {"id": "tr-next-steps", "name": "Next Steps", "count": rng.randint(1, 3) if next_steps else 0,
         "type": "Smart", "occurrences": [], "phrases": []},
    ]
    if competitor:
        name = rng.choice(COMPETITORS)
        trackers[0]["phrases"] = [{"count": trackers[0]["count"], "occurrences": [], "phrase": name}]
    topics: list[dict[str, Any]] = [{"name": "Call Setup", "duration": 60}, {"name": "Product Demo", "duration": duration // 3}]
    if pricing:
        topics.append({"name": "Pricing", "duration": rng.randint(120, 600)})
    if next_steps:
        topics.append({"name": "Next Steps", "duration": rng.randint(60, 300)})
    highlights: list[dict[str, Any]] = [{"title": "Pain points", "items": [{"text": "Reporting is assembled by hand every month",
                                                      "startTimes": [float(rng.randint(60, 600))]}]}]
    if next_steps:
        highlights.append({"title": "Next steps", "items": [
            {"text": rng.choice(("Send the proposal by Friday", "Security review with IT next week",
                                 "Schedule a demo for the finance team", "Share a pilot plan")),
             "startTimes": [float(duration - rng.randint(60, 300))]}]})
    content = {
        "structure": [], "trackers": trackers, "topics": topics, "pointsOfInterest": {"actionItems": []},
        "brief": f"{len(attendees)} attendee(s) discussed {', '.join(t['name'] for t in topics[1:])}.",
        "outline": [], "highlights": highlights,
        "callOutcome": {"id": "co-1", "category": "Positive", "name": "Next steps set" if next_steps else "Follow-up"},
        "keyPoints": [{"text": h["items"][0]["text"]} for h in highlights],
    }
    return GongCall(number, deal_id, account_id, started, meta, parties, content)
