"""The ``crmsync`` console script, run as a user runs it (a real process, a real database)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from crmsync.store import Store

# The console script installed next to the running interpreter (the venv need not be on PATH).
CRMSYNC = str(Path(sys.executable).parent / "crmsync")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([CRMSYNC, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def write_config(path: Path, store_url: str, secret: str = "s3cr3t-token-value") -> Path:
    path.write_text(yaml.safe_dump({
        "store": {"url": store_url},
        "connections": [{"name": "hs", "kind": "hubspot", "base_url": "http://127.0.0.1:9",
                         "credentials": {"access_token": secret}, "objects": ["deals"]}],
    }))
    return path


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("db", "config", "status", "sync", "backfill", "demo", "sandbox", "rules", "outbox",
                    "worker", "billing", "report"):
        assert command in result.stdout, command


def test_db_upgrade_creates_the_schema_then_is_a_no_op(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    url = empty_store_url()
    config = write_config(tmp_path / "crmsync.yaml", url)
    first = run("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "schema empty ->" in first.stdout
    second = run("db", "upgrade", "--config", str(config), cwd=tmp_path)
    assert second.returncode == 0 and "schema empty" not in second.stdout
    store = Store.open(url)
    try:
        assert store.current_revision() is not None
    finally:
        store.close()


def test_store_url_from_the_environment(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    url = empty_store_url()
    config = write_config(tmp_path / "crmsync.yaml", "sqlite:///ignored.db")
    result = run("db", "upgrade", "--config", str(config), cwd=tmp_path, env={"CRMSYNC__STORE__URL": url})
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "ignored.db").exists()


def test_status_on_a_fresh_store_masks_nothing_secret(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    config = write_config(tmp_path / "crmsync.yaml", empty_store_url())
    result = run("--log-format", "json", "status", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 3 and "crmsync db upgrade" in result.stderr  # read-only: never migrates
    assert run("db", "upgrade", "--config", str(config), cwd=tmp_path).returncode == 0
    result = run("--log-format", "json", "status", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for title in ("connections", "cursors", "last runs", "queues", "outbox pending", "quarantine"):
        assert title in result.stdout
    assert "s3cr3t-token-value" not in result.stdout + result.stderr


def test_config_check_masks_credentials(tmp_path: Path) -> None:
    config = write_config(tmp_path / "crmsync.yaml", "sqlite:///x.db")
    result = run("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "access_token=**********" in result.stdout
    assert "s3cr3t-token-value" not in result.stdout


def test_bad_config_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "crmsync.yaml"
    config.write_text("store:\n  url: sqlite:///x.db\nconnections:\n  - name: hs\n    kind: zoho\n")
    result = run("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{config}:5" in result.stderr.replace("\n", "")
    assert "connections.0.kind" in result.stderr


def test_sync_of_an_unreachable_crm_fails_cleanly_without_leaking_the_token(
        tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    config = write_config(tmp_path / "crmsync.yaml", empty_store_url())
    result = run("--log-format", "json", "sync", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "s3cr3t-token-value" not in result.stdout + result.stderr


def test_the_demo_runs_from_any_directory(tmp_path: Path) -> None:
    """An installed CLI's demo needs no checkout as its working directory: the example rules are
    found by absolute path and the written config resolves its paths beside itself. The work
    directory is relative, as the README's ``make demo`` gives it (``.crmsync/demo``)."""
    result = run("demo", "--deals", "30", "--workdir", "w",
                 "--store-url", f"sqlite:///{tmp_path / 'demo.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "rule directory does not exist" not in result.stdout + result.stderr
    assert "0 failed" in result.stdout
    config = yaml.safe_load((tmp_path / "w" / "crmsync.yaml").read_text())
    assert Path(config["rules_dir"]).is_absolute() and (Path(config["rules_dir"]) / "routing.yaml").is_file()
