"""``crmsync demo``: the whole worker against the local sandbox, on SQLite, with no accounts.

1. start Salesforce, HubSpot, Pipedrive, Meteroid and Gong simulators on loopback (one seeded world);
2. backfill every CRM object into a fresh SQLite store and compare the store with each
   simulator's truth;
3. run the example rules (scoring, routing, hygiene, handoff, renewal);
4. run the billing checks against Meteroid and turn won deals into subscriptions; pull Gong calls
   (before the rules: call signals) and Meteroid usage and invoices (after billing), re-run the
   rules for customer health, check-ins and expansion opportunities;
5. push every write decided by rules and billing through the outbox;
6. enrol the routed Salesforce leads in Outreach sequences (``config/rules/sequence.yaml``);
7. print what happened, then ``crmsync status``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crmsync.logging import configure_logging
from crmsync.model import ObjectType
from crmsync.sandbox.runner import (
    CONNECTION_NAMES,
    CRM_OBJECTS,
    DEAL_OBJECT,
    SYSTEMS,
    SandboxHandle,
    start_sandbox,
)
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.sync.engine import OBJECT_TYPES, ObjectResult
from crmsync.sync.runner import open_engine


def run_demo(console: Console, *, deals: int, seed: int, store_url: str, workdir: Path,
             details: bool = False) -> int:
    """A short summary per phase; ``details`` adds every table (per object, example decisions, status)."""
    started = time.perf_counter()
    _fresh_sqlite(store_url)
    console.rule("[bold]crmsync demo")
    console.print(f"generating a world of {deals:,} deals per CRM (seed {seed}) and starting the sandbox...")
    handle = start_sandbox(deals=deals, seed=seed, state_dir=workdir, systems=(*SYSTEMS, "gong", "outreach"))
    try:
        config_path = handle.write_config(workdir / "crmsync.yaml", store_url=store_url)
        settings = load_settings(config_path)
        configure_logging("json", secrets=settings.secret_values(), level="WARNING")
        for name, server in handle.servers.items():
            console.print(f"  {name:<11} {server.url}")
        store = Store.open(settings.store.url)
        store.upgrade()
        ok = _sync_all(console, settings, store, handle, details)
        from crmsync.demo_signals import pull_calls, usage_and_health

        pull_calls(console, settings, store)
        _rules(console, settings, store, details)
        _billing(console, settings, store, details)
        usage_and_health(console, settings, store, [CONNECTION_NAMES[s] for s in ("salesforce", "hubspot", "pipedrive")],
                         details, billing_sim=handle.sims.get("meteroid"))
        _findings(console, settings, store, handle)
        _push(console, settings, store)
        _sequences(console, settings, store, details)
        if details:
            console.rule("status")
            from crmsync.status import render_status

            render_status(console, settings, store)
        else:
            counts = store.outbox_counts()
            console.print(f"\noutbox: {counts.get('done', 0):,} written, {counts.get('pending', 0):,} pending, "
                          f"{counts.get('failed', 0):,} failed, {counts.get('parked', 0):,} parked; "
                          f"quarantine: {store.quarantine_count():,}")
            console.print(f"details: crmsync demo --details, or crmsync status -c {config_path}")
        from crmsync.console.demo import announce

        announce(console, store, config_path)
        console.print(f"config written to {config_path}; store {store_url}; "
                      f"{time.perf_counter() - started:.1f}s in all")
        return 0 if ok else 1
    finally:
        handle.stop()


def _fresh_sqlite(store_url: str) -> None:
    """The demo regenerates its world each run, so its SQLite file starts empty."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sync_all(console: Console, settings: Settings, store: Store, handle: SandboxHandle,
              details: bool = False) -> bool:
    console.rule("backfill every CRM into the store")
    table = Table()
    for col in ("connection", "object", "records", "api calls", "seconds", "source", "stored", "complete"):
        table.add_column(col, justify="right" if col not in ("connection", "object") else "left")
    summary = Table()
    for col in ("connection", "objects", "records", "api calls", "seconds", "complete"):
        summary.add_column(col, justify="right" if col != "connection" else "left")
    all_ok = True
    for system in ("salesforce", "hubspot", "pipedrive"):
        name = CONNECTION_NAMES[system]
        records = calls = complete = unchecked = 0
        t_conn = time.perf_counter()
        with open_engine(settings, store, name) as engine:
            for object_name in CRM_OBJECTS[system]:
                t0 = time.perf_counter()
                result: ObjectResult = engine.backfill(object_name)
                all_ok &= result.status == "ok" and result.complete is not False
                records, calls = records + result.records, calls + result.api_calls
                complete += result.status == "ok" and result.complete is not False
                unchecked += result.status == "ok" and result.complete is None
                table.add_row(name, object_name, f"{result.records:,}", str(result.api_calls),
                              f"{time.perf_counter() - t0:.2f}", str(result.source_count),
                              str(result.stored_count),
                              {True: "[green]yes", False: "[red]NO", None: "-"}[result.complete]
                              if result.status == "ok" else f"[red]{result.status}: {result.error}")
        n = len(CRM_OBJECTS[system])
        summary.add_row(name, str(n), f"{records:,}", f"{calls:,}", f"{time.perf_counter() - t_conn:.1f}",
                        (f"[green]{complete}/{n}" if complete == n else f"[red]{complete}/{n}")
                        + (f" ({unchecked} not counted)" if unchecked else ""))
    console.print(table if details else summary)
    truth = Table(title="store vs sandbox truth (live deals)")
    for col in ("connection", "sandbox", "store", "equal"):
        truth.add_column(col)
    for system, native in DEAL_OBJECT.items():
        name = CONNECTION_NAMES[system]
        source_ids = {str(r.get("Id") or r.get("id")) for r in handle.sims[system].truth(native)}
        stored = store.source_ids(ObjectType.DEAL, name)
        equal = source_ids == stored
        all_ok &= equal
        truth.add_row(name, f"{len(source_ids):,}", f"{len(stored):,}", "[green]yes" if equal else "[red]NO")
    console.print(truth)
    return all_ok


