"""Errors a person can act on, and one config everywhere: a user's mistake prints one clear line
naming the setting and exits non-zero, never a traceback (``--debug`` shows it); the global
``--config/-c`` is honoured by every command and its secrets never show."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmsync.sandbox.core import free_port

CRMSYNC = str(Path(sys.executable).parent / "crmsync")
SECRET = "s3cr3t-token-for-the-redactor"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC")}
    return subprocess.run([CRMSYNC, *args], cwd=cwd, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=120)


def config(path: Path, store_url: str, **connection: Any) -> Path:
    conn = {"name": "hs", "kind": "hubspot", "base_url": "http://127.0.0.1:9", "objects": ["deals"],
            "credentials": {"access_token": SECRET}, **connection}
    path.write_text(yaml.safe_dump({"store": {"url": store_url}, "connections": [conn],
                                    "rules_dir": str(Path(__file__).resolve().parents[2] / "config" / "rules")}))
    return path


@pytest.mark.parametrize(("base_url", "says"), [
    ("htp:/api.hubapi.com", "scheme htp: is not http: or https:"),
    ("https://api.hubapi.com:99999", "Port out of range"),
    ("https://api.hubapi.com:eighty", "not a valid URL"),
    ("https://", "names no host"),
    ("https://api.hubapi.com /v3", "whitespace"),
])
def test_config_check_catches_every_malformed_url(tmp_path: Path, base_url: str, says: str) -> None:
    path = config(tmp_path / "crmsync.yaml", "sqlite:///x.db", base_url=base_url)
    result = run("config", "check", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "connections.0.base_url" in result.stderr and says in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("store_url", "says", "code"), [
    (f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres", "cannot use postgresql", 3),  # not ready
    ("postgresql+psycopg://nobody:wrong-password@127.0.0.1:5432/postgres", "store error", 3),
    ("postgresql+psycopg://postgres@127.0.0.1:70000/postgres", "port 70000 is out of range", 2),  # config
])
def test_an_unusable_store_is_one_clear_line(tmp_path: Path, store_url: str, says: str, code: int) -> None:
    path = config(tmp_path / "crmsync.yaml", store_url)
    result = run("status", "-c", str(path), cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr and "wrong-password" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) <= 3
    debug = run("--debug", "status", "-c", str(path), cwd=tmp_path)
    assert debug.returncode != 0 and ("Traceback" in debug.stderr or "config error" in debug.stderr)


def test_an_unknown_connection_is_one_clear_line(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    path = config(tmp_path / "crmsync.yaml", empty_store_url())
    for args in (("sync", "--connection", "nope"), ("backfill", "--connection", "nope"), ("outbox", "drain", "nope")):
        result = run("-c", str(path), *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "no connection named 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_the_global_config_is_honoured_by_every_command(tmp_path: Path, empty_store_url: Callable[[], str]) -> None:
    """No config/crmsync.yaml in the working directory: only ``-c`` before the command says where
    the store is, and each command works on it (or answers about it) without leaking the token."""
    url = empty_store_url()
    path = config(tmp_path / "elsewhere.yaml", url)
    assert run("-c", str(path), "db", "upgrade", cwd=tmp_path).returncode == 0
    commands = [("status",), ("outbox", "list"), ("rules", "validate"), ("report", "funnel"),
                ("billing", "renewals"), ("config", "check")]
    for args in commands:
        result = run("-c", str(path), *args, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, (args, output[-2000:])
        assert SECRET not in output, args
        assert "no such file" not in output and "crmsync-sandbox" not in output, (args, output[-500:])
    assert not (tmp_path / "crmsync.db").exists()  # nothing fell back to the default store
