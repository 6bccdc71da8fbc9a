"""The operator's commands against a real store (SQLite file, or PostgreSQL with CRMSYNC_TEST_STORE_URL)
and the sandbox over real HTTP: ``check``, ``state``, ``--json`` output, read-only commands that never
migrate, ``--version``, ``--dry-run`` and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.model import ObjectType
from crmsync.sandbox.runner import CONNECTION_NAMES, SandboxHandle, start_sandbox
from crmsync.store import Store

SF, HS, PD, MR = (CONNECTION_NAMES[s] for s in ("salesforce", "hubspot", "pipedrive", "meteroid"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=40, seed=11, state_dir=tmp_path_factory.mktemp("operator-cli"))
    handle.sims["pipedrive"].knobs.update({"daily_limit": 1_000_000})  # so it states its token budget
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def config(sandbox: SandboxHandle, tmp_path: Path, empty_store_url: Callable[[], str]) -> Path:
    return sandbox.write_config(tmp_path / "crmsync.yaml", store_url=empty_store_url())


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "80"})


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _store_url(config: Path) -> str:
    from crmsync.settings import load_settings

    return load_settings(config).store.url


def _moved_to_2001(value: Any) -> Any:
    """The same cursor with every high-water mark at 2001-01-01 (epoch numbers or ISO strings)."""
    from crmsync.sync.state import POSITION_KEYS

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in POSITION_KEYS and isinstance(v, int) and not isinstance(v, bool):
                out[k] = 978_307_200_000 if v > 10_000_000_000 else 978_307_200
            elif k in POSITION_KEYS and isinstance(v, str):
                out[k] = "2001-01-01T00:00:00Z"
            else:
                out[k] = _moved_to_2001(v)
        return out
    if isinstance(value, list):
        return [_moved_to_2001(v) for v in value]
    return value


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("crmsync ")
    assert "--install-completion" in run("--help").stdout  # shell completion is on


def test_read_only_commands_never_migrate_and_say_what_to_do(config: Path) -> None:
    for args in (["status"], ["status", "--json"], ["state", "list"], ["report", "funnel"]):
        result = run(*args, "-c", str(config))
        assert result.exit_code == 3, (args, result.output)
        assert "crmsync db upgrade" in result.output
    store = Store.open(_store_url(config))
    try:
        assert store.current_revision() is None  # still empty: nothing migrated it
    finally:
        store.close()


def test_check_passes_on_the_sandbox_and_fails_on_an_unmigrated_store(config: Path) -> None:
    result = run("check", "-c", str(config), "--json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    store_check = document["checks"][0]
    assert not document["ok"] and store_check["check"] == "store" and not store_check["ok"]
    assert "crmsync db upgrade" in store_check["detail"]
    assert run("db", "upgrade", "-c", str(config)).exit_code == 0
    document = as_json(run("check", "-c", str(config), "--json"))
    assert document["ok"] is True
    by_target = {c["target"]: c for c in document["checks"] if c["check"] == "connection"}
    assert set(by_target) == {SF, HS, PD, MR}
    for name in (SF, HS, PD):
        assert by_target[name]["quota_remaining"] > 0 and by_target[name]["quota_limit"] > 0
        assert abs(by_target[name]["clock_skew_s"]) <= 5
    assert by_target[PD]["quota_unit"] == "tokens" and by_target[SF]["quota_unit"] == "calls"
    one = as_json(run("check", "-c", str(config), "--json", "--connection", PD))
    assert [c["target"] for c in one["checks"]] == [one["checks"][0]["target"], PD]
    table = run("check", "-c", str(config))
    assert table.exit_code == 0 and PD in table.stdout


def test_check_fails_on_bad_credentials(sandbox: SandboxHandle, tmp_path: Path,
                                         empty_store_url: Callable[[], str]) -> None:
    path = sandbox.write_config(tmp_path / "bad.yaml", store_url=empty_store_url())
    text = path.read_text(encoding="utf-8")
    token = sandbox.connection_dicts()[2]["credentials"]
    assert sandbox.connection_dicts()[2]["name"] == PD
    path.write_text(text.replace(str(token["api_token"]), "wrong-token"), encoding="utf-8")
    assert run("db", "upgrade", "-c", str(path)).exit_code == 0
    result = run("check", "-c", str(path), "--connection", PD, "--json")
    assert result.exit_code == 1
    [_, pd] = json.loads(result.stdout)["checks"]
    assert not pd["ok"] and "401" in pd["detail"] and "wrong-token" not in result.output


def test_unknown_connection_is_a_usage_error(config: Path) -> None:
    for args in (["check"], ["sync"], ["state", "list"]):
        result = run(*args, "-c", str(config), "--connection", "nope")
        assert result.exit_code == 2, (args, result.output)
        assert "nope" in result.output


def test_sync_dry_run_writes_nothing_then_sync_and_state(config: Path) -> None:
    assert run("db", "upgrade", "-c", str(config)).exit_code == 0
    dry = as_json(run("sync", "-c", str(config), "--connection", PD, "--dry-run", "--json"))
    assert dry["dry_run"] is True and {r["status"] for r in dry["results"]} == {"ok"}
    assert sum(r["records"] for r in dry["results"]) > 0
    assert as_json(run("state", "list", "-c", str(config), "--json")) == {"entries": []}
    store = Store.open(_store_url(config))
    try:
        assert store.count(ObjectType.DEAL, PD) == 0
        done = as_json(run("sync", "-c", str(config), "--connection", PD, "--json"))
        assert {r["status"] for r in done["results"]} == {"ok"}
        assert store.count(ObjectType.DEAL, PD) == next(r["records"] for r in done["results"] if r["object"] == "deals")

        entries = as_json(run("state", "list", "-c", str(config), "--json", "--connection", PD))["entries"]
        deals = next(e for e in entries if e["object"] == "deals")
        assert deals["kind"] == "cursor" and deals["position"] is not None

        got = as_json(run("state", "get", "-c", str(config), "--connection", PD, "--object", "deals"))
        assert "connector" in got, got
        # moving it back asks first; "n" leaves it as it was
        older = _moved_to_2001(got)
        refused = run("state", "set", "-c", str(config), "--connection", PD, "--object", "deals",
                      "--value", json.dumps(older), input="n\n")
        assert refused.exit_code == 1 and "moves back" in refused.output
        assert as_json(run("state", "get", "-c", str(config), "--connection", PD, "--object", "deals")) == got
        accepted = run("state", "set", "-c", str(config), "--connection", PD, "--object", "deals",
                       "--value", json.dumps(older), input="y\n")
        assert accepted.exit_code == 0, accepted.output
        assert as_json(run("state", "get", "-c", str(config), "--connection", PD, "--object", "deals")) == older

        bad = run("state", "set", "-c", str(config), "--connection", PD, "--object", "deals", "--value", "{oops")
        assert bad.exit_code == 2 and "not JSON" in bad.output

        assert run("state", "clear", "-c", str(config), "--connection", PD, "--object", "deals",
                   input="n\n").exit_code == 1
        cleared = run("state", "clear", "-c", str(config), "--connection", PD, "--object", "deals", "--yes")
        assert cleared.exit_code == 0, cleared.output
        assert run("state", "get", "-c", str(config), "--connection", PD, "--object", "deals").exit_code == 1

        logged = [r for r in store.last_runs(50, kind="state", connection=PD)]
        assert [r.counts["action"] for r in logged] == ["clear", "set"]
        assert logged[1].counts["before"] == got and logged[1].counts["after"] == older
        assert logged[0].counts["after"] is None

        status = as_json(run("status", "-c", str(config), "--json"))
        assert {c["name"] for c in status["connections"]} == {SF, HS, PD, MR}
        assert status["outbox"]["pending"] == 0 and isinstance(status["last_runs"], list)
    finally:
        store.close()


def test_chart_without_the_charts_extra_says_how_to_install_it(config: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    assert run("db", "upgrade", "-c", str(config)).exit_code == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in a worker installed without extras
    result = run("report", "funnel", "-c", str(config), "--chart", str(tmp_path / "f.png"))
    assert result.exit_code == 2 and "crmsync[charts]" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "f.png").exists()
    tables = as_json(run("report", "funnel", "-c", str(config), "--json"))  # the tables still work
    assert tables["funnels"] == []


RULES = Path(__file__).resolve().parents[2] / "config" / "rules"


def test_json_of_outbox_billing_and_rules(config: Path, sandbox: SandboxHandle) -> None:
    from crmsync.store import OutboxItem

    assert run("db", "upgrade", "-c", str(config)).exit_code == 0
    store = Store.open(_store_url(config))
    try:
        store.enqueue(OutboxItem(connection=PD, object_name="deals", operation="update",
                                 source_id=str(sandbox.world.deals[0].id), fields={"title": "Renamed by a test"},
                                 idempotency_key="op-cli-1"))
    finally:
        store.close()
    listed = as_json(run("outbox", "list", "-c", str(config), "--json", "--connection", PD))
    assert listed["counts"] == {"pending": 1} and listed["items"][0]["fields"] == ["title"]
    table = run("outbox", "list", "-c", str(config))
    assert table.exit_code == 0 and all(len(line) <= 80 for line in table.stdout.splitlines())

    dry = as_json(run("outbox", "drain", "-c", str(config), "--connection", PD, "--dry-run", "--json"))
    assert dry["dry_run"] is True and [i["status"] for i in dry["would_push"]] == ["pending"]
    assert as_json(run("outbox", "list", "-c", str(config), "--json"))["counts"] == {"pending": 1}  # nothing sent
    drained = as_json(run("outbox", "drain", PD, "-c", str(config), "--json"))
    assert drained["status"] == "ok" and drained["done"] == 1
    assert run("outbox", "drain", "-c", str(config)).exit_code == 2  # which connection?

    drift = as_json(run("billing", "drift", "-c", str(config), "--json", "--world-seed", "11", "--world-deals", "40"))
    assert isinstance(drift["mismatches"], list) and "total_at_stake" in drift
    for row in drift["mismatches"]:
        assert set(row) >= {"kind", "subject", "money_at_stake", "reason"} and isinstance(row["money_at_stake"], str)
    renewals = as_json(run("billing", "renewals", "-c", str(config), "--json"))
    assert renewals["window_days"] == [60, 90] and isinstance(renewals["renewals"], list)

    assert run("sync", "-c", str(config), "--connection", PD).exit_code == 0
    simulated = as_json(run("rules", "simulate", "-c", str(config), "--rules-dir", str(RULES), "--since", "3650d",
                            "--connection", PD, "--json"))
    assert simulated["records"] > 0 and simulated["decisions"] == sum(r["count"] for r in simulated["by_rule"])
    diff = as_json(run("rules", "diff", "-c", str(config), "--rules-dir", str(RULES), "--against", str(RULES),
                       "--json"))
    assert diff["rule_changes"] == [] and diff["old"]["hash"] == diff["new"]["hash"]


def test_backfill_dry_run_shows_a_plan_per_connection_with_totals_and_limits(config: Path,
                                                                              sandbox: SandboxHandle) -> None:
    for sim in sandbox.sims.values():
        sim.log.reset()
    result = run("backfill", "-c", str(config), "--connection", f"{PD},{HS}", "--object", "all", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index(PD) < out.index(HS)  # a table per connection, in the order asked
    assert out.count("│ all ") == 2  # each connection's objects add up (they share its limit)
    # the limits each plan came from, once per connection: Pipedrive's token budget as its headers said
    assert out.count("limits: ") == 2 and "daily_tokens 1000000" in out
    assert "Traceback" not in result.output
    listed = {route for route in sandbox.sims["hubspot"].log.snapshot()["by_route"] if route.startswith("GET")}
    assert "GET /crm/v3/objects/deals" not in listed  # planning counts, it does not list
