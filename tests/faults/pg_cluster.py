"""A PostgreSQL cluster of a test's own (``pg_createcluster`` on a free port), to stop and start
under a running worker without touching the shared server."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from crmsync.sandbox.core import free_port


def available() -> str | None:
    """The PostgreSQL major version to create clusters with, or None when the tools are absent."""
    if shutil.which("pg_createcluster") is None or shutil.which("pg_ctlcluster") is None:
        return None
    versions = sorted(p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "postgres").exists())
    return versions[-1] if versions else None


@dataclass
class OwnCluster:
    version: str
    name: str
    port: int

    @classmethod
    def create(cls, version: str) -> OwnCluster:
        cluster = cls(version, f"crmsync_faults_{secrets.token_hex(4)}", free_port())
        subprocess.run(["pg_createcluster", version, cluster.name, "-p", str(cluster.port), "--start",
                        "--", "--auth=trust"], check=True, capture_output=True, timeout=120)
        return cluster

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, action: str) -> None:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action,
                        *(["-m", "fast"] if action == "stop" else [])], check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", self.version, self.name], capture_output=True, timeout=120)
