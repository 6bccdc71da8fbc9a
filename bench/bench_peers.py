"""crmsync against the tools a user would pick instead, on the same sandbox world with limits on.

What each row measures (one process each unless said; wall, CPU and peak RSS from ``wait4``):

- ``crmsync`` (like for like): ``crmsync backfill --object deals`` into its SQLite store: extract
  AND store (deal rows, cursors, completeness check against the CRM's count), without stage
  histories on HubSpot and Salesforce (``PEER_OPTIONS``: no peer reads them) and without
  Pipedrive's per-deal changelog reads (``bench_quota.DEFAULT_OPTIONS``). Ratios are this row / peer.
- ``crmsync + stage history`` (``--with-history``, HubSpot and Salesforce): a second crmsync run
  per round with crmsync's own default work, stage histories read and stored (HubSpot: 50 deals a
  list call instead of 100; Salesforce: the ``OpportunityHistory`` reads). Not like for like: more
  calls and more stored than any peer; printed with its own ratios.
- ``<Airbyte source> (extract only)``: the source's ``read`` alone, records as RECORD messages on
  stdout, counted and thrown away; an Airbyte destination needs the Airbyte platform, not run here.
- ``<Singer tap> (extract only)``: the tap alone, records on stdout, counted and thrown away.
- ``<Singer tap> | target-postgres`` (pipeline: extract AND load, what a Singer user runs): the tap
  piped into ``meltanolabs-target-postgres`` (``TARGETS``) writing to a throwaway database on the
  local PostgreSQL (127.0.0.1:5432, created before the run, dropped after). Wall from the start of
  both until both have exited; CPU summed over both; peak RSS is the sum of the two peaks (they run
  at the same time), each shown in brackets (tap + target); records complete are the distinct ids
  in the table the target created (counted afterwards, untimed). The PostgreSQL server's own CPU
  and memory are not in the figure (crmsync's SQLite work is in its process), so the pipeline row
  under-counts the load side.
- ``dlt-rest_api + duckdb load``: dlt's extract, normalize and load into duckdb in one process;
  records complete counted in the loaded table.

The peers, each installed from PyPI into its own virtual environment under ``.bench-venvs/``
(outside git; created on first use) and run in its own process:

- **Airbyte sources** (``PEERS``): ``airbyte-source-hubspot``, ``-salesforce``, ``-pipedrive``, run
  as their own entry points (``discover`` once, untimed; then ``read`` of the deals stream, full
  refresh) through ``bench/peer_wrapper.py``, which only rewrites the peer's built-in base URL
  (``https://api.hubapi.com`` -> the sandbox) at the ``requests`` adapter. Records are the RECORD
  messages on stdout.
- **Singer taps** (``PEERS`` with ``protocol="singer"``): ``tap-salesforce`` 2.8.1 (``api_type: REST``,
  every Opportunity field selected) and ``tap-pipedrive`` 2.1.0 (deals stream, every field selected),
  through the same wrapper; ``--discover`` once (untimed), then a sync with the catalog from a start
  date of 2000-01-01; records are the Singer RECORD messages on stdout. ``tap-hubspot`` 4.5 is left out:
  its deals stream reads HubSpot's legacy Deals v1 API with a legacy API key or an OAuth refresh.
- **Singer target** (``TARGETS``): ``meltanolabs-target-postgres`` 0.8.1 (MeltanoLabs' Postgres
  loader on the Meltano Singer SDK, released 2026-10, installs and runs on the bench's Python 3.11),
  defaults except the connection and ``default_target_schema: public``, run from its console entry
  point in its venv. Not chosen: ``target-sqlite`` 0.2.0 (2019; it installs SQLAlchemy 1.2.12,
  which uses ``collections.MutableMapping`` and fails at import on Python 3.10+), the older
  ``target-postgres`` 1.1.3 (2018) and ``pipelinewise-target-postgres`` (2023), and
  ``target-duckdb`` (dlt's row already loads duckdb).
- **dlt** (``DLT_PEERS``): ``dlt[duckdb]`` 1.31 and its declarative ``rest_api`` source
  (``dlt.sources.rest_api``), the way dlt's REST API source docs describe a source for any REST API
  (dlt's verified CRM sources come through ``dlt init`` from GitHub, which is not reachable here).
  Each entry is a ``RESTAPIConfig`` as data: HubSpot ``GET /crm/v3/objects/deals`` (100 a page,
  ``cursor`` paginator on ``paging.next.after``, Bearer token), Salesforce REST ``query`` (SOQL in
  ``q``, ``json_link`` paginator on ``nextRecordsUrl``, OAuth 2.0 client credentials), Pipedrive
  ``GET /api/v2/deals`` (500 a page, ``cursor`` paginator on ``additional_data.next_cursor``,
  ``x-api-token`` header). The fields asked for are those crmsync's own deal table reads (``FIELDS``);
  the client's ``base_url`` (and the token URL) is the sandbox's, nothing else changes.
  ``bench/dlt_peer.py`` runs one ``pipeline.run`` into dlt's **duckdb** destination (a fresh file
  and pipelines directory each run; dlt's telemetry off), and afterwards, untimed, counts the
  distinct ids in the loaded ``deals`` table.

The sandbox runs in its own process with the documented limits of ``bench_quota.LIMITS``; runs
alternate crmsync / [crmsync + stage history] / each peer (a Singer tap alone, then its pipeline)
/ crmsync / ... in one invocation, each in its own process, the sandbox's limiter and counters reset
before each run. crmsync's like-for-like run is described above. At 20,000 deals HubSpot's inline
histories halve the list page (404 calls instead of 203, the count call included); Salesforce's,
read in batch by three Bulk jobs, are 17 of 33 calls (read by ids, ``history_via: ids``, 300 of 316).

Prints per CRM and row: wall, CPU, peak RSS, calls (the sandbox's count), records complete
(distinct deal ids against the sandbox's truth) and the ratio crmsync/row (median of the rounds).
``--peers`` names peers (``tap-pipedrive`` runs the tap alone and its pipeline). A peer that cannot be
installed or run here is reported with the reason and skipped; an Airbyte run that fails prints the
error of its TRACE message. A peer whose code needs another interpreter names it
(``Peer.pythons``): Airbyte's Pipedrive source only imports on Python 3.10, taken from PATH or
pyenv's versions. Peers run in the bench's temporary directory (Airbyte's Salesforce source
leaves files named by UUID in its working directory).

    python bench/bench_peers.py                       # 5,000 deals, 2 rounds, every CRM and peer
    python bench/bench_peers.py --deals 20000 --rounds 3 --crm hubspot
    python bench/bench_peers.py --deals 20000 --rounds 1 --crm salesforce --routes   # calls per route
    python bench/bench_peers.py --crm pipedrive --peers dlt-rest_api                 # some peers only
    python bench/bench_peers.py --deals 20000 --rounds 1 --crm salesforce --option stage_history=true
    python bench/bench_peers.py --deals 20000 --with-history     # also crmsync with stage histories
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pull import sandbox_calls, start_sandbox  # noqa: E402
from bench_quota import DEFAULT_OPTIONS, LIMITS  # noqa: E402
from crm_runs import connection_options  # noqa: E402

from crmsync.connectors.hubspot.mapping import DEALS as HUBSPOT_DEALS  # noqa: E402
from crmsync.connectors.mapping import ObjectMapping  # noqa: E402
from crmsync.connectors.salesforce.connector import API_VERSION as SALESFORCE_VERSION  # noqa: E402
from crmsync.connectors.salesforce.mapping import DEALS as SALESFORCE_DEALS  # noqa: E402
from crmsync.connectors.salesforce.soql import soql  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"
WRAPPER = Path(__file__).resolve().parent / "peer_wrapper.py"
DLT_RUNNER = Path(__file__).resolve().parent / "dlt_peer.py"
DEAL_TRUTH = {"hubspot": "deals", "salesforce": "Opportunity", "pipedrive": "deals"}


@dataclass(frozen=True)
class Peer:
    crm: str
    name: str
    package: str  # what pip installs
    module: str  # the entry point the wrapper runs: module:function
    real_base: str  # the base URL the peer has built in
    stream: str  # the deals stream
    # interpreters the peer's venv may be built on, preferred first; () = the bench's own
    pythons: tuple[str, ...] = ()
    why_pythons: str = ""
    protocol: str = "airbyte"  # "airbyte" (discover/read verbs, typed messages) | "singer" (--discover, RECORDs)
    catalog_flag: str = "--catalog"  # how a Singer tap takes its catalog (older taps: --properties)

    @property
    def venv(self) -> str:
        return self.package.split("==")[0]


PEERS = [
    Peer("hubspot", "airbyte-source-hubspot", "airbyte-source-hubspot", "source_hubspot.run:run",
         "https://api.hubapi.com", "deals"),
    Peer("salesforce", "airbyte-source-salesforce", "airbyte-source-salesforce", "source_salesforce.run:run",
         "https://login.salesforce.com", "Opportunity"),
    # source_pipedrive.extractor declares ``decoder: Decoder = JsonDecoder(...)`` as a dataclass
    # default; every airbyte-cdk (0.58 ... 7.x) makes Decoder a plain @dataclass, so the instance is
    # unhashable and Python 3.11+ refuses the class at import ("mutable default ... use
    # default_factory"). Pinning an older airbyte-cdk does not help; on Python 3.10 it runs with the
    # airbyte-cdk pip resolves (6.61.6 when measured).
    Peer("pipedrive", "airbyte-source-pipedrive", "airbyte-source-pipedrive", "source_pipedrive.run:run",
         "https://api.pipedrive.com", "deals", pythons=("python3.10",),
         why_pythons="its extractor's dataclass default (JsonDecoder) is refused by Python 3.11+ with every "
                     "airbyte-cdk release; it needs python3.10 (on PATH or from pyenv), which is not here"),
    # Singer taps (singer-io), run as their console entry points through the same wrapper. tap-salesforce
    # in its REST mode (``api_type: REST``: describe, then queryAll with nextRecordsUrl; its BULK mode is
    # the Bulk API 1.0, which the sandbox does not serve); tap-pipedrive's deals stream pages GET
    # /api/v2/deals (100 a page, its own limit), and its discovery reads every item's v1 field listing
    # (the sandbox gained /v1/personFields, /productFields, /noteFields for it). tap-hubspot 4.5 is not here: its deals stream reads the legacy
    # Deals v1 API (/deals/v1/deal/paged, /properties/v1/deals/properties) with a legacy API key or an
    # OAuth refresh, none of which the sandbox serves.
    Peer("salesforce", "tap-salesforce", "tap-salesforce==2.8.1", "tap_salesforce:main",
         "https://login.salesforce.com", "Opportunity", protocol="singer", catalog_flag="--properties"),
    Peer("pipedrive", "tap-pipedrive", "tap-pipedrive==2.1.0", "tap_pipedrive.cli:main",
         "https://api.pipedrive.com", "deals", protocol="singer"),
]


@dataclass(frozen=True)
class Target:
    """A Singer target from PyPI that lands what a tap writes on stdout in a database, in its own venv:
    each run gets a throwaway database on the local PostgreSQL, created before and dropped after the
    run, the ids that landed counted with ``psql`` (untimed)."""

    name: str
    package: str
    module: str  # its console entry point, module:function
    pythons: tuple[str, ...] = ()
    why_pythons: str = ""

    @property
    def venv(self) -> str:
        return self.package.split("==")[0]


TARGETS = [
    Target("target-postgres", "meltanolabs-target-postgres==0.8.1", "target_postgres.target:TargetPostgres.cli"),
]
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}  # the local PostgreSQL, trust auth on loopback


def native_fields(mapping: ObjectMapping) -> list[str]:
    """The native fields crmsync's own table reads for an object (id, stamps, mapped fields), in order."""
    names = [mapping.id_field, mapping.modified_field, mapping.created_field,
             *(f.source for f in mapping.fields), mapping.deleted_field]
    return list(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True)
