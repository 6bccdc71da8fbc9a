"""The worker serves the console too (``crmsync worker --console-port``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from crmsync.store import Store


def test_the_worker_serves_the_console_when_asked(tmp_path: Path, store: Store) -> None:
    config = tmp_path / "crmsync.yaml"
    rules = tmp_path / "rules"
    rules.mkdir()
    config.write_text(yaml.safe_dump({"store": {"url": store.engine.url.render_as_string(hide_password=False)},
                                      "rules_dir": str(rules), "connections": []}))
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "crmsync.cli", "worker", "--config", str(config),
                                 "--http-port", "-1", "--console-port", "0"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"admin console on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            url = m.group(1) if m else None
            time.sleep(0.1)
        assert url, log.read_text(errors="replace")[-3000:]
        page = httpx.get(url + "/login", timeout=10)
        assert page.status_code == 200 and "Sign in to the crmsync console" in page.text
        assert httpx.get(url + "/rules/routing", timeout=10).status_code == 303  # sign-in first
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
