"""Associations between objects, in both directions: World-derived, overlaid by writes.

Type ids are HubSpot's defaults for HUBSPOT_DEFINED associations (the "primary" company of a
deal carries both the primary and the unlabeled type). Changing an association does not touch
either record's ``hs_lastmodifieddate`` - that is how HubSpot behaves (pitfalls.md #6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from crmsync.sandbox.world import World

Types = list[dict[str, object]]
# (from, to) -> (unlabeled type id, primary type id or None)
TYPE_IDS: dict[tuple[str, str], tuple[int, int | None]] = {
    ("deals", "companies"): (341, 5), ("companies", "deals"): (342, 6),
    ("deals", "contacts"): (3, None), ("contacts", "deals"): (4, None),
    ("deals", "line_items"): (19, None), ("line_items", "deals"): (20, None),
    ("contacts", "companies"): (279, 1), ("companies", "contacts"): (280, 2),
    ("deals", "tasks"): (215, None), ("tasks", "deals"): (216, None),
    ("deals", "notes"): (213, None), ("notes", "deals"): (214, None),
    ("contacts", "tasks"): (203, None), ("tasks", "contacts"): (204, None),
    ("companies", "tasks"): (191, None), ("tasks", "companies"): (192, None),
}
_INVERSE: dict[int, int] = {}
for (_a, _b), (_plain, _primary) in TYPE_IDS.items():
    back_plain, back_primary = TYPE_IDS[(_b, _a)]
    _INVERSE[_plain] = back_plain
    if _primary is not None and back_primary is not None:
        _INVERSE[_primary] = back_primary


def spec(type_id: int, label: str | None = None, category: str = "HUBSPOT_DEFINED") -> dict[str, object]:
    """An association type; the spec's ``label`` is a non-nullable string, so unlabeled types omit it."""
    out: dict[str, object] = {"category": category, "typeId": type_id}
    if label is not None:
        out["label"] = label
    return out


def default_types(from_obj: str, to_obj: str, *, primary: bool = False) -> Types:
    plain, prim = TYPE_IDS[(from_obj, to_obj)]
    types: Types = []
    if primary and prim is not None:
        types.append(spec(prim, "Primary"))
    types.append(spec(plain))
    return types


def inverse_types(types: Types) -> Types:
    return [{**t, "typeId": _INVERSE.get(int(str(t["typeId"])), t["typeId"])} for t in types]


Key = tuple[str, int, str]


class AssociationStore:
    def __init__(self, world: World, exists: Callable[[str, int], bool]) -> None:
        self.world = world
        self.exists = exists
        self.overlay: dict[Key, dict[int, Types]] = {}
        self._deals_by_account: dict[int, list[int]] | None = None
        self._deals_by_contact: dict[int, list[int]] | None = None
        self._contacts_by_account: dict[int, list[int]] | None = None
        self._deal_by_id = {d.id: d for d in world.deals}
        self._account_by_contact = {c.id: c.account_id for c in world.contacts}

    def _reverse(self) -> None:
        if self._deals_by_account is None:
            by_account: dict[int, list[int]] = defaultdict(list)
            by_contact: dict[int, list[int]] = defaultdict(list)
            for deal in self.world.deals:
                by_account[deal.account_id].append(deal.id)
                if deal.contact_id is not None:
                    by_contact[deal.contact_id].append(deal.id)
            contacts: dict[int, list[int]] = defaultdict(list)
            for contact in self.world.contacts:
                contacts[contact.account_id].append(contact.id)
            self._deals_by_account, self._deals_by_contact = dict(by_account), dict(by_contact)
            self._contacts_by_account = dict(contacts)

    def _base(self, key: Key) -> dict[int, Types]:
        from_obj, from_id, to_obj = key
        pair = (from_obj, to_obj)
        if from_obj == "deals":
            deal = self._deal_by_id.get(from_id)
            if deal is None:
                return {}
            if to_obj == "companies":
                return {deal.account_id: default_types("deals", "companies", primary=True)}
            if to_obj == "contacts" and deal.contact_id is not None:
                return {deal.contact_id: default_types(*pair)}
            if to_obj == "line_items":
                return {item.id: default_types(*pair) for item in self.world.line_items(deal)}
            return {}
        if from_obj == "line_items" and to_obj == "deals" and from_id // 10 in self._deal_by_id:
            return {from_id // 10: default_types(*pair)}
        if from_obj == "contacts" and to_obj == "companies" and from_id in self._account_by_contact:
            return {self._account_by_contact[from_id]: default_types(*pair, primary=True)}
        self._reverse()
        assert self._deals_by_account is not None and self._deals_by_contact is not None
        assert self._contacts_by_account is not None
        if pair == ("companies", "deals"):
            return {d: default_types(*pair, primary=True) for d in self._deals_by_account.get(from_id, [])}
        if pair == ("contacts", "deals"):
            return {d: default_types(*pair) for d in self._deals_by_contact.get(from_id, [])}
        if pair == ("companies", "contacts"):
            return {c: default_types(*pair, primary=True) for c in self._contacts_by_account.get(from_id, [])}
        return {}

    def get(self, from_obj: str, from_id: int, to_obj: str) -> dict[int, Types]:
        key = (from_obj, from_id, to_obj)
        found = self.overlay.get(key)
        if found is None:
            found = self._base(key)
        return {to_id: types for to_id, types in found.items() if self.exists(to_obj, to_id)}

    def _own(self, key: Key) -> dict[int, Types]:
        if key not in self.overlay:
            self.overlay[key] = {k: list(v) for k, v in self._base(key).items()}
        return self.overlay[key]

    def add(self, from_obj: str, from_id: int, to_obj: str, to_id: int, types: Types) -> None:
        forward = self._own((from_obj, from_id, to_obj)).setdefault(to_id, [])
        backward = self._own((to_obj, to_id, from_obj)).setdefault(from_id, [])
        for t in types:
            if t not in forward:
                forward.append(t)
        for t in inverse_types(types):
            if t not in backward:
                backward.append(t)

    def remove(self, from_obj: str, from_id: int, to_obj: str, to_id: int) -> None:
        self._own((from_obj, from_id, to_obj)).pop(to_id, None)
        self._own((to_obj, to_id, from_obj)).pop(from_id, None)

    def move_all(self, obj: str, loser: int, winner: int, others: tuple[str, ...]) -> None:
        """A merge: the loser's associations now belong to the winner."""
        for other in others:
            for to_id, types in list(self.get(obj, loser, other).items()):
                self.remove(obj, loser, other, to_id)
                self.add(obj, winner, other, to_id, types)