class DltPeer:
    """dlt with its declarative ``rest_api`` source, loading into dlt's duckdb destination.

    ``source`` is the ``RESTAPIConfig`` a dlt user writes for the CRM's deals, as dlt's REST API
    source docs describe it (dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api/basic: ``client``
    with ``base_url``, ``auth`` and ``paginator``; one resource with its endpoint ``path``, ``params``
    and ``data_selector``). Strings may name ``{base}`` (the sandbox's base URL: the only thing that
    points it at the sandbox), the connection's credentials and the ``{properties}`` / ``{soql}`` of
    ``FIELDS``; ``bench/dlt_peer.py`` hands the filled dict to ``rest_api_source`` unchanged."""

    crm: str
    source: dict[str, Any]
    name: str = "dlt-rest_api"
    package: str = "dlt[duckdb]==1.31.0"
    table: str = "deals"  # the resource's name = dlt's table
    id_column: str = "id"  # after dlt's snake_case naming (Salesforce ``Id`` -> ``id``)
    pythons: tuple[str, ...] = ()
    why_pythons: str = ""

    @property
    def venv(self) -> str:
        return "dlt"


#: what the dlt user asks for: the fields crmsync's own deal table reads, so both move the same data
FIELDS: dict[str, str] = {
    "properties": ",".join(native_fields(HUBSPOT_DEALS)),
    "soql": soql("SELECT {:fields} FROM Opportunity", native_fields(SALESFORCE_DEALS)),
}


