"""The rule workspace: the live rule directory, one shared draft of it, and published versions.

- **Live**: ``settings.rules_dir`` (``config/rules``), the files the worker loads every cycle. A
  file edited there by hand shows up here, and is recorded as a version (origin ``files``) the
  first time the console sees its hash.
- **Draft**: a copy of the live rule files under the console's state directory. Every form edit
  rewrites one draft file through ruamel.yaml (comments and layout kept) and is saved only when the
  whole draft still validates; otherwise nothing is written and the loader's issues are returned.
- **Publish** writes the draft files that differ into the live directory (each file replaced
  atomically) and records a version: hash, author, note and the files' exact text. The worker's
  next cycle reloads the directory and applies it; a half-written directory cannot be applied,
  since the loader keeps the last good set when files disagree.
- **Roll back** writes an earlier version's files into the live directory the same way, as a new
  version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from crmsync.console import audit, yamledit
from crmsync.model import now_utc
from crmsync.rules.loader import KINDS, RuleFileError, RuleIssue, RuleSet, load_rules
from crmsync.rules.testing import CaseResult, run_tests
from crmsync.store import Store
from crmsync.store import tables as t

BASE_FILE = ".draft.json"


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    hash: str
    author: str
    note: str | None
    origin: str
    published_at: dt.datetime
    files: dict[str, str]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A directory's rule set, or the issues that keep it from loading."""

    rule_set: RuleSet | None
    issues: list[RuleIssue]


