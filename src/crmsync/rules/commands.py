"""``crmsync rules ...``: validate, test, explain, simulate, diff (thin shells over the library).

The main CLI mounts ``rules_app`` with ``app.add_typer(rules_app, name="rules")``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crmsync.cli_options import (
    ConfigOption,
    ConnectionOption,
    ConnectionRequired,
    JsonOption,
    console,
    print_json,
    require_connection,
    state,
)
from crmsync.model import ObjectType, now_utc
from crmsync.rules.context import RuleContext
from crmsync.rules.loader import RuleFileError, RuleSet, load_rules

rules_app = typer.Typer(help="Rule sets: validate, test, explain, simulate, diff.", no_args_is_help=True)

RULES_DIR = typer.Option(None, "--rules-dir", help="Directory of rule files (default: rules_dir of the config).")


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    columns = list(rows[0]) if rows else ["(nothing)"]
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    return table


def _rules_dir(rules_dir: Path | None) -> Path:
    """``--rules-dir``, else the config's ``rules_dir`` (the global ``--config/-c``)."""
    if rules_dir is not None:
        return rules_dir
    return Path(state.settings().rules_dir)


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(_rules_dir(rules_dir))
    except RuleFileError as exc:
        for issue in exc.issues:
            console.print(f"[red]error[/red] {escape(str(issue))}", highlight=False)
        raise typer.Exit(1) from exc


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """``30d``, ``12h``, ``2w`` or an ISO timestamp -> the instant it names."""
    m = re.fullmatch(r"\s*(\d+)\s*([dhwm])\s*", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"h": dt.timedelta(hours=n), "d": dt.timedelta(days=n), "w": dt.timedelta(weeks=n),
                 "m": dt.timedelta(minutes=n)}[unit]
        return now - delta
    from crmsync.model import parse_timestamp

    parsed = parse_timestamp(text, field_name="--since")
    if parsed is None:
        raise typer.BadParameter("expected e.g. 30d, 12h or an ISO timestamp")
    return parsed


def _open_store(config: Path | None, connection: str | None = None) -> Any:
    """The store, read-only (never migrated here; exits 3 when it needs `crmsync db upgrade`)."""
    require_connection(state.settings(config), connection)
    return state.read_store()


def context_from_store(store: Any, now: dt.datetime, connection: str | None = None) -> RuleContext:
    """Owners, stages and accounts from the store, routing state read through the store."""
    from crmsync.rules.state import StoreRoutingState

    def table(ot: ObjectType) -> dict[tuple[str, str], Any]:
        return {(r.connection, r.source_id): r for r in store.iter_records(ot, connection=connection)}

    return RuleContext(now=now, owners=table(ObjectType.OWNER), stages=table(ObjectType.STAGE),
                       accounts=table(ObjectType.ACCOUNT), routing_state=StoreRoutingState(store))