def _resource(path: str, params: dict[str, Any], data_selector: str) -> dict[str, Any]:
    return {"name": "deals", "primary_key": "id", "write_disposition": "replace",
            "endpoint": {"path": path, "params": params, "data_selector": data_selector}}


DLT_PEERS = [
    # HubSpot CRM v3 objects list: 100 a page (the list maximum), properties as a comma list, the
    # next page's ``after`` at ``paging.next.after``; a private app's token as Bearer.
    DltPeer("hubspot", {
        "client": {"base_url": "{base}/", "auth": {"type": "bearer", "token": "{access_token}"},
                   "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"}},
        "resources": [_resource("crm/v3/objects/deals", {"limit": 100, "properties": "{properties}"}, "results")],
    }),
    # Salesforce REST query (SOQL in ``q``), the next batch at ``nextRecordsUrl`` (a path on the
    # instance); the token from the org's OAuth 2.0 client-credentials flow.
    DltPeer("salesforce", {
        "client": {"base_url": f"{{base}}/services/data/v{SALESFORCE_VERSION}/",
                   "auth": {"type": "oauth2_client_credentials",
                            "access_token_url": "{base}/services/oauth2/token",
                            "client_id": "{client_id}", "client_secret": "{client_secret}"},
                   "paginator": {"type": "json_link", "next_url_path": "nextRecordsUrl"}},
        "resources": [_resource("query", {"q": "{soql}"}, "records")],
    }),
    # Pipedrive API v2 deals: 500 a page (the v2 maximum), ``additional_data.next_cursor`` into
    # ``cursor``; the API token in the ``x-api-token`` header.
    DltPeer("pipedrive", {
        "client": {"base_url": "{base}/",
                   "auth": {"type": "api_key", "name": "x-api-token", "api_key": "{api_token}", "location": "header"},
                   "paginator": {"type": "cursor", "cursor_path": "additional_data.next_cursor",
                                 "cursor_param": "cursor"}},
        "resources": [_resource("api/v2/deals", {"limit": 500}, "data")],
    }),
]


