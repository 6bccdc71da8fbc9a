"""``rules diff``: what changed between two rule sets, rule by rule, and in the decisions they make."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import Decision
from crmsync.rules.engine import evaluate
from crmsync.rules.explain import _sandboxed
from crmsync.rules.loader import RuleSet, canonical_json

# where the named rules live in each file
_NAMED_LISTS = {
    "scoring": ("models",),
    "routing": ("pools", "rules", "sla"),
    "hygiene": ("rules",),
}


def _named(data: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for kind, content in data.items():
        if not isinstance(content, dict):
            continue
        lists = _NAMED_LISTS.get(kind)
        if lists is None:
            for key, value in content.items():
                out[(kind, key, key)] = canonical_json(value)
            continue
        for section in lists:
            for item in content.get(section) or []:
                name = item.get("name", "?") if isinstance(item, dict) else "?"
                out[(kind, section, str(name))] = canonical_json(item)
        for key, value in content.items():
            if key not in lists:
                out[(kind, key, key)] = canonical_json(value)
    return out


def diff_rule_sets(old: RuleSet, new: RuleSet) -> list[dict[str, str]]:
    """Rows ``{kind, section, name, change}`` with change in added / removed / changed."""
    a, b = _named(old.data), _named(new.data)
    rows = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            change = "added"
        elif key not in b:
            change = "removed"
        elif a[key] != b[key]:
            change = "changed"
        else:
            continue
        rows.append({"kind": key[0], "section": key[1], "name": key[2], "change": change})
    return rows


def diff_decisions(old: RuleSet, new: RuleSet, records: list[Any], ctx: RuleContext) -> list[dict[str, str]]:
    """Decisions that differ between the two sets over the same records (routing on state copies)."""
    return diff_decision_lists(evaluate(old, records, _sandboxed(ctx)), evaluate(new, records, _sandboxed(ctx)))


def diff_decision_lists(old: Iterable[Decision], new: Iterable[Decision]) -> list[dict[str, str]]:
    """Rows ``{record, kind, decision, old, new}`` for the decisions that differ between two lists."""
    def keyed(decisions: Iterable[Decision]) -> dict[tuple[str, str, str, str], str]:
        out: dict[tuple[str, str, str, str], str] = {}
        for d in decisions:
            out[(d.connection, d.source_id, d.rule_kind, d.action + ":" + d.rule_name)] = canonical_json(d.fields)
        return out

    a, b = keyed(old), keyed(new)
    rows = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        rows.append({
            "record": f"{key[0]}:{key[1]}", "kind": key[2], "decision": key[3],
            "old": a.get(key, "-"), "new": b.get(key, "-"),
        })
    return rows
