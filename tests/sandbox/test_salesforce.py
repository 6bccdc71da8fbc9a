"""The Salesforce simulator, driven by simple-salesforce unmodified over TLS with the generated CA."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from crmsync.sandbox import FaultRule, LocalCA, SandboxServer, generate_world
from crmsync.sandbox.salesforce import SalesforceSimulator, SoqlError, parse
from crmsync.sandbox.salesforce.ids import checksum, is_valid_id, make_id
from crmsync.sandbox.salesforce.soql import And, Not, Or
from waiting import wait_until

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class LoopbackAdapter(HTTPAdapter):
    """Sends ``https://login.salesforce.com`` to the sandbox, so simple-salesforce's own OAuth login
    (hard-coded to *.salesforce.com) runs unmodified against it. Nothing leaves loopback."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = urlsplit(target)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(str(request.url))
        request.url = urlunsplit((parts.scheme, self.target.netloc, parts.path, parts.query, parts.fragment))
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def sim() -> SalesforceSimulator:
    return SalesforceSimulator(generate_world(7, 1500, now=NOW))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(sim: SalesforceSimulator, ca: LocalCA) -> Iterator[SandboxServer]:
    srv = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    yield srv
    srv._server.force_exit = True  # skip uvicorn's graceful wait on lingering TLS keep-alive sockets
    srv.stop()


def tls_session(ca: LocalCA) -> requests.Session:
    session = requests.Session()
    session.verify = str(ca.ca_path)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override .verify
    return session


@pytest.fixture()
def sf(sim: SalesforceSimulator, server: SandboxServer, ca: LocalCA) -> Salesforce:
    return Salesforce(session_id=sim.issue_session(), instance_url=server.url, session=tls_session(ca))


def ids_of(rows: list[dict[str, Any]]) -> set[str]:
    return {r["Id"] for r in rows}


# --- ids ----------------------------------------------------------------------------------------
def test_ids_are_18_chars_with_key_prefix_and_checksum() -> None:
    record_id = make_id("006", 12345)
    assert len(record_id) == 18 and record_id.startswith("006") and is_valid_id(record_id)
    assert checksum(record_id[:15]) == record_id[15:]
    assert make_id("006", 1) < make_id("006", 2) < make_id("006", 62) < make_id("006", 10_000)
    assert checksum("001A0000006Vm9r") == "IAC"  # upper-case positions 3 (chunk 1) and 0+... per the algorithm
    assert not is_valid_id(record_id[:17] + ("A" if record_id[-1] != "A" else "B"))


# --- SOQL parser --------------------------------------------------------------------------------
GOOD = [
    ("SELECT Id, Name FROM Opportunity", lambda q: q.fields == ("Id", "Name") and q.where is None),
    ("select count() from Lead", lambda q: q.count_only and q.object_name == "Lead"),
    ("SELECT Id FROM Account WHERE Name = 'O\\'Brien \\\\ \\\"x\\\" \\n\\u00e9'",
     lambda q: q.where.value.value == "O'Brien \\ \"x\" \n\u00e9"),
    ("SELECT Id FROM Opportunity WHERE Amount >= 10.5 AND (StageName IN ('A','B') OR NOT IsWon = true)",
     lambda q: isinstance(q.where, And) and isinstance(q.where.items[1], Or)
     and isinstance(q.where.items[1].items[1], Not)),
    ("SELECT Id FROM Opportunity WHERE CloseDate < 2024-02-29 AND SystemModstamp > 2024-01-01T10:00:00+02:00",
     lambda q: q.where.items[0].value.value == dt.date(2024, 2, 29)
     and q.where.items[1].value.value == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)),
    ("SELECT Id FROM Opportunity WHERE SystemModstamp = 2024-01-01T00:00:00.123Z",
     lambda q: q.where.value.value.microsecond == 123000),
    ("SELECT Id FROM Lead WHERE Email LIKE '%50\\%\\_off%' AND OwnerId != null AND Id NOT IN ('00Q1')",
     lambda q: q.where.items[0].op == "LIKE" and q.where.items[2].op == "NOT IN"),
    ("SELECT Id FROM Lead WHERE Status <> 'New' ORDER BY LastName DESC NULLS LAST, Id LIMIT 10 OFFSET 5",
     lambda q: q.where.op == "!=" and q.order_by[0].descending and q.order_by[0].nulls_go_first is False
     and q.order_by[1].nulls_go_first is True and q.limit == 10 and q.offset == 5),
    ("SELECT Id FROM Opportunity WHERE Amount > -3 AND Probability = 0",
     lambda q: q.where.items[0].value.value == Decimal(-3)),
]