def _rules(console: Console, settings: Settings, store: Store, details: bool = False) -> None:
    from crmsync.decide.runner import run_full

    console.rule("rules: scoring, routing, hygiene, handoff, renewal")
    table = Table()
    columns = ("connection", "evaluated", "decisions", "queued writes") + (("by action",) if details else ())
    for col in columns:
        table.add_column(col)
    for system in ("salesforce", "hubspot", "pipedrive"):
        name = CONNECTION_NAMES[system]
        run = run_full(settings, store, name)
        actions = ", ".join(f"{k} {v}" for k, v in sorted(run.by_action.items()))
        table.add_row(name, f"{run.evaluated:,}", f"{run.logged:,}", f"{run.enqueued:,}", *([actions] if details else []))
    console.print(table)
    if details:
        _show_decisions(console, store)


def _push(console: Console, settings: Settings, store: Store) -> None:
    from crmsync.connectors import build_connector
    from crmsync.sync.outbox import drain

    console.rule("outbox: push every decided write (rules and billing) to the CRMs")
    pushed = Table()
    for col in ("connection", "pushed", "created", "conflicts", "failed", "api calls"):
        pushed.add_column(col)
    for system in ("salesforce", "hubspot", "pipedrive"):
        name = CONNECTION_NAMES[system]
        conn = settings.connection(name)
        connector = build_connector(conn)
        try:
            outcome: Any = drain(store, connector, conn)
        finally:
            connector.close()
        pushed.add_row(name, str(getattr(outcome, "done", "")), str(getattr(outcome, "created", "")),
                       str(getattr(outcome, "conflicts", "")), str(getattr(outcome, "failed", "")),
                       str(getattr(outcome, "api_calls", "")))
    console.print(pushed)