def fill(template: Any, values: dict[str, str]) -> Any:
    """The template with every ``{name}`` in its strings replaced from ``values``."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        return template.format_map(values)
    return template


@dataclass
class Run:
    tool: str
    wall: float
    cpu: float
    rss_mb: float
    calls: int
    records: int
    truth: int
    ok: bool
    why: str = ""
    rss_parts: tuple[float, ...] = ()  # a pipeline's peak RSS per process (tap, target); rss_mb is their sum


def find_python(names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that runs: on PATH, or installed by pyenv (its shim may not select it)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for name in names:
        candidates = [shutil.which(name), *sorted(str(p) for p in pyenv.glob(f"*/bin/{name}"))]
        for candidate in candidates:
            if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
                return candidate
    return None


def venv_python(peer: Peer | DltPeer | Target) -> Path:
    """The peer's own interpreter, its venv made and the package installed on first use."""
    env = VENVS / peer.venv
    python = env / "bin" / "python"
    marker = env / ".installed"
    if marker.exists():
        return python
    VENVS.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        base = sys.executable
        if peer.pythons:
            chosen = find_python(peer.pythons)
            if chosen is None:
                raise RuntimeError(peer.why_pythons)
            base = chosen
        subprocess.run([base, "-m", "venv", str(env)], check=True)
    log = VENVS / f"{peer.venv}.log"
    with log.open("w") as out:
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", peer.package], stdout=out, stderr=out)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {peer.package} failed (see {log})")
    marker.write_text(peer.package)
    return python


# Linux keeps a process's peak RSS across execve, and a child forked from this bench starts with
# the bench's own (by the second CRM a truth list of 20,000 records is in it). Each measured
# command is therefore started by a small launcher that forks it from a fresh interpreter and
# reports the command's rusage (wait4) back on a file.
_LAUNCHER = """
import json, os, sys
out, cmd = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    json.dump({"cpu": usage.ru_utime + usage.ru_stime, "rss_kb": usage.ru_maxrss}, f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(cmd: list[str], *, env: dict[str, str] | None = None, stdout: Any = None,
             cwd: Path | None = None) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit status) of one process, from wait4 in a fresh launcher."""
    usage_path = _usage_path()
    try:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(usage_path), *cmd], env=env, stdout=stdout,
                                stderr=subprocess.PIPE, cwd=cwd)
        assert proc.stderr is not None
        err = proc.stderr.read()
        code = proc.wait()
        wall = time.perf_counter() - started
        cpu, rss_mb = _usage(usage_path)
    finally:
        usage_path.unlink(missing_ok=True)
    _say_exit("", code, err)
    return wall, cpu, rss_mb, code


def _usage_path() -> Path:
    """A file the launcher writes its child's wait4 usage into."""
    with tempfile.NamedTemporaryFile(prefix="bench-usage-", suffix=".json", delete=False) as handle:
        return Path(handle.name)


def _usage(path: Path) -> tuple[float, float]:
    """(CPU s, peak RSS MB) as the launcher wrote them (zeros if it wrote nothing)."""
    usage = json.loads(path.read_text() or '{"cpu": 0, "rss_kb": 0}')
    return float(usage["cpu"]), float(usage["rss_kb"]) / 1024


def _say_exit(who: str, code: int, err: bytes) -> None:
    """A failed process's exit status and the last lines of its stderr."""
    if code != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        print(f"    ({who + ' ' if who else ''}exit {code}: {' | '.join(tail)[:400]})", flush=True)


def measured_pipeline(tap: list[str], target: list[str], *, env: dict[str, str], cwd: Path) -> tuple[
        float, list[tuple[float, float, int]]]:
    """``tap | target``, each from its own fresh launcher: the wall from the start until both have
    exited, and (CPU s, peak RSS MB, exit status) of each process (they run at the same time)."""
    paths = [_usage_path(), _usage_path()]
    try:
        with tempfile.TemporaryFile() as err_tap, tempfile.TemporaryFile() as err_target:
            started = time.perf_counter()
            first = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(paths[0]), *tap], env=env,
                                     stdout=subprocess.PIPE, stderr=err_tap, cwd=cwd)
            second = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(paths[1]), *target], env=env,
                                      stdin=first.stdout, stdout=subprocess.DEVNULL, stderr=err_target, cwd=cwd)
            assert first.stdout is not None
            first.stdout.close()  # the target's end only: the tap sees a broken pipe if the target dies
            codes = [first.wait(), second.wait()]
            wall = time.perf_counter() - started
            parts = []
            for path, code, err, who in zip(paths, codes, (err_tap, err_target), ("tap", "target"), strict=True):
                parts.append((*_usage(path), code))
                err.seek(0)
                _say_exit(who, code, err.read())
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return wall, parts


