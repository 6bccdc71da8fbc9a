"""What the per-CRM benches share on their command line (bench_quota, bench_read, bench_write, bench_peers).

``--option KEY=VALUE`` (repeated) sets a connection option, its value read as YAML; a bench given
several CRMs runs itself once per CRM, each in its own process, so no CRM's figures (peak RSS,
warm caches) carry into the next one's.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml


def connection_options(pairs: list[str]) -> dict[str, Any]:
    """``["stage_history=false", "prefetch_pages=1"]`` -> ``{"stage_history": False, "prefetch_pages": 1}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        options[key] = yaml.safe_load(value)
    return options


def run_each_crm(script: str, crms: list[str], deals: int, seed: int, options: list[str], banner: str) -> None:
    """Print ``banner``, then run ``script`` once per CRM with the same deals, seed and options."""
    print(banner, flush=True)
    for crm in crms:
        cmd = [sys.executable, script, "--deals", str(deals), "--crm", crm, "--seed", str(seed)]
        for opt in options:
            cmd += ["--option", opt]
        subprocess.run(cmd, check=True)