@pytest.mark.parametrize(("text", "check"), GOOD, ids=[g[0][:50] for g in GOOD])
def test_soql_parser_accepts(text: str, check: Any) -> None:
    assert check(parse(text))


BAD = [
    ("", "empty query"),
    ("SELECT FROM Opportunity", "expecting a field name"),
    ("SELECT Id FROM", "expecting a sObject name"),
    ("SELECT Id FROM Opportunity WHERE", "end of query"),
    ("SELECT Id FROM Opportunity WHERE Name = 'unterminated", "unterminated string"),
    ("SELECT Id FROM Opportunity WHERE Name = 'bad \\q escape'", "invalid escape sequence"),
    ("SELECT Id FROM Opportunity WHERE Name = 'x\\%'", "invalid escape sequence"),
    ("SELECT Id FROM Opportunity WHERE (Amount > 1", "expecting ')'"),
    ("SELECT Id FROM Opportunity WHERE Amount >", "expecting a literal"),
    ("SELECT Id FROM Opportunity LIMIT -1", "non-negative whole number"),
    ("SELECT Id FROM Opportunity ORDER BY Name NULLS MIDDLE", "expecting FIRST or LAST"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = 2024-13-45", "invalid date"),
    ("SELECT Id FROM Opportunity WHERE Name IN ()", "expecting a literal"),
    ("SELECT Id FROM Opportunity WHERE Name = 'a' extra", "unexpected token: 'extra'"),
    ("SELECT Id, FROM Opportunity", "expecting a field name"),
    ("SELECT Id FROM Opportunity WHERE Name LIKE 5", "LIKE needs a quoted string"),
    ("SELECT Id FROM Opportunity WHERE Name = 'x' # comment", "unexpected token: '#'"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[b[0][:50] or "empty" for b in BAD])
def test_soql_parser_rejects(text: str, message: str) -> None:
    with pytest.raises(SoqlError) as info:
        parse(text)
    assert message in str(info.value)
    assert info.value.code == "MALFORMED_QUERY"


@pytest.mark.parametrize(("soql", "code", "fragment"), [
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "end of query"),
    ("SELECT Nope FROM Opportunity", "INVALID_FIELD", "No such column 'Nope'"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = '2024-01-01'", "INVALID_QUERY_FILTER_OPERATOR", "type date"),
    ("SELECT Id FROM Opportunity WHERE Amount = 'ten'", "INVALID_QUERY_FILTER_OPERATOR", "type number"),
    ("SELECT Id FROM NotAnObject", "INVALID_TYPE", "sObject type 'NotAnObject' is not supported"),
])
def test_malformed_queries_answer_400_json_array(sf: Salesforce, soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query(soql)
    body = info.value.content
    assert isinstance(body, list) and body[0]["errorCode"] == code and fragment in body[0]["message"]


# --- queries ------------------------------------------------------------------------------------
def test_query_all_and_iter_page_by_2000_with_locators(sf: Salesforce, sim: SalesforceSimulator) -> None:
    truth = ids_of(sim.truth("OpportunityLineItem"))
    assert len(truth) > 2000
    first = sf.query("SELECT Id FROM OpportunityLineItem")
    assert first["done"] is False and len(first["records"]) == 2000 and first["totalSize"] == len(truth)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g") and first["nextRecordsUrl"].endswith("-2000")
    everything = sf.query_all("SELECT Id, Quantity, TotalPrice FROM OpportunityLineItem")
    assert everything["totalSize"] == len(truth) and ids_of(everything["records"]) == truth
    iterated = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM OpportunityLineItem")]
    assert len(iterated) == len(set(iterated)) == len(truth)
    record = everything["records"][0]
    assert record["attributes"]["type"] == "OpportunityLineItem"
    assert record["attributes"]["url"] == f"/services/data/v59.0/sobjects/OpportunityLineItem/{record['Id']}"


def test_query_filters_order_and_limit_match_the_truth(sf: Salesforce, sim: SalesforceSimulator) -> None:
    deals = sim.truth("Opportunity")
    got = sf.query_all("SELECT Id, Amount FROM Opportunity WHERE Amount > 50000 AND StageName IN "
                       "('Closed Won', 'negotiation') AND NOT LeadSource = 'Web'")["records"]
    want = {d["Id"] for d in deals if d["Amount"] is not None and d["Amount"] > 50000
            and d["StageName"] in ("Closed Won", "Negotiation") and d["LeadSource"] != "Web"}
    assert ids_of(got) == want and want
    top = sf.query("SELECT Id, Amount FROM Opportunity ORDER BY Amount DESC NULLS LAST, Id LIMIT 5")["records"]
    expected = sorted(deals, key=lambda d: (-d["Amount"], d["Id"]))[:5]
    assert [r["Id"] for r in top] == [d["Id"] for d in expected]
    assert isinstance(top[0]["Amount"], float)  # JSON numbers, as Salesforce sends them
    cutoff = sorted(d["SystemModstamp"] for d in deals)[len(deals) // 2]
    literal = dt.datetime.strptime(cutoff, "%Y-%m-%dT%H:%M:%S.%f%z").isoformat().replace("+00:00", "Z")
    newer = sf.query_all(f"SELECT Id FROM Opportunity WHERE SystemModstamp >= {literal}")["records"]
    assert ids_of(newer) == {d["Id"] for d in deals if d["SystemModstamp"] >= cutoff}
    count = sf.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = false")
    assert count["totalSize"] == sum(1 for d in deals if not d["IsClosed"]) and count["records"] == []
    no_activity = sf.query_all("SELECT Id FROM Opportunity WHERE LastActivityDate = null")["records"]
    assert ids_of(no_activity) == {d["Id"] for d in deals if d["LastActivityDate"] is None}


def test_string_escapes_and_like_round_trip(sf: Salesforce, sim: SalesforceSimulator) -> None:
    hostile = "O'Brien \\ \"50%_off\"\n\t' OR Name != '"
    created = sf.Account.create({"Name": hostile, "Industry": "Retail"})
    exact = sf.query(format_soql("SELECT Id, Name FROM Account WHERE Name = {}", hostile))["records"]
    assert [r["Id"] for r in exact] == [created["id"]] and exact[0]["Name"] == hostile
    like = sf.query(format_soql("SELECT Id FROM Account WHERE Name LIKE '%{:like}%'", "50%_off"))["records"]
    assert [r["Id"] for r in like] == [created["id"]]
    assert sf.query("SELECT Id FROM Account WHERE Name LIKE 'o\\'brien%'")["totalSize"] == 1  # case-insensitive


def test_query_excludes_and_query_all_includes_soft_deleted(sf: Salesforce, sim: SalesforceSimulator) -> None:
    victim = sim.truth("Lead")[3]["Id"]
    # getDeleted covers whole minutes up to the last complete one, so this delete is dated 2 minutes ago.
    two_minutes_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    with sim.lock:
        sim.data.delete("Lead", victim, stamp=two_minutes_ago)
    soql = format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id = {}", victim)
    assert sf.query(soql)["totalSize"] == 0
    everything = sf.query_all(soql, include_deleted=True)["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [(victim, True)]
    with pytest.raises(SalesforceResourceNotFound) as info:
        sf.Lead.get(victim)
    assert info.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    deleted = sf.Lead.deleted(dt.datetime.now(dt.UTC) - dt.timedelta(days=1), dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    assert victim in {d["id"] for d in deleted["deletedRecords"]}
    assert deleted["latestDateCovered"].endswith(":00.000+0000")


# --- sObject rows ----------------------------------------------------------------------------------
def test_sftype_crud_upsert_and_preconditions(sf: Salesforce, sim: SalesforceSimulator) -> None:
    created = sf.Opportunity.create({"Name": "Sandbox deal", "StageName": "Discovery", "CloseDate": "2026-09-30",
                                     "Amount": 1234.5, "Metrics__c": "Cut costs"})
    assert created["success"] is True and created["id"].startswith("006") and len(created["id"]) == 18
    row = sf.Opportunity.get(created["id"])
    assert row["StageName"] == "Discovery" and row["Probability"] == 20 and row["IsClosed"] is False
    assert row["SystemModstamp"].endswith("+0000") and len(row["SystemModstamp"]) == 28
    assert sf.Opportunity.update(created["id"], {"StageName": "Closed Won"}) == 204
    assert sf.Opportunity.get(created["id"])["IsWon"] is True
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Opportunity.update(created["id"], {"StageName": "Nonsense"})
    assert info.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Opportunity.create({"Name": "missing stage"})
    # If-Unmodified-Since older than the last change: 412 PRECONDITION_FAILED, nothing written.
    stale = email.utils.format_datetime(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), usegmt=True)
    with pytest.raises(SalesforceError) as pre:
        sf.Opportunity.update(created["id"], {"Name": "overwrite"}, headers={"If-Unmodified-Since": stale})
    assert pre.value.status == 412 and pre.value.content[0]["errorCode"] == "PRECONDITION_FAILED"
    fresh = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), usegmt=True)
    assert sf.Opportunity.update(created["id"], {"Name": "ok"}, headers={"If-Unmodified-Since": fresh}) == 204
    assert sf.Opportunity.delete(created["id"]) == 204

    # Upsert on the external id: 201 created, then 200 created:false, never a duplicate.
    assert sf.Task.upsert("Crmsync_Key__c/rule-7:deal-1", {"Subject": "Call back"}) == 201
    assert sf.Task.upsert("Crmsync_Key__c/rule-7:deal-1", {"Subject": "Call back today"}) == 200
    tasks = [t for t in sim.truth("Task") if t["Crmsync_Key__c"] == "rule-7:deal-1"]
    assert len(tasks) == 1 and tasks[0]["Subject"] == "Call back today"
    assert sf.Task.get_by_custom_id("Crmsync_Key__c", "rule-7:deal-1")["Id"] == tasks[0]["Id"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.upsert("Crmsync_Key__c/absent?updateOnly=true", {"Subject": "x"})
    sim.create("Task", {"Subject": "dup A", "Crmsync_Key__c": "dup"})
    sim.create("Task", {"Subject": "dup B", "Crmsync_Key__c": "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as many:
        sf.Task.upsert("Crmsync_Key__c/dup", {"Subject": "which?"})
    assert len(many.value.content) == 2


# --- sObject collections -----------------------------------------------------------------------
def test_composite_sobjects(sf: Salesforce, sim: SalesforceSimulator) -> None:
    good = {"attributes": {"type": "Account"}, "Name": "Collections Co"}
    bad = {"attributes": {"type": "Account"}, "Name": "Bad", "NoSuchField__c": 1}
    before = len(sim.truth("Account"))
    rolled = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [good, bad]})
    assert rolled[0]["success"] is False
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert rolled[1]["errors"][0]["statusCode"] == "INVALID_FIELD" and len(sim.truth("Account")) == before
    partial = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [good, bad]})
    assert partial[0]["success"] is True and partial[1]["success"] is False and len(sim.truth("Account")) == before + 1
    new_id = partial[0]["id"]
    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "id": new_id, "Industry": "Media"},
        {"attributes": {"type": "Account"}, "id": make_id("001", 9_999_999), "Industry": "Media"}]})
    assert updated[0] == {"id": new_id, "success": True, "errors": []} and updated[1]["success"] is False
    upserted = sf.restful("composite/sobjects/Account/Crmsync_Key__c", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "Crmsync_Key__c": "acc-1", "Name": "Upserted"}]})
    again = sf.restful("composite/sobjects/Account/Crmsync_Key__c", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "Crmsync_Key__c": "acc-1", "Name": "Upserted twice"}]})
    assert upserted[0]["created"] is True and again[0]["created"] is False and again[0]["id"] == upserted[0]["id"]
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{new_id},{upserted[0]['id']}",
                                                                        "allOrNone": "false"})
    assert [d["success"] for d in deleted] == [True, True]
    too_many = [{"attributes": {"type": "Account"}, "Name": f"n{i}"} for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})


