"""Runs left behind by a kill show as interrupted, not running, from the next start on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from faults_harness import Crm
from sqlalchemy import update

from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.store.owners import current_owner

CRMSYNC = str(Path(sys.executable).parent / "crmsync")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_backfill_shows_as_interrupted_from_the_next_start(
        tmp_path: Path, crm: Crm, empty_store_url: Callable[[], str]) -> None:
    url = empty_store_url()
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": url}, "connections": [crm.connection_dict("killed")]}))
    crm.sim.knobs.latency_ms = 300  # every page takes a while: the kill lands mid-run
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC__")}
    proc = subprocess.Popen([CRMSYNC, "backfill", "--connection", "killed", "--config", str(config)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(url)
    try:
        def running() -> bool:
            try:
                return any(r.status == "running" for r in store.last_runs(5))
            except Exception:  # noqa: BLE001 - the schema is being created by the process
                return False

        wait_for(running, 60, "the backfill run to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        [run] = store.last_runs(1)
        assert run.status == "running"  # what a kill leaves behind

        crm.sim.knobs.latency_ms = 0
        status = subprocess.run([CRMSYNC, "status", "--config", str(config)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        run = store.get_run(run.id)  # type: ignore[assignment]
        assert run is not None and run.status == "interrupted" and run.finished_at is not None
        assert "interrupted" in status.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


def test_a_live_run_of_another_process_is_left_running(store: Store) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_id = store.start_run("sync", "live", "deals")
        host = current_owner().split(":")[0]
        with store.transaction() as tx:
            tx.conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(owner=f"{host}:{sleeper.pid}:"))
        assert store.mark_interrupted_runs() == 0
        sleeper.kill()
        sleeper.wait(timeout=10)
        assert store.mark_interrupted_runs() == 1
        info = store.get_run(run_id)
        assert info is not None and info.status == "interrupted"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
