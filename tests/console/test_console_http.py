"""The console over real HTTP (no browser): accounts, CSRF, roles, form edits of the rule files,
publish and roll back, hand edits, secrets."""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from console_harness import ADMIN, CONNECTION, VIEWER, ConsoleUnderTest, csrf_of, login
from sqlalchemy import select

from crmsync.console import audit
from crmsync.rules.loader import RuleFileError, load_rules
from crmsync.store import tables as t


def test_sign_in_sets_a_strict_httponly_session_and_wrong_passwords_are_throttled(console: ConsoleUnderTest) -> None:
    client = console.client(None)
    assert client.get("/rules/routing").status_code == 303  # to the login page
    response = login(client, *ADMIN)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/rules/routing").status_code == 200

    other = console.client(None)
    for _ in range(3):
        assert "wrong username or password" in login(other, VIEWER[0], "not the password").text
    refused = login(other, *VIEWER)  # right password, but locked out for a moment
    assert refused.status_code == 401 and "too many failed attempts" in refused.text
    assert "wrong username or password" in login(other, "nobody", "whatever-at-all").text


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(console: ConsoleUnderTest) -> None:
    client = console.client()
    before = (console.rules_dir / "routing.yaml").read_text()
    forged = client.post("/rules/routing/pools/0", data={"pools[0].strategy": "round_robin", "_fallback": "1"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    wrong = client.post("/rules/routing/pools/0", data={"csrf_token": "x" * 43, "pools[0].strategy": "round_robin"})
    assert wrong.status_code == 403
    assert not (console.server.console.workspace.has_draft())
    assert (console.rules_dir / "routing.yaml").read_text() == before


def test_a_viewer_reads_but_cannot_edit_or_publish(console: ConsoleUnderTest) -> None:
    viewer = console.client(VIEWER)
    page = viewer.get("/rules/routing")
    assert page.status_code == 200 and "disabled" in page.text
    token = csrf_of(page.text)
    assert viewer.post("/rules/routing/pools/0", data={"csrf_token": token, "pools[0].team_weight": "3"}).status_code == 403
    assert viewer.post("/draft/publish", data={"csrf_token": token, "note": "x"}).status_code == 403
    assert "Publish the draft" not in viewer.get("/draft").text


def test_a_bad_weight_is_reported_next_to_the_field_with_the_validator_message_and_nothing_is_saved(
        console: ConsoleUnderTest, tmp_path: Path) -> None:
    client = console.client()
    token = csrf_of(client.get("/rules/routing").text)
    response = client.post("/rules/routing/pools/0", data={
        "csrf_token": token, "_form": "pool-0", "_fallback": "1", "_fallback_pool": "overflow",
        "pools[0].members[0].weight": "lots", "pools[0].members[0].owner": console.reps[0].source_id})
    assert response.status_code == 400
    # the message `crmsync rules validate` prints for the same text
    broken = tmp_path / "broken"
    shutil.copytree(console.rules_dir, broken)
    text = (broken / "routing.yaml").read_text().replace("weight: 1}", "weight: lots}")
    (broken / "routing.yaml").write_text(text)
    try:
        load_rules(broken)
        raise AssertionError("expected the broken copy to fail")
    except RuleFileError as exc:
        expected = exc.issues[0]
    assert expected.key == "pools[0].members[0].weight"
    assert expected.message in html.unescape(response.text)
    assert 'id="f-pools-0--members-0--weight-err"' in response.text  # next to the field
    assert 'value="lots"' in response.text  # what was typed is kept
    workspace = console.server.console.workspace
    assert workspace.has_draft()  # the edit opened a draft...
    assert (workspace.draft_dir / "routing.yaml").read_text() == (console.rules_dir / "routing.yaml").read_text()


def test_edits_keep_comments_publish_writes_the_live_files_and_roll_back_restores_them(console: ConsoleUnderTest) -> None:
    client = console.client()
    original = (console.rules_dir / "routing.yaml").read_text()
    new_rep = console.reps[1].source_id
    token = csrf_of(client.get("/rules/routing").text)
    saved = client.post("/rules/routing/pools/0", data={
        "csrf_token": token, "_form": "pool-0", "_fallback": "1", "_fallback_pool": "overflow",
        "pools[0].members[0].owner": console.reps[0].source_id, "pools[0].members[0].weight": "2",
        "_new_member_owner": new_rep, "_new_member_weight": "5"})
    assert saved.status_code == 303, saved.text[:2000]
    draft = (console.server.console.workspace.draft_dir / "routing.yaml").read_text()
    assert "# The inbound desk (the browser test adds a rep here)." in draft
    assert f"{{owner: {new_rep}, weight: 5}}" in draft
    assert (console.rules_dir / "routing.yaml").read_text() == original  # live untouched until publish

    moved = client.post("/rules/routing/rules/1/move", data={"csrf_token": token, "direction": "up"})
    assert moved.status_code == 303
    published = client.post("/draft/publish", data={"csrf_token": token, "note": "more inbound reps"})
    assert published.status_code == 303, published.text[:3000]
    live = yaml.safe_load((console.rules_dir / "routing.yaml").read_text())
    assert [r["name"] for r in live["rules"]] == ["catch_all_deals", "inbound_leads"]
    assert live["pools"][0]["members"][1] == {"owner": new_rep, "weight": 5}
    versions = console.server.console.workspace.versions()
    assert versions[0].author == ADMIN[0] and versions[0].note == "more inbound reps"
    assert versions[0].hash == load_rules(console.rules_dir).hash

    first = versions[-1]
    assert first.origin == "files"
    restored = client.post(f"/versions/{first.id}/rollback", data={"csrf_token": token})
    assert restored.status_code == 303
    assert (console.rules_dir / "routing.yaml").read_text() == original  # byte for byte, comments included
    actions = [e.action for e in audit.recent(console.store, 50)]
    for action in ("login", "draft.start", "draft.edit", "rules.publish", "rules.rollback"):
        assert action in actions
    assert all(e.actor == ADMIN[0] for e in audit.recent(console.store, 50) if e.action.startswith("rules."))


def test_a_hand_edit_of_a_rule_file_shows_up_as_a_version(console: ConsoleUnderTest) -> None:
    client = console.client()
    path = console.rules_dir / "routing.yaml"
    path.write_text(path.read_text().replace("weight: 1}", "weight: 7}"))
    page = client.get("/versions")
    assert page.status_code == 200
    latest = console.server.console.workspace.versions()[0]
    assert latest.origin == "files" and latest.hash == load_rules(console.rules_dir).hash
    assert "weight: 7}" in client.get("/rules/routing").text


def test_secrets_never_reach_the_browser(console: ConsoleUnderTest) -> None:
    client = console.client()
    secrets = [v for v in console.settings.secret_values() if len(v) >= 6]
    assert secrets
    for path in ("/", "/ops", "/ops/outbox", "/rules/routing", "/draft", "/versions", "/audit"):
        body = client.get(path).text
        assert not any(s in body for s in secrets), path
    with console.store.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(t.console_users.c.password_hash))]
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not any(ADMIN[1] in h for h in hashes)