# --- Bulk API 2.0 -----------------------------------------------------------------------------------
def test_bulk2_query_with_simple_salesforce(sf: Salesforce, sim: SalesforceSimulator) -> None:
    chunks = list(sf.bulk2.Opportunity.query("SELECT Id, Name, Amount FROM Opportunity", max_records=600, wait=0))
    rows = [line for chunk in chunks for line in chunk.splitlines()[1:]]
    assert len(chunks) == 3 and all(c.startswith('"Id","Name","Amount"') for c in chunks)
    assert {r.split(",")[0].strip('"') for r in rows} == ids_of(sim.truth("Opportunity"))


def test_bulk2_job_states_locators_and_abort(sf: Salesforce, sim: SalesforceSimulator) -> None:
    client = sf.bulk2.Lead._client
    sim.bulk_delay_s = 0.3
    try:
        job = client.create_job("queryAll", "SELECT Id FROM Lead")
        assert job["state"] == "UploadComplete" and job["id"].startswith("750")
        assert client.get_job(job["id"], True)["state"] == "InProgress"
        wait_until(lambda: client.get_job(job["id"], True)["state"] == "JobComplete", 10, "the bulk job to complete",
                   interval=0.05)
    finally:
        sim.bulk_delay_s = 0.0
    first = client.get_query_results(job["id"], "", 300)
    assert first["number_of_records"] == 300 and first["locator"]
    # The same locator can be fetched again (a crashed client resumes from it).
    again = client.get_query_results(job["id"], first["locator"], 300)
    repeat = client.get_query_results(job["id"], first["locator"], 300)
    assert again["records"] == repeat["records"]
    total = len(sim.truth("Lead", include_deleted=True))
    locator, seen = first["locator"], 300
    while locator:
        page = client.get_query_results(job["id"], locator, 300)
        seen += page["number_of_records"]
        locator = page["locator"]
    assert seen == total  # queryAll includes the recycle bin
    client.abort_job(job["id"], True)
    assert client.get_job(job["id"], True)["state"] == "Aborted"
    # DELETE answers 204 with no body (simple-salesforce's delete_job would try to parse JSON from it).
    gone = sf.session.delete(f"{sf.bulk2_url}query/{job['id']}", headers=sf.headers)
    assert gone.status_code == 204
    with pytest.raises(SalesforceResourceNotFound):
        client.get_job(job["id"], True)


