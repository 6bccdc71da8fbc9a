"""Safe text templates for task subjects and names: ``"Renew {name} ({extra.plan})"``.

Only ``{field path}`` placeholders are allowed, checked against the model at load time; there is
no attribute access, indexing or format spec (unlike ``str.format`` on admin text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from crmsync.model import ObjectType
from crmsync.rules.conditions import FieldRef, Getter, resolve_field

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

Template = Callable[[Any, Any], str]


def _literal(text: str, piece: str) -> None:
    """Text between placeholders may hold no brace: a stray ``{`` or ``}`` anywhere is a typo."""
    if "{" in piece or "}" in piece:
        raise ValueError(f"unbalanced braces in template {text!r}")


def compile_template(object_type: ObjectType, text: str) -> Template:
    parts: list[str | Any] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        _literal(text, text[pos : m.start()])
        parts.append(text[pos : m.start()])
        name = m.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise ValueError(f"template placeholder {{{m.group(1)}}} must be a field path like {{name}}")
        parts.append(resolve_field(object_type, name))
        pos = m.end()
    _literal(text, text[pos:])
    parts.append(text[pos:])

    if len(parts) == 3:  # the usual "text {field} text": one read, two concatenations
        prefix, ref, suffix = parts
        assert isinstance(ref, FieldRef)
        get: Getter = ref.getter

        def render_one(record: Any, ctx: Any) -> str:
            v = get(record, ctx)
            return prefix + ("" if v is None else str(v)) + suffix

        return render_one
    plan: tuple[tuple[str, Getter | None], ...] = tuple(
        (p, None) if isinstance(p, str) else ("", p.getter) for p in parts
    )

    def render(record: Any, ctx: Any) -> str:
        out: list[str] = []
        for piece, read in plan:
            if read is None:
                out.append(piece)
            else:
                v = read(record, ctx)
                out.append("" if v is None else str(v))
        return "".join(out)

    return render