def _sequences(console: Console, settings: Settings, store: Store, details: bool = False) -> None:
    """Routed leads into Outreach sequences: decided by ``sequence.yaml``, pushed through the outbox."""
    from crmsync.connectors import build_connector
    from crmsync.engagement.runner import run_sequences
    from crmsync.engagement.sync import sync_engagement
    from crmsync.rules.sequence import ENROL_SEQUENCE, load_sequence_rules
    from crmsync.sync.outbox import drain

    rules = load_sequence_rules(settings.rules_dir)
    if rules is None or rules.tool not in {c.name for c in settings.connections}:
        return
    console.rule(f"sequences: routed leads enrolled in {rules.tool}")
    tool = settings.connection(rules.tool)
    connector = build_connector(tool)
    try:
        sync_engagement(store, connector, tool.objects)
        run = run_sequences(store, CONNECTION_NAMES["salesforce"], rules)
        pushed = drain(store, connector, tool)
    finally:
        connector.close()
    by_sequence = Counter(str(d.fields.get("sequence")) for d in run.decisions if d.action == ENROL_SEQUENCE)
    console.print(f"{run.evaluated:,} leads: {run.enrolled:,} enrolled ("
                  + ", ".join(f"{name} {n}" for name, n in by_sequence.most_common())
                  + f"), {run.findings:,} findings (owner without a mailbox, sequence missing), "
                  f"{max(0, run.evaluated - run.enrolled - run.findings):,} skipped (skip_statuses, opted out, "
                  f"no email); {pushed.done:,} sequence states pushed, "
                  f"{pushed.failed:,} failed, {pushed.api_calls:,} API calls")
    if details:
        for d in [d for d in run.decisions if d.action == ENROL_SEQUENCE][:3]:
            console.print(f"  {d.source_id}: {d.reason}")


def _show_decisions(console: Console, store: Store) -> None:
    examples = Table(title="a few decisions, with their reasons")
    for col in ("rule", "record", "action", "reason"):
        examples.add_column(col, overflow="fold")
    seen: Counter[str] = Counter()
    for decision in store.decisions(limit=400):
        if seen[decision.rule_kind] >= 2:
            continue
        seen[decision.rule_kind] += 1
        examples.add_row(f"{decision.rule_kind}/{decision.rule_name}",
                         f"{decision.connection}/{decision.object_type}/{decision.source_id}",
                         decision.action, (decision.reason or "")[:140])
    console.print(examples)


def _findings(console: Console, settings: Settings, store: Store, handle: SandboxHandle) -> None:
    """Precision / recall of every hygiene rule and billing check against what the world planted."""
    from decimal import Decimal

    from crmsync.accuracy import crm_scores, crm_table, world_catalog
    from crmsync.billing.checks import CheckConfig
    from crmsync.decide.runner import current_rule_set

    console.rule("findings vs the problems the world planted")
    rules = current_rule_set(settings, store)[0]
    catalog = world_catalog(handle.world)
    cfg = CheckConfig(amount_tolerance=Decimal(settings.billing.amount_tolerance),
                      discount_approval_threshold=Decimal(settings.billing.discount_approval_threshold))
    scores = {CONNECTION_NAMES[system]: crm_scores(store, CONNECTION_NAMES[system], handle.world, rules, catalog, cfg)
              for system in ("salesforce", "hubspot", "pipedrive")}
    console.print(crm_table(scores, title="precision/recall per check and CRM ('-': nothing planted or found; "
                                          "0.00/0.00: the CRM does not show crmsync that field)"))


def _billing(console: Console, settings: Settings, store: Store, details: bool = False) -> None:
    try:
        from crmsync.billing.demo import run_billing_demo
    except ModuleNotFoundError as exc:
        if exc.name and "crmsync.billing" in exc.name:
            console.print("[yellow]billing module not installed; skipping billing[/yellow]")
            return
        raise
    console.rule("billing: price-book drift and won deals to subscriptions")
    run_billing_demo(console, settings, store, details=details)


__all__ = ["OBJECT_TYPES", "run_demo"]
