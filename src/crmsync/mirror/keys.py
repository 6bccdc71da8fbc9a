"""Idempotency keys of mirror creates: ``mirror:{mirror}:{source connection}:{source id}``.

The key travels with the create (Salesforce external id, a HubSpot property searched before the
create, a Pipedrive custom field or stored mapping), so a retry or a kill between the call and the
bookkeeping finds the first copy instead of creating a second one, and a record seen on the
target side with such a key is known to be a mirror copy even before its link is written.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "mirror"


@dataclass(frozen=True, slots=True)
class MirrorKey:
    mirror: str
    source_connection: str
    source_id: str

    def __str__(self) -> str:
        return f"{PREFIX}:{self.mirror}:{self.source_connection}:{self.source_id}"


def mirror_key(mirror: str, source_connection: str, source_id: str) -> str:
    for part, label in ((mirror, "mirror"), (source_connection, "source connection")):
        if ":" in part:
            raise ValueError(f"{label} name {part!r} may not contain ':'")
    return str(MirrorKey(mirror, source_connection, source_id))


def parse_mirror_key(key: str | None) -> MirrorKey | None:
    """The parts of a mirror key, or None for any other key (the source id may contain ':')."""
    if not key or not key.startswith(PREFIX + ":"):
        return None
    parts = key.split(":", 3)
    if len(parts) != 4 or not all(parts[1:]):
        return None
    return MirrorKey(parts[1], parts[2], parts[3])