SHOW_ROUTES = False  # --routes: the sandbox's calls per route after each run
TOOLS: set[str] = set()  # --peers: the peers to run (every one by default)
EXTRA_OPTIONS: dict[str, Any] = {}  # --option KEY=VALUE: crmsync connection options over PEER_OPTIONS


def show_routes(tool: str, base: str, verify: Any) -> None:
    if not SHOW_ROUTES:
        return
    snap = httpx.get(f"{base}/_sandbox/counters", verify=verify).json()
    top = sorted(snap["by_route"].items(), key=lambda kv: -kv[1])[:6]
    print(f"    {tool} calls by route: " + ", ".join(f"{route} x{n}" for route, n in top)
          + f"; by status {snap['by_status']}", flush=True)


def reset(base: str, verify: Any) -> None:
    httpx.post(f"{base}/_sandbox/counters", verify=verify).raise_for_status()  # log and limiter


def truth_count(base: str, verify: Any, crm: str) -> int:
    return len(httpx.get(f"{base}/_sandbox/objects/{DEAL_TRUTH[crm]}", verify=verify, timeout=120).json())


#: the same work as the peers: no peer's deals / Opportunity stream reads stage histories
PEER_OPTIONS: dict[str, dict[str, Any]] = {"hubspot": {"stage_history": False}, "salesforce": {"stage_history": False}}
CRMSYNC = "crmsync"  # the like-for-like row: PEER_OPTIONS
WITH_HISTORY = "crmsync + stage history"  # --with-history: crmsync's own default work (histories read)


