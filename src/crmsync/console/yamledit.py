"""Comment-keeping edits of rule files (ruamel.yaml round-trip).

A form field is named by the key path the loader reports errors with (``pools[2].members[0].weight``),
so ``set_path`` applies it and an error from ``crmsync rules validate`` lands next to the field
that caused it.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

KeyPath = tuple[str | int, ...]
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class PathError(ValueError):
    """A form named a key path that is not in the file."""


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap long lines
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def load(text: str) -> Any:
    data = _yaml().load(text)
    return CommentedMap() if data is None else data


def dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def parse_path(text: str) -> KeyPath:
    parts: list[str | int] = []
    pos = 0
    for m in _PART.finditer(text):
        if m.start() != pos and text[pos:m.start()] != ".":
            raise PathError(f"bad key path {text!r}")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or pos != len(text):
        raise PathError(f"bad key path {text!r}")
    return tuple(parts)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def get_path(data: Any, path: KeyPath, default: Any = None) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return default
    return node


def _container(data: Any, path: KeyPath) -> Any:
    node = data
    for i, part in enumerate(path):
        nxt = path[i + 1] if i + 1 < len(path) else None
        try:
            node = node[part]
        except KeyError:
            if not isinstance(node, dict):
                raise PathError(f"{format_path(path[:i])} is not a mapping") from None
            node[part] = flow_map() if isinstance(nxt, str) else CommentedSeq()
            node = node[part]
        except (IndexError, TypeError):
            raise PathError(f"no {format_path(path[: i + 1])} in the file") from None
    return node


def set_path(data: Any, path: KeyPath, value: Any) -> None:
    """Set (or, for ``None``, remove) the value at ``path``; missing mappings on the way are made."""
    parent = _container(data, path[:-1])
    last = path[-1]
    if value is None:
        if isinstance(parent, dict):
            parent.pop(last, None)
        return
    if isinstance(parent, list) and (not isinstance(last, int) or last >= len(parent)):
        raise PathError(f"no {format_path(path)} in the file")
    parent[last] = value


def flow_map(items: dict[str, Any] | None = None) -> CommentedMap:
    """A mapping written on one line (``{owner: x, weight: 2}``), like the hand-written files."""
    m = CommentedMap(items or {})
    m.fa.set_flow_style()
    return m


def flow_seq(items: list[Any]) -> CommentedSeq:
    s = CommentedSeq(items)
    s.fa.set_flow_style()
    return s


def number(text: str) -> Any:
    """A form value as a YAML number when it reads as one; otherwise the text itself, so the
    loader's own message ("Input should be a valid integer, got 'x'") is what the user sees."""
    raw = text.strip()
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        d = Decimal(raw)
    except InvalidOperation:
        return raw
    return float(raw) if d.is_finite() else raw


def text_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
