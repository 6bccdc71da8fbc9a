"""Speed to lead and sequence exits, end to end: Salesforce and Outreach simulators over HTTP, a real
store, the shipped rule files. A warm inbound lead created in the CRM is scored, routed and enrolled
(in the warm sequence, from the routed owner's mailbox) within one cycle; a reply finishes it; nobody
is ever in two sequences of one kind, nor twice in one sequence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_world import copied_rules
from crmsync.connectors import build_connector
from crmsync.engagement.runner import run_sequences
from crmsync.engagement.sync import sync_engagement
from crmsync.rules.sequence import ENROL_SEQUENCE, EXIT_SEQUENCE, load_sequence_rules
from crmsync.runtime.pipeline import run_connection_cycle
from crmsync.sandbox.outreach import OutreachSimulator
from crmsync.sandbox.runner import SandboxHandle, start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.sync.outbox import KILL_ENV, drain

ROOT = Path(__file__).resolve().parents[2]
SF, OR = "sandbox-sf", "sandbox-outreach"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    world = generate_world(11, 40)
    handle = start_sandbox(systems=("salesforce", "outreach"), world=world, state_dir=tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


def settings_for(handle: SandboxHandle, tmp_path: Path, store_url: str) -> Settings:
    path = handle.write_config(tmp_path / "crmsync.yaml", store_url=store_url, rules_dir=str(ROOT / "config/rules"))
    return load_settings(path)


def outreach(handle: SandboxHandle) -> OutreachSimulator:
    sim = handle.sims["outreach"]
    assert isinstance(sim, OutreachSimulator)
    return sim


def states_by_person(sim: OutreachSimulator) -> Counter[tuple[str, str]]:
    email_of = {str(p["id"]): p["attributes"]["emails"][0].lower() for p in sim.truth("prospects")}
    return Counter((email_of[str(s["relationships"]["prospect"]["data"]["id"])],
                    str(s["relationships"]["sequence"]["data"]["id"])) for s in sim.truth("sequenceStates"))


def kinds_active(sim: OutreachSimulator) -> Counter[str]:
    email_of = {str(p["id"]): p["attributes"]["emails"][0].lower() for p in sim.truth("prospects")}
    return Counter(email_of[str(s["relationships"]["prospect"]["data"]["id"])] for s in sim.truth("sequenceStates")
                   if s["attributes"]["state"] in ("active", "paused"))


def state_of(sim: OutreachSimulator, email: str, sequence_id: str) -> dict[str, Any]:
    prospects = {p["id"] for p in sim.truth("prospects") if email in [e.lower() for e in p["attributes"]["emails"]]}
    (state,) = [s for s in sim.truth("sequenceStates") if s["relationships"]["prospect"]["data"]["id"] in prospects
                and str(s["relationships"]["sequence"]["data"]["id"]) == sequence_id]
    return state


def new_warm_lead(handle: SandboxHandle, email: str) -> str:
    return handle.sims["salesforce"].create("Lead", {
        "FirstName": "Wanda", "LastName": "Warm", "Email": email, "Company": "Warmly GmbH", "Status": "New",
        "LeadSource": "Web", "Region__c": "EMEA", "Country": "DE", "NumberOfEmployees": 120, "Title": "CTO",
        "OwnerId": None})  # a web-to-lead form's lead, unowned until routed


def test_warm_lead_is_enrolled_within_one_cycle_and_exits_on_reply(
        sandbox: SandboxHandle, tmp_path: Path, store: Store) -> None:
    settings = settings_for(sandbox, tmp_path, "sqlite:///unused.db")
    sim = outreach(sandbox)
    first = run_connection_cycle(settings, store, SF)
    assert first.outcomes["sequence"] == "ok", first.outcomes
    before = states_by_person(sim)
    assert before and max(before.values()) == 1  # the existing leads: once per person and sequence
    assert max(kinds_active(sim).values()) == 1  # one first-touch sequence each

    email = "wanda.warm@warmly.example"
    lead_id = new_warm_lead(sandbox, email)
    report = run_connection_cycle(settings, store, SF)  # ONE cycle: sync, score, route, enrol, push
    assert report.outcomes["sequence"] == "ok" and report.counts["enrolled"] >= 1, report
    warm_id = next(str(s["id"]) for s in sim.truth("sequences") if s["attributes"]["name"].startswith("Inbound"))
    assert states_by_person(sim)[(email, warm_id)] == 1
    state = state_of(sim, email, warm_id)
    assert state["attributes"]["state"] == "active"
    # from the routed owner's mailbox: the owner the routing decision chose
    routed = [d for d in store.decisions(connection=SF, source_id=lead_id) if d.action == "assign_owner"]
    enrol = [d for d in store.decisions(connection=SF, source_id=lead_id) if d.action == ENROL_SEQUENCE]
    assert len(enrol) == 1 and "warm" in (enrol[0].reason or "")
    owner_id = routed[0].fields["owner_id"] if routed else enrol[0].fields["owner_id"]
    assert enrol[0].fields["owner_id"] == owner_id
    mailbox = next(m for m in sim.truth("mailboxes") if m["id"] == state["relationships"]["mailbox"]["data"]["id"])
    assert mailbox["attributes"]["email"].lower() == str(enrol[0].fields["owner_email"]).lower()
    assert any(d.action == "set_fields" and "score" in d.fields
               for d in store.decisions(connection=SF, source_id=lead_id))  # scored in the same cycle

    sim.reply(int(state["id"]))
    run_connection_cycle(settings, store, SF)
    after = next(s for s in sim.truth("sequenceStates") if s["id"] == state["id"])
    assert after["attributes"]["state"] == "finished"
    exits = [d for d in store.decisions(connection=SF, source_id=lead_id) if d.action == EXIT_SEQUENCE]
    assert len(exits) == 1 and exits[0].fields["exit"] == "reply" and "replied" in (exits[0].reason or "")
    run_connection_cycle(settings, store, SF)
    assert states_by_person(sim)[(email, warm_id)] == 1  # not enrolled again, nor into another first touch
    assert kinds_active(sim)[email] == 0


def test_owner_change_and_opt_out_end_the_sequence(sandbox: SandboxHandle, tmp_path: Path, store: Store) -> None:
    settings = settings_for(sandbox, tmp_path, "sqlite:///unused.db")
    sim = outreach(sandbox)
    run_connection_cycle(settings, store, SF)
    crm = sandbox.sims["salesforce"]
    enrolled = [d for d in store.decisions(connection=SF, limit=10_000) if d.action == ENROL_SEQUENCE]
    assert len(enrolled) >= 2
    moved, opted = enrolled[0], enrolled[1]
    owners = [o["Id"] for o in crm.truth("User") if o.get("IsActive", True)]
    new_owner = next(o for o in owners if o[:15] != str(moved.fields["owner_id"])[:15])
    crm.edit("Lead", moved.source_id, {"OwnerId": new_owner})
    prospect = next(p for p in sim.truth("prospects") if str(opted.fields["email"]).lower()
                    in [e.lower() for e in p["attributes"]["emails"]])
    sim.opt_out(int(prospect["id"]))
    run_connection_cycle(settings, store, SF)
    reasons = {d.source_id: d.fields["exit"] for d in store.decisions(connection=SF, limit=10_000)
               if d.action == EXIT_SEQUENCE}
    assert reasons.get(moved.source_id) == "owner_change"
    assert reasons.get(opted.source_id) == "opt_out"
    states = {str(s["id"]): s["attributes"]["state"] for s in sim.truth("sequenceStates")}
    finished = [i.result_id for i in store.outbox_items(connection=OR) if i.operation == "update"]
    assert finished and all(states[str(sid)] == "finished" for sid in finished)


def test_sigkill_between_enrol_push_and_booking_leaves_exactly_one_sequence_state(
        sandbox: SandboxHandle, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'kill.db'}"
    store = Store.open(store_url)
    store.upgrade()
    settings = settings_for(sandbox, tmp_path, store_url)
    sim = outreach(sandbox)
    run_connection_cycle(settings, store, SF, steps=[s for s in _steps() if s.name in ("sync", "rules")])
    rules = load_sequence_rules(ROOT / "config/rules")
    assert rules is not None
    tool = settings.connection(OR)
    connector = build_connector(tool)
    sync_engagement(store, connector, tool.objects)
    run = run_sequences(store, SF, rules)
    connector.close()
    assert run.enqueued >= 2
    conn = tool.model_dump(mode="json")
    conn["credentials"] = {k: v.get_secret_value() for k, v in tool.credentials.items()}
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"store_url": store_url, "conn": conn}), encoding="utf-8")
    child = subprocess.run([sys.executable, str(ROOT / "tests/sync/drain_child.py"), str(args)],
                           env={**os.environ, KILL_ENV: "1"}, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    pushed = len(sim.truth("sequenceStates"))
    assert pushed >= 1  # the tool has the first batch's enrolments ...
    assert {i.status for i in store.outbox_items(connection=OR)} >= {"in_flight"}  # ... our books do not
    connector = build_connector(tool)
    try:
        result = drain(store, connector, tool)
    finally:
        connector.close()
    assert result.recovered >= 1 and result.failed == 0, result
    counts = states_by_person(sim)
    assert len(counts) == run.enqueued and set(counts.values()) == {1}  # exactly one state per enrolment
    items = store.outbox_items(connection=OR)
    assert {i.status for i in items} == {"done"}
    assert sorted(str(i.result_id) for i in items) == sorted(str(s["id"]) for s in sim.truth("sequenceStates"))


def _steps() -> Any:
    from crmsync.runtime.pipeline import DEFAULT_STEPS

    return DEFAULT_STEPS


def test_the_same_rules_enrol_through_apollo(tmp_path: Path, store: Store) -> None:
    from crmsync.sandbox.apollo import ApolloSimulator

    rules = copied_rules(tmp_path, edits={"sequence.yaml": ("tool: sandbox-outreach", "tool: sandbox-apollo")})
    handle = start_sandbox(systems=("salesforce", "apollo"), world=generate_world(11, 40), state_dir=tmp_path)
    try:
        settings = load_settings(handle.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db",
                                                     rules_dir=str(rules)))
        apollo = handle.sims["apollo"]
        assert isinstance(apollo, ApolloSimulator)
        run_connection_cycle(settings, store, SF)
        email = "wanda.warm@warmly.example"
        new_warm_lead(handle, email)
        report = run_connection_cycle(settings, store, SF)
        assert report.outcomes["sequence"] == "ok" and report.counts["enrolled"] >= 1, report
        warm = next(c["id"] for c in apollo.truth("emailer_campaigns") if c["name"].startswith("Inbound"))
        (contact,) = [c for c in apollo.truth("contacts") if c["email"] == email]
        (status,) = contact["contact_campaign_statuses"]
        assert status["emailer_campaign_id"] == warm and status["status"] == "active"
        enrol = next(d for d in store.decisions(connection=SF, limit=10_000)
                     if d.action == ENROL_SEQUENCE and d.fields["email"] == email)
        account = next(a for a in apollo.truth("email_accounts") if a["id"] == status["send_email_from_email_account_id"])
        assert account["email"].lower() == str(enrol.fields["owner_email"]).lower()
        # everyone: at most one active first-touch sequence, never twice in one
        for c in apollo.truth("contacts"):
            campaigns = [s["emailer_campaign_id"] for s in c["contact_campaign_statuses"]]
            assert len(campaigns) == len(set(campaigns)) and len(campaigns) <= 1
        apollo.reply(contact["id"], warm)  # Apollo finishes a contact who replies
        run_connection_cycle(settings, store, SF)
        (contact,) = [c for c in apollo.truth("contacts") if c["email"] == email]
        assert [s["status"] for s in contact["contact_campaign_statuses"]] == ["finished"]
    finally:
        handle.stop()


def test_the_same_rules_enrol_through_salesloft(tmp_path: Path, store: Store) -> None:
    from crmsync.sandbox.salesloft import SalesloftSimulator

    rules = copied_rules(tmp_path, edits={"sequence.yaml": ("tool: sandbox-outreach", "tool: sandbox-salesloft")})
    handle = start_sandbox(systems=("salesforce", "salesloft"), world=generate_world(11, 40), state_dir=tmp_path)
    try:
        settings = load_settings(handle.write_config(tmp_path / "crmsync.yaml", store_url="sqlite:///unused.db",
                                                     rules_dir=str(rules)))
        sl = handle.sims["salesloft"]
        assert isinstance(sl, SalesloftSimulator)
        run_connection_cycle(settings, store, SF)
        email = "wanda.warm@warmly.example"
        lead_id = new_warm_lead(handle, email)
        report = run_connection_cycle(settings, store, SF)
        assert report.outcomes["sequence"] == "ok" and report.counts["enrolled"] >= 1, report
        (person,) = [p for p in sl.truth("people") if p["email_address"] == email]
        (membership,) = [m for m in sl.truth("cadence_memberships") if m["person"]["id"] == person["id"]]
        warm = next(c["id"] for c in sl.truth("cadences") if c["name"].startswith("Inbound"))
        assert membership["cadence"]["id"] == warm and membership["currently_on_cadence"]
        enrol = next(d for d in store.decisions(connection=SF, source_id=lead_id) if d.action == ENROL_SEQUENCE)
        user = next(u for u in sl.truth("users") if u["id"] == membership["user"]["id"])
        assert user["email"].lower() == str(enrol.fields["owner_email"]).lower()
        counts = Counter((m["person"]["id"], m["cadence"]["id"]) for m in sl.truth("cadence_memberships"))
        assert set(counts.values()) == {1}
        on = Counter(m["person"]["id"] for m in sl.truth("cadence_memberships") if m["currently_on_cadence"])
        assert max(on.values()) == 1
    finally:
        handle.stop()
