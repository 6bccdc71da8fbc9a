"""Form posts -> edits of a rule file's data (ruamel round-trip structures).

Fields are named by their key path in the file; the leaf name decides how the text is read
(number, comma list, checkbox, text). Only leaves a page offers are accepted, and a value equal to
the file's current one is left alone, so an unchanged field never rewrites its line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crmsync.console import yamledit
from crmsync.console.yamledit import KeyPath, flow_map, flow_seq, get_path, parse_path, set_path

NUMBER_LEAVES = frozenset({"weight", "capacity_per_day", "capacity_per_month", "team_weight", "hours", "points", "cap",
                           "min", "days", "tolerance", "due_in_days", "window_days", "days_before_end", "after_days",
                           "factor", "missing_factor"})
LIST_LEAVES = frozenset({"teams", "stages", "fields", "required", "match_by"})
BOOL_LEAVES = frozenset({"respect_working_hours", "reroute_inactive_owner", "task", "note"})
BOOL_DEFAULT_TRUE = BOOL_LEAVES
TEXT_LEAVES = frozenset({"strategy", "manager", "severity", "cs_pool", "subject", "source", "owner", "pool", "stage",
                         "message", "task_subject", "field", "default", "opportunity_name", "grade"})
ALLOWED = NUMBER_LEAVES | LIST_LEAVES | BOOL_LEAVES | TEXT_LEAVES

Form = Mapping[str, Any]  # starlette FormData (getlist) or a dict of str


def getlist(form: Any, name: str) -> list[str]:
    if hasattr(form, "getlist"):
        return [str(v) for v in form.getlist(name)]
    value = form.get(name)
    return [] if value is None else [str(v) for v in (value if isinstance(value, list) else [value])]


def _same(current: Any, value: Any) -> bool:
    if current is None or value is None:
        return current is None and value is None
    if isinstance(current, list) and isinstance(value, list):
        return [str(x) for x in current] == [str(x) for x in value]
    if isinstance(current, bool) or isinstance(value, bool):
        return current is value
    return str(current) == str(value)


def read_value(leaf: str, raw: str | None) -> Any:
    if leaf in BOOL_LEAVES:
        return raw is not None
    text = (raw or "").strip()
    if leaf in NUMBER_LEAVES:
        return yamledit.number(text)
    if leaf in LIST_LEAVES:
        items = yamledit.text_list(text)
        return flow_seq(items) if items else None
    return text or None


def field_paths(form: Any, prefix: KeyPath) -> list[KeyPath]:
    """The key paths a form posts under ``prefix`` (checkboxes announce themselves in ``_bool``)."""
    names = [k for k in form if not k.startswith("_") and k != "csrf_token"]
    names += getlist(form, "_bool")
    out: list[KeyPath] = []
    for name in dict.fromkeys(names):
        try:
            path = parse_path(name)
        except yamledit.PathError:
            continue
        if path[: len(prefix)] == prefix and isinstance(path[-1], str) and path[-1] in ALLOWED:
            out.append(path)
    return out


def apply_fields(data: Any, form: Any, prefix: KeyPath) -> None:
    bools = set(getlist(form, "_bool"))
    for path in field_paths(form, prefix):
        leaf = str(path[-1])
        name = yamledit.format_path(path)
        if leaf in BOOL_LEAVES and name not in bools:
            continue
        raw = None if leaf in BOOL_LEAVES and name not in form else form.get(name)
        value = read_value(leaf, None if raw is None else str(raw))
        current = get_path(data, path)
        if leaf in BOOL_LEAVES and current is None and value is (leaf in BOOL_DEFAULT_TRUE):
            continue  # the default, not written out
        if _same(current, value):
            continue
        set_path(data, path, value)


def pool_change(index: int, form: Any) -> Callable[[Any], None]:
    """Save one pool: its fields, removed members, a new member, the fallback."""
    prefix: KeyPath = ("pools", index)

    def change(data: Any) -> None:
        pool = get_path(data, prefix)
        if pool is None:
            raise yamledit.PathError(f"no pool at pools[{index}]")
        apply_fields(data, form, prefix)
        members = pool.get("members")
        removed = sorted({int(x) for x in getlist(form, "_remove_member") if x.isdigit()}, reverse=True)
        for j in removed:
            if members is not None and j < len(members):
                del members[j]
        new_owner = str(form.get("_new_member_owner") or "").strip()
        if new_owner:
            entry: dict[str, Any] = {"owner": new_owner}
            weight = yamledit.number(str(form.get("_new_member_weight") or ""))
            if weight is not None:
                entry["weight"] = weight
            if members is None:
                pool["members"] = members = yamledit.CommentedSeq()
            members.append(flow_map(entry))
        if members is not None and not members:
            del pool["members"]
        fb_pool = str(form.get("_fallback_pool") or "").strip()
        fb_owner = str(form.get("_fallback_owner") or "").strip()
        fb_manager = "_fallback_manager" in form
        if "_fallback" in form:
            wanted: dict[str, Any] = {}
            if fb_pool:
                wanted["pool"] = fb_pool
            if fb_owner:
                wanted["owner"] = fb_owner
            if fb_manager:
                wanted["manager"] = True
            current = pool.get("fallback")
            if not wanted:
                pool.pop("fallback", None)
            elif current is None or dict(current) != wanted:
                pool["fallback"] = flow_map(wanted)

    return change


def move_change(section: str, index: int, direction: str) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        seq = data.get(section)
        if seq is None or not 0 <= index < len(seq):
            raise yamledit.PathError(f"no {section}[{index}] in the file")
        target = index - 1 if direction == "up" else index + 1
        if not 0 <= target < len(seq):
            return
        item = seq.pop(index)
        seq.insert(target, item)

    return change


def routing_rule_change(index: int, form: Any) -> Callable[[Any], None]:
    """Save one routing rule: its pool, territory field/default and map rows."""
    prefix: KeyPath = ("rules", index)

    def change(data: Any) -> None:
        rule = get_path(data, prefix)
        if rule is None:
            raise yamledit.PathError(f"no rule at rules[{index}]")
        apply_fields(data, form, prefix)
        if "_map" in form and rule.get("territory") is not None:
            keys, pools = getlist(form, "_map_value"), getlist(form, "_map_pool")
            wanted = {k.strip(): p.strip() for k, p in zip(keys, pools, strict=False) if k.strip() and p.strip()}
            territory = rule["territory"]
            current = territory.get("map")
            if current is None or dict(current) != wanted:
                if current is None:
                    territory["map"] = flow_map(wanted)
                else:
                    for key in list(current):
                        if key not in wanted:
                            del current[key]
                    for key, value in wanted.items():
                        current[key] = value

    return change


def fields_change(prefix: Sequence[str | int], form: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        apply_fields(data, form, tuple(prefix))

    return change


def errors_by_key(issues: Sequence[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for issue in issues:
        out.setdefault(issue.key, []).append(issue.message)
    return out


def resubmitted(form: Any) -> dict[str, str]:
    """The submitted values, to show again when a save was refused (nothing typed is lost)."""
    return {k: str(v) for k, v in form.items() if k != "csrf_token"}
