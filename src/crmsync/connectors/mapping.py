"""Field tables: how a CRM's native record becomes a canonical record, declared as data.

Each connector declares one ``ObjectMapping`` per object: the native id and modification
fields and a list of ``FieldMap(source, target, convert)``. Every native field no mapping claims
lands in ``record.extra`` so custom fields survive. A connection may add mappings in config
(``field_mappings: {deals: {Custom_Score__c: extra.score}}`` or onto a canonical field).
A value that does not convert raises ``ModelError`` naming the field; the engine quarantines
that record with the reason and goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from crmsync.connectors.converters import CONVERTERS, NONE_TO_NONE, Converter, as_str
from crmsync.model import RECORD_TYPES, ModelError, ObjectType, Record

if TYPE_CHECKING:
    from crmsync.connectors.mapping_code import CompiledMapping

# one mapped field, resolved once: top-level key, nested path below it, source name, converter,
# target (canonical field or extra key), whether it goes to ``extra``, whether None stays None
_Step = tuple[str, "tuple[str, ...] | None", str, Converter, str, bool, bool]


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
        from crmsync.connectors.mapping_code import CompiledMapping  # generated code, built on first use

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
