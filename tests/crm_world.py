"""One CRM's sandbox world and settings over a copy of the example rules, for the workflow tests
that run the same scenario against Salesforce, HubSpot and Pipedrive."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from crmsync.sandbox.runner import SandboxHandle, start_sandbox
from crmsync.settings import Settings, load_settings
from crmsync.store import Store

CRMS = ("salesforce", "hubspot", "pipedrive")
RULES_DIR = Path(__file__).resolve().parents[1] / "config" / "rules"


@contextmanager
def one_crm_sandbox(system: str, tmp_path: Path, *, seed: int = 7, deals: int = 300) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=deals, seed=seed, systems=(system,), state_dir=tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


def copied_rules(tmp_path: Path, *, name: str = "rules", edits: Mapping[str, tuple[str, str]] | None = None) -> Path:
    """The example rules copied under ``tmp_path``; ``edits`` maps a file to (old text, new text),
    and the old text must be there (an example rule changed under the test fails it loudly)."""
    rules = tmp_path / name
    shutil.copytree(RULES_DIR, rules)
    for file_name, (old, new) in (edits or {}).items():
        path = rules / file_name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{file_name} no longer says {old!r}"
        path.write_text(text.replace(old, new), encoding="utf-8")
    return rules


def settings_for(sandbox: SandboxHandle, store: Store, config: Path, rules: Path) -> Settings:
    """Settings from a config written at ``config`` for this sandbox, ``store`` and ``rules``."""
    url = store.engine.url.render_as_string(hide_password=False)
    return load_settings(sandbox.write_config(config, store_url=url, rules_dir=str(rules)))