def test_why_this_rep_finds_a_lead_and_explains_it(console: ConsoleUnderTest) -> None:
    client = console.client()
    lead_id = next(iter(console.store.source_ids("lead", CONNECTION)))
    hits = client.get("/why", params={"q": lead_id})
    assert f"/why/lead/{CONNECTION}/{lead_id}" in hits.text
    page = client.get(f"/why/lead/{CONNECTION}/{lead_id}")
    assert page.status_code == 200
    assert "Routing chain" in page.text and "inbound_leads" in page.text and "Score explanation" in page.text
    assert client.get(f"/why/lead/{CONNECTION}/nope").status_code == 404


def test_add_user_command_stores_an_argon2_hash(console: ConsoleUnderTest, tmp_path: Path) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": console.store.engine.url.render_as_string(hide_password=False)},
                                      "rules_dir": str(console.rules_dir)}))
    done = subprocess.run([sys.executable, "-m", "crmsync.cli", "console", "add-user", "olga", "--role", "admin",
                           "--password-stdin", "--config", str(config)], input="olga-password-123\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "olga-password-123" not in done.stdout + done.stderr
    assert login(console.client(None), "olga", "olga-password-123").status_code == 303
    short = subprocess.run([sys.executable, "-m", "crmsync.cli", "console", "add-user", "pat", "--password-stdin",
                            "--config", str(config)], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 10 characters" in short.stderr and "Traceback" not in short.stderr


def test_the_funnel_report_is_computed_in_the_background_and_then_shown(console: ConsoleUnderTest) -> None:
    client = console.client()
    first = client.get("/reports/funnel")
    assert first.status_code == 200
    console.server.console.funnel.wait(60)
    ready = client.get("/reports/funnel")
    assert "being computed" not in ready.text
    assert "No deals with stages yet" in ready.text or "win rate" in ready.text
