"""Shadow mode, experiments and rep feedback pages in a real browser (Chromium via Playwright).

The admin records nothing by hand: a candidate rule set (the inbound leads go to the overflow
pool instead) is a version; the admin starts a shadow period for it from the page, the worker's
next cycle evaluates it beside the live rules, and the page shows the owners it would change,
with nothing pushed. New sandbox leads are split by the experiment in the rule directory and the
experiments page shows the groups. Screenshots go to ``test-artifacts/console/``."""

from __future__ import annotations

import re
import shutil
from typing import Any

from console_harness import ADMIN, CONNECTION, VIEWER, ConsoleUnderTest
from sqlalchemy import select
from test_console_browser import shot, sign_in

from crmsync.report.shadow import shadow_report
from crmsync.runtime.pipeline import RulesStep, run_connection_cycle
from crmsync.store.workflow_tables import experiment_assignments
from crmsync.trials.shadow import periods, record_version

EXPERIMENTS = """\
version: 1
experiments:
  - name: inbound_vs_overflow
    object: lead
    kind: routing
    start: 2026-01-01
    stop: 2027-12-31
    planned_sample_size: 50
    holdout: 0.2
    variants:
      - {name: inbound, share: 0.4, pool: inbound}
      - {name: overflow, share: 0.4, pool: overflow}
"""


def test_shadow_experiments_and_feedback_pages(page: Any, console: ConsoleUnderTest, tmp_path: Any) -> None:
    candidate = tmp_path / "candidate"
    shutil.copytree(console.rules_dir, candidate)
    routing = candidate / "routing.yaml"
    routing.write_text(routing.read_text().replace("    pool: inbound\n  - name: catch_all_deals",
                                                   "    pool: overflow\n  - name: catch_all_deals"))
    version = record_version(console.store, candidate, author="test", note="inbound leads to overflow")
    (console.rules_dir / "experiments.yaml").write_text(EXPERIMENTS)

    sign_in(page, console, ADMIN)
    page.get_by_role("link", name="Trials").click()
    page.wait_for_url(re.compile(r"/trials/shadow"))
    form = page.locator("#shadow-start")
    form.get_by_label("Version").select_option(str(version))
    form.get_by_label("End (UTC)").fill("2020-01-01T00:00")  # before the start: refused, said next to the form
    form.get_by_role("button", name="Start shadow period").click()
    assert "end must be after its start" in page.locator(".issues").inner_text()
    form = page.locator("#shadow-start")
    form.get_by_label("End (UTC)").fill("2030-01-01T00:00")
    form.get_by_label("Note").fill("try overflow for inbound")
    form.get_by_role("button", name="Start shadow period").click()
    page.wait_for_url(re.compile(r"/trials/shadow\?period=\d+"))
    assert "started" in page.locator(".flash").inner_text()
    (period,) = periods(console.store)
    assert period.version_id == version and period.note == "try overflow for inbound"

    # the worker's rules step: nothing changed, so the live rules are skipped and the shadow
    # period's first pass evaluates every lead; nothing is queued
    report = run_connection_cycle(console.settings, console.store, CONNECTION, steps=[RulesStep()])
    assert report.counts["trials"]["shadow_evaluated"] > 0
    assert console.store.outbox_items(connection=CONNECTION, limit=10) == []
    expected = shadow_report(console.store, period.id).counts
    assert expected["owners_differ"] > 0
    page.reload()
    counts = {k: int(page.locator(f'#shadow-counts td[data-count="{k}"]').inner_text()) for k in expected}
    assert counts == expected
    rows = page.locator("#shadow-table-2 tbody tr")
    assert rows.count() == min(200, expected["records_differing"])
    owner_cell = rows.first.locator("td").nth(3).inner_text()
    names = {o.source_id: o.name for o in console.reps}
    assert " -> " in owner_cell and any(f"{name} (" in owner_cell for name in names.values() if name)
    shot(page, "20-shadow")

    # new leads arrive: the worker's cycle splits them between the experiment's groups
    new_ids = [console.sim.create("Lead", {"LastName": f"Trial{n}", "Company": f"Trial Co {n}", "Status": "New",
                                           "Email": f"trial{n}@trial.example", "LeadSource": "Web"})
               for n in range(8)]
    cycle = run_connection_cycle(console.settings, console.store, CONNECTION)  # sync, rules, outbox
    assert cycle.outcomes.get("outbox") == "ok", cycle.outcomes
    with console.store.engine.connect() as conn:
        group = {sid: g for sid, g in conn.execute(select(experiment_assignments.c.source_id,
                                                          experiment_assignments.c.variant))}
    assert set(new_ids) <= set(group)  # (and any older unrouted lead the sync saw change)
    owners = {row["Id"]: row["OwnerId"] for row in console.sim.truth("Lead")}
    na_sales = {o.source_id for o in console.reps if o.team == "NA Sales"}
    for lead_id in new_ids:  # the variant's pool assigned it, pushed to the sandbox (the holdout: the rules)
        if group[lead_id] == "overflow":
            assert owners[lead_id] in na_sales
        else:  # inbound variant, and the holdout routed by inbound_leads: the inbound pool's one rep
            assert owners[lead_id] == console.reps[0].source_id
    page.get_by_role("link", name="Experiments").click()
    page.wait_for_url(re.compile(r"/trials/experiments"))
    section = page.locator('section[data-experiment="inbound_vs_overflow"]')
    assert section.locator(".state").inner_text() == "not yet significant"
    groups = {g: int(section.locator(f'tr[data-group="{g}"] td').nth(1).inner_text())
              for g in ("inbound", "overflow", "holdout")}
    assert groups == {g: sum(1 for x in group.values() if x == g) for g in groups}
    assert "95% CI" in section.locator("table").nth(1).inner_text()
    shot(page, "21-experiments")

    page.get_by_role("link", name="Rep feedback").click()
    page.wait_for_url(re.compile(r"/trials/feedback"))
    assert "findings delivered as tasks were marked wrong" in page.locator("main").inner_text()
    shot(page, "22-feedback")

    # a viewer sees the pages but cannot start or stop a period
    page.context.clear_cookies()
    sign_in(page, console, VIEWER)
    page.goto(console.url + "/trials/shadow")
    assert page.locator("#shadow-start").count() == 0
    assert page.get_by_role("button", name=re.compile("Stop period")).count() == 0
    assert page.locator("#shadow-counts").count() == 1
