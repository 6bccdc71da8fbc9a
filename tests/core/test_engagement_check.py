"""``crmsync check`` logs in to each sales-engagement tool with one cheap call (sandbox over HTTP)."""

from __future__ import annotations

from pathlib import Path

from crmsync.check import check_connection
from crmsync.sandbox.runner import start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import ConnectionSettings


def test_check_each_engagement_tool(tmp_path: Path) -> None:
    handle = start_sandbox(systems=("outreach", "apollo", "salesloft"), world=generate_world(3, 20), state_dir=tmp_path)
    try:
        for conn in handle.connections():
            result = check_connection(conn)
            assert result.ok, (conn.name, result.detail)
            assert result.quota_remaining is not None or conn.kind == "salesloft"
        wrong = handle.connection_dicts()[0] | {"credentials": {"access_token": "nope"}}
        bad = check_connection(ConnectionSettings.model_validate(wrong))
        assert not bad.ok and "nope" not in bad.detail
    finally:
        handle.stop()
