"""The console in a real browser (Debian's Chromium driven by Playwright): the admin's whole loop
from a pool edit to a routed sandbox lead and back, roles, CSRF, accessibility basics.

Screenshots of the main pages are written to ``test-artifacts/console/`` (git-ignored)."""

from __future__ import annotations

import re
from typing import Any

from console_harness import ADMIN, ARTIFACTS, CONNECTION, VIEWER, ConsoleUnderTest

from crmsync.runtime.pipeline import run_connection_cycle

MAIN_PAGES = ["/", "/rules/routing", "/rules/scoring", "/draft", "/versions", "/why", "/ops", "/ops/outbox", "/audit"]


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, console: ConsoleUnderTest, who: tuple[str, str]) -> None:
    page.goto(console.url + "/login")
    page.get_by_label("Username").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(console.url + "/")


def test_admin_adds_a_rep_previews_publishes_the_worker_routes_to_them_and_rolls_back(
        page: Any, console: ConsoleUnderTest) -> None:
    first, new_rep = console.reps[0], console.reps[1]
    original = (console.rules_dir / "routing.yaml").read_text()
    page.goto(console.url + "/login")
    shot(page, "01-login")
    sign_in(page, console, ADMIN)
    shot(page, "02-overview")

    # add a rep to the inbound pool and change the weights
    page.goto(console.url + "/rules/routing")
    pool = page.locator("#pool-0")
    pool.get_by_label("Add a rep").select_option(new_rep.source_id)
    pool.get_by_label("Weight", exact=True).fill("50")
    pool.locator("table.members").get_by_label(f"Weight of {first.name}").fill("2")
    shot(page, "03-routing-edit")
    pool.get_by_role("button", name="Save pool inbound").click()
    page.wait_for_url(re.compile(r"/rules/routing"))
    assert "Saved to the draft" in page.locator(".flash").inner_text()
    yaml_view = page.locator("#yaml-routing pre").inner_text()
    assert f"{{owner: {new_rep.source_id}, weight: 50}}" in yaml_view and f"{{owner: {first.source_id}, weight: 2}}" in yaml_view
    assert "# The inbound desk (the browser test adds a rep here)." in yaml_view
    shot(page, "04-routing-saved")

    # the draft: validation, diff, impact preview
    page.get_by_role("link", name="Draft", exact=True).click()
    assert "The draft loads" in page.locator("main").inner_text()
    shot(page, "05-draft")
    page.get_by_label("Records modified in the last (days)").fill("365")
    page.get_by_role("button", name="Preview the impact").click()
    page.wait_for_url(re.compile(r"/draft/impact"))
    summary = page.locator("#impact-summary").inner_text()
    assert "would be decided differently" in summary
    row = page.locator(f'#owner-counts tr[data-owner="{new_rep.source_id}"] td')
    live_count, draft_count = int(row.nth(1).inner_text()), int(row.nth(2).inner_text())
    assert live_count == 0 and draft_count > 0
    shot(page, "06-impact")

    # publish
    page.goto(console.url + "/draft")
    page.get_by_label("Note (what and why)").fill("add a rep to inbound")
    page.get_by_role("button", name="Publish the draft").click()
    page.wait_for_url(re.compile(r"/versions"))
    assert "Published version" in page.locator(".flash").inner_text()
    assert f"{{owner: {new_rep.source_id}, weight: 50}}" in (console.rules_dir / "routing.yaml").read_text()
    shot(page, "07-versions")

    # the worker's next cycle routes a new sandbox lead to the new rep; the simulator shows it
    lead_id = console.sim.create("Lead", {"LastName": "Console", "FirstName": "Casey", "Company": "Console Test Co",
                                          "Email": "casey@console-test.example", "Status": "New", "LeadSource": "Web"})
    report = run_connection_cycle(console.settings, console.store, CONNECTION)
    assert report.outcomes.get("rules") == "ok" and report.outcomes.get("outbox") == "ok", report.outcomes
    truth = {row["Id"]: row for row in console.sim.truth("Lead")}
    assert truth[lead_id]["OwnerId"] == new_rep.source_id
    run_connection_cycle(console.settings, console.store, CONNECTION)  # reads the assignment back
    page.goto(console.url + "/why")
    page.get_by_label(re.compile("Lead or deal")).fill(lead_id)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=lead_id).click()
    assert page.locator("#current-owner").inner_text() == (new_rep.name or new_rep.source_id)
    assert "inbound_leads" in page.locator("main").inner_text()
    assert page.locator("#writes .state.done").count() >= 1
    shot(page, "08-why-this-rep")

    # roll back to the first version (the files as they were)
    page.goto(console.url + "/versions")
    first_version = page.locator("#versions tbody tr").last
    first_version.get_by_role("button", name=re.compile("Restore version")).click()
    page.wait_for_url(re.compile(r"/versions"))
    assert "Rolled back" in page.locator(".flash").inner_text()
    assert (console.rules_dir / "routing.yaml").read_text() == original

    for path, name in (("/ops", "09-operations"), ("/ops/outbox", "10-outbox"), ("/audit", "11-audit"),
                       ("/rules/scoring", "12-scoring")):
        page.goto(console.url + path)
        shot(page, name)


