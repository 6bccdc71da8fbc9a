from __future__ import annotations

import datetime as dt

import httpx
import meteroid
import pytest

from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.meteroid import DEFAULT_API_KEY, MeteroidSimulator
from crmsync.sandbox.meteroid.ids import make_id, parse_id
from crmsync.sandbox.meteroid.spec import openapi, patch_tagged_unions, patched_spec, validate_exchange

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sim() -> MeteroidSimulator:
    return MeteroidSimulator(generate_world(11, 600, now=NOW))


@pytest.fixture(scope="module")
def server(sim: MeteroidSimulator):
    with SandboxServer(sim.build_app(), name="meteroid") as srv:
        yield srv


@pytest.fixture()
def http(server: SandboxServer):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as client:
        yield client


@pytest.fixture(scope="module")
def api():
    return openapi()


@pytest.fixture()
def sdk(server: SandboxServer):
    client = meteroid.Meteroid(api_key=DEFAULT_API_KEY, base_url=server.url, max_retries=0)
    yield client
    client.close()


def _customer(alias: str | None = None, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {"name": "Acme SAS", "currency": "EUR", "invoicing_emails": ["ap@acme.example"],
                               "custom_taxes": [], **extra}
    if alias is not None:
        body["alias"] = alias
    return body


def test_ids_roundtrip_and_prefix() -> None:
    for n in (1, 42, 10**9 + 7):
        value = make_id("sub", n, 3)
        assert value.startswith("sub_") and len(value) == 26
        assert parse_id("sub", value, 3) == n
        assert parse_id("cus", value, 3) is None
    assert make_id("plan", 1) .split("_")[1] != make_id("prd", 1).split("_")[1]


def test_auth_required(server: SandboxServer) -> None:
    r = httpx.get(server.url + "/api/v1/customers")
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    r = httpx.get(server.url + "/api/v1/customers", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_seeded_state_matches_world(sim: MeteroidSimulator) -> None:
    world = sim.world
    won = [d for d in world.deals if d.stage == 5 and d.handoff_done]
    assert len(sim.truth("subscriptions")) == len(won) > 0
    assert len(sim.truth("customers")) == len({d.account_id for d in won})
    ends = [dt.date.fromisoformat(s["end_date"]) for s in sim.truth("subscriptions") if s["end_date"]]
    today = NOW.date()
    assert any(60 <= (e - today).days <= 90 for e in ends), "no renewals planted"


def test_pagination_and_validation(http: httpx.Client, api) -> None:
    seen = []
    page = 0
    while True:
        r = http.get("/api/v1/customers", params={"page": page, "per_page": 7})
        validate_exchange(api, r)
        body = r.json()
        seen += [c["id"] for c in body["data"]]
        page += 1
        if page >= body["pagination_meta"]["total_pages"]:
            break
    assert len(seen) == len(set(seen)) == body["pagination_meta"]["total_items"]
    assert http.get("/api/v1/customers", params={"per_page": 101}).status_code == 400
    assert http.get("/api/v1/customers", params={"per_page": 0}).json()["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("path", ["/api/v1/plans", "/api/v1/products", "/api/v1/product_families",
                                  "/api/v1/coupons", "/api/v1/subscriptions", "/api/v1/invoices"])
def test_list_endpoints_validate_against_spec(http: httpx.Client, api, path: str) -> None:
    r = http.get(path, params={"per_page": 100})
    assert r.status_code == 200
    validate_exchange(api, r)


def test_plan_versions_and_detail(http: httpx.Client, api) -> None:
    plans = http.get("/api/v1/plans", params={"per_page": 100}).json()["data"]
    bundle = next(p for p in plans if len(p["price_components"]) > 1)
    for version, expect in ((None, 2), ("1", 1), ("draft", 3)):
        r = http.get(f"/api/v1/plans/{bundle['id']}", params={"version": version} if version else {})
        validate_exchange(api, r)
        assert r.json()["version"] == expect
    assert http.get(f"/api/v1/plans/{bundle['id']}", params={"version": "9"}).status_code == 404
    v = http.get(f"/api/v1/plans/{bundle['id']}/versions")
    validate_exchange(api, v)
    assert [x["is_draft"] for x in v.json()["data"]] == [False, False, True]
    seat = next(p for p in plans if p["price_components"][0]["fee"]["type"] == "SLOT")
    fee = seat["price_components"][0]["fee"]
    assert {r["term"] for r in fee["rates"]} == {"MONTHLY", "ANNUAL"} and fee["minimum_count"] >= 1
    assert isinstance(fee["rates"][0]["price"], str)


def test_validator_is_strict_about_tagged_unions(api, http: httpx.Client) -> None:
    r = http.get("/api/v1/plans", params={"per_page": 1})
    body = r.json()
    del body["data"][0]["price_components"][0]["fee"]["type"]
    broken = httpx.Response(200, json=body, request=r.request)
    with pytest.raises(Exception):  # noqa: B017 - any openapi-core validation error
        validate_exchange(api, broken)
    patched = patch_tagged_unions({"components": {"schemas": {
        "U": {"oneOf": [{"$ref": "#/components/schemas/A"}], "discriminator": {
            "propertyName": "type", "mapping": {"A": "#/components/schemas/A"}}},
        "A": {"type": "object", "properties": {}}}}})
    assert patched["components"]["schemas"]["A"]["required"] == ["type"]
    assert patched_spec()["components"]["schemas"]["OneTimePricing"]["properties"]["type"]["enum"] == ["ONE_TIME"]


def test_customer_crud_alias_conflict_and_prefix(http: httpx.Client, api) -> None:
    r = http.post("/api/v1/customers", json=_customer("crm:acc-1"))
    assert r.status_code == 201
    validate_exchange(api, r)
    cid = r.json()["id"]
    assert cid.startswith("cus_")
    dup = http.post("/api/v1/customers", json=_customer("crm:acc-1"))
    assert dup.status_code == 409 and dup.json()["code"] == "CONFLICT"
    validate_exchange(api, dup)
    bad = http.post("/api/v1/customers", json=_customer("cus_looks_like_an_id"))
    assert bad.status_code == 400
    missing = http.post("/api/v1/customers", json={"name": "x", "currency": "EUR"})
    assert missing.status_code == 400 and "invoicing_emails" in missing.json()["message"]
    assert http.get("/api/v1/customers/crm:acc-1").json()["id"] == cid
    patched = http.patch(f"/api/v1/customers/{cid}", json={"name": "Acme Renamed"})
    validate_exchange(api, patched)
    assert patched.json()["name"] == "Acme Renamed" and patched.json()["alias"] == "crm:acc-1"
    full = {**_customer("crm:acc-1b"), "invoicing_entity_id": patched.json()["invoicing_entity_id"]}
    assert http.put("/api/v1/customers/crm:acc-1", json=full).json()["alias"] == "crm:acc-1b"
    assert http.get("/api/v1/customers/crm:acc-1").status_code == 404
    assert http.delete(f"/api/v1/customers/{cid}").status_code == 204
    assert http.post("/api/v1/subscriptions", json={
        "customer_id_or_alias": cid, "plan_id": "plan_x", "start_date": "2026-07-01",
        "activation_condition": "ON_START"}).status_code == 404


def test_retried_create_duplicates_like_the_real_server(http: httpx.Client, sim: MeteroidSimulator) -> None:
    before = len(sim.truth("customers"))
    for _ in range(2):
        assert http.post("/api/v1/customers", json=_customer(None),
                         headers={"Idempotency-Key": "same-key"}).status_code == 201
    assert len(sim.truth("customers")) == before + 2


def test_subscription_create_with_sdk(sdk: meteroid.Meteroid, sim: MeteroidSimulator, http: httpx.Client, api) -> None:
    customer = sdk.customers.create(name="Globex", alias="crm:acc-2", currency="EUR",
                                    invoicing_emails=["ap@globex.example"], custom_taxes=[])
    plans = list(sdk.plans.list(per_page=100))
    plan = next(p for p in plans if p.name == "Platform Pro")
    comp = plan.price_components[0]
    from meteroid.models import CreateSubscriptionComponents

    components = CreateSubscriptionComponents.from_dict({
        "parameterized_components": [{"component_id": comp.id, "parameters": {
            "billing_period": "ANNUAL", "initial_slot_count": 25}}],
        "overridden_components": [{"component_id": comp.id, "name": "Platform Pro", "price_entry": {
            "type": "NEW", "cadence": "ANNUAL", "currency": "EUR", "pricing": {"type": "SLOT", "unit_rate": "960.00"}}}],
    })
    sub = sdk.subscriptions.create(customer_id_or_alias="crm:acc-2", plan_id=plan.id, start_date=dt.date(2026, 7, 1),
                                   end_date=dt.date(2027, 6, 30), activation_condition="ON_START",
                                   purchase_order="crmsync:test:1", price_components=components,
                                   coupon_codes=["WELCOME10"])
    assert sub.customer_id == customer.id and sub.period.value == "ANNUAL"
    assert sub.mrr_cents == 960 * 25 * 100 // 12
    fee = sub.components[0].fee
    assert type(fee).__name__ == "SlotFee" and fee.initial_slots == 25
    listed = list(sdk.subscriptions.list(customer_id="crm:acc-2"))
    assert [s.id for s in listed] == [sub.id]
    r = http.get(f"/api/v1/subscriptions/{sub.id}")
    validate_exchange(api, r)
    assert r.json()["applied_coupons"][0]["coupon"]["code"] == "WELCOME10"
    cancelled = sdk.subscriptions.cancel(sub.id, effective_date=dt.date(2026, 5, 31))
    assert cancelled.subscription.status.value == "CANCELLED"


@pytest.mark.parametrize(("patch", "message"), [
    ({"coupon_codes": ["SUMMER15"]}, "expired"),
    ({"coupon_codes": ["USD100"]}, "currency"),
    ({"parameterized_components": [{"parameters": {"initial_slot_count": 2}}]}, "initial_slot_count"),
    ({"overridden_components": [{"name": "x", "price_entry": {"type": "NEW", "cadence": "MONTHLY", "currency": "USD",
                                                              "pricing": {"type": "SLOT", "unit_rate": "1"}}}]},
     "currency"),
])
def test_subscription_validation(http: httpx.Client, patch: dict, message: str) -> None:
    http.post("/api/v1/customers", json=_customer("crm:acc-3"))
    plans = http.get("/api/v1/plans", params={"per_page": 100, "search": "platform core"}).json()["data"]
    comp_id = plans[0]["price_components"][0]["id"]
    body: dict = {"customer_id_or_alias": "crm:acc-3", "plan_id": plans[0]["id"], "start_date": "2026-07-01",
                  "activation_condition": "ON_START", "price_components": {}}
    for key, value in patch.items():
        if key == "coupon_codes":
            body[key] = value
        else:
            body["price_components"][key] = [{"component_id": comp_id, **v} for v in value]
    r = http.post("/api/v1/subscriptions", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]


def test_subscription_filters(http: httpx.Client, sim: MeteroidSimulator) -> None:
    truth = sim.truth("subscriptions")
    some = truth[0]
    r = http.get("/api/v1/subscriptions", params={"customer_id": some["customer_alias"], "per_page": 100}).json()
    assert {s["customer_id"] for s in r["data"]} == {some["customer_id"]}
    r = http.get("/api/v1/subscriptions", params={"plan_id": some["plan_id"], "per_page": 100}).json()
    assert r["pagination_meta"]["total_items"] == sum(1 for s in truth if s["plan_id"] == some["plan_id"])
    r = http.get("/api/v1/subscriptions", params=[("statuses[]", "COMPLETED"), ("per_page", "100")]).json()
    assert all(s["status"] == "COMPLETED" for s in r["data"])
    assert http.get("/api/v1/subscriptions", params={"statuses[]": "NOPE"}).status_code == 400


@pytest.mark.parametrize("fault", ["500", "drop"])
def test_fail_after_store(server: SandboxServer, sim: MeteroidSimulator, fault: str) -> None:
    sim.knobs.update({"fail_after_store": fault, "fail_after_store_times": 1})
    before = len(sim.truth("customers"))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as client:
        if fault == "500":
            assert client.post("/api/v1/customers", json=_customer(f"crm:fail-{fault}")).status_code == 500
        else:
            with pytest.raises(httpx.HTTPError):
                client.post("/api/v1/customers", json=_customer(f"crm:fail-{fault}"))
    assert len(sim.truth("customers")) == before + 1  # stored although the client saw a failure
    assert sim.knobs.fail_after_store_times == 0


def test_builds_lazily_from_a_bigger_world() -> None:
    world = generate_world(5, 5_000, now=NOW)
    sim = MeteroidSimulator(world)
    assert sim._sub == {} and sim._cust == {}
    assert len(sim._sub_seq) > 0
