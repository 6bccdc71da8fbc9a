"""A seeded, deterministic sales world that every simulator serves in its own dialect.

``generate_world(seed, deals)`` builds owners (teams, regions, timezones, working hours),
accounts, contacts, leads, one pipeline with ordered stages, a price book, deals spread over the
stages, and the billing catalog that mostly matches the price book. Planted on purpose, so the
rules and billing checks have something to find: stale deals, open deals with a past close date,
won deals with no handoff, contracts ending within 60-90 days, line items priced off the list,
and two products whose CRM list price drifted from the billing plan.

The same (seed, deals, now) always gives the same world. Stage histories and line items are
derived per deal on demand (``stage_history``, ``line_items``) so a million deals stay small.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal

UTC = dt.UTC
CENT = Decimal("0.01")

REGIONS = {
    "NA": (["US", "CA"], ["America/New_York", "America/Chicago", "America/Los_Angeles"]),
    "EMEA": (["GB", "DE", "FR", "NL"], ["Europe/London", "Europe/Berlin", "Europe/Paris"]),
    "APAC": (["AU", "SG", "JP"], ["Australia/Sydney", "Asia/Singapore", "Asia/Tokyo"]),
}
REGION_NAMES = tuple(REGIONS)
SEGMENTS = ("SMB", "MidMarket", "Enterprise")
INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Manufacturing", "Media", "Education")
LEAD_SOURCES = ("Web", "Referral", "Event", "Outbound", "Partner", "Paid Search")
LEAD_STATUSES = ("New", "Working", "Nurturing", "Qualified", "Unqualified")
TITLES = ("CEO", "CTO", "VP Sales", "Head of Ops", "Engineer", "Analyst", "Director IT", "CFO")
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena",
               "Mona", "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wen", "Yuki")
LAST_NAMES = ("Lovelace", "Okafor", "Martin", "Patel", "Novak", "Haddad", "Hopper", "Lefebvre", "Silva",
              "Berg", "Tanaka", "Schmidt", "Rossi", "Kowalski", "Nguyen", "Garcia", "Murphy", "Kim")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell",
                 "Cyberdyne", "Soylent", "Aperture", "Massive", "Wonka", "Gringotts", "Oscorp")
COMPANY_SUFFIX = ("Inc", "GmbH", "Ltd", "SAS", "BV", "Pty", "KK", "Group", "Labs", "Systems")

# Custom deal fields (MEDDIC, handoff and contract data) every CRM carries as custom properties.
DEAL_CUSTOM_FIELDS = (
    "metrics", "economic_buyer", "decision_criteria", "decision_process", "identified_pain", "champion",
    "use_case", "success_criteria", "technical_requirements", "billing_period", "discount_approved",
)


@dataclass(frozen=True, slots=True)
class StageDef:
    key: str
    label: str
    order: int
    probability: Decimal
    is_closed: bool
    is_won: bool


STAGES: tuple[StageDef, ...] = (
    StageDef("qualification", "Qualification", 0, Decimal("0.10"), False, False),
    StageDef("discovery", "Discovery", 1, Decimal("0.20"), False, False),
    StageDef("demo", "Demo Scheduled", 2, Decimal("0.40"), False, False),
    StageDef("proposal", "Proposal Sent", 3, Decimal("0.60"), False, False),
    StageDef("negotiation", "Negotiation", 4, Decimal("0.80"), False, False),
    StageDef("closedwon", "Closed Won", 5, Decimal("1.00"), True, True),
    StageDef("closedlost", "Closed Lost", 6, Decimal("0.00"), True, False),
)
STAGE_WEIGHTS = (18, 16, 14, 12, 10, 18, 12)
LOSS_REASONS = ("No budget", "Timing", "No decision", "Missing feature", "Price", "Competitor")
# weights per stage lost from (qualification .. negotiation), in LOSS_REASONS order
LOSS_REASON_WEIGHTS = ((5, 3, 2, 1, 1, 1), (3, 3, 3, 2, 1, 2), (2, 2, 3, 4, 2, 3), (1, 1, 2, 2, 5, 4),
                       (1, 1, 2, 1, 5, 5))
COMPETITORS = ("Rivalsoft", "Northwind CRM", "Contoso Sales")


@dataclass(frozen=True, slots=True)
class ProductDef:
    code: str
    name: str
    family: str
    monthly_price: Decimal  # billing's price per unit per month, in EUR
    unit: str  # "seat" (slot priced) or "flat"
    min_seats: int = 1
    max_seats: int = 500


PRODUCTS: tuple[ProductDef, ...] = (
    ProductDef("PLAT-CORE", "Platform Core", "Platform", Decimal("49.00"), "seat", 5, 1000),
    ProductDef("PLAT-PRO", "Platform Pro", "Platform", Decimal("89.00"), "seat", 5, 1000),
    ProductDef("PLAT-ENT", "Platform Enterprise", "Platform", Decimal("149.00"), "seat", 25, 5000),
    ProductDef("ADDON-SSO", "SSO Add-on", "Add-ons", Decimal("6.00"), "seat", 1, 5000),
    ProductDef("ADDON-AUDIT", "Audit Log Add-on", "Add-ons", Decimal("4.00"), "seat", 1, 5000),
    ProductDef("ADDON-API", "API Access", "Add-ons", Decimal("250.00"), "flat"),
    ProductDef("SUPPORT-PREM", "Premium Support", "Services", Decimal("500.00"), "flat"),
    ProductDef("SUPPORT-24x7", "24x7 Support", "Services", Decimal("1200.00"), "flat"),
    ProductDef("DATA-WH", "Data Warehouse Connector", "Integrations", Decimal("300.00"), "flat"),
    ProductDef("INT-SF", "Salesforce Integration", "Integrations", Decimal("150.00"), "flat"),
    ProductDef("TRAIN-ONB", "Onboarding Package", "Services", Decimal("0.00"), "flat"),
    ProductDef("ANALYTICS", "Analytics Suite", "Platform", Decimal("29.00"), "seat", 1, 2000),
)
# Planted drift: the CRM price book lists these at a different price than billing charges.
CRM_LIST_PRICE_DRIFT = {"ADDON-SSO": Decimal("7.00"), "DATA-WH": Decimal("280.00")}
CURRENCY = "EUR"
BILLING_PERIOD_MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "SEMIANNUAL": 6, "ANNUAL": 12}


def crm_list_price(product: ProductDef) -> Decimal:
    """The monthly list price the CRM price book shows (drifted for a few products)."""
    return CRM_LIST_PRICE_DRIFT.get(product.code, product.monthly_price)


@dataclass(slots=True)
class WOwner:
    id: int
    first_name: str
    last_name: str
    email: str
    team: str
    region: str
    timezone: str
    active: bool
    role: str  # "sales" | "cs" | "manager"
    manager_id: int | None
    capacity_per_day: int


@dataclass(slots=True)
class WAccount:
    id: int
    name: str
    domain: str
    industry: str
    country: str
    region: str
    segment: str
    employees: int
    owner_id: int


@dataclass(slots=True)
class WContact:
    id: int
    account_id: int
    first_name: str
    last_name: str
    email: str
    title: str


@dataclass(slots=True)
class WLead:
    id: int
    first_name: str
    last_name: str
    email: str
    company: str
    title: str
    status: str
    source: str
    country: str
    region: str
    industry: str
    employees: int
    owner_id: int | None
    created_at: dt.datetime
    modified_at: dt.datetime
    last_activity_at: dt.datetime | None


@dataclass(slots=True)
class WDeal:
    id: int
    name: str
    account_id: int
    owner_id: int
    contact_id: int | None
    stage: int  # index into STAGES
    amount: Decimal
    currency: str
    close_date: dt.date
    created_at: dt.datetime
    modified_at: dt.datetime
    stage_changed_at: dt.datetime
    last_activity_at: dt.datetime | None
    lead_source: str
    deal_type: str
    contract_start: dt.date | None
    contract_end: dt.date | None
    custom: tuple[str | None, ...]  # values for DEAL_CUSTOM_FIELDS
    handoff_done: bool = False

    def custom_fields(self) -> dict[str, str | None]:
        return dict(zip(DEAL_CUSTOM_FIELDS, self.custom, strict=True))


@dataclass(frozen=True, slots=True)
class WLineItem:
    id: int  # deal id * 10 + position: stable and unique
    deal_id: int
    product: ProductDef
    quantity: Decimal
    list_price: Decimal  # per billing period, from the CRM price book
    unit_price: Decimal  # negotiated per billing period
    discount_percent: Decimal
    billing_period: str
    term_months: int

    @property
    def total(self) -> Decimal:
        return (self.unit_price * self.quantity * (1 - self.discount_percent / 100)).quantize(CENT)


@dataclass
class World:
    seed: int
    now: dt.datetime
    owners: list[WOwner] = field(default_factory=list)
    accounts: list[WAccount] = field(default_factory=list)
    contacts: list[WContact] = field(default_factory=list)
    leads: list[WLead] = field(default_factory=list)
    deals: list[WDeal] = field(default_factory=list)
    _account_index: dict[str, WAccount] | None = field(default=None, repr=False, compare=False)
    _deal_index: dict[int, list[WDeal]] | None = field(default=None, repr=False, compare=False)

    stages = STAGES
    products = PRODUCTS

    def stage_history(self, deal: WDeal) -> list[tuple[StageDef, dt.datetime]]:
        """The stages a deal went through, oldest first, ending at its current stage.

        Times are whole seconds (every CRM can carry them exactly). A closed-lost deal's last open
        stage is the stage it was lost from (``lost_from``); about 5% of open deals skipped a stage
        and about 6% of deals that got past Discovery moved back one stage once and forward again.
        """
        rng = random.Random(self.seed * 7_919 + deal.id)
        current = STAGES[deal.stage]
        path: list[int]
        if current.is_closed:
            reached = rng.randint(0, 4) if not current.is_won else 4
            path = [*range(0, reached + 1), deal.stage]
        else:
            path = list(range(0, deal.stage + 1))
            if deal.stage >= 2 and rng.random() < 0.05:  # a few skipped stages, for hygiene
                path.remove(deal.stage - 1)
        open_part = [i for i in path if not STAGES[i].is_closed]
        if len(open_part) >= 3 and rng.random() < 0.06:  # a backwards move: k -> k-1 -> k
            k = open_part[-1]
            at = path.index(k)
            path[at:at] = [k, path[at - 1]]
        span = int((deal.stage_changed_at - deal.created_at).total_seconds())
        if span < 2 * len(path):  # entered its stage within seconds of creation: no room for a path
            path = [path[0], path[-1]] if len(path) > 1 else path
        steps = len(path) - 1
        history = []
        for n, index in enumerate(path):
            at_s = span * n // steps if steps else 0
            history.append((STAGES[index], deal.created_at + dt.timedelta(seconds=at_s)))
        history[-1] = (current, deal.stage_changed_at)
        return history

    def lost_from(self, deal: WDeal) -> StageDef | None:
        """The open stage a closed-lost deal was lost from (None for other deals)."""
        if not STAGES[deal.stage].is_closed or STAGES[deal.stage].is_won:
            return None
        return [s for s, _ in self.stage_history(deal) if not s.is_closed][-1]

    def loss(self, deal: WDeal) -> tuple[str, str | None] | None:
        """(loss reason, competitor or None) of a closed-lost deal; reasons depend on the stage lost
        from (early losses are budget and timing, late ones price and competitors)."""
        stage = self.lost_from(deal)
        if stage is None:
            return None
        rng = random.Random(self.seed * 15_485_863 + deal.id)
        reason = rng.choices(LOSS_REASONS, LOSS_REASON_WEIGHTS[min(stage.order, 4)])[0]
        competitor = rng.choice(COMPETITORS) if reason == "Competitor" else None
        return reason, competitor

    def lead_conversion(self, lead: WLead) -> tuple[int, int | None, dt.datetime] | None:
        """(account id, opportunity id or None, converted at) of a converted lead, else None.

        60% of Qualified leads were converted, 3-30 days after they were created (when that is in the
        past), into the account of their company (or another one) and its first deal created after the
        conversion, if any (converted at = that deal's creation)."""
        if lead.status != "Qualified" or not self.accounts:
            return None
        rng = random.Random(self.seed * 32_452_843 + lead.id)
        if rng.random() >= 0.6:
            return None
        account = self._accounts_by_name().get(lead.company) or self.accounts[rng.randrange(len(self.accounts))]
        at = lead.created_at + dt.timedelta(days=rng.randint(3, 30), seconds=rng.randint(0, 86_399))
        if at > self.now:
            return None
        later = [d for d in self._deals_by_account().get(account.id, ()) if d.created_at >= at]
        deal = min(later, key=lambda d: (d.created_at, d.id)) if later else None
        return account.id, (deal.id if deal else None), (deal.created_at if deal else at)

    def _accounts_by_name(self) -> dict[str, WAccount]:
        index = getattr(self, "_account_index", None)
        if index is None:
            index = {}
            for account in self.accounts:
                index.setdefault(account.name, account)
            self._account_index = index
        return index

    def _deals_by_account(self) -> dict[int, list[WDeal]]:
        index = getattr(self, "_deal_index", None)
        if index is None:
            index = {}
            for deal in self.deals:
                index.setdefault(deal.account_id, []).append(deal)
            self._deal_index = index
        return index

    def line_items(self, deal: WDeal) -> list[WLineItem]:
        """Line items from the price book; amounts add up to the deal amount except planted drift."""
        rng = random.Random(self.seed * 104_729 + deal.id)
        count = 1 + (deal.id % 3)
        period = deal.custom[DEAL_CUSTOM_FIELDS.index("billing_period")] or "ANNUAL"
        months = BILLING_PERIOD_MONTHS[period]
        items = []
        for pos in range(count):
            product = PRODUCTS[(deal.id + pos * 5) % len(PRODUCTS)]
            seats = rng.randint(product.min_seats, min(product.max_seats, 200)) if product.unit == "seat" else 1
            list_price = (crm_list_price(product) * months).quantize(CENT)
            unit_price = list_price
            discount = Decimal(0)
            roll = rng.random()
            if roll < 0.15:
                discount = Decimal(rng.choice((5, 10, 15, 20, 25, 30)))
            elif roll < 0.18:  # negotiated price off the list without a discount
                unit_price = (list_price * Decimal("0.9")).quantize(CENT)
            items.append(WLineItem(deal.id * 10 + pos, deal.id, product, Decimal(seats), list_price,
                                   unit_price, discount, period, 12))
        return items


def _company(rng: random.Random, n: int) -> str:
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIX)} {n}"


