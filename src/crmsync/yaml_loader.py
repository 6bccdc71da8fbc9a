"""YAML for config and rule files: PyYAML's SafeLoader, refusing a key given twice in one mapping.

PyYAML keeps the last of two equal keys without a word, so a pasted block that repeats
``budget:`` silently replaces the first. Here the second occurrence is an error carrying its line
(``yaml.MarkedYAMLError``, so callers already turn it into ``file:line``)."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError


class UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # resolves ``<<`` merges first: an override there is allowed
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise ConstructorError(None, None,
                                           f"duplicate key {key!r} (first given on line {first})",
                                           key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse one YAML document; duplicate keys raise ``ConstructorError`` with the line."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
