"""``crmsync rules shadow ...`` and ``crmsync report shadow|experiments|feedback`` on a real store."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.cli_options import state

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"


def run(*args: str) -> Any:
    state._settings = None  # one process runs every test: the global -c of this call is the one to read
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def _config(tmp_path: Path, url: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = tmp_path / "crmsync.yaml"
    path.write_text(json.dumps({"store": {"url": url}, "rules_dir": str(rules), "connections": []}), encoding="utf-8")
    return path


def test_shadow_commands_and_reports(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    config = str(_config(tmp_path, empty_store_url()))
    assert run("-c", config, "db", "upgrade").exit_code == 0
    candidate = tmp_path / "candidate"
    shutil.copytree(RULES_DIR, candidate)
    started = run("-c", config, "rules", "shadow", "start", "--dir", str(candidate), "--start", "2026-12-01T00:00Z",
                  "--end", "2026-12-08T00:00Z", "--note", "cap 2")
    assert started.exit_code == 0, started.output
    assert "shadow period 1: version 1, 2026-12-01 00:00Z to 2026-12-08 00:00Z" in started.stdout
    listed = json.loads(run("-c", config, "rules", "shadow", "list", "--json").stdout)
    assert [(p["id"], p["version_id"], p["note"]) for p in listed] == [(1, 1, "cap 2")]
    report = run("-c", config, "report", "shadow", "--json")
    assert report.exit_code == 0, report.output
    doc = json.loads(report.stdout)
    assert doc["counts"] == {"records_evaluated": 0, "records_differing": 0, "owners_differ": 0, "scores_differ": 0,
                             "tasks_only_live": 0, "tasks_only_shadow": 0}
    assert run("-c", config, "rules", "shadow", "stop", "1").exit_code == 0
    again = run("-c", config, "rules", "shadow", "stop", "1")
    assert again.exit_code == 1 and "no open shadow period 1" in again.output
    assert json.loads(run("-c", config, "rules", "shadow", "list", "--json").stdout)[0]["state"] == "stopped"

    text = run("-c", config, "report", "experiments")
    assert text.exit_code == 0, text.output
    assert "lead_routing_fewest_open (routing, leads, 2026-01-01 to 2027-03-31): not yet significant" in text.stdout
    doc = json.loads(run("-c", config, "report", "experiments", "--json").stdout)
    assert doc["status"] == {"lead_routing_fewest_open": "not yet significant"}
    feedback = json.loads(run("-c", config, "report", "feedback", "--json").stdout)
    assert feedback["rules"] == [] and feedback["findings"][0].startswith("0 of 0 findings")


def test_user_mistakes_are_one_clear_line(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    config = str(_config(tmp_path, empty_store_url()))
    naive = run("-c", config, "rules", "shadow", "start", "--version", "1", "--start", "2026-12-01T00:00")
    assert naive.exit_code == 2 and "with a zone" in naive.output and "Traceback" not in naive.output
    unknown = run("-c", config, "rules", "shadow", "start", "--version", "7")
    assert unknown.exit_code == 2 and "no rule-set version 7" in unknown.output
    backwards = run("-c", config, "rules", "shadow", "start", "--version", "7", "--start", "2026-12-02T00:00Z",
                    "--end", "2026-12-01T00:00Z")
    assert backwards.exit_code == 2 and "end must be after its start" in backwards.output
    broken = tmp_path / "broken"
    shutil.copytree(RULES_DIR, broken)
    (broken / "experiments.yaml").write_text("experiments: [{name: x}]\n", encoding="utf-8")
    refused = run("-c", config, "rules", "shadow", "start", "--dir", str(broken))
    assert refused.exit_code == 2 and "experiments.yaml:1" in refused.output and "Traceback" not in refused.output
    none = run("-c", config, "report", "shadow")
    assert none.exit_code == 1 and "no shadow period yet" in none.output, none.output