def run_crmsync(crm: str, entry: dict[str, Any], work: Path, n: int, base: str, verify: Any,
                history: bool = False) -> Run:
    config = work / f"crmsync-{n}{'-history' if history else ''}.yaml"
    options = {**entry.get("options", {}), **DEFAULT_OPTIONS.get(crm, {}),
               **({} if history else PEER_OPTIONS.get(crm, {})), **EXTRA_OPTIONS}
    conn = {**entry, "objects": ["deals"], "options": options}
    config.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{config.with_suffix('.db')}"},
                                      "connections": [conn]}))
    out = config.with_suffix(".json")
    reset(base, verify)
    env = {**os.environ, "CRMSYNC_LOG_LEVEL": "warning"}
    subprocess.run([sys.executable, "-m", "crmsync.cli", "db", "upgrade", "--config", str(config)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    with out.open("wb") as sink:
        wall, cpu, rss, code = measured([sys.executable, "-m", "crmsync.cli", "backfill", "--connection",
                                         entry["name"], "--object", "deals", "--config", str(config), "--json"],
                                        env=env, stdout=sink)
    calls = sandbox_calls(base, verify)
    show_routes("crmsync", base, verify)
    text = out.read_text()
    doc = json.loads(text[text.index("{"):]) if "{" in text else {}
    truth = truth_count(base, verify, crm)
    stored = int(doc.get("stored_count") or 0)
    return Run(WITH_HISTORY if history else CRMSYNC, wall, cpu, rss, calls, stored, truth, code == 0 and stored == truth,
               "" if code == 0 else f"exit {code}")


def peer_config(peer: Peer, entry: dict[str, Any]) -> dict[str, Any]:
    creds = entry["credentials"]
    if peer.name == "tap-salesforce":
        return {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
                "refresh_token": creds.get("refresh_token", creds["password"]), "start_date": "2000-01-01T00:00:00Z",
                "api_type": "REST", "select_fields_by_default": True, "is_sandbox": False}
    if peer.name == "tap-pipedrive":
        return {"api_token": creds["api_token"], "start_date": "2000-01-01T00:00:00Z"}
    if peer.crm == "hubspot":
        return {"credentials": {"credentials_title": "Private App Credentials", "access_token": creds["access_token"]},
                "start_date": "2000-01-01T00:00:00Z", "enable_experimental_streams": False}
    if peer.crm == "pipedrive":
        return {"api_token": creds["api_token"], "replication_start_date": "2000-01-01T00:00:00Z"}
    return {"client_id": creds["client_id"], "client_secret": creds["client_secret"],
            "refresh_token": creds.get("refresh_token", creds["password"]), "is_sandbox": False,
            "start_date": "2000-01-01T00:00:00Z", "auth_type": "Client"}


def wrapped(python: Path, peer: Peer, base: str, *args: str) -> list[str]:
    return [str(python), str(WRAPPER), peer.real_base, base, peer.module, "--", *args]


def catalog_for(peer: Peer, python: Path, config: Path, base: str, work: Path, ca: str | None) -> Path:
    """Discover once (not timed) and configure the deals stream: Airbyte full refresh; Singer the
    stream and every field selected (metadata ``selected: true``), the tap's own replication."""
    verb = ["discover", "--config", str(config)] if peer.protocol == "airbyte" else ["--config", str(config),
                                                                                     "--discover"]
    found = subprocess.run(wrapped(python, peer, base, *verb), capture_output=True,
                           text=True, env=peer_env(ca), timeout=600, cwd=work)
    streams: list[dict[str, Any]] = []
    if peer.protocol == "singer":
        text = found.stdout
        streams = json.loads(text[text.index("{"):])["streams"] if "{" in text else []
    for line in found.stdout.splitlines():
        if line.startswith("{") and '"CATALOG"' in line:
            streams = json.loads(line)["catalog"]["streams"]
    name_of = "name" if peer.protocol == "airbyte" else "tap_stream_id"
    chosen = [s for s in streams if s.get(name_of) == peer.stream]
    if not chosen:
        tail = (found.stderr or found.stdout).strip().splitlines()[-2:]
        raise RuntimeError(f"discover found no {peer.stream} stream ({' | '.join(tail)[:300]})")
    if peer.protocol == "singer":
        stream = chosen[0]
        for item in stream.get("metadata", []):
            item.setdefault("metadata", {})["selected"] = True
        catalog: dict[str, Any] = {"streams": [stream]}
    else:
        catalog = {"streams": [{"stream": chosen[0], "sync_mode": "full_refresh",
                                "destination_sync_mode": "overwrite"}]}
    path = work / f"catalog-{peer.name}.json"
    path.write_text(json.dumps(catalog))
    return path


def peer_env(ca: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC")}
    if ca:
        env["REQUESTS_CA_BUNDLE"] = ca
    return env


def run_peer(peer: Peer, python: Path, config: Path, catalog: Path, work: Path, n: int, base: str,
             verify: Any, ca: str | None) -> Run:
    out = work / f"{peer.name}-{n}.jsonl"
    reset(base, verify)
    verb = ["read", "--config", str(config), "--catalog", str(catalog)] if peer.protocol == "airbyte" else [
        "--config", str(config), peer.catalog_flag, str(catalog)]
    with out.open("wb") as sink:
        wall, cpu, rss, code = measured(wrapped(python, peer, base, *verb), env=peer_env(ca), stdout=sink, cwd=work)
    calls = sandbox_calls(base, verify)
    show_routes(peer.name, base, verify)
    ids: set[str] = set()
    why = ""
    with out.open("rb") as lines:
        for line in lines:
            if b'"TRACE"' in line and b'"error"' in line:
                error = (json.loads(line).get("trace") or {}).get("error") or {}
                why = str(error.get("internal_message") or error.get("message") or "")[:300]
                print(f"    ({peer.name} error: {why}; {str(error.get('stack_trace', '')).strip()[-600:]})", flush=True)
            if b'"RECORD"' not in line:
                continue
            message = json.loads(line)
            if peer.protocol == "singer":  # {"type": "RECORD", "stream": ..., "record": {...}}
                data = (message.get("record") or {}) if message.get("stream") == peer.stream else None
            else:  # {"type": "RECORD", "record": {"stream": ..., "data": {...}}}
                record = message.get("record") or {}
                data = (record.get("data") or {}) if record.get("stream") == peer.stream else None
            if data is not None:
                ids.add(str(data.get("id") or data.get("Id")))
    truth = truth_count(base, verify, peer.crm)
    return Run(f"{peer.name} (extract only)", wall, cpu, rss, calls, len(ids), truth, code == 0 and len(ids) == truth,
               "" if code == 0 else f"exit {code}" + (f": {why}" if why else ""))


def psql(sql: str, database: str = "postgres", **names: str) -> str:
    """One statement through ``psql`` on stdin; ``names`` are psql variables (``:'x'`` a literal,
    ``:"x"`` an identifier), quoted by psql."""
    args = ["psql", "-h", str(PG["host"]), "-p", str(PG["port"]), "-U", str(PG["user"]), "-d", database,
            "-v", "ON_ERROR_STOP=1", "-At", *(f"--set={k}={v}" for k, v in names.items())]
    return subprocess.run(args, input=sql, capture_output=True, text=True, check=True).stdout.strip()


def target_config(database: str) -> dict[str, Any]:
    """A fresh destination for one run: a new database on the local PostgreSQL."""
    psql('CREATE DATABASE :"db"', db=database)
    return {**PG, "password": "", "database": database, "default_target_schema": "public"}


def landed(database: str, stream: str) -> int:
    """Distinct deal ids in the table the target made for the stream (its name and the id column's
    case as the target chose them)."""
    found = psql("SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns "
                 "WHERE lower(table_name) = lower(:'stream') AND lower(column_name) = 'id'", database, stream=stream)
    if not found:
        return 0
    schema, table, column = found.splitlines()[0].split(".")
    return int(psql('SELECT COUNT(DISTINCT :"column") FROM :"schema".:"table"', database,
                    column=column, schema=schema, table=table))


def run_pipeline(peer: Peer, python: Path, config: Path, catalog: Path, target: Target, target_python: Path,
                 work: Path, n: int, base: str, verify: Any, ca: str | None) -> Run:
    """``tap | target`` as a Singer user runs it, into a fresh destination; both processes measured;
    the records complete are the distinct ids that landed in the destination (counted untimed)."""
    home = work / f"{peer.name}-{target.name}-{n}"
    home.mkdir()
    database = f"bench_peers_{os.getpid()}_{peer.crm}_{n}"
    target_conf = home / "target.json"
    target_conf.write_text(json.dumps(target_config(database)))
    try:
        reset(base, verify)
        tap_cmd = wrapped(python, peer, base, "--config", str(config), peer.catalog_flag, str(catalog))
        target_cmd = [str(target_python), "-c", _ENTRY, target.module, "--config", str(target_conf)]
        wall, parts = measured_pipeline(tap_cmd, target_cmd, env=peer_env(ca), cwd=home)
        calls = sandbox_calls(base, verify)
        show_routes(f"{peer.name} | {target.name}", base, verify)
        codes = [code for _, _, code in parts]
        ok_run = all(code == 0 for code in codes)
        count = landed(database, peer.stream) if ok_run else 0
    finally:
        psql('DROP DATABASE IF EXISTS :"db"', db=database)
    truth = truth_count(base, verify, peer.crm)
    return Run(f"{peer.name} | {target.name}", wall, sum(cpu for cpu, _, _ in parts), sum(rss for _, rss, _ in parts),
               calls, count, truth, ok_run and count == truth,
               "" if ok_run else "exit " + "/".join(str(c) for c in codes),
               rss_parts=tuple(rss for _, rss, _ in parts))


#: runs ``module:function`` (a console entry point) with the rest of the command line, in any venv
_ENTRY = ("import importlib, sys; m, _, f = sys.argv[1].partition(':'); sys.argv = [m, *sys.argv[2:]]; "
          "o = importlib.import_module(m)\nfor part in f.split('.'): o = getattr(o, part)\no()")


def dlt_values(entry: dict[str, Any], base: str) -> dict[str, str]:
    creds = {k: str(v) for k, v in (entry.get("credentials") or {}).items()}
    return {**creds, **FIELDS, "base": base.rstrip("/")}


def dlt_env(ca: str | None) -> dict[str, str]:
    """The peer's environment: no anonymous telemetry (no traffic but the sandbox), warnings only."""
    return {**peer_env(ca), "RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}


def run_dlt(peer: DltPeer, python: Path, entry: dict[str, Any], work: Path, n: int, base: str, verify: Any,
            ca: str | None) -> Run:
    """One ``pipeline.run`` of the peer's rest_api source in its own process, into a fresh duckdb
    file and pipelines directory (no state from an earlier run); the ids are counted afterwards in
    the loaded table (not timed)."""
    home = work / f"dlt-{n}"
    home.mkdir()
    spec = {"pipeline": f"bench_{peer.crm}", "pipelines_dir": str(home / "pipelines"),
            "duckdb": str(home / "deals.duckdb"), "dataset": peer.crm, "table": peer.table,
            "id_column": peer.id_column, "source": fill(peer.source, dlt_values(entry, base))}
    spec_path = home / "spec.json"
    spec_path.write_text(json.dumps(spec))
    reset(base, verify)
    wall, cpu, rss, code = measured([str(python), str(DLT_RUNNER), "run", str(spec_path)], env=dlt_env(ca),
                                    stdout=subprocess.DEVNULL, cwd=home)
    calls = sandbox_calls(base, verify)
    show_routes(peer.name, base, verify)
    loaded, why = 0, "" if code == 0 else f"exit {code}"
    if code == 0:
        counted = subprocess.run([str(python), str(DLT_RUNNER), "count", str(spec_path)], capture_output=True,
                                 text=True, env=dlt_env(ca), cwd=home)
        if counted.returncode == 0:
            loaded = int(counted.stdout.strip().splitlines()[-1])
        else:
            why = "count failed: " + " | ".join(counted.stderr.strip().splitlines()[-2:])[:300]
    truth = truth_count(base, verify, peer.crm)
    return Run(f"{peer.name} + duckdb load", wall, cpu, rss, calls, loaded, truth, code == 0 and loaded == truth, why)


def report(crm: str, runs: list[Run]) -> None:
    by_tool: dict[str, list[Run]] = {}
    for r in runs:
        by_tool.setdefault(r.tool, []).append(r)

    def med(tool: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in by_tool[tool])

    def rss(tool: str) -> str:
        parts = [statistics.median(r.rss_parts[i] for r in by_tool[tool]) for i in range(len(by_tool[tool][0].rss_parts))]
        return f"{med(tool, 'rss_mb'):5.0f} MB" + (" (" + " + ".join(f"{p:.0f}" for p in parts) + ")" if parts else "")

    for tool, rs in by_tool.items():
        last = rs[-1]
        print(f"{crm:<11} {tool:<40} wall {med(tool, 'wall'):7.1f}s  CPU {med(tool, 'cpu'):6.1f}s  "
              f"peak RSS {rss(tool)}  calls {int(med(tool, 'calls')):6,}  records "
              f"{last.records:,}/{last.truth:,} {'complete' if all(r.ok for r in rs) else 'INCOMPLETE'}"
              + (f" ({last.why})" if last.why else ""), flush=True)
    for ours in (CRMSYNC, WITH_HISTORY):
        if ours not in by_tool:
            continue
        for tool in by_tool:
            if tool in (CRMSYNC, WITH_HISTORY):
                continue
            print(f"{crm:<11} {ours}/{tool}: wall {med(ours, 'wall') / med(tool, 'wall'):.2f}, CPU "
                  f"{med(ours, 'cpu') / med(tool, 'cpu'):.2f}, RSS {med(ours, 'rss_mb') / med(tool, 'rss_mb'):.2f}",
                  flush=True)


def bench_crm(crm: str, deals: int, rounds: int, seed: int, with_history: bool = False) -> None:
    peers = [p for p in PEERS if p.crm == crm and p.name in TOOLS]
    dlt_peers = [p for p in DLT_PEERS if p.crm == crm and p.name in TOOLS]
    with tempfile.TemporaryDirectory(prefix=f"bench-peers-{crm}-") as tmp:
        work = Path(tmp)
        proc, entry = start_sandbox(crm, deals, seed, work)
        try:
            base = str(entry["base_url"])
            ca = entry.get("ca_bundle")
            verify: Any = ca or True
            httpx.put(f"{base}/_sandbox/knobs", verify=verify, json=LIMITS[crm]).raise_for_status()
            ready: list[tuple[Peer, Path, Path, Path]] = []
            for peer in peers:
                try:
                    python = venv_python(peer)
                    config = work / f"config-{peer.name}.json"
                    config.write_text(json.dumps(peer_config(peer, entry)))
                    reset(base, verify)
                    catalog = catalog_for(peer, python, config, base, work, ca)
                    ready.append((peer, python, config, catalog))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"{crm:<11} {peer.name}: cannot run here: {exc}", flush=True)
            targets: list[tuple[Target, Path]] = []
            for target in TARGETS if any(peer.protocol == "singer" for peer, *_ in ready) else []:
                try:
                    targets.append((target, venv_python(target)))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"{crm:<11} {target.name}: cannot run here: {exc}", flush=True)
            ready_dlt: list[tuple[DltPeer, Path]] = []
            for dlt_peer in dlt_peers:
                try:
                    ready_dlt.append((dlt_peer, venv_python(dlt_peer)))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"{crm:<11} {dlt_peer.name}: cannot run here: {exc}", flush=True)
            runs: list[Run] = []
            for n in range(rounds):  # alternating: crmsync, each peer, crmsync, ...
                runs.append(run_crmsync(crm, entry, work, n, base, verify))
                if with_history and crm in PEER_OPTIONS:
                    runs.append(run_crmsync(crm, entry, work, n, base, verify, history=True))
                for peer, python, config, catalog in ready:
                    runs.append(run_peer(peer, python, config, catalog, work, n, base, verify, ca))
                    for target, target_python in targets if peer.protocol == "singer" else []:
                        runs.append(run_pipeline(peer, python, config, catalog, target, target_python, work, n,
                                                 base, verify, ca))
                for dlt_peer, python in ready_dlt:
                    runs.append(run_dlt(dlt_peer, python, entry, work, n, base, verify, ca))
            report(crm, runs)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--crm", default="hubspot,salesforce,pipedrive")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--routes", action="store_true", help="print each run's sandbox calls per route")
    parser.add_argument("--peers", default="", help="comma-separated peer names to run (default: all)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a crmsync connection option (YAML value) over PEER_OPTIONS, e.g. stage_history=true")
    parser.add_argument("--with-history", action="store_true",
                        help="also run crmsync with stage histories read (HubSpot, Salesforce), a row of its own")
    args = parser.parse_args()
    global SHOW_ROUTES
    SHOW_ROUTES = args.routes
    every = {p.name for p in PEERS} | {p.name for p in DLT_PEERS}
    TOOLS.update(args.peers.split(",") if args.peers else every)
    EXTRA_OPTIONS.update(connection_options(args.option))
    print(f"bench_peers: {args.deals:,} deals, {args.rounds} alternating rounds, documented limits on", flush=True)
    for crm in args.crm.split(","):
        bench_crm(crm, args.deals, args.rounds, args.seed, args.with_history)


if __name__ == "__main__":
    main()
