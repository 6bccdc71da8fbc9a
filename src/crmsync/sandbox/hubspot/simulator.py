"""The HubSpot simulator: CRM v3 objects, search, pipelines, owners and associations v4.

``HubSpotSimulator(world, knobs)`` serves the World in HubSpot's dialect so that
hubspot-api-client works unmodified against it (``hubspot.Client.create(access_token=...,
host=server.url)``). Valid bearer tokens are in ``sim.tokens`` (default ``SANDBOX_TOKEN``).
The user handle (create, edit, move_stage, delete, merge, bulk_import) acts like a person in the
HubSpot UI; ``truth`` is what HubSpot holds now.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmsync.sandbox.core import Knobs, Simulator
from crmsync.sandbox.hubspot.associations import TYPE_IDS, AssociationStore, default_types
from crmsync.sandbox.hubspot.clock import iso_ms as fast_iso_ms
from crmsync.sandbox.hubspot.hooks import HubSpotHooks
from crmsync.sandbox.hubspot.schema import (
    DEFAULT_PROPERTIES,
    OBJECT_TYPES,
    PROPERTIES,
    SEARCH_ALWAYS,
    PropertyError,
    iso_ms,
    normalise,
    object_name,
)
from crmsync.sandbox.hubspot.seed import (
    PIPELINE_ID,
    seed_companies,
    seed_contacts,
    seed_deals,
    seed_line_items,
    seed_products,
)
from crmsync.sandbox.hubspot.stage_log import ENTERED_PREFIX, EXITED_PREFIX, StageLog
from crmsync.sandbox.hubspot.table import ObjectTable, Props, Row
from crmsync.sandbox.world import STAGES, World

SANDBOX_TOKEN = "pat-na1-sandbox-0000"
STAGE_BY_KEY = {s.key: s for s in STAGES}
ASSOCIATED = {"deals": ("companies", "contacts", "line_items", "tasks", "notes"),
              "companies": ("deals", "contacts", "tasks"), "contacts": ("deals", "companies", "tasks"),
              "line_items": ("deals",), "tasks": ("deals", "contacts", "companies"), "notes": ("deals",),
              "products": ()}


class ApiError(Exception):
    """An answer other than success: status, HubSpot category, message and context."""

    def __init__(self, status: int, category: str, message: str, *, context: dict[str, Any] | None = None,
                 sub_category: str | None = None, property_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context or {}
        self.sub_category = sub_category
        self.property_name = property_name

    @classmethod
    def from_property(cls, exc: PropertyError) -> ApiError:
        return cls(400, "VALIDATION_ERROR", f"Property values were not valid: {exc}",
                   context={"propertyName": [exc.property_name]}, sub_category=exc.code,
                   property_name=exc.property_name)


class HubSpotSimulator(Simulator):
    name = "hubspot"

    def __init__(self, world: World, knobs: Knobs | None = None, *, tokens: Iterable[str] = (SANDBOX_TOKEN,)
                 ) -> None:
        super().__init__(knobs)
        if self.knobs.search_per_second is None:
            self.knobs.search_per_second = 4
        self.world = world
        self.tokens = set(tokens)
        self.hooks = HubSpotHooks(self.tokens)
        self._tables: dict[str, ObjectTable] = {
            "deals": seed_deals(world), "companies": seed_companies(world), "contacts": seed_contacts(world),
            "products": seed_products(world), "tasks": ObjectTable("tasks"), "notes": ObjectTable("notes"),
        }
        self.associations = AssociationStore(world, self.exists)
        self.stage_log = StageLog(world)
        self._unique: dict[tuple[str, str], dict[str, int]] = {}
        self.owners = _owners(world)
        self.pipeline_created = iso_ms(int((world.now.timestamp() - 800 * 86_400) * 1000))

    # --- tables -------------------------------------------------------------------------------
    def table(self, name: str) -> ObjectTable:
        if name == "line_items" and name not in self._tables:
            self._tables[name] = seed_line_items(self.world)  # built on first use: 1-3 per deal
        table = self._tables[name]
        table.lag_s = float(self.knobs.search_lag_s or 0.0)
        table.clock = self.clock.time
        return table

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def exists(self, name: str, record_id: int) -> bool:
        row = self.table(name).get(record_id)
        return row is not None and row.archived_ms is None

    def full_props(self, name: str, row: Row, modified_ms: int, props: Props) -> dict[str, str | None]:
        out = dict(props)
        out["hs_object_id"] = str(row.id)
        out["createdate"] = fast_iso_ms(row.created_ms)
        out["hs_lastmodifieddate"] = fast_iso_ms(modified_ms)
        if name == "contacts":
            out["lastmodifieddate"] = out["hs_lastmodifieddate"]
        elif name == "deals":
            stage = STAGE_BY_KEY.get(out.get("dealstage") or "")
            out["hs_deal_stage_probability"] = str(stage.probability) if stage else None
            out["hs_is_closed"] = ("true" if stage.is_closed else "false") if stage else None
            out["hs_is_closed_won"] = ("true" if stage.is_won else "false") if stage else None
        return out

    def render(self, name: str, row: Row, selected: list[str] | None, *, version: tuple[int, Props] | None = None,
               associations: Iterable[str] = (), with_history: Iterable[str] = ()) -> dict[str, Any]:
        modified_ms, props = version if version is not None else (row.updated_ms, self.table(name).props(row))
        everything = self.full_props(name, row, modified_ms, props)
        wanted = selected if selected else DEFAULT_PROPERTIES[name]
        known = PROPERTIES[name]
        keys = dict.fromkeys([*wanted, *SEARCH_ALWAYS])
        if name == "deals" and any(k.startswith((ENTERED_PREFIX, EXITED_PREFIX)) for k in keys):
            everything.update(self.stage_log.stage_dates(row))  # computed only when asked for
        body: dict[str, Any] = {
            "id": str(row.id),
            "properties": {k: everything.get(k) for k in keys if k in known},
            "createdAt": everything["createdate"],
            "updatedAt": everything["hs_lastmodifieddate"],
            "archived": row.archived_ms is not None,
        }
        histories = [p for p in with_history if p in known]
        if histories:
            body["propertiesWithHistory"] = {
                p: self.stage_log.with_history(row) if (name, p) == ("deals", "dealstage") else
                ([{"value": everything.get(p), "timestamp": everything["hs_lastmodifieddate"],
                   "sourceType": "CRM_UI", "sourceId": None}] if everything.get(p) is not None else [])
                for p in histories}
        if row.archived_ms is not None:
            body["archivedAt"] = iso_ms(row.archived_ms)
        assoc: dict[str, Any] = {}
        singular = OBJECT_TYPES[name][1]
        for other in associations:
            target = object_name(other)
            if target is None or target not in ASSOCIATED[name]:
                continue
            found = self.associations.get(name, row.id, target)
            if found:
                # one entry per association type, as the v3 API lists them: the primary (or only)
                # HubSpot-defined type by its plain name, the unlabeled one of a pair that also has a
                # primary type as ``..._unlabeled``
                kind = f"{singular}_to_{OBJECT_TYPES[target][1]}"
                labelled = TYPE_IDS.get((name, target), (0, None))[1] is not None
                results = []
                for i in sorted(found):
                    for t in found[i]:
                        primary = t.get("label") == "Primary"
                        results.append({"id": str(i), "type": kind if primary or not labelled else
                                        f"{kind}_unlabeled"})
                assoc[target] = {"results": results}
        if assoc:
            body["associations"] = assoc
        return body

    # --- unique properties --------------------------------------------------------------------
    def _unique_index(self, name: str, prop: str) -> dict[str, int]:
        key = (name, prop)
        if key not in self._unique:
            table = self.table(name)
            index: dict[str, int] = {}
            for row in table.rows.values():
                value = table.props(row).get(prop)
                if value and row.archived_ms is None:
                    index[value] = row.id
            self._unique[key] = index
        return self._unique[key]

    def _unique_props(self, name: str) -> list[str]:
        return [p.name for p in PROPERTIES[name].values() if p.unique]

    def lookup(self, name: str, value: str, id_property: str | None = None, *, archived: bool = False
               ) -> Row | None:
        table = self.table(name)
        if id_property and id_property != "hs_object_id":
            prop = PROPERTIES[name].get(id_property)
            if prop is None or not prop.unique:
                raise ApiError(400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property")
            found = self._unique_index(name, id_property).get(value)
            row = table.get(found) if found is not None else None
        else:
            try:
                record_id = int(value)
            except ValueError:
                return None
            record_id = table.merged_into.get(record_id, record_id)
            row = table.get(record_id)
        if row is None or (row.archived_ms is not None) != archived:
            return None
        return row

    # --- writes shared by the API and the user handle ------------------------------------------
    def _clean(self, name: str, properties: dict[str, Any], *, trusted: bool = False) -> Props:
        out: Props = {}
        for key, value in (properties or {}).items():
            if trusted and key in PROPERTIES[name] and PROPERTIES[name][key].read_only:
                out[key] = None if value is None else str(value)
                continue
            try:
                out[key] = normalise(name, key, value)
            except PropertyError as exc:
                raise ApiError.from_property(exc) from None
        if name == "deals" and out.get("dealstage") and out["dealstage"] not in STAGE_BY_KEY:
            raise ApiError(400, "VALIDATION_ERROR", f"{out['dealstage']} is not a valid deal stage")
        return out

    def _check_unique(self, name: str, values: Props, record_id: int | None) -> None:
        for prop in self._unique_props(name):
            value = values.get(prop)
            if value:
                owner = self._unique_index(name, prop).get(value)
                if owner is not None and owner != record_id and self.exists(name, owner):
                    raise ApiError(409, "CONFLICT", f"A {OBJECT_TYPES[name][1]} with {prop}={value} already "
                                   f"exists (id {owner})", context={"existingObjectId": [str(owner)]})

    def _index_unique(self, name: str, before: Props, after: Props, record_id: int) -> None:
        for prop in self._unique_props(name):
            if (name, prop) not in self._unique:
                continue
            index = self._unique[(name, prop)]
            if before.get(prop) and index.get(before[prop] or "") == record_id:
                del index[before[prop] or ""]
            if after.get(prop):
                index[after[prop] or ""] = record_id

    def create_record(self, name: str, properties: dict[str, Any], *, at_ms: int | None = None,
                      associations: list[dict[str, Any]] | None = None, trusted: bool = False) -> Row:
        values = self._clean(name, properties, trusted=trusted)
        self._check_unique(name, values, None)
        if name == "deals":
            values.setdefault("pipeline", PIPELINE_ID)
            if not values.get("dealstage"):
                raise ApiError(400, "VALIDATION_ERROR", "dealstage is required",
                               context={"propertyName": ["dealstage"]}, sub_category="REQUIRED_PROPERTY")
        props: Props = {p: None for p in PROPERTIES[name] if not PROPERTIES[name][p].read_only}
        props.update(values)
        table = self.table(name)
        at = at_ms if at_ms is not None else self.now_ms()
        if name == "deals":
            props["hs_v2_date_entered_current_stage"] = fast_iso_ms(at)
        row = Row(table.new_id(), at, at, None, props)
        for assoc in associations or []:
            self._validate_association(name, assoc)
        table.insert(row)
        if name == "deals":
            self.stage_log.record(row, str(props["dealstage"]), at)
        self._index_unique(name, {}, props, row.id)
        for assoc in associations or []:
            target = str(assoc["_target"])
            self.associations.add(name, row.id, target, int(assoc["to"]["id"]), assoc["_types"])
        return row

    def _validate_association(self, name: str, assoc: dict[str, Any]) -> None:
        to_id = str((assoc.get("to") or {}).get("id", ""))
        types = assoc.get("types") or []
        from crmsync.sandbox.hubspot.associations import TYPE_IDS
        for (src, dst), (plain, primary) in TYPE_IDS.items():
            if src == name and any(int(t.get("associationTypeId", -1)) in (plain, primary) for t in types):
                if not to_id.isdigit() or not self.exists(dst, int(to_id)):
                    raise ApiError(400, "VALIDATION_ERROR", f"No {dst} with id {to_id} to associate")
                assoc["_target"] = dst
                assoc["_types"] = [{"category": t.get("associationCategory", "HUBSPOT_DEFINED"),
                                    "typeId": int(t["associationTypeId"])} for t in types]
                return
        raise ApiError(400, "VALIDATION_ERROR", "Unknown association type")

    def update_record(self, name: str, row: Row, properties: dict[str, Any], *, at_ms: int | None = None,
                      trusted: bool = False) -> Row:
        values = self._clean(name, properties, trusted=trusted)
        self._check_unique(name, values, row.id)
        table = self.table(name)
        before = table.props(row)
        merged = dict(before)
        merged.update(values)
        at = at_ms if at_ms is not None else self.now_ms()
        if name == "deals":
            self.stage_log.before_write(row)
            if merged.get("dealstage") != before.get("dealstage"):
                if "hs_v2_date_entered_current_stage" not in values:
                    merged["hs_v2_date_entered_current_stage"] = fast_iso_ms(at)
                self.stage_log.record(row, str(merged["dealstage"]), at)
        table.write(row, merged, at)
        self._index_unique(name, before, merged, row.id)
        return row

    def archive_record(self, name: str, row: Row, *, at_ms: int | None = None) -> None:
        table = self.table(name)
        self._index_unique(name, table.props(row), {}, row.id)
        table.archive(row, at_ms if at_ms is not None else self.now_ms())

    def merge_records(self, name: str, winner: Row, loser: Row) -> Row:
        table = self.table(name)
        self.associations.move_all(name, loser.id, winner.id, ASSOCIATED[name])
        merged_ids = [i for i in (table.props(winner).get("hs_merged_object_ids") or "").split(";") if i]
        merged_ids.append(str(loser.id))
        self._index_unique(name, table.props(loser), {}, loser.id)
        table.hard_delete(loser)
        table.merged_into[loser.id] = winner.id
        return self.update_record(name, winner, {"hs_merged_object_ids": ";".join(merged_ids)}, trusted=True)

    # --- the user handle ----------------------------------------------------------------------
    def _name(self, object_name_: str) -> str:
        name = object_name(object_name_)
        if name is None:
            raise KeyError(object_name_)
        return name

    def _row(self, name: str, record_id: str) -> Row:
        row = self.table(name).get(int(record_id))
        if row is None:
            raise KeyError(record_id)
        return row

    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            name = self._name(object_name)
            fields = dict(fields)
            links = fields.pop("associations", None) or {}
            row = self.create_record(name, fields, trusted=True)
            for target, ids in links.items():
                for to_id in ids:
                    self.associations.add(name, row.id, target, int(to_id), default_types(name, target))
            return str(row.id)

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            name = self._name(object_name)
            self.update_record(name, self._row(name, record_id), fields, trusted=True)

    def move_stage(self, deal_id: str, stage: str) -> None:
        with self.lock:
            at = self.now_ms()
            self.update_record("deals", self._row("deals", deal_id),
                               {"dealstage": stage, "hs_v2_date_entered_current_stage": iso_ms(at)},
                               at_ms=at, trusted=True)

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            name = self._name(object_name)
            row = self._row(name, record_id)
            if hard:
                self._index_unique(name, self.table(name).props(row), {}, row.id)
                self.table(name).hard_delete(row)
            else:
                self.archive_record(name, row)

    def restore(self, object_name: str, record_id: str) -> None:
        """Restore an archived record by id (HubSpot's UI keeps them 90 days): it is live and in
        search again, with ``hs_lastmodifieddate`` moved to now."""
        with self.lock:
            name = self._name(object_name)
            row = self._row(name, record_id)
            if row.archived_ms is None:
                raise ValueError(f"{name} {record_id} is not archived")
            table = self.table(name)
            table.restore(row, self.now_ms())
            self._index_unique(name, {}, table.props(row), row.id)

    def merge(self, object_name: str, winner_id: str, loser_id: str) -> None:
        with self.lock:
            name = self._name(object_name)
            self.merge_records(name, self._row(name, winner_id), self._row(name, loser_id))

    def bulk_import(self, object_name: str, rows: list[dict[str, Any]], *, same_timestamp: bool = True
                    ) -> list[str]:
        """An import: every row created with one identical hs_lastmodifieddate (unless told otherwise)."""
        with self.lock:
            name = self._name(object_name)
            at = self.now_ms()
            return [str(self.create_record(name, r, at_ms=at if same_timestamp else None, trusted=True).id)
                    for r in rows]

    def associate(self, from_object: str, from_id: str, to_object: str, to_id: str) -> None:
        """A user links two records (no modification date changes, as in HubSpot)."""
        with self.lock:
            a, b = self._name(from_object), self._name(to_object)
            self.associations.add(a, int(from_id), b, int(to_id), default_types(a, b))

    def dissociate(self, from_object: str, from_id: str, to_object: str, to_id: str) -> None:
        with self.lock:
            self.associations.remove(self._name(from_object), int(from_id), self._name(to_object), int(to_id))

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            if object_name == "owners":
                return [dict(o) for o in self.owners if include_deleted or not o["archived"]]
            if object_name in ("pipelines", "stages"):
                return [self.pipeline()]
            name = self._name(object_name)
            table = self.table(name)
            ids = list(table.live_ids) + (list(table.archived_ids) if include_deleted else [])
            out = []
            for record_id in ids:
                row = table.rows[record_id]
                record: dict[str, Any] = {
                    "id": str(row.id), "archived": row.archived_ms is not None,
                    "properties": self.full_props(name, row, row.updated_ms, table.props(row)),
                }
                if name == "deals":
                    record["associations"] = {
                        t: sorted(str(i) for i in self.associations.get("deals", row.id, t))
                        for t in ("companies", "contacts", "line_items")}
                out.append(record)
            return out

    # --- pipelines ----------------------------------------------------------------------------
    def pipeline(self) -> dict[str, Any]:
        at = self.pipeline_created
        return {
            "id": PIPELINE_ID, "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
            "createdAt": at, "updatedAt": at,
            "stages": [{
                "id": s.key, "label": s.label, "displayOrder": s.order, "archived": False,
                "createdAt": at, "updatedAt": at, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                "metadata": {"isClosed": "true" if s.is_closed else "false", "probability": str(float(s.probability))},
            } for s in STAGES],
        }

    # --- assembly -----------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        from crmsync.sandbox.hubspot import properties_api
        from crmsync.sandbox.hubspot.routes import build_routes

        return [*build_routes(self), *properties_api.routes(self)]


def _owners(world: World) -> list[dict[str, Any]]:
    teams = {name: str(n + 1) for n, name in enumerate(sorted({o.team for o in world.owners}))}
    created = iso_ms(int((world.now.timestamp() - 900 * 86_400) * 1000))
    owners: list[dict[str, Any]] = []
    for o in world.owners:
        owners.append({
            "id": str(o.id), "email": o.email, "firstName": o.first_name, "lastName": o.last_name,
            "userId": 9_000 + o.id, "userIdIncludingInactive": 9_000 + o.id, "type": "PERSON",
            "archived": not o.active, "createdAt": created, "updatedAt": created,
            "teams": [{"id": teams[o.team], "name": o.team, "primary": True}],
        })
    queue_id = max((o.id for o in world.owners), default=0) + 1
    owners.append({"id": str(queue_id), "email": None, "firstName": "Inbound", "lastName": "Queue",
                   "userId": None, "userIdIncludingInactive": None, "type": "QUEUE", "archived": False,
                   "createdAt": created, "updatedAt": created, "teams": []})
    return owners
