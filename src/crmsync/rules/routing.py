"""Routing of leads and deals: ordered rules, first match wins, each sending to a pool.

Pool strategies: ``round_robin`` (equal turns), ``weighted`` (turns in proportion to weights) and
``fewest_open``; every strategy honours per-rep capacity caps (per day / per month, in the rep's
timezone) and skips inactive, out-of-office and off-hours reps. Rule strategies: ``pool``,
``territory`` (field value -> pool), ``account_match`` (owner of the existing account) and
``sticky_owner`` (the rep who last got this account / email domain).

Fairness: turns use smooth weighted round-robin with durable per-pool credits. On each pick every
*available* rep gains its weight and the chosen one pays the available total. A skipped rep's
credit is left untouched, so it keeps its place and nobody in particular (e.g. the next rep in a
list) absorbs its turns; the shares among available reps follow their weights.

Durable state (``RoutingState``): ``routing.rr/<pool>`` credits, ``routing.cap/<conn>:<owner>:<period>``
counters, ``routing.assigned/<object>:<conn>:<id>`` (who, when, which pool: makes re-runs
idempotent and drives SLA reassignment) and ``routing.sticky/<conn>:<key>``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmsync.model import ObjectType, Owner
from crmsync.rules.conditions import (
    ConditionError,
    FieldRef,
    Path,
    Predicate,
    compile_condition,
    resolve_field,
)
from crmsync.rules.decisions import ASSIGN_OWNER, Decision
from crmsync.rules.schema import Pool, RoutingFile, RoutingRule, Sla

NS_RR = "routing.rr"
NS_CAP = "routing.cap"
NS_ASSIGNED = "routing.assigned"
NS_STICKY = "routing.sticky"


@lru_cache(maxsize=256)
def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _hhmm(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def unavailable_reason(owner: Owner | None, now: dt.datetime, *, respect_hours: bool = True) -> str | None:
    """None when the rep can take work now, else why not (inactive, out of office, off hours)."""
    if owner is None:
        return "unknown owner"
    if not owner.active or owner.deleted:
        return "inactive"
    if owner.out_of_office:
        return "out of office"
    if respect_hours and owner.working_hours:
        local = now.astimezone(_zone(owner.timezone or "UTC"))
        hours = owner.working_hours
        days = hours.get("days")
        if days is not None and local.weekday() not in days:
            return f"off hours ({local:%a} in {owner.timezone})"
        start, end = hours.get("start"), hours.get("end")
        if start and end:
            t = local.time()
            s, e = _hhmm(start), _hhmm(end)
            inside = s <= t < e if s <= e else (t >= s or t < e)  # overnight shifts
            if not inside:
                return f"off hours ({local:%H:%M} in {owner.timezone})"
    return None


def owner_local_day(owner: Owner | None, now: dt.datetime) -> dt.date:
    return now.astimezone(_zone(owner.timezone if owner else "UTC")).date()


@dataclass(frozen=True, slots=True)
class MemberSpec:
    owner: str
    weight: int
    capacity_per_day: int | None
    capacity_per_month: int | None


@dataclass(slots=True)
class Choice:
    owner: str | None
    pool: str
    why: str


class CompiledPool:
    def __init__(self, spec: Pool) -> None:
        self.spec = spec
        self.name = spec.name
        self.connection = spec.connection
        self.strategy = spec.strategy
        self.members = tuple(
            MemberSpec(m.owner, 1 if spec.strategy == "round_robin" else m.weight, m.capacity_per_day, m.capacity_per_month)
            for m in spec.members
        )
        self.teams = frozenset(t.strip().lower() for t in spec.teams)
        self.team_weight = 1 if spec.strategy == "round_robin" else spec.team_weight
        self.respect_hours = spec.respect_working_hours
        self.manager = spec.manager
        self.fallback = spec.fallback

    def members_for(self, connection: str, ctx: Any) -> tuple[MemberSpec, ...]:
        """Listed members plus, when the pool names teams, that connection's owners in those teams
        (inactive ones included: availability skips them without costing their turn)."""
        if not self.teams:
            return self.members

        def build() -> tuple[MemberSpec, ...]:
            listed = {m.owner for m in self.members}
            extra = sorted(
                (o.source_id for (conn, _), o in ctx.owners.items()
                 if conn == connection and (o.team or "").strip().lower() in self.teams and o.source_id not in listed),
                key=lambda x: (len(x), x),
            )
            return self.members + tuple(MemberSpec(oid, self.team_weight, None, None) for oid in extra)

        result: tuple[MemberSpec, ...] = ctx.cached(("routing.pool", self.name, connection), build)
        return result

    def _caps(self, m: MemberSpec, owner: Owner | None) -> tuple[int | None, int | None]:
        day = m.capacity_per_day if m.capacity_per_day is not None else (owner.capacity_per_day if owner else None)
        month = m.capacity_per_month if m.capacity_per_month is not None else (owner.capacity_per_month if owner else None)
        return day, month

    def _cap_keys(self, connection: str, owner_id: str, owner: Owner | None, now: dt.datetime) -> tuple[str, str]:
        day = owner_local_day(owner, now)
        return f"{connection}:{owner_id}:d:{day.isoformat()}", f"{connection}:{owner_id}:m:{day:%Y-%m}"

    def eligible(
        self, connection: str, ctx: Any, exclude: frozenset[str] = frozenset()
    ) -> tuple[list[MemberSpec], list[str]]:
        ok: list[MemberSpec] = []
        skipped: list[str] = []
        state = ctx.routing_state
        for m in self.members_for(connection, ctx):
            if m.owner in exclude:
                skipped.append(f"{m.owner}: current owner")
                continue
            owner = ctx.owners.get((connection, m.owner))
            why = unavailable_reason(owner, ctx.now, respect_hours=self.respect_hours)
            if why is not None:
                skipped.append(f"{m.owner}: {why}")
                continue
            cap_day, cap_month = self._caps(m, owner)
            if cap_day is not None or cap_month is not None:
                kd, km = self._cap_keys(connection, m.owner, owner, ctx.now)
                used_d = state.get(NS_CAP, kd) or 0
                used_m = state.get(NS_CAP, km) or 0
                if cap_day is not None and used_d >= cap_day:
                    skipped.append(f"{m.owner}: daily cap {used_d}/{cap_day}")
                    continue
                if cap_month is not None and used_m >= cap_month:
                    skipped.append(f"{m.owner}: monthly cap {used_m}/{cap_month}")
                    continue
            ok.append(m)
        return ok, skipped

    def pick(self, connection: str, ctx: Any, exclude: frozenset[str] = frozenset()) -> Choice:
        """Choose a rep (advancing durable state) or say why nobody could be chosen."""
        ok, skipped = self.eligible(connection, ctx, exclude)
        skip_note = f"; skipped {', '.join(skipped)}" if skipped else ""
        if not ok:
            return Choice(None, self.name, f"pool {self.name}: nobody available{skip_note}")
        state = ctx.routing_state
        rr = state.get(NS_RR, self.name) or {}
        credits: dict[str, int] = dict(rr.get("credits", {}))
        if self.strategy == "fewest_open":
            counts = ctx.open_counts
            best = min(ok, key=lambda m: (counts.get((connection, m.owner), 0), -credits.get(m.owner, 0)))
            why = f"fewest open ({counts.get((connection, best.owner), 0)})"
            total = sum(m.weight for m in ok)
            for m in ok:
                credits[m.owner] = credits.get(m.owner, 0) + m.weight
            credits[best.owner] -= total
        else:
            total = 0
            best = ok[0]
            best_credit = None
            for m in ok:
                c = credits.get(m.owner, 0) + m.weight
                credits[m.owner] = c
                total += m.weight
                if best_credit is None or c > best_credit:
                    best, best_credit = m, c
            why = f"{self.strategy.replace('_', ' ')} turn (credit {best_credit}, weight {best.weight}/{total})"
            credits[best.owner] -= total
        state.set(NS_RR, self.name, {"credits": credits, "picks": int(rr.get("picks", 0)) + 1})
        owner = ctx.owners.get((connection, best.owner))
        cap_day, cap_month = self._caps(best, owner)
        if cap_day is not None or cap_month is not None:
            kd, km = self._cap_keys(connection, best.owner, owner, ctx.now)
            state.set(NS_CAP, kd, (state.get(NS_CAP, kd) or 0) + 1)
            state.set(NS_CAP, km, (state.get(NS_CAP, km) or 0) + 1)
        key = (connection, best.owner)
        ctx.open_counts[key] = ctx.open_counts.get(key, 0) + 1
        return Choice(best.owner, self.name, f"pool {self.name}: {why}{skip_note}")


class CompiledRoutingRule:
    def __init__(self, spec: RoutingRule, path: Path, pools: dict[str, CompiledPool]) -> None:
        self.spec = spec
        self.name = spec.name
        self.object_type = ObjectType(spec.object)
        self.when = compile_condition(self.object_type, spec.when, (*path, "when")) if spec.when else None
        self.strategy = spec.strategy
        self.pool: CompiledPool | None = None
        if spec.pool is not None:
            if spec.pool not in pools:
                raise ConditionError((*path, "pool"), f"unknown pool {spec.pool!r}; expected one of: {', '.join(pools)}")
            self.pool = pools[spec.pool]
        self.territory_ref: FieldRef | None = None
        self.territory_map: dict[str, CompiledPool] = {}
        self.territory_default: CompiledPool | None = None
        if spec.territory is not None:
            t = spec.territory
            try:
                self.territory_ref = resolve_field(self.object_type, t.field)
            except ValueError as exc:
                raise ConditionError((*path, "territory", "field"), str(exc)) from exc
            for value, pool_name in t.map.items():
                if pool_name not in pools:
                    raise ConditionError((*path, "territory", "map", value), f"unknown pool {pool_name!r}")
                self.territory_map[str(value).strip().lower()] = pools[pool_name]
            if t.default is not None:
                if t.default not in pools:
                    raise ConditionError((*path, "territory", "default"), f"unknown pool {t.default!r}")
                self.territory_default = pools[t.default]
        self.match_by = tuple(spec.match_by)


def remembered_owner(ctx: Any, record: Any, *, namespace: str, state_key: str, prefer_deal_owner: bool,
                     pool: CompiledPool | None, router: Router | None, no_pool: str) -> tuple[str | None, str]:
    """The owner of a follow-up deal (renewal, expansion) and why: the one chosen for it earlier, else
    the deal owner when the rule prefers them and they are working, else the pool's pick, else the
    deal owner (``no_pool`` says why). The choice is remembered, so a re-run picks the same person."""
    owner = ctx.routing_state.get(namespace, state_key)
    if owner is not None:
        return owner, "owner chosen earlier"
    deal_owner = ctx.owner(record.connection, record.owner_id)
    if prefer_deal_owner and unavailable_reason(deal_owner, ctx.now, respect_hours=False) is None:
        owner, why = record.owner_id, "deal owner"
    elif pool is not None and router is not None:
        choice = router.pick_from_pool(pool, record, ctx)
        owner, why = choice.owner, choice.why
    else:
        owner, why = record.owner_id, no_pool
    if owner is not None:
        ctx.routing_state.set(namespace, state_key, owner)
    return owner, why


def _domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower()


def _norm_company(name: str | None) -> str | None:
    if not name:
        return None
    text = name.strip().lower()
    for suffix in (" inc.", " inc", " ltd", " llc", " gmbh", " corp.", " corp", " co.", " sa", " ag", " plc"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text.strip(" ,.") or None


def sticky_key(record: Any) -> str | None:
    account_id = getattr(record, "account_id", None) or getattr(record, "converted_account_id", None)
    if account_id:
        return f"account:{account_id}"
    dom = _domain(getattr(record, "email", None))
    if dom:
        return f"domain:{dom}"
    company = _norm_company(getattr(record, "company", None))
    return f"company:{company}" if company else None


class Router:
    """Routing for one rule set; ``route`` appends at most one assignment per record."""

    kind = "routing"

    def __init__(self, spec: RoutingFile) -> None:
        self.spec = spec
        self.pools: dict[str, CompiledPool] = {}
        for i, p in enumerate(spec.pools):
            if p.name in self.pools:
                raise ConditionError(("pools", i, "name"), f"duplicate pool name {p.name!r}")
            self.pools[p.name] = CompiledPool(p)
        for i, p in enumerate(spec.pools):
            fb = p.fallback
            if fb is not None and fb.pool is not None and fb.pool not in self.pools:
                raise ConditionError(("pools", i, "fallback", "pool"), f"unknown pool {fb.pool!r}")
            if fb is not None and fb.manager and not p.manager:
                raise ConditionError(("pools", i, "fallback", "manager"), "fallback manager needs the pool's `manager`")
        self.rules: dict[ObjectType, list[CompiledRoutingRule]] = {ObjectType.DEAL: [], ObjectType.LEAD: []}
        names: set[str] = set()
        for i, r in enumerate(spec.rules):
            if r.name in names:
                raise ConditionError(("rules", i, "name"), f"duplicate rule name {r.name!r}")
            names.add(r.name)
            rule = CompiledRoutingRule(r, ("rules", i), self.pools)
            self.rules[rule.object_type].append(rule)
        self.sla: dict[ObjectType, list[tuple[Sla, Predicate | None, CompiledPool | None]]] = {
            ObjectType.DEAL: [],
            ObjectType.LEAD: [],
        }
        for i, s in enumerate(spec.sla):
            ot = ObjectType(s.object)
            pred = compile_condition(ot, s.when, ("sla", i, "when")) if s.when else None
            if s.pool is not None and s.pool not in self.pools:
                raise ConditionError(("sla", i, "pool"), f"unknown pool {s.pool!r}")
            self.sla[ot].append((s, pred, self.pools.get(s.pool) if s.pool else None))
        self.unassigned = frozenset(spec.unassigned_owner_ids)
        self.rule_count = len(spec.rules) + len(spec.sla)

    # ------------------------------------------------------------------ helpers
    def needs_routing(self, record: Any, ctx: Any) -> str | None:
        owner_id = record.owner_id
        if owner_id is None:
            return "no owner"
        if owner_id in self.unassigned:
            return f"owned by queue {owner_id}"
        if self.spec.reroute_inactive_owner:
            owner = ctx.owners.get((record.connection, owner_id))
            if owner is not None and (not owner.active or owner.deleted):
                return f"owner {owner_id} inactive"
        return None

    def pick_from_pool(self, pool: CompiledPool, record: Any, ctx: Any, exclude: frozenset[str] = frozenset()) -> Choice:
        seen: set[str] = set()
        current: CompiledPool | None = pool
        notes: list[str] = []
        while current is not None and current.name not in seen:
            seen.add(current.name)
            if current.connection is not None and current.connection != record.connection:
                notes.append(f"pool {current.name} is for connection {current.connection}")
                return Choice(None, current.name, "; ".join(notes))
            choice = current.pick(record.connection, ctx, exclude)
            notes.append(choice.why)
            if choice.owner is not None:
                return Choice(choice.owner, choice.pool, " -> ".join(notes))
            fb = current.fallback
            if fb is None:
                break
            if fb.owner is not None:
                return Choice(fb.owner, current.name, " -> ".join([*notes, f"fallback queue {fb.owner}"]))
            if fb.manager and current.manager:
                return Choice(current.manager, current.name, " -> ".join([*notes, f"fallback manager {current.manager}"]))
            current = self.pools.get(fb.pool) if fb.pool else None
        return Choice(None, pool.name, " -> ".join(notes))

    def _account_match(self, rule: CompiledRoutingRule, record: Any, ctx: Any) -> Choice | None:
        accounts = ctx.accounts
        conn = record.connection
        found = None
        how = ""
        for method in rule.match_by:
            if method == "account":
                account_id = getattr(record, "account_id", None) or getattr(record, "converted_account_id", None)
                found = accounts.get((conn, account_id)) if account_id else None
                how = f"account {account_id}"
            elif method == "domain" and hasattr(record, "email"):
                dom = _domain(record.email)
                if dom:
                    index = ctx.cached(("routing.domain", conn), lambda: _index(accounts, conn, lambda a: (a.domain or "").lower() or None))
                    found = index.get(dom)
                    how = f"email domain {dom}"
            elif method == "company" and hasattr(record, "company"):
                name = _norm_company(record.company)
                if name:
                    index = ctx.cached(("routing.company", conn), lambda: _index(accounts, conn, lambda a: _norm_company(a.name)))
                    found = index.get(name)
                    how = f"company {record.company!r}"
            if found is not None and found.owner_id:
                owner = ctx.owners.get((conn, found.owner_id))
                why = unavailable_reason(owner, ctx.now, respect_hours=False)
                if why is None:
                    return Choice(found.owner_id, "", f"account match by {how}: account {found.source_id} owned by {found.owner_id}")
                found = None
        return None

    def _sticky(self, record: Any, ctx: Any) -> Choice | None:
        key = sticky_key(record)
        if key is None:
            return None
        prior = ctx.routing_state.get(NS_STICKY, f"{record.connection}:{key}")
        if not prior:
            return None
        owner = ctx.owners.get((record.connection, prior))
        if unavailable_reason(owner, ctx.now, respect_hours=False) is not None:
            return None
        return Choice(prior, "", f"sticky owner: {prior} last got {key}")

    def choose(self, record: Any, ctx: Any) -> tuple[CompiledRoutingRule, Choice] | None:
        for rule in self.rules.get(record.object_type, ()):
            if rule.when is not None and not rule.when(record, ctx):
                continue
            choice: Choice | None = None
            if rule.strategy == "pool" and rule.pool is not None:
                choice = self.pick_from_pool(rule.pool, record, ctx)
            elif rule.strategy == "territory" and rule.territory_ref is not None:
                value = rule.territory_ref.get(record, ctx)
                pool = rule.territory_map.get(str(value).strip().lower()) if value is not None else None
                label = f"territory {rule.territory_ref.path}={value}"
                if pool is None:
                    pool = rule.territory_default
                    label += " (default)"
                if pool is not None:
                    choice = self.pick_from_pool(pool, record, ctx)
                    choice.why = f"{label} -> {choice.why}"
            elif rule.strategy == "account_match":
                choice = self._account_match(rule, record, ctx)
            elif rule.strategy == "sticky_owner":
                choice = self._sticky(record, ctx)
            if choice is not None and choice.owner is not None:
                return rule, choice
        return None

    def _remember(self, record: Any, ctx: Any, owner: str, pool: str, rule: str, from_owner: str | None) -> None:
        ctx.routing_state.set(
            NS_ASSIGNED,
            f"{record.object_type.value}:{record.connection}:{record.source_id}",
            {"owner": owner, "pool": pool, "rule": rule, "at": ctx.now.isoformat(), "from": from_owner or "-"},
        )
        key = sticky_key(record)
        if key is not None:
            ctx.routing_state.set(NS_STICKY, f"{record.connection}:{key}", owner)

    # ------------------------------------------------------------------ entry point
    def route(self, record: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        why_route = self.needs_routing(record, ctx)
        if why_route is None:
            if self.sla[record.object_type]:
                self._check_sla(record, ctx, out, rule_set)
            return
        state_key = f"{record.object_type.value}:{record.connection}:{record.source_id}"
        prior = ctx.routing_state.get(NS_ASSIGNED, state_key)
        if prior is not None and prior.get("from") == (record.owner_id or "-"):
            return  # already decided; the assignment has not come back from the CRM yet
        chosen = self.choose(record, ctx)
        if chosen is None:
            return
        rule, choice = chosen
        assert choice.owner is not None
        self._remember(record, ctx, choice.owner, choice.pool, rule.name, record.owner_id)
        key = f"route:{record.object_type.value}:{record.connection}:{record.source_id}:{record.owner_id or '-'}"
        if key in ctx.known_keys:
            return
        out.append(
            Decision(
                "routing",
                rule.name,
                record.object_type.value,
                record.connection,
                record.source_id,
                ASSIGN_OWNER,
                {"owner_id": choice.owner},
                f"{why_route}; rule {rule.name} ({rule.strategy}): {choice.why}; chose {choice.owner}",
                key,
                rule_set,
            )
        )

    def _check_sla(self, record: Any, ctx: Any, out: list[Decision], rule_set: str) -> None:
        state_key = f"{record.object_type.value}:{record.connection}:{record.source_id}"
        prior = ctx.routing_state.get(NS_ASSIGNED, state_key)
        if prior is None or prior.get("owner") != record.owner_id:
            return
        at = dt.datetime.fromisoformat(prior["at"])
        last = getattr(record, "last_activity_at", None)
        if last is not None and last >= at:
            return  # the owner acted
        for sla, pred, pool in self.sla[record.object_type]:
            if ctx.now - at < dt.timedelta(hours=sla.hours):
                continue
            if pred is not None and not pred(record, ctx):
                continue
            target = pool or self.pools.get(prior.get("pool") or "")
            if target is None:
                continue
            choice = self.pick_from_pool(target, record, ctx, exclude=frozenset({record.owner_id}))
            if choice.owner is None:
                continue
            key = f"sla:{record.object_type.value}:{record.connection}:{record.source_id}:{prior['at']}"
            self._remember(record, ctx, choice.owner, choice.pool, sla.name, record.owner_id)
            if key in ctx.known_keys:
                return
            hours = (ctx.now - at).total_seconds() / 3600
            out.append(
                Decision(
                    "routing",
                    sla.name,
                    record.object_type.value,
                    record.connection,
                    record.source_id,
                    ASSIGN_OWNER,
                    {"owner_id": choice.owner},
                    f"SLA {sla.name}: {record.owner_id} did not act within {sla.hours:g}h "
                    f"(assigned {hours:.1f}h ago); {choice.why}; chose {choice.owner}",
                    key,
                    rule_set,
                )
            )
            return

    def explain(self, record: Any, ctx: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        need = self.needs_routing(record, ctx)
        rows.append({"kind": "routing", "rule": "needs routing", "result": "yes" if need else "no", "detail": need or f"owner {record.owner_id}"})
        for rule in self.rules.get(record.object_type, ()):
            matched = rule.when is None or rule.when(record, ctx)
            rows.append({"kind": "routing", "rule": rule.name, "result": "match" if matched else "no", "detail": rule.strategy})
        return rows


def _index(accounts: Any, connection: str, key: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (conn, _), account in sorted(accounts.items(), key=lambda kv: kv[0]):
        if conn != connection or account.deleted:
            continue
        k = key(account)
        if k and k not in out:
            out[k] = account
    return out
