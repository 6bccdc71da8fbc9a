"""Load, validate and compile a rule directory; keep the last good set running.

Every mistake is reported with file, line, key path and what was expected::

    config/rules/scoring.yaml:14: models[0].groups[0].rules[1].when.gte: amount: expected a number, got 'lots'

``RuleSetHolder.reload()`` swaps in a new set only when every file is valid; otherwise it returns
the issues and the previous set keeps running. A set's ``hash`` is the sha256 of the canonical
(parsed, key-sorted JSON) content of its files, so comments and whitespace do not make a version.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError

from crmsync.rules.conditions import ConditionError
from crmsync.rules.experiments import CompiledExperiment, ExperimentsFile, compile_experiments
from crmsync.rules.handoff import CompiledHandoff
from crmsync.rules.health import CompiledHealth
from crmsync.rules.hygiene import CompiledHygieneRule, compile_hygiene
from crmsync.rules.renewal import CompiledRenewal
from crmsync.rules.routing import Router
from crmsync.rules.schema import (
    FILE_MODELS,
    HandoffFile,
    HealthFile,
    HygieneFile,
    RenewalFile,
    RoutingFile,
    TaskPolicy,
)
from crmsync.rules.scoring import CompiledScoringModel, compile_scoring
from crmsync.yaml_loader import UniqueKeyLoader

KINDS = ("scoring", "routing", "hygiene", "handoff", "renewal", "health", "experiments")
_MODELS: dict[str, Any] = {**FILE_MODELS, "experiments": ExperimentsFile}
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RuleIssue:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class RuleFileError(ValueError):
    """One or more rule files are invalid; ``issues`` names file, line, key and expectation."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines)


# Limits of what a rule file may hold, so that no file can exhaust the worker's memory, stack or
# time: real rule files are a few kilobytes, a dozen levels deep, with a few anchors.
MAX_RULE_FILE_BYTES = 1024 * 1024
MAX_NESTING = 64
MAX_EXPANDED_NODES = 100_000  # nodes after aliases are expanded (a "billion laughs" stops here)


class _TooLarge(Exception):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (shared nodes counted each
    time they are used), stopping as soon as ``limit`` is passed."""
    known = memo.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, memo, limit) + _expanded_size(value, memo, limit)
            if size > limit:
                raise _TooLarge
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            size += _expanded_size(item, memo, limit)
            if size > limit:
                raise _TooLarge
    memo[id(node)] = size
    return size


def _check_nesting(text: str, file: str) -> None:
    """Refuse nesting deeper than ``MAX_NESTING`` from the token stream, before the (recursive)
    composer sees it."""
    depth = 0
    opening = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
               yaml.FlowSequenceStartToken)
    closing = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, opening):
                depth += 1
                if depth > MAX_NESTING:
                    line = token.start_mark.line + 1
                    raise RuleFileError([RuleIssue(file, line, "", f"nested more than {MAX_NESTING} levels deep "
                                                   "(a rule file needs far fewer)")])
            elif isinstance(token, closing):
                depth -= 1
    except yaml.MarkedYAMLError:
        return  # the parser reports the syntax error with its line


class LineLoader(UniqueKeyLoader):
    """SafeLoader (duplicate keys refused) that also records the start line of every mapping key
    and list item, and refuses documents whose aliases expand past ``MAX_EXPANDED_NODES``."""

    def __init__(self, stream: Any, file: str = "<rules>") -> None:
        super().__init__(stream)
        self.key_lines: dict[KeyPath, int] = {}
        self.file = file

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            try:
                _expanded_size(node, {}, MAX_EXPANDED_NODES)
            except _TooLarge:
                raise RuleFileError([RuleIssue(self.file, None, "", f"aliases expand to more than "
                                               f"{MAX_EXPANDED_NODES:,} values (an alias bomb?)")]) from None
            _walk(node, (), self.key_lines)
        return node


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text; returns (data, line of each key path). YAML errors carry the line."""
    _check_nesting(text, file)
    loader = LineLoader(text, file)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
        raise RuleFileError([RuleIssue(file, line, "", f"{what}: {exc.problem or exc}")]) from exc
    except RecursionError:
        raise RuleFileError([RuleIssue(file, None, "", "nested too deeply to load")]) from None
    finally:
        loader.dispose()
    return data, loader.key_lines


