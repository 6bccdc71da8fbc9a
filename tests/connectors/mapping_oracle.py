"""The step loop ``ObjectMapping.to_record`` ran before it was generated code (kept verbatim as the
oracle the generated functions are checked against in ``test_mapping_code.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmsync.connectors.converters import as_id, as_str, as_timestamp, walk_path
from crmsync.connectors.mapping import ObjectMapping
from crmsync.model import ModelError, Record, parse_bool


def _lookup(raw: Mapping[str, Any], path: str) -> Any:
    if "." not in path:
        return raw.get(path)
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def reference_to_record(self: ObjectMapping, connection: str, raw: Mapping[str, Any]) -> Record:
    source_id = as_id(raw.get(self.id_field), self.id_field)
    if not source_id:
        raise ModelError(f"{self.source_object}: missing {self.id_field}")
    modified = as_timestamp(_lookup(raw, self.modified_field), self.modified_field)
    if modified is None:
        raise ModelError(f"{self.source_object} {source_id}: missing {self.modified_field}")
    plan = self._plan
    values: dict[str, Any] = {k: v for k, v in self.defaults.items() if v is not None} if self.defaults else {}
    extra: dict[str, Any] = {}
    for top, rest, source, convert, target, is_extra, none_to_none in plan.steps:
        found = raw.get(top)
        if rest is not None:
            found = walk_path(found, rest)
        if type(found) is str and (convert is as_str or convert is as_id):
            value = found or None
        elif found is None and none_to_none:
            value = None
        else:
            value = convert(found, source)
        if is_extra:
            extra[target] = value
        elif value is not None:
            values[target] = value
    if self.created_field:
        created = as_timestamp(_lookup(raw, self.created_field), self.created_field)
        if created is not None:
            values["created_at"] = created
    if self.deleted_field:
        values["deleted"] = bool(parse_bool(_lookup(raw, self.deleted_field), field_name=self.deleted_field))
    claimed = plan.claimed
    unclaimed = {key: value for key, value in raw.items() if key not in claimed}
    if extra:
        extra.update(unclaimed)
    else:
        extra = unclaimed
    try:
        return plan.record_cls(connection=connection, source_object=self.source_object, source_id=source_id,
                               modified_at=modified, extra=extra, **values)
    except TypeError as exc:
        raise ModelError(f"{self.source_object} {source_id}: {exc}") from exc