def test_a_viewer_cannot_publish_and_a_forged_form_is_refused(page: Any, console: ConsoleUnderTest,
                                                              browser: Any) -> None:
    sign_in(page, console, VIEWER)
    page.goto(console.url + "/rules/routing")
    assert page.locator('#pool-0 select[name="_new_member_owner"]').is_disabled()
    page.goto(console.url + "/draft")
    assert page.get_by_role("button", name="Publish the draft").count() == 0
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    refused = page.request.post(console.url + "/draft/publish", form={"csrf_token": token, "note": "sneaky"})
    assert refused.status == 403 and "admin role" in refused.text()

    admin = browser.new_context()
    try:
        admin_page = admin.new_page()
        sign_in(admin_page, console, ADMIN)
        admin_page.goto(console.url + "/rules/routing")
        # a form built by another page's script: the browser sends the session cookie, not the token
        admin_page.evaluate("""() => {
            const f = document.createElement("form"); f.method = "post"; f.action = "/rules/routing/pools/0";
            const i = document.createElement("input"); i.name = "pools[0].strategy"; i.value = "round_robin";
            f.append(i); document.body.append(f); f.submit(); }""")
        admin_page.wait_for_load_state()
        assert "CSRF" in admin_page.locator("body").inner_text()
    finally:
        admin.close()
    assert not console.server.console.workspace.has_draft()


def test_pages_have_labels_landmarks_and_work_from_the_keyboard(page: Any, console: ConsoleUnderTest) -> None:
    page.goto(console.url + "/login")
    # autofocus is applied at a rendering step that can come after "load": wait for it, then type
    page.wait_for_function("document.activeElement && document.activeElement.id === 'username'")
    page.keyboard.type(ADMIN[0])
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN[1])
    page.keyboard.press("Enter")
    page.wait_for_url(console.url + "/")
    unlabeled_js = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""
    for path in MAIN_PAGES:
        page.goto(console.url + path)
        assert page.evaluate(unlabeled_js) == [], path
        assert page.locator("main").count() == 1 and page.locator("h1").count() == 1, path
        assert page.get_attribute("html", "lang") == "en"

    # keyboard only: skip link first, then move a routing rule down with Enter
    page.goto(console.url + "/rules/routing")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    down = page.get_by_role("button", name="Move inbound_leads down")
    down.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    names = page.locator("ol.rules h3 code").all_inner_texts()
    assert names == ["catch_all_deals", "inbound_leads"]

    # a refused save moves the focus to the bad field
    pool = page.locator("#pool-0")
    pool.get_by_label("Weight of team members").fill("-3")
    with page.expect_navigation():
        pool.get_by_label("Weight of team members").press("Enter")
    focused = page.evaluate("document.activeElement.name")
    assert focused == "pools[0].team_weight"
    assert "greater than or equal to 1" in page.locator("#f-pools-0--team-weight-err").inner_text()
    shot(page, "13-inline-error")