def read_rule_file(path: FsPath) -> str:
    """The text of a rule file: at most ``MAX_RULE_FILE_BYTES``, UTF-8 (errors name the file)."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            raise RuleFileError([RuleIssue(file, None, "", f"file is {size:,} bytes; a rule file may hold at most "
                                           f"{MAX_RULE_FILE_BYTES:,}")])
        with path.open("rb") as handle:
            raw = handle.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as exc:
        raise RuleFileError([RuleIssue(file, None, "", f"cannot read: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_RULE_FILE_BYTES:  # grew while being read
        raise RuleFileError([RuleIssue(file, None, "", f"file is larger than {MAX_RULE_FILE_BYTES:,} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RuleFileError([RuleIssue(file, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                                       f"{exc.start}); save the file as UTF-8")]) from None


def line_for(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    for n in range(len(path), 0, -1):
        line = lines.get(tuple(path[:n]))
        if line is not None:
            return line
    return 1 if lines else None


def _pydantic_issues(exc: ValidationError, file: str, lines: dict[KeyPath, int]) -> Iterator[RuleIssue]:
    for err in exc.errors():
        loc: KeyPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
        # pydantic adds the model or function name for nested validators; keep keys present in the file
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of the schema)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error",):
            msg = f"{msg}, got {err['input']!r}"
        yield RuleIssue(file, line_for(lines, loc), format_key(loc), msg)


@dataclass(slots=True)
class RuleSet:
    """A compiled, validated rule set ready for ``engine.evaluate``."""

    hash: str
    directory: str
    loaded_at: dt.datetime
    author: str
    files: dict[str, str]  # kind -> file path
    data: dict[str, Any]  # kind -> parsed content (for diff / versioning)
    scoring: list[CompiledScoringModel] = field(default_factory=list)
    router: Router | None = None
    hygiene: list[CompiledHygieneRule] = field(default_factory=list)
    handoff: CompiledHandoff | None = None
    renewal: CompiledRenewal | None = None
    task_policy: TaskPolicy | None = None  # hygiene.yaml `tasks:` (bundling, caps, closing)
    experiments: list[CompiledExperiment] = field(default_factory=list)  # experiments.yaml
    health: CompiledHealth | None = None

    @property
    def rule_count(self) -> int:
        return (
            sum(m.rule_count for m in self.scoring)
            + (self.router.rule_count if self.router else 0)
            + len(self.hygiene)
            + (1 if self.handoff else 0)
            + (1 if self.renewal else 0)
            + (1 if self.health else 0)
        )

    def version(self) -> dict[str, Any]:
        """What the store records for this version (hash, time, author, content)."""
        return {
            "hash": self.hash,
            "loaded_at": self.loaded_at.isoformat(),
            "author": self.author,
            "files": dict(self.files),
            "content": canonical_json(self.data),
        }


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _default_author() -> str:
    env = os.environ.get("CRMSYNC_RULES_AUTHOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _rule_path(root: FsPath, kind: str) -> FsPath | None:
    """``<kind>.yaml`` (or ``.yml``) in ``root``, None when neither exists."""
    for suffix in (".yaml", ".yml"):
        path = root / f"{kind}{suffix}"
        if path.exists():
            return path
    return None


def _read_rule_file(kind: str, path: FsPath, issues: list[RuleIssue]) -> tuple[Any, Any, dict[KeyPath, int]] | None:
    """One rule file parsed and validated: (model, raw data, key lines), or None with its issues added."""
    try:
        data, key_lines = parse_yaml(read_rule_file(path), str(path))
    except RuleFileError as exc:
        issues.extend(exc.issues)
        return None
    except Exception as exc:  # noqa: BLE001 - whatever a file holds, the error names it
        issues.append(RuleIssue(str(path), None, "", f"could not load: {type(exc).__name__}: {exc}"[:500]))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(RuleIssue(str(path), 1, "", f"expected a mapping at the top of the file, got {type(data).__name__}"))
        return None
    try:
        model = _MODELS[kind].model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, str(path), key_lines))
        return None
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on odd content: name the file
        issues.append(RuleIssue(str(path), None, "", f"could not validate: {type(exc).__name__}: {exc}"[:500]))
        return None
    return model, data, key_lines


def load_rules(directory: str | os.PathLike[str], *, author: str | None = None, now: dt.datetime | None = None) -> RuleSet:
    """Load every known rule file in ``directory``; raises ``RuleFileError`` with all issues."""
    root = FsPath(directory)
    if not root.is_dir():
        raise RuleFileError([RuleIssue(str(root), None, "", "rule directory does not exist")])
    issues: list[RuleIssue] = []
    parsed: dict[str, Any] = {}
    lines: dict[str, dict[KeyPath, int]] = {}
    files: dict[str, str] = {}
    for kind in KINDS:
        path = _rule_path(root, kind)
        if path is None:
            continue
        files[kind] = str(path)
        read = _read_rule_file(kind, path, issues)
        if read is None:
            continue
        parsed[kind], parsed[kind + ":raw"], lines[kind] = read
    if issues:
        raise RuleFileError(issues)

    def compiled(kind: str, build: Any) -> Any:
        try:
            return build()
        except ConditionError as exc:
            issues.append(RuleIssue(files[kind], line_for(lines[kind], exc.path), format_key(exc.path), exc.message))
            return None
        except Exception as exc:  # noqa: BLE001 - a compile bug on odd content still names the file
            issues.append(RuleIssue(files[kind], None, "", f"could not compile: {type(exc).__name__}: {exc}"[:500]))
            return None

    scoring = compiled("scoring", lambda: compile_scoring(parsed["scoring"])) if "scoring" in parsed else []
    routing_spec: RoutingFile | None = parsed.get("routing")
    router = compiled("routing", lambda: Router(routing_spec)) if routing_spec is not None else None
    hygiene_spec: HygieneFile | None = parsed.get("hygiene")
    hygiene = compiled("hygiene", lambda: compile_hygiene(hygiene_spec)) if hygiene_spec is not None else []
    handoff_spec: HandoffFile | None = parsed.get("handoff")
    handoff = None
    if handoff_spec is not None and handoff_spec.handoff is not None:
        handoff = compiled("handoff", lambda: CompiledHandoff(handoff_spec, router))
    renewal_spec: RenewalFile | None = parsed.get("renewal")
    renewal = None
    if renewal_spec is not None and renewal_spec.renewal is not None:
        renewal = compiled("renewal", lambda: CompiledRenewal(renewal_spec, router))
    health_spec: HealthFile | None = parsed.get("health")
    health = None
    if health_spec is not None and health_spec.health is not None:
        health = compiled("health", lambda: CompiledHealth(health_spec, router))
    if renewal is not None and health is not None:
        renewal.health = health
    experiments_spec: ExperimentsFile | None = parsed.get("experiments")
    experiments: list[CompiledExperiment] = []
    if experiments_spec is not None:
        pools = frozenset(router.pools) if router is not None else frozenset()
        experiments = compiled("experiments", lambda: compile_experiments(experiments_spec, pools)) or []
    if issues:
        raise RuleFileError(issues)
    data = {kind: parsed[kind + ":raw"] for kind in KINDS if kind + ":raw" in parsed}
    digest = hashlib.sha256(canonical_json(data).encode()).hexdigest()
    return RuleSet(
        hash=digest,
        directory=str(root),
        loaded_at=now or dt.datetime.now(dt.UTC),
        author=author or _default_author(),
        files=files,
        data=data,
        scoring=scoring or [],
        router=router,
        hygiene=hygiene or [],
        handoff=handoff,
        renewal=renewal,
        task_policy=hygiene_spec.tasks if hygiene_spec is not None else None,
        experiments=experiments,
        health=health,
    )


class RuleSetHolder:
    """Keeps the last good compiled rule set; ``reload()`` never replaces it with a broken one."""

    def __init__(self, directory: str | os.PathLike[str], *, author: str | None = None) -> None:
        self.directory = str(directory)
        self.author = author
        self.current: RuleSet | None = None
        self.errors: list[RuleIssue] = []
        self.changed = False

    def reload(self) -> list[RuleIssue]:
        """Load the directory again. Returns the issues (empty on success); on error the
        previous set stays current. ``changed`` tells whether a new version was applied."""
        self.changed = False
        try:
            new = load_rules(self.directory, author=self.author)
        except RuleFileError as exc:
            self.errors = list(exc.issues)
            return self.errors
        except Exception as exc:  # noqa: BLE001 - nothing in a rule directory takes the worker down
            self.errors = [RuleIssue(self.directory, None, "", f"could not load: {type(exc).__name__}: {exc}"[:500])]
            return self.errors
        self.errors = []
        if self.current is None or new.hash != self.current.hash:
            self.current = new
            self.changed = True
        return []

    @property
    def rule_set(self) -> RuleSet:
        if self.current is None:
            detail = "; ".join(str(i) for i in self.errors) or "call reload() first"
            raise RuleFileError(self.errors or [RuleIssue(self.directory, None, "", f"no valid rule set loaded ({detail})")])
        return self.current