@rules_app.command("validate")
def validate_cmd(rules_dir: Path | None = RULES_DIR) -> None:
    """Check every rule file; errors name the file, line, key and what was expected."""
    from crmsync.rules.sequence import SequenceRuleError, load_sequence_rules

    rule_set = _load(rules_dir)
    try:
        sequences = load_sequence_rules(_rules_dir(rules_dir))
    except SequenceRuleError as exc:
        for line in str(exc).splitlines():
            console.print(f"[red]error[/red] {escape(line)}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(f"ok: {rule_set.rule_count} rules in {len(rule_set.files)} files, version {rule_set.hash[:12]}")
    if sequences is not None:
        console.print(f"ok: {len(sequences.spec.sequences)} sequence rules (sequence.yaml, tool "
                      f"{sequences.tool}), version {sequences.hash[:12]}")


@rules_app.command("test")
def test_cmd(rules_dir: Path | None = RULES_DIR) -> None:
    """Run the cases in <rules-dir>/tests/*.yaml against the rule set."""
    from crmsync.rules.testing import run_tests

    rule_set = _load(rules_dir)
    try:
        results = run_tests(rule_set, _rules_dir(rules_dir) / "tests")
    except RuleFileError as exc:
        for issue in exc.issues:
            console.print(f"[red]error[/red] {escape(str(issue))}", highlight=False)
        raise typer.Exit(1) from exc
    failed = 0
    for r in results:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {Path(r.file).name}: {r.name}", highlight=False)
        for p in r.problems:
            console.print(f"      {p}", highlight=False)
        failed += not r.passed
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


@rules_app.command("explain")
def explain_cmd(
    record_id: Annotated[str, typer.Argument(help="Source id of the deal or lead.")],
    connection: ConnectionRequired,
    object_type: str = typer.Option("deal", "--object", help="deal or lead."),
    rules_dir: Path | None = RULES_DIR,
    config: ConfigOption = None,
) -> None:
    """Explain, rule by rule and field by field, what the rules decide for one record."""
    from crmsync.rules.explain import explain

    rule_set = _load(rules_dir)
    store = _open_store(config, connection)
    ot = ObjectType(object_type)
    record = store.get(ot, connection, record_id)
    if record is None:
        console.print(f"[red]no {ot.value} {record_id!r} in connection {connection!r}[/red]")
        raise typer.Exit(1)
    ctx = context_from_store(store, now_utc(), connection)
    console.print(_table(f"{ot.value} {record_id}", explain(rule_set, record, ctx)))
    sequence = [{"kind": "logged:sequence", "rule": d.rule_name, "result": d.action, "detail": d.reason}
                for d in store.decisions(connection=connection, object_type=ot.value, source_id=record_id)
                if d.rule_kind == "sequence"]
    if sequence:  # decided with the engagement tool's memberships: shown as logged, newest first
        console.print(_table("sequence decisions (logged)", sequence))


@rules_app.command("simulate")
def simulate_cmd(
    since: str = typer.Option("30d", "--since", help="Records modified since (30d, 12h, or ISO)."),
    connection: ConnectionOption = None,
    rules_dir: Path | None = RULES_DIR,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the rules would decide over recently modified records (nothing is written)."""
    from crmsync.rules.simulate import simulate

    rule_set = _load(rules_dir)
    store = _open_store(config, connection)
    now = now_utc()
    start = parse_since(since, now)
    records = [r for ot in (ObjectType.DEAL, ObjectType.LEAD)
               for r in store.iter_records(ot, connection=connection, modified_since=start)]
    report = simulate(rule_set, records, context_from_store(store, now, connection))
    store.close()
    if as_json:
        print_json({"rule_set": rule_set.hash, "since": start.isoformat(), "records": report.records,
                    "decisions": len(report.decisions), "by_rule": report.by_rule, "by_owner": report.by_owner})
        return
    console.print(f"{report.records} records, {len(report.decisions)} decisions")
    console.print(_table("decisions per rule", report.by_rule))
    if report.by_owner:
        console.print(_table("assignments per owner", report.by_owner))


@rules_app.command("diff")
def diff_cmd(
    against: Path = typer.Option(..., "--against", help="The other rule directory (e.g. the deployed one)."),
    rules_dir: Path | None = RULES_DIR,
    since: str | None = typer.Option(None, "--since", help="Also compare decisions on records modified since."),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rule-by-rule differences between two rule sets, and optionally the decisions that change."""
    from crmsync.rules.diff import diff_decisions, diff_rule_sets

    old, new = _load(against), _load(rules_dir)
    rule_changes = diff_rule_sets(old, new)
    decision_changes = None
    if since is not None:
        store = _open_store(config)
        now = now_utc()
        start = parse_since(since, now)
        records = [r for ot in (ObjectType.DEAL, ObjectType.LEAD) for r in store.iter_records(ot, modified_since=start)]
        decision_changes = diff_decisions(old, new, records, context_from_store(store, now))
        store.close()
    if as_json:
        print_json({"old": {"dir": str(against), "hash": old.hash}, "new": {"dir": str(_rules_dir(rules_dir)), "hash": new.hash},
                    "rule_changes": rule_changes, "decision_changes": decision_changes})
        return
    console.print(f"{against} {old.hash[:12]} -> {_rules_dir(rules_dir)} {new.hash[:12]}")
    console.print(_table("rule changes", rule_changes))
    if decision_changes is not None:
        console.print(_table("decision changes", decision_changes))


# crmsync rules shadow start|stop|list (crmsync.workflow_commands)
from crmsync.workflow_commands import shadow_app  # noqa: E402

rules_app.add_typer(shadow_app, name="shadow")