# --- auth, limits, faults ------------------------------------------------------------------------
def test_oauth_login_and_relogin_after_expired_session(sim: SalesforceSimulator, server: SandboxServer,
                                                      ca: LocalCA) -> None:
    session = tls_session(ca)
    session.mount("https://login.salesforce.com", LoopbackAdapter(server.url))
    creds = sim.credentials
    sf = Salesforce(username=creds.username, password=creds.password, consumer_key=creds.client_id,
                    consumer_secret=creds.client_secret, session=session)
    assert sf.sf_instance == urlsplit(server.url).netloc
    issued = sim.sessions.issued
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == len(sim.truth("User"))
    sim.expire_sessions()
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == len(sim.truth("User"))  # re-logged in
    assert sim.sessions.issued == issued + 1
    direct = Salesforce(session_id="00Dbogus!token", instance_url=server.url, session=tls_session(ca))
    with pytest.raises(SalesforceExpiredSession) as info:
        direct.query("SELECT Id FROM User")
    assert info.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_token_endpoint_rejects_bad_credentials(sim: SalesforceSimulator, server: SandboxServer, ca: LocalCA) -> None:
    session = tls_session(ca)
    answer = session.post(f"{server.url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": sim.credentials.client_id,
        "client_secret": sim.credentials.client_secret, "username": sim.credentials.username, "password": "wrong"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    ok = session.post(f"{server.url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(sim.credentials.client_id, sim.credentials.client_secret))
    assert ok.status_code == 200 and ok.json()["instance_url"] == server.url and ok.json()["token_type"] == "Bearer"


def test_refresh_token_grant_answers_a_working_session(sim: SalesforceSimulator, server: SandboxServer,
                                                       ca: LocalCA) -> None:
    session = tls_session(ca)
    creds = sim.credentials
    url = f"{server.url}/services/oauth2/token"
    issued = sim.sessions.issued
    answer = session.post(url, data={"grant_type": "refresh_token", "client_id": creds.client_id,
                                     "client_secret": creds.client_secret, "refresh_token": creds.refresh_token})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
    assert body["instance_url"] == server.url and body["token_type"] == "Bearer"
    assert body["id"].startswith(f"{server.url}/id/00D") and body["issued_at"].isdigit()
    assert "refresh_token" not in body  # no rotation: the client keeps the one it has
    assert sim.sessions.issued == issued + 1
    listed = session.get(f"{server.url}/services/data/v62.0/sobjects",
                         headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200
    by_basic = session.post(url, data={"grant_type": "refresh_token", "refresh_token": creds.refresh_token},
                            auth=(creds.client_id, creds.client_secret))
    assert by_basic.status_code == 200 and by_basic.json()["access_token"] != body["access_token"]
    for form, description in (
            ({"refresh_token": "5Aep861-not-issued"}, "expired access/refresh token"),
            ({"refresh_token": creds.refresh_token, "client_secret": "wrong"}, "client identifier invalid"),
            ({"refresh_token": creds.refresh_token, "client_id": "someone-else"}, "client identifier invalid")):
        refused = session.post(url, data={"grant_type": "refresh_token", "client_id": creds.client_id,
                                          "client_secret": creds.client_secret, **form})
        assert refused.status_code == 400
        assert refused.json() == {"error": "invalid_grant", "error_description": description}
    assert sim.sessions.issued == issued + 2


def test_describe_global_flags_and_sobject_describe(sf: Salesforce) -> None:
    listed = {o["name"]: o for o in sf.describe()["sobjects"]}
    opportunity, user, history = listed["Opportunity"], listed["User"], listed["OpportunityHistory"]
    for flag in ("queryable", "retrieveable", "replicateable", "createable", "custom", "layoutable"):
        assert isinstance(opportunity[flag], bool), flag
    assert opportunity["queryable"] and opportunity["replicateable"] and opportunity["createable"]
    assert opportunity["keyPrefix"] == "006" and opportunity["custom"] is False
    assert user["replicateable"] is False  # getUpdated/getDeleted refuse it here (replication test above)
    assert history["createable"] is False and history["queryable"] is True
    assert opportunity["urls"]["describe"] == "/services/data/v59.0/sobjects/Opportunity/describe"
    described = sf.Opportunity.describe()
    assert described["name"] == "Opportunity" and described["replicateable"] is True
    fields = {f["name"]: f for f in described["fields"]}
    some_id = sf.query("SELECT Id FROM Opportunity LIMIT 1")["records"][0]["Id"]
    assert list(fields) == [k for k in sf.Opportunity.get(some_id) if k != "attributes"]  # every field a read returns
    assert (fields["Id"]["type"], fields["Id"]["nillable"], fields["Id"]["createable"]) == ("id", False, False)
    assert fields["AccountId"]["type"] == "reference" and fields["AccountId"]["referenceTo"] == ["Account"]
    assert (fields["Amount"]["type"], fields["Amount"]["soapType"]) == ("currency", "xsd:double")
    assert fields["CloseDate"]["type"] == "date" and fields["SystemModstamp"]["type"] == "datetime"
    assert fields["Crmsync_Key__c"]["externalId"] is True and fields["Crmsync_Key__c"]["custom"] is True
    assert fields["Name"]["length"] == 120 and fields["Name"]["nillable"] is False
    assert fields["IsWon"]["updateable"] is False and fields["StageName"]["updateable"] is True
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("sobjects/Gadget__c/describe")


def test_bulk_results_send_header_names_in_canonical_case(sf: Salesforce) -> None:
    job = sf.bulk2.Lead._client.create_job("query", "SELECT Id FROM Lead")
    client = sf.bulk2.Lead._client
    wait_until(lambda: client.get_job(job["id"], True)["state"] == "JobComplete", 10, "the bulk job to complete",
               interval=0.05)
    answer = sf.session.get(f"{sf.bulk2_url}query/{job['id']}/results", headers=sf.headers, stream=True)
    sent = list(answer.raw.headers.keys())  # urllib3 keeps the names as they came off the wire
    assert answer.status_code == 200 and "Content-Type" in sent and "Sforce-Locator" in sent, sent
    assert dict(answer.headers)["Content-Type"].startswith("text/csv")
    answer.close()


def test_limit_info_daily_limit_and_injected_errors(sf: Salesforce, sim: SalesforceSimulator) -> None:
    sf.query("SELECT Id FROM User LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert usage.used == sim.limiter.daily_used and usage.total == 100_000
    sim.knobs.daily_limit = sim.limiter.daily_used + 1
    try:
        sf.query("SELECT Id FROM User LIMIT 1")
        with pytest.raises(SalesforceRefusedRequest) as info:
            sf.query("SELECT Id FROM User LIMIT 1")
        assert info.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    finally:
        sim.knobs.daily_limit = None
    sim.knobs.faults = [FaultRule(path=r"/query/$", kind="500")]
    try:
        with pytest.raises(SalesforceError) as err:
            sf.query("SELECT Id FROM User LIMIT 1")
        assert err.value.status == 500 and err.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    finally:
        sim.knobs.faults = []


def test_handle_bulk_import_merge_and_updated(sf: Salesforce, sim: SalesforceSimulator) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ids = sim.bulk_import("Contact", [{"LastName": f"Imported {i}"} for i in range(50)])
    rows = [r for r in sim.truth("Contact") if r["Id"] in set(ids)]
    assert len({r["SystemModstamp"] for r in rows}) == 1 and len(rows) == 50
    sim.merge("Contact", ids[0], ids[1])
    loser = next(r for r in sim.truth("Contact", include_deleted=True) if r["Id"] == ids[1])
    assert loser["IsDeleted"] is True and loser["MasterRecordId"] == ids[0]
    # getUpdated covers whole minutes up to the last complete one: date these changes 2 minutes back.
    two_minutes_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    with sim.lock:
        older = [sim.data.create("Contact", {"LastName": f"Older {i}"}, stamp=two_minutes_ago) for i in range(3)]
        sim.data.delete("Contact", older[2], stamp=two_minutes_ago)
    updated = sf.Contact.updated(start - dt.timedelta(minutes=2), dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    assert set(older[:2]) <= set(updated["ids"]) and older[2] not in updated["ids"]
    assert not set(ids) & set(updated["ids"])  # the current minute is not covered yet
    with pytest.raises(SalesforceMalformedRequest):
        sf.Contact.updated(dt.datetime.now(dt.UTC) - dt.timedelta(days=31), dt.datetime.now(dt.UTC))
    sim.move_stage(sim.truth("Opportunity")[0]["Id"], "closedwon")
    assert sim.truth("Opportunity")[0]["StageName"] == "Closed Won"


def test_stage_history_from_the_world_and_from_edits(sf: Salesforce, sim: SalesforceSimulator) -> None:
    deal = sim.world.deals[41]
    opportunity_id = make_id("006", deal.id)
    soql = format_soql("SELECT OldValue, NewValue, CreatedDate FROM OpportunityFieldHistory "
                       "WHERE OpportunityId = {} AND Field = 'StageName' ORDER BY CreatedDate, Id", opportunity_id)
    rows = sf.query(soql)["records"]
    history = sim.world.stage_history(deal)
    assert len(history) > 1
    assert [r["NewValue"] for r in rows] == [stage.label for stage, _ in history[1:]]  # creation is no StageName row
    assert rows[0]["OldValue"] == history[0][0].label
    assert all(a["NewValue"] == b["OldValue"] for a, b in itertools.pairwise(rows))
    created = sf.query(format_soql("SELECT Field, NewValue, CreatedDate FROM OpportunityFieldHistory "
                                   "WHERE OpportunityId = {} AND Field = 'created'", opportunity_id))["records"]
    assert [(r["Field"], r["NewValue"]) for r in created] == [("created", None)]
    snapshots = sf.query(format_soql("SELECT StageName, CreatedDate FROM OpportunityHistory WHERE OpportunityId = {} "
                                     "ORDER BY CreatedDate, Id", opportunity_id))["records"]
    assert [r["StageName"] for r in snapshots] == [stage.label for stage, _ in history]
    current = sim.truth("Opportunity")[41]["StageName"]
    target = "Closed Lost" if current != "Closed Lost" else "Negotiation"
    sim.move_stage(opportunity_id, target)
    latest = sf.query(soql)["records"][-1]
    assert (latest["OldValue"], latest["NewValue"]) == (current, target)
    snapshots = sf.query(format_soql("SELECT StageName FROM OpportunityHistory WHERE OpportunityId = {} "
                                     "ORDER BY CreatedDate, Id", opportunity_id))["records"]
    assert snapshots[-1]["StageName"] == target
