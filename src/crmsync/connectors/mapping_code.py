"""``ObjectMapping.to_record`` as generated straight-line code, one function per row layout.

Every record of a pull goes through ``to_record``, and a CRM's list answers have one layout: the
same keys in the same order on every row. So per layout (the row's keys; for Pipedrive also its
``custom_fields`` keys) one function is generated that reads each mapped field by its known key,
converts it with the converter's common case written out (text, a Pipedrive int id, a UTC ISO
timestamp, a ``YYYY-MM-DD`` date, a whole-number amount: anything else calls the converter itself,
so errors name the field as before), and fills ``extra`` key by key into a copy of the layout's
template dict, instead of a loop over steps, a ``values`` dict and a comprehension over every key.

What each generated function does is what the step loop did, in the same order:
- id (``as_id``; missing: "<object>: missing <id>"), then the modification stamp (missing:
  "<object> <id>: missing <field>"), then the mapped fields in declaration order, then the created
  stamp and the deleted flag, so the first bad field raises first;
- a canonical target gets the last non-None value its mappings give, else the mapping's default,
  else the record's own default (None never replaces a value);
- ``extra``: the mapped extras in order, then every unclaimed native key in row order (a native key
  of the same name as a mapped extra wins, in the mapped extra's place);
- a target the record does not have, or one the record requires, goes through ``**kw`` as before
  (only when not None), so the same ``TypeError`` becomes the same ``ModelError``.

Rows whose keys are not all ``str``, and layouts beyond ``MAX_LAYOUTS`` per mapping, take one
layout-free generated function (``.get`` per field, the comprehension for ``extra``).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from decimal import Decimal
from typing import Any, Protocol

from crmsync.connectors import converters as m
from crmsync.model import ModelError, Record, parse_bool


class MappingSpec(Protocol):
    """What the generated code reads of an ``ObjectMapping`` (a protocol: ``connectors.mapping``
    imports this module, so this one does not import it back)."""

    @property
    def object_name(self) -> str: ...
    @property
    def source_object(self) -> str: ...
    @property
    def id_field(self) -> str: ...
    @property
    def modified_field(self) -> str: ...
    @property
    def created_field(self) -> str | None: ...
    @property
    def deleted_field(self) -> str | None: ...
    @property
    def defaults(self) -> Mapping[str, Any]: ...
    @property
    def _plan(self) -> Any: ...

#: where a flat row's value is: (0, key) ``raw[key]``, (1, key) ``nested[key]`` (e.g. Pipedrive's
#: ``custom_fields``), keyed by the name the mapping sees
Layout = tuple[tuple[str, tuple[int, str]], ...]
#: (connection, raw, nested) -> record; ``nested`` is None for flat rows
RowFunction = Callable[[str, Mapping[str, Any], Any], Record]
MAX_LAYOUTS = 32  # per mapping; a CRM's list answers have one or two
_RESERVED = frozenset({"connection", "source_object", "source_id", "modified_at", "extra"})
_FACTORY = itertools.count()  # names generated code apart in tracebacks


def flat_layout(keys: Sequence[str]) -> Layout:
    """The layout of a flat row (every value under its own key)."""
    return tuple((key, (0, key)) for key in keys)


@dataclass(frozen=True, slots=True)
class _Target:
    """How a canonical field is passed to the record class."""

    local: str  # the generated local holding its value
    mode: str  # "none": default None; "value": a default value; "factory": a default factory; "kw": **kw
    default: Any  # the record's default value or factory (modes "value" / "factory")


class CompiledMapping:
    """The generated functions of one ``ObjectMapping`` (built lazily, one per layout seen)."""

    def __init__(self, mapping: MappingSpec) -> None:
        self.mapping = mapping
        self.plan = mapping._plan
        self._by_layout: dict[tuple[Any, ...], RowFunction] = {}
        self._generic: RowFunction | None = None
        self.targets = _targets(mapping, self.plan)

    def to_record(self, connection: str, raw: Mapping[str, Any]) -> Record:
        keys = tuple(raw)
        fn = self._by_layout.get(keys)
        if fn is None:
            fn = self._flat_function(keys)
        return fn(connection, raw, None)

    def for_layout(self, layout: Layout) -> RowFunction | None:
        """A new function for rows laid out as ``layout`` (None when a key is not text)."""
        return _Generator(self, layout).function() if _all_text(layout) else None

    def generic(self) -> RowFunction:
        """The layout-free function for flat rows: ``raw.get`` per field, a comprehension for ``extra``."""
        if self._generic is None:
            self._generic = _Generator(self, None).function()
        return self._generic

    def _flat_function(self, keys: tuple[Any, ...]) -> RowFunction:
        if len(self._by_layout) >= MAX_LAYOUTS:
            return self.generic()
        fn = self.for_layout(flat_layout(keys)) or self.generic()
        self._by_layout[keys] = fn
        return fn


def _targets(mapping: MappingSpec, plan: Any) -> dict[str, _Target]:
    """Every canonical field the mapping may set, with how the record class takes it."""
    fields = plan.record_cls.__dataclass_fields__
    names = [target for _, _, _, _, target, is_extra, _ in plan.steps if not is_extra]
    names += [k for k, v in mapping.defaults.items() if v is not None]
    names += ["created_at"] if mapping.created_field else []
    names += ["deleted"] if mapping.deleted_field else []
    targets: dict[str, _Target] = {}
    for n, name in enumerate(dict.fromkeys(names)):
        spec = fields.get(name)
        if spec is None or name in _RESERVED or (spec.default is MISSING and spec.default_factory is MISSING):
            targets[name] = _Target(f"t{n}", "kw", None)
        elif spec.default_factory is not MISSING:
            targets[name] = _Target(f"t{n}", "factory", spec.default_factory)
        elif spec.default is None:
            targets[name] = _Target(f"t{n}", "none", None)
        else:
            targets[name] = _Target(f"t{n}", "value", spec.default)
    return targets


class _Generator:
    """The source of one ``to_record`` function (``layout`` None: the layout-free one)."""

    def __init__(self, compiled: CompiledMapping, layout: Layout | None) -> None:
        self.mapping, self.plan, self.targets = compiled.mapping, compiled.plan, compiled.targets
        self.layout = layout
        self.where = dict(layout) if layout is not None else None
        self.lines: list[str] = []
        self.assigned: set[str] = set()
        self.scope: dict[str, Any] = {
            "ModelError": ModelError, "UTC": dt.UTC, "fromiso": dt.datetime.fromisoformat,
            "date_fromiso": dt.date.fromisoformat, "Decimal": Decimal, "walk": m.walk_path, "parse_bool": parse_bool,
            "as_id": m.as_id, "as_timestamp": m.as_timestamp, "cls": self.plan.record_cls,
            "claimed": self.plan.claimed, "SO": self.mapping.source_object, "IDF": self.mapping.id_field,
            "MODF": self.mapping.modified_field, "CF": self.mapping.created_field, "DF": self.mapping.deleted_field,
        }

    def function(self) -> RowFunction:
        self.lines = ["def to_record(connection, raw, nested):"]
        if self.where is None:
            self.add("get = raw.get")
        self.identity()
        if any(t.mode == "kw" for t in self.targets.values()):
            self.add("kw = {}")
        for name, value in self.mapping.defaults.items():  # the mapping's defaults come first, as before
            if value is not None:
                constant = f"D_{self.targets[name].local}"
                self.scope[constant] = value
                self.assign(name, constant, known_not_none=True)
        extras = self.steps()
        if self.mapping.created_field:
            self.add(f"v = {self.lookup(self.mapping.created_field)}")
            self.lines += _convert("v", m.as_timestamp, "CF", "as_timestamp")
            self.assign("created_at", "v")
        if self.mapping.deleted_field:
            self.add(f"v = {self.lookup(self.mapping.deleted_field)}")
            self.add("v = v if type(v) is bool else bool(parse_bool(v, field_name=DF))")
            self.assign("deleted", "v", known_not_none=True)
        self.extra(extras)
        self.construct()
        source = "\n".join(self.lines) + "\n"
        label = f"<crmsync.connectors.mapping {self.mapping.object_name} #{next(_FACTORY)}>"
        exec(compile(source, label, "exec"), self.scope)  # noqa: S102 - keys and names are repr() literals
        fn: RowFunction = self.scope["to_record"]
        return fn

    def add(self, line: str) -> None:
        self.lines.append("    " + line)

    def read(self, top: str) -> str:
        """The expression of a flat key's value (None when the layout lacks it)."""
        if self.where is None:
            return f"get({top!r})"
        found = self.where.get(top)
        if found is None:
            return "None"
        return f"raw[{found[1]!r}]" if found[0] == 0 else f"nested[{found[1]!r}]"

    def lookup(self, path: str) -> str:
        """``raw``'s value at ``path`` (a dotted path walks nested dicts)."""
        top, _, rest = path.partition(".")
        return f"walk({self.read(top)}, {tuple(rest.split('.'))!r})" if rest else self.read(top)

    def identity(self) -> None:
        """``sid`` and ``modified``, refused with the messages the step loop gave."""
        self.add(f"v = {self.read(self.mapping.id_field)}")
        self.add("sid = (v or None) if type(v) is str else str(v) if type(v) is int else as_id(v, IDF)")
        self.add("if not sid:")
        self.add("    raise ModelError(f'{SO}: missing {IDF}')")
        self.add(f"v = {self.lookup(self.mapping.modified_field)}")
        self.lines += _convert("v", m.as_timestamp, "MODF", "as_timestamp")
        self.add("if v is None:")
        self.add("    raise ModelError(f'{SO} {sid}: missing {MODF}')")
        self.add("modified = v")

    def steps(self) -> list[tuple[str, str]]:
        """Each mapped field in order; returns the mapped extras as (key, local)."""
        extras: list[tuple[str, str]] = []
        for i, (top, rest, source, convert, target, is_extra, none_to_none) in enumerate(self.plan.steps):
            self.scope[f"c{i}"], self.scope[f"S{i}"] = convert, source
            value = self.read(top)
            self.add(f"v = walk({value}, {rest!r})" if rest is not None else f"v = {value}")
            if none_to_none:
                self.lines += _convert("v", convert, f"S{i}", f"c{i}")
            else:
                self.add(f"v = c{i}(v, S{i})")
            if is_extra:
                self.add(f"x{i} = v")
                extras.append((target, f"x{i}"))
            else:
                self.assign(target, "v")
        return extras

    def assign(self, name: str, value: str, *, known_not_none: bool = False) -> None:
        """``values[name] = value`` unless None, as the step loop did. A target's first assignment
        needs no test: before it, the target holds nothing, which None also means here."""
        target = self.targets[name]
        if target.mode == "kw":
            line = f"kw[{name!r}] = {value}"
        else:
            line = f"{target.local} = {value}"
            known_not_none = known_not_none or name not in self.assigned
        self.assigned.add(name)
        if known_not_none:
            self.add(line)
        else:
            self.add(f"if {value} is not None:")
            self.add(f"    {line}")

    def extra(self, extras: list[tuple[str, str]]) -> None:
        """The mapped extras, then the unclaimed keys, as ``dict.update`` did: a repeated key keeps
        its first place and takes the later value. A layout's keys are known, so its ``extra`` is a
        copy of their template (presized) filled in place (a dict display this long grows as it goes)."""
        pairs = [(key, local) for key, local in extras]
        if self.layout is not None:
            pairs += [(key, self.read(key)) for key, _ in self.layout if key not in self.plan.claimed]
            self.scope["TEMPLATE"] = dict.fromkeys(key for key, _ in pairs)
            self.add("extra = TEMPLATE.copy()")
            self.lines += [f"    extra[{key!r}] = {value}" for key, value in pairs]
        elif pairs:
            self.add(f"extra = {{{', '.join(f'{key!r}: {local}' for key, local in pairs)}}}")
            self.add("extra.update({k: v for k, v in raw.items() if k not in claimed})")
        else:
            self.add("extra = {k: v for k, v in raw.items() if k not in claimed}")

    def construct(self) -> None:
        args = ["connection=connection", "source_object=SO", "source_id=sid", "modified_at=modified", "extra=extra"]
        for name, target in self.targets.items():
            local = target.local
            if target.mode == "none":
                args.append(f"{name}={local}")
            elif target.mode in ("value", "factory"):
                self.scope[f"F_{local}"] = target.default
                default = f"F_{local}()" if target.mode == "factory" else f"F_{local}"
                args.append(f"{name}={default} if {local} is None else {local}")
        if any(t.mode == "kw" for t in self.targets.values()):
            args.append("**kw")
        self.add("try:")
        self.add(f"    return cls({', '.join(args)})")
        self.add("except TypeError as exc:  # a mapping names a field the record does not have")
        self.add("    raise ModelError(f'{SO} {sid}: {exc}') from exc")