def generate_world(seed: int = 7, deals: int = 1_000, *, now: dt.datetime | None = None,
                   owners: int | None = None, leads: int | None = None) -> World:
    """Build the world. ``now`` anchors every relative date; it defaults to this second in UTC."""
    now = (now or dt.datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)
    world = World(seed=seed, now=now)
    n_owners = owners or max(12, min(200, deals // 500))
    n_accounts = max(20, deals // 4)
    n_leads = leads if leads is not None else max(50, deals // 2)

    # Owners: sales reps per region team, a few CS reps, one manager per region; some inactive.
    managers: dict[str, int] = {}
    oid = 1
    for region in REGION_NAMES:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        world.owners.append(WOwner(oid, first, last, f"{first}.{last}.{oid}@example.com".lower(),
                                   f"{region} Sales", region, REGIONS[region][1][0], True, "manager", None, 50))
        managers[region] = oid
        oid += 1
    while oid <= n_owners:
        region = REGION_NAMES[oid % 3]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        role = "cs" if oid % 6 == 0 else "sales"
        team = f"{region} {'Customer Success' if role == 'cs' else 'Sales'}"
        world.owners.append(WOwner(oid, first, last, f"{first}.{last}.{oid}@example.com".lower(), team, region,
                                   rng.choice(REGIONS[region][1]), oid % 11 != 0, role, managers[region],
                                   rng.choice((10, 20, 30))))
        oid += 1
    sales_by_region = {r: [o.id for o in world.owners if o.region == r and o.role == "sales"] for r in REGION_NAMES}

    for aid in range(1, n_accounts + 1):
        region = rng.choice(REGION_NAMES)
        name = _company(rng, aid)
        segment = rng.choices(SEGMENTS, (5, 3, 2))[0]
        employees = {"SMB": rng.randint(5, 199), "MidMarket": rng.randint(200, 1999),
                     "Enterprise": rng.randint(2000, 50000)}[segment]
        world.accounts.append(WAccount(aid, name, f"{name.split()[0].lower()}{aid}.example.com",
                                       rng.choice(INDUSTRIES), rng.choice(REGIONS[region][0]), region, segment,
                                       employees, rng.choice(sales_by_region[region])))
        if aid <= 50_000 or aid % 10 == 0:  # contacts for a bounded share of accounts
            for c in range(2):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                cid = aid * 2 - 1 + c
                world.contacts.append(WContact(cid, aid, first, last, f"{first}.{last}.{cid}@{name.split()[0].lower()}.example".lower(),
                                               rng.choice(TITLES)))

    for lid in range(1, n_leads + 1):
        region = rng.choice(REGION_NAMES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = now - dt.timedelta(days=rng.randint(0, 400), seconds=rng.randint(0, 86_399))
        modified = min(now, created + dt.timedelta(days=rng.randint(0, 30)))
        activity = None if rng.random() < 0.3 else min(now, created + dt.timedelta(days=rng.randint(0, 60)))
        # Some leads come from existing accounts' companies (account-match routing).
        if rng.random() < 0.2 and world.accounts:
            company = world.accounts[rng.randrange(len(world.accounts))].name
        else:
            company = _company(rng, 100_000 + lid)
        world.leads.append(WLead(lid, first, last, f"{first}.{last}.{lid}@lead.example".lower(), company,
                                 rng.choice(TITLES), rng.choice(LEAD_STATUSES), rng.choice(LEAD_SOURCES),
                                 rng.choice(REGIONS[region][0]), region, rng.choice(INDUSTRIES),
                                 rng.choice((10, 50, 200, 1000, 5000)),
                                 None if rng.random() < 0.4 else rng.choice(sales_by_region[region]),
                                 created, modified, activity))

    _generate_deals(world, rng, deals, n_accounts)
    return world


def _generate_deals(world: World, rng: random.Random, n_deals: int, n_accounts: int) -> None:
    now = world.now
    today = now.date()
    accounts = world.accounts
    stage_indexes = range(len(STAGES))
    stage_choices = rng.choices(stage_indexes, STAGE_WEIGHTS, k=n_deals)
    rand = rng.random
    randint = rng.randint
    append = world.deals.append
    n_contacts = len(world.contacts)
    for did in range(1, n_deals + 1):
        account = accounts[randint(0, n_accounts - 1)]
        stage_index = stage_choices[did - 1]
        stage = STAGES[stage_index]
        age_days = randint(5, 540)
        created = now - dt.timedelta(days=age_days, seconds=randint(0, 86_399))
        in_stage_days = randint(0, min(age_days, 120))
        stage_changed = max(created, now - dt.timedelta(days=in_stage_days, seconds=randint(0, 3_600)))
        modified = max(stage_changed, now - dt.timedelta(days=randint(0, in_stage_days), seconds=randint(0, 3_600)))
        if stage_index == 0:  # still in the stage it was created in: it never changed stage
            stage_changed = created
        if stage.is_closed:
            close_date = stage_changed.date()
        else:  # mostly in the future; about 8% planted in the past
            close_date = today + dt.timedelta(days=randint(-60, -1) if rand() < 0.08 else randint(1, 180))
        stale = rand() < 0.1
        last_activity = None if stale else max(created, now - dt.timedelta(days=randint(0, 20)))
        months = 12
        contract_start = contract_end = None
        if stage.is_won:
            contract_start = close_date + dt.timedelta(days=randint(0, 14))
            if rand() < 0.12:  # contracts ending within the 60-90 day renewal window
                contract_end = today + dt.timedelta(days=randint(60, 90))
                contract_start = contract_end - dt.timedelta(days=365)
            else:
                contract_end = contract_start + dt.timedelta(days=30 * months * randint(1, 3))
        period = "ANNUAL" if rand() < 0.7 else "MONTHLY"
        meddic_complete = stage_index >= 3 and rand() < 0.8
        custom = (
            "Reduce churn 10%" if meddic_complete else None,
            "CFO" if meddic_complete or rand() < 0.3 else None,
            "Security, price" if meddic_complete else None,
            "Legal then procurement" if meddic_complete else None,
            "Manual reporting" if stage_index >= 1 else None,
            "Head of Ops" if meddic_complete else None,
            "Revenue analytics" if stage.is_won and rand() < 0.85 else None,
            "Dashboards live in 30 days" if stage.is_won and rand() < 0.8 else None,
            "SSO, EU data residency" if stage.is_won and rand() < 0.7 else None,
            period,
            "true" if rand() < 0.5 else "false",
        )
        deal = WDeal(
            id=did, name=f"{account.name} - {('New', 'Expansion', 'Renewal')[did % 3]} {did}",
            account_id=account.id, owner_id=account.owner_id,
            contact_id=(account.id * 2 - 1) if (account.id * 2 - 1) <= n_contacts else None,
            stage=stage_index, amount=Decimal(0), currency=CURRENCY, close_date=close_date, created_at=created,
            modified_at=modified, stage_changed_at=stage_changed, last_activity_at=last_activity,
            lead_source=LEAD_SOURCES[did % len(LEAD_SOURCES)],
            deal_type=("New Business", "Expansion", "Renewal")[did % 3],
            contract_start=contract_start, contract_end=contract_end, custom=custom,
            handoff_done=stage.is_won and rand() < 0.6,
        )
        append(deal)
    # Amounts: the sum of line items, with planted mismatches (about 4% off, 2% zero).
    for deal in world.deals:
        roll = rand()
        if roll < 0.02:
            deal.amount = Decimal(0)
            continue
        total = sum((item.total for item in world.line_items(deal)), Decimal(0))
        if roll < 0.06:
            total = (total * Decimal("1.07")).quantize(CENT)
        deal.amount = total
