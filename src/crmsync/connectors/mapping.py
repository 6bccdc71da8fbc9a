"""Field tables: how a CRM's native record becomes a canonical record, declared as data.

Each connector declares one ``ObjectMapping`` per object: the native id and modification
fields and a list of ``FieldMap(source, target, convert)``. Every native field no mapping claims
lands in ``record.extra`` so custom fields survive. A connection may add mappings in config
(``field_mappings: {deals: {Custom_Score__c: extra.score}}`` or onto a canonical field).
A value that does not convert raises ``ModelError`` naming the field; the engine quarantines
that record with the reason and goes on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import TYPE_CHECKING, Any

from crmsync.model import (
    RECORD_TYPES,
    ModelError,
    ObjectType,
    Record,
    parse_bool,
    parse_date,
    parse_decimal,
    parse_timestamp,
)

if TYPE_CHECKING:
    from crmsync.connectors.mapping_code import CompiledMapping

Converter = Callable[[Any, str], Any]
# one mapped field, resolved once: top-level key, nested path below it, source name, converter,
# target (canonical field or extra key), whether it goes to ``extra``, whether None stays None
_Step = tuple[str, "tuple[str, ...] | None", str, Converter, str, bool, bool]


def as_str(value: Any, name: str) -> str | None:
    if type(value) is str:  # the common case first (called for most fields of every record)
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise ModelError(f"{name}: expected text, got {type(value).__name__}")
    return str(value)


def as_id(value: Any, name: str) -> str | None:
    """Ids are strings in the canonical model whatever the CRM sends (HubSpot str, Pipedrive int)."""
    if type(value) is str:
        return value or None
    if type(value) is int:  # Pipedrive's ids
        return str(value)
    if isinstance(value, dict):  # Pipedrive v1 embeds {"id": ..., "name": ...}
        value = value.get("id") if "id" in value else value.get("value")
    return as_str(value, name)


def as_int(value: Any, name: str) -> int | None:
    if type(value) is int:
        return value
    number = parse_decimal(value, field_name=name)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ModelError(f"{name}: {value!r} is not a whole number")
    return int(number)


def as_decimal(value: Any, name: str) -> Any:
    if type(value) is Decimal and value.is_finite():  # a JSON fraction, already Decimal (wire.decode_body)
        return value
    if type(value) is str and value:  # fast path for the usual "1234.50"; anything odd takes the full check
        try:
            number = Decimal(value)
        except InvalidOperation:
            return parse_decimal(value, field_name=name)
        if number.is_finite():
            return number
    elif type(value) is int:  # a whole JSON number (Decimal from float_hook covers fractions)
        return Decimal(value)
    return parse_decimal(value, field_name=name)


def as_percent(value: Any, name: str) -> Any:
    """0-100 percent (Salesforce Probability, Pipedrive probability) to a 0..1 fraction."""
    number = as_decimal(value, name)
    return None if number is None else number / 100


def as_bool(value: Any, name: str) -> bool | None:
    if type(value) is bool:
        return value
    return parse_bool(value, field_name=name)


def as_timestamp(value: Any, name: str) -> Any:
    if type(value) is str and value:  # ISO 8601 in UTC parses in C; any other form takes the full parser
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return parse_timestamp(value, field_name=name)
        if parsed.tzinfo is dt.UTC:
            return parsed
    return parse_timestamp(value, field_name=name)


def as_date(value: Any, name: str) -> Any:
    if type(value) is str and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return parse_date(value, field_name=name)


CONVERTERS: dict[str, Converter] = {
    "str": as_str, "id": as_id, "int": as_int, "decimal": as_decimal, "percent": as_percent,
    "bool": as_bool, "timestamp": as_timestamp, "date": as_date,
}
#: converters that turn a missing value (None) into None: ``to_record`` skips the call for them
NONE_TO_NONE: frozenset[Converter] = frozenset(CONVERTERS.values())


@dataclass(frozen=True, slots=True)
class FieldMap:
    source: str
    target: str  # a canonical field name, or "extra.<name>"
    convert: Converter = as_str


@dataclass(frozen=True)
class ObjectMapping:
    object_name: str  # canonical plural used in config and cursors: "deals", "owners", ...
    object_type: ObjectType
    source_object: str  # "Opportunity", "deals", ...
    id_field: str
    modified_field: str
    fields: tuple[FieldMap, ...]
    created_field: str | None = None
    deleted_field: str | None = None  # a native flag meaning soft-deleted / archived
    defaults: Mapping[str, Any] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()  # native fields never kept in extra (e.g. "attributes")

    def with_overrides(self, overrides: Mapping[str, str]) -> ObjectMapping:
        """Add config mappings ``{source: target}``; a target may be ``name:converter``."""
        if not overrides:
            return self
        canonical = RECORD_TYPES[self.object_type].__dataclass_fields__
        extra_maps = []
        for source, target in overrides.items():
            name, _, conv = target.partition(":")
            if not name.startswith("extra.") and name not in canonical:
                raise ModelError(f"field_mappings.{self.object_name}.{source}: unknown canonical field {name!r}")
            if conv and conv not in CONVERTERS:
                raise ModelError(f"field_mappings.{self.object_name}.{source}: unknown converter {conv!r} "
                                 f"(expected one of {', '.join(CONVERTERS)})")
            extra_maps.append(FieldMap(source, name, CONVERTERS[conv] if conv else as_str))
        kept = tuple(f for f in self.fields if f.source not in overrides)
        return ObjectMapping(self.object_name, self.object_type, self.source_object, self.id_field,
                             self.modified_field, kept + tuple(extra_maps), self.created_field,
                             self.deleted_field, self.defaults, self.ignore)

    @property
    def source_fields(self) -> list[str]:
        names = [self.id_field, self.modified_field, *(f.source for f in self.fields)]
        for extra in (self.created_field, self.deleted_field):
            if extra:
                names.append(extra)
        return list(dict.fromkeys(n for n in names if "." not in n))

    @cached_property
    def _plan(self) -> _Plan:
        """What ``to_record`` needs per record, worked out once per mapping."""
        claimed = {self.id_field, self.modified_field, *self.ignore}
        steps: list[_Step] = []
        for fm in self.fields:
            top, _, rest = fm.source.partition(".")
            claimed.add(top)
            is_extra = fm.target.startswith("extra.")
            steps.append((top, tuple(rest.split(".")) if rest else None, fm.source, fm.convert,
                          fm.target[6:] if is_extra else fm.target, is_extra, fm.convert in NONE_TO_NONE))
        for name in (self.created_field, self.deleted_field):
            if name:
                claimed.add(name.split(".", 1)[0])
        return _Plan(frozenset(claimed), tuple(steps), RECORD_TYPES[self.object_type])

    @cached_property
    def compiled(self) -> CompiledMapping:
        """The generated ``to_record`` functions of this mapping (``crmsync.connectors.mapping_code``)."""
        from crmsync.connectors.mapping_code import CompiledMapping  # it imports this module's converters

        return CompiledMapping(self)

    def to_record(self, connection: str, raw: Mapping[str, Any]) -> Record:
        """Map one native record; raises ModelError naming the field on bad data (generated code per
        row layout, ``crmsync.connectors.mapping_code``)."""
        return self.compiled.to_record(connection, raw)


@dataclass(frozen=True, slots=True)
class _Plan:
    claimed: frozenset[str]  # native top-level keys that do not go to ``extra`` as they are
    steps: tuple[_Step, ...]
    record_cls: type[Record]


def _walk(node: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