def _convert(var: str, convert: Any, source: str, call: str) -> list[str]:
    """Lines converting ``var`` in place with a converter that maps None to None: its common case
    written out, anything else through the converter (which names the field on bad data)."""
    pad = "    "
    if convert is m.as_str:
        return [f"{pad}if type({var}) is str:", f"{pad}    {var} = {var} or None",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    if convert is m.as_id:
        return [f"{pad}if type({var}) is str:", f"{pad}    {var} = {var} or None",
                f"{pad}elif type({var}) is int:", f"{pad}    {var} = str({var})",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    if convert is m.as_timestamp:  # an ISO 8601 string in UTC: fromisoformat in C
        return [f"{pad}if type({var}) is str and {var}:",
                f"{pad}    try:", f"{pad}        p = fromiso({var})",
                f"{pad}    except ValueError:", f"{pad}        p = None",
                f"{pad}    {var} = p if p is not None and p.tzinfo is UTC else {call}({var}, {source})",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    if convert is m.as_date:
        return [f"{pad}if type({var}) is str and len({var}) == 10:",
                f"{pad}    try:", f"{pad}        {var} = date_fromiso({var})",
                f"{pad}    except ValueError:", f"{pad}        {var} = {call}({var}, {source})",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    if convert is m.as_decimal:
        return [f"{pad}if type({var}) is int:", f"{pad}    {var} = Decimal({var})",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    if convert is m.as_percent:  # a whole percent: as_decimal's Decimal, over 100
        return [f"{pad}if type({var}) is int:", f"{pad}    {var} = Decimal({var}) / 100",
                f"{pad}elif {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]
    return [f"{pad}if {var} is not None:", f"{pad}    {var} = {call}({var}, {source})"]


def _all_text(layout: Layout) -> bool:
    return all(type(name) is str and type(key) is str for name, (_, key) in layout)