def rule_file_names(directory: Path) -> list[str]:
    names = []
    for kind in KINDS:
        for ext in (".yaml", ".yml"):
            if (directory / f"{kind}{ext}").exists():
                names.append(f"{kind}{ext}")
                break
    return names


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Workspace:
    def __init__(self, store: Store, live_dir: Path, draft_dir: Path) -> None:
        self.store = store
        self.live_dir = Path(live_dir)
        self.draft_dir = Path(draft_dir)
        self._lock = threading.RLock()
        # compiled sets and test results of the live and draft directories, keyed by their files'
        # (name, mtime, size): pages load the rules on every request, the files rarely change
        self._loaded: dict[tuple[Any, ...], Loaded] = {}
        self._tested: dict[tuple[Any, ...], tuple[list[CaseResult], list[RuleIssue]]] = {}

    # --- reading -------------------------------------------------------------------------
    def has_draft(self) -> bool:
        return (self.draft_dir / BASE_FILE).exists()

    def draft_info(self) -> dict[str, Any]:
        if not self.has_draft():
            return {}
        return dict(json.loads((self.draft_dir / BASE_FILE).read_text(encoding="utf-8")))

    def working_dir(self) -> Path:
        """Where the rule pages read from: the draft when there is one, else the live files."""
        return self.draft_dir if self.has_draft() else self.live_dir

    def texts(self, directory: Path | None = None) -> dict[str, str]:
        root = directory or self.working_dir()
        return {name: (root / name).read_text(encoding="utf-8") for name in rule_file_names(root)}

    def file_name(self, kind: str) -> str:
        for name in rule_file_names(self.working_dir()):
            if name.split(".")[0] == kind:
                return name
        return f"{kind}.yaml"

    def data(self, kind: str) -> Any:
        path = self.working_dir() / self.file_name(kind)
        return yamledit.load(path.read_text(encoding="utf-8")) if path.exists() else yamledit.load("")

    def _stamp(self, directory: Path, extra: str | None = None) -> tuple[Any, ...]:
        parts: list[Any] = [str(directory)]
        paths = [directory / n for n in rule_file_names(directory)]
        if extra is not None:
            root = directory / extra
            paths += sorted(root.glob("*.y*ml")) if root.is_dir() else []
        for path in paths:
            st = path.stat()
            parts.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(parts)

    def load(self, directory: Path) -> Loaded:
        cacheable = directory in (self.live_dir, self.draft_dir)
        key = self._stamp(directory) if cacheable else ()
        if cacheable and key in self._loaded:
            return self._loaded[key]
        try:
            loaded = Loaded(load_rules(directory), [])
        except RuleFileError as exc:
            loaded = Loaded(None, self._as_live(exc.issues, directory))
        if cacheable:
            if len(self._loaded) > 16:
                self._loaded.clear()
            self._loaded[key] = loaded
        return loaded

    def live(self) -> Loaded:
        return self.load(self.live_dir)

    def draft(self) -> Loaded:
        return self.load(self.working_dir())

    def tests(self, rule_set: RuleSet) -> tuple[list[CaseResult], list[RuleIssue]]:
        """The rule test cases (the live directory's ``tests/``) against ``rule_set``."""
        tests_dir = self.live_dir / "tests"
        if not tests_dir.is_dir():
            return [], []
        key = (rule_set.hash, *self._stamp(self.live_dir, "tests"))
        if key not in self._tested:
            try:
                outcome: tuple[list[CaseResult], list[RuleIssue]] = (run_tests(rule_set, tests_dir), [])
            except RuleFileError as exc:
                outcome = ([], list(exc.issues))
            if len(self._tested) > 16:
                self._tested.clear()
            self._tested[key] = outcome
        return self._tested[key]

    def _as_live(self, issues: list[RuleIssue], directory: Path) -> list[RuleIssue]:
        """Issues found in a draft or a scratch copy name the live file the text will become."""
        out = []
        for issue in issues:
            name = Path(issue.file).name
            file = str(self.live_dir / name) if Path(issue.file).parent == directory else issue.file
            out.append(RuleIssue(file, issue.line, issue.key, issue.message))
        return out

    # --- editing the draft -----------------------------------------------------------------
    def start_draft(self, actor: str) -> None:
        with self._lock:
            if self.has_draft():
                return
            self.draft_dir.mkdir(parents=True, exist_ok=True)
            for name in rule_file_names(self.draft_dir):
                (self.draft_dir / name).unlink()
            for name in rule_file_names(self.live_dir):
                shutil.copy2(self.live_dir / name, self.draft_dir / name)
            live = self.live()
            info = {"started_by": actor, "started_at": now_utc().isoformat(),
                    "base_hash": live.rule_set.hash if live.rule_set else None}
            _atomic_write(self.draft_dir / BASE_FILE, json.dumps(info))
            audit.record(self.store, actor, "draft.start", str(self.live_dir), base_hash=info["base_hash"])

    def discard_draft(self, actor: str) -> None:
        with self._lock:
            if not self.has_draft():
                return
            shutil.rmtree(self.draft_dir)
            audit.record(self.store, actor, "draft.discard", str(self.live_dir))

    def edit(self, actor: str, kind: str, change: Callable[[Any], None], *, what: str) -> list[RuleIssue]:
        """Apply ``change`` to the draft's ``kind`` file; saved only if the whole draft validates."""
        with self._lock:
            self.start_draft(actor)
            name = self.file_name(kind)
            path = self.draft_dir / name
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            data = yamledit.load(before)
            try:
                change(data)
            except yamledit.PathError as exc:
                return [RuleIssue(str(self.live_dir / name), None, "", str(exc))]
            after = yamledit.dump(data)
            return self._save(actor, name, before, after, what=what)

    def save_text(self, actor: str, kind: str, text: str) -> list[RuleIssue]:
        """The YAML view's own edit: the file's whole text, validated the same way."""
        with self._lock:
            self.start_draft(actor)
            name = self.file_name(kind)
            path = self.draft_dir / name
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            return self._save(actor, name, before, text if text.endswith("\n") else text + "\n", what="yaml")

    def _save(self, actor: str, name: str, before: str, after: str, *, what: str) -> list[RuleIssue]:
        if after == before:
            return []
        with tempfile.TemporaryDirectory(prefix="crmsync-draft-") as scratch:
            root = Path(scratch)
            for other in rule_file_names(self.draft_dir):
                shutil.copy2(self.draft_dir / other, root / other)
            (root / name).write_text(after, encoding="utf-8")
            loaded = self.load(root)
        if loaded.issues:
            return loaded.issues
        _atomic_write(self.draft_dir / name, after)
        audit.record(self.store, actor, "draft.edit", name, change=what)
        return []

    # --- versions ---------------------------------------------------------------------------
    def versions(self, limit: int = 50) -> list[Version]:
        c = t.rule_set_versions.c
        stmt = select(c.id, c.hash, c.author, c.note, c.origin, c.published_at, c.files).order_by(c.id.desc()).limit(limit)
        with self.store.engine.connect() as conn:
            return [Version(*row) for row in conn.execute(stmt)]

    def version(self, version_id: int) -> Version | None:
        c = t.rule_set_versions.c
        stmt = select(c.id, c.hash, c.author, c.note, c.origin, c.published_at, c.files).where(c.id == version_id)
        with self.store.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return Version(*row) if row else None

    def _record_version(self, rule_set: RuleSet, author: str, note: str | None, origin: str) -> int:
        files = self.texts(self.live_dir)
        with self.store.engine.begin() as conn:
            return int(conn.execute(insert(t.rule_set_versions).values(
                hash=rule_set.hash, author=author, note=note, origin=origin, files=files,
                published_at=now_utc()).returning(t.rule_set_versions.c.id)).scalar_one())

    def note_live_files(self) -> Loaded:
        """Record the live files as a version when their hash is not the latest one (hand edits)."""
        with self._lock:
            live = self.live()
            latest = self.versions(1)
            if live.rule_set is not None and (not latest or latest[0].hash != live.rule_set.hash):
                self._record_version(live.rule_set, "files", "found on disk", "files")
            return live

    def publish(self, actor: str, note: str) -> tuple[int | None, list[RuleIssue], list[CaseResult]]:
        """Write the draft into the live directory as a new version; refused while the draft does
        not load or a rule test case fails."""
        with self._lock:
            if not self.has_draft():
                return None, [RuleIssue(str(self.live_dir), None, "", "there is no draft to publish")], []
            draft = self.load(self.draft_dir)
            if draft.rule_set is None:
                return None, draft.issues, []
            results, test_issues = self.tests(draft.rule_set)
            if test_issues or any(not r.passed for r in results):
                failed = [RuleIssue(r.file, None, r.name, "; ".join(r.problems)) for r in results if not r.passed]
                return None, test_issues + failed, results
            self._write_live(self.texts(self.draft_dir))
            live = self.live()
            if live.rule_set is None:  # cannot happen unless the directory changed under us
                return None, live.issues, results
            version_id = self._record_version(live.rule_set, actor, note or None, "publish")
            shutil.rmtree(self.draft_dir)
            audit.record(self.store, actor, "rules.publish", f"version {version_id}", hash=live.rule_set.hash,
                         note=note)
            return version_id, [], results

    def rollback(self, actor: str, version_id: int, note: str = "") -> tuple[int | None, list[RuleIssue]]:
        with self._lock:
            version = self.version(version_id)
            if version is None:
                return None, [RuleIssue(str(self.live_dir), None, "", f"no version {version_id}")]
            with tempfile.TemporaryDirectory(prefix="crmsync-version-") as scratch:
                root = Path(scratch)
                for name, text in version.files.items():
                    (root / name).write_text(text, encoding="utf-8")
                loaded = self.load(root)
            if loaded.rule_set is None:
                return None, loaded.issues
            self._write_live(version.files, remove_others=True)
            live = self.live()
            if live.rule_set is None:
                return None, live.issues
            new_id = self._record_version(live.rule_set, actor, note or f"roll back to version {version_id}",
                                          "rollback")
            audit.record(self.store, actor, "rules.rollback", f"version {version_id}", new_version=new_id,
                         hash=live.rule_set.hash)
            return new_id, []

    def _write_live(self, files: dict[str, str], *, remove_others: bool = False) -> None:
        current = self.texts(self.live_dir)
        for name, text in files.items():
            if current.get(name) != text:
                _atomic_write(self.live_dir / name, text)
        if remove_others:
            for name in set(current) - set(files):
                (self.live_dir / name).unlink()
