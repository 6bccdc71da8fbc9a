"""What every simulator shares: knobs, rate limits, fault injection, counters, the HTTP runner.

A simulator is a Starlette app plus an in-memory store of native records. ``SandboxMiddleware``
wraps it: it counts every request, applies latency, injected faults and the rate limiter, and
lets the simulator shape the answers (each CRM has its own 429 body and limit headers).
``SandboxServer`` runs an app on loopback with uvicorn in a background thread, optionally over TLS
with a locally generated CA (simple-salesforce only speaks https).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import random
import re
import socket
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson
import trustme
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from crmsync.sandbox.clock import SimClock

# drop_query: the request reaches the API without its query string, as behind a proxy or cache
# that strips it (a list asked for archived or deleted records answers with live ones)
FaultKind = Literal["429", "500", "503", "timeout", "truncate", "drop_query"]


@dataclass
class FaultRule:
    """Inject a failure on requests whose path matches ``path`` (a regex) with ``probability``."""

    path: str
    kind: FaultKind
    probability: float = 1.0
    retry_after: float = 1.0
    method: str | None = None
    query: str | None = None  # a regex the raw query string must match too

    def matches(self, method: str, path: str, query: str = "") -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.query is not None and re.search(self.query, query) is None:
            return False
        return re.search(self.path, path) is not None


@dataclass
class CorruptValue:
    """Serve ``value`` as ``field`` of record ``record_id`` in every JSON answer whose path matches
    ``path``: a malformed value as a broken integration, a mock server generated from the spec
    (``update_time: "irure"``) or a CRM bug would send it. The stored record is unchanged; in
    HubSpot's shape the value goes under ``properties`` unless ``top_level``."""

    record_id: str
    field: str
    value: Any
    path: str = ".*"
    top_level: bool = False

    def matches(self, path: str) -> bool:
        return re.search(self.path, path) is not None


def corrupt_document(document: Any, rules: list[CorruptValue]) -> Any:
    """``document`` with each rule's value put into the records it names (in place)."""
    if isinstance(document, list):
        for item in document:
            corrupt_document(item, rules)
    elif isinstance(document, dict):
        rid = document.get("id", document.get("Id"))
        for rule in rules:
            if rid is not None and str(rid) == rule.record_id:
                props = document.get("properties")
                (props if isinstance(props, dict) and not rule.top_level else document)[rule.field] = rule.value
        for value in document.values():
            if isinstance(value, dict | list):
                corrupt_document(value, rules)
    return document


@dataclass
class Knobs:
    """Runtime-adjustable behaviour of one simulator."""

    burst_limit: int | None = None  # requests per burst window; None = unlimited
    burst_window_s: float = 10.0
    daily_limit: int | None = None  # requests (or tokens) per day
    search_per_second: int | None = None  # HubSpot search's own limit
    latency_ms: float = 0.0
    search_lag_s: float = 0.0  # how long a change takes to show up in search
    timeout_s: float = 30.0  # how long an injected timeout hangs
    faults: list[FaultRule] = field(default_factory=list)
    corrupt: list[CorruptValue] = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key == "faults":
                self.faults = [FaultRule(**f) if isinstance(f, dict) else f for f in value]
            elif key == "corrupt":
                self.corrupt = [CorruptValue(**c) if isinstance(c, dict) else c for c in value]
            elif hasattr(self, key):
                setattr(self, key, value)
            else:
                raise KeyError(f"unknown knob {key!r}")


@dataclass
class ScriptStep:
    """Run ``action`` when the ``nth`` answer to a request matching ``route`` (a regex over
    ``"METHOD /path"``) is about to be sent: the client cannot see that answer, nor send its next
    request on that connection, before the action has run. Tests use it to edit records or move
    the clock between two pages of one pull."""

    route: str
    nth: int
    action: Callable[[], None]
    seen: int = 0
    done: bool = False


class ResponseScript:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steps: list[ScriptStep] = []

    def after(self, route: str, nth: int, action: Callable[[], None]) -> ScriptStep:
        step = ScriptStep(route, nth, action)
        with self._lock:
            self.steps.append(step)
        return step

    def clear(self) -> None:
        with self._lock:
            self.steps.clear()

    def due(self, method: str, path: str) -> list[ScriptStep]:
        if not self.steps:
            return []
        target = f"{method} {path}"
        ready: list[ScriptStep] = []
        with self._lock:
            for step in self.steps:
                if not step.done and re.search(step.route, target):
                    step.seen += 1
                    if step.seen >= step.nth:
                        step.done = True
                        ready.append(step)
        return ready


class RateLimiter:
    """A rolling burst window and a daily counter. Costs are tokens (Pipedrive) or 1 per call."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._lock = threading.Lock()
        self._burst: deque[tuple[float, int]] = deque()
        self._search: deque[float] = deque()
        self.daily_used = 0

    def _burst_used(self, now: float) -> int:
        window = self.knobs.burst_window_s
        while self._burst and self._burst[0][0] <= now - window:
            self._burst.popleft()
        return sum(cost for _, cost in self._burst)

    def acquire(self, cost: int = 1, *, search: bool = False) -> str | None:
        """Charge a call; return None if allowed, else which limit refused it."""
        now = time.monotonic()
        with self._lock:
            k = self.knobs
            if k.daily_limit is not None and self.daily_used + cost > k.daily_limit:
                return "daily"
            if search and k.search_per_second is not None:
                while self._search and self._search[0] <= now - 1.0:
                    self._search.popleft()
                if len(self._search) >= k.search_per_second:
                    return "secondly"
                self._search.append(now)
            if search:  # HubSpot search is exempt from the ten-second limit (spec: x-hubspot-rate-limit-exemptions)
                self.daily_used += cost
                return None
            if k.burst_limit is not None and self._burst_used(now) + cost > k.burst_limit:
                return "burst"
            self._burst.append((now, cost))
            self.daily_used += cost
            return None

    def snapshot(self) -> dict[str, int | float | None]:
        now = time.monotonic()
        with self._lock:
            used = self._burst_used(now)
            reset = 0.0
            if self._burst:
                reset = max(0.0, self._burst[0][0] + self.knobs.burst_window_s - now)
        k = self.knobs
        return {
            "burst_limit": k.burst_limit,
            "burst_remaining": None if k.burst_limit is None else max(0, k.burst_limit - used),
            "burst_reset_s": reset,
            "daily_limit": k.daily_limit,
            "daily_used": self.daily_used,
            "daily_remaining": None if k.daily_limit is None else max(0, k.daily_limit - self.daily_used),
        }

    def reset(self) -> None:
        with self._lock:
            self._burst.clear()
            self._search.clear()
            self.daily_used = 0


@dataclass
class CapturedRequest:
    """One request as the client sent it (for checking clients against the official specs)."""

    method: str
    path: str
    query: str  # the raw query string
    headers: dict[str, str]
    body: bytes


class RequestCapture:
    """When on, keeps every API request a simulator receives, body included (bounded)."""

    def __init__(self, keep: int = 20_000) -> None:
        self.on = False
        self._lock = threading.Lock()
        self.requests: deque[CapturedRequest] = deque(maxlen=keep)

    def add(self, entry: CapturedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def take(self) -> list[CapturedRequest]:
        with self._lock:
            out = list(self.requests)
            self.requests.clear()
            return out


@dataclass
class LoggedRequest:
    at: float
    method: str
    path: str
    status: int
    auth: str  # a short fingerprint of the credential, never the credential itself


class RequestLog:
    """Counters of every request received, for API-call-efficiency figures and tests."""

    def __init__(self, keep: int = 100_000) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.recent: deque[LoggedRequest] = deque(maxlen=keep)

    def add(self, route: str, entry: LoggedRequest) -> None:
        with self._lock:
            self.total += 1
            self.by_route[route] += 1
            self.by_status[entry.status] += 1
            self.recent.append(entry)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_route": dict(self.by_route),
                "by_status": {str(k): v for k, v in self.by_status.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.by_route.clear()
            self.by_status.clear()
            self.recent.clear()


def exact_number(value: Any) -> Any:
    """orjson ``default``: a Decimal is written as a JSON number from its own digits."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f").encode())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def exact_json(raw: bytes) -> Any:
    """Parse a request body as the real APIs do: numbers keep every digit (fractions as Decimal).

    Raises ``ValueError`` (``msgspec.DecodeError``) on malformed JSON."""
    return _EXACT_DECODER.decode(raw)


_EXACT_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson-encoded response; a Decimal is written as an exact JSON number."""
    return Response(
        orjson.dumps(body, default=exact_number, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SimulatorHooks:
    """What a simulator tells the middleware about itself. Override per system."""

    name = "sandbox"

    def route_of(self, method: str, path: str) -> str:
        """A template used for counting (ids replaced), e.g. ``GET /crm/v3/objects/deals/{id}``."""
        return f"{method} " + re.sub(r"/[0-9A-Za-z_-]*\d[0-9A-Za-z_-]*(?=/|$)", "/{id}", path)

    def cost_of(self, method: str, path: str) -> int:
        return 1

    def is_search(self, method: str, path: str) -> bool:
        return False

    def authenticate(self, request: Request) -> str | None:
        """Return a credential fingerprint, or None when the request is not authorised."""
        return "anonymous"

    def unauthorized(self) -> Response:
        return JSONResponse({"error": "unauthorized"}, status_code=401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return JSONResponse({"error": "rate limited", "limit": which}, status_code=429,
                            headers={"Retry-After": str(int(retry_after) or 1)})

    def server_error(self, status: int) -> Response:
        return JSONResponse({"error": "internal error"}, status_code=status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        return {}

    def is_public(self, path: str) -> bool:
        """Paths that need no credential (token endpoints, the control API)."""
        return path.startswith("/_sandbox")


class SandboxMiddleware:
    """Counting, latency, faults, auth and rate limits in front of a simulator's routes."""

    def __init__(self, app: ASGIApp, hooks: SimulatorHooks, knobs: Knobs, limiter: RateLimiter,
                 log: RequestLog, clock: SimClock | None = None, script: ResponseScript | None = None,
                 capture: RequestCapture | None = None) -> None:
        self.app = app
        self.hooks = hooks
        self.knobs = knobs
        self.limiter = limiter
        self.log = log
        self.clock = clock or SimClock()
        self.script = script or ResponseScript()
        self.capture = capture or RequestCapture()
        self._rng = random.Random(knobs.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        method, path = request.method, request.url.path
        if path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        if self.capture.on:
            receive = await self._captured(scope, receive, method, path)
            request = Request(scope, receive)
        route = self.hooks.route_of(method, path)
        status_holder = {"status": 0, "logged": False}
        auth = "public"

        def record(status: int) -> None:
            # Logged when the response starts, before the client can see it, so a caller that reads
            # the counters right after its own request always finds that request counted.
            if not status_holder["logged"]:
                status_holder["logged"] = True
                self.log.add(route, LoggedRequest(time.time(), method, path, status, auth))

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"date"]
                # ``Date`` from the simulated clock (uvicorn's own is off): clients learn the
                # server's time from it, as they do from a real CRM.
                headers.append((b"date", email.utils.formatdate(self.clock.time(), usegmt=True).encode()))
                for step in self.script.due(method, path):
                    step.action()  # after this answer was made, before the client can see it
                record(message["status"])
                extra = self.hooks.limit_headers(self.limiter)
                if extra:
                    headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                message["headers"] = headers
            await send(message)

        try:
            if self.knobs.latency_ms:
                await asyncio.sleep(self.knobs.latency_ms / 1000)
            if not self.hooks.is_public(path):
                fingerprint = self.hooks.authenticate(request)
                if fingerprint is None:
                    await self.hooks.unauthorized()(scope, receive, counting_send)
                    return
                auth = fingerprint
                refused = self.limiter.acquire(self.hooks.cost_of(method, path),
                                               search=self.hooks.is_search(method, path))
                if refused is not None:
                    retry = self.limiter.snapshot()["burst_reset_s"] or 1.0
                    if refused == "secondly":
                        retry = 1.0
                    await self.hooks.rate_limited(refused, float(retry))(scope, receive, counting_send)
                    return
            fault = self._pick_fault(method, path, scope.get("query_string", b"").decode("latin-1"))
            if fault is not None and fault.kind == "drop_query":
                scope = {**scope, "query_string": b""}
            elif fault is not None:
                await self._inject(fault, scope, receive, counting_send)
                return
            rules = [rule for rule in self.knobs.corrupt if rule.matches(path)]
            await self.app(scope, receive, _corrupting(counting_send, rules) if rules else counting_send)
        finally:
            record(int(status_holder["status"]))  # a request that never started a response

    async def _captured(self, scope: Scope, receive: Receive, method: str, path: str) -> Receive:
        """Read the whole body, keep a copy of the request, and replay the body to the app."""
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        self.capture.add(CapturedRequest(method, path, scope.get("query_string", b"").decode("latin-1"),
                                         headers, body))
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _pick_fault(self, method: str, path: str, query: str = "") -> FaultRule | None:
        for rule in self.knobs.faults:
            if rule.matches(method, path, query) and self._rng.random() < rule.probability:
                return rule
        return None

    async def _inject(self, fault: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.kind == "429":
            await self.hooks.rate_limited("injected", fault.retry_after)(scope, receive, send)
        elif fault.kind in ("500", "503"):
            await self.hooks.server_error(int(fault.kind))(scope, receive, send)
        elif fault.kind == "timeout":
            await asyncio.sleep(self.knobs.timeout_s)
            await self.hooks.server_error(504)(scope, receive, send)
        else:  # truncate: a 200 whose JSON body is cut off mid-way
            body = b'{"results":[{"id":"1","properties":{"name":"trunc'
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def _corrupting(send: Send, rules: list[CorruptValue]) -> Send:
    """A ``send`` that holds a JSON answer back, applies ``rules`` to it and sends it whole."""
    held: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def corrupting_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            held["start"] = message
            return
        if message["type"] != "http.response.body" or "start" not in held:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        start, body = held.pop("start"), b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if any(k.lower() == b"content-type" and b"json" in v for k, v in headers):
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.dumps(corrupt_document(orjson.loads(body), rules))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return corrupting_send


@dataclass
class LocalCA:
    """A throwaway certificate authority and a loopback server certificate (trustme)."""

    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def create(cls, directory: Path | None = None) -> LocalCA:
        directory = directory or Path(tempfile.mkdtemp(prefix="crmsync-ca-"))
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="crmsync sandbox")
        server = ca.issue_cert("127.0.0.1", "localhost", "::1")
        paths = cls(directory, directory / "ca.pem", directory / "server.pem", directory / "server.key")
        ca.cert_pem.write_to_path(str(paths.ca_path))
        server.cert_chain_pems[0].write_to_path(str(paths.cert_path))
        for extra in server.cert_chain_pems[1:]:
            extra.write_to_path(str(paths.cert_path), append=True)
        server.private_key_pem.write_to_path(str(paths.key_path))
        return paths


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxServer:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: ASGIApp, *, port: int = 0, tls: LocalCA | None = None, name: str = "sandbox") -> None:
        self.app = app
        self.port = port or free_port()
        self.tls = tls
        self.name = name
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            lifespan="off", timeout_keep_alive=30, date_header=False,
            ssl_certfile=str(tls.cert_path) if tls else None,
            ssl_keyfile=str(tls.key_path) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox {self.name} did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is None:
            return
        self._thread.join(timeout=1)  # a plain HTTP server is gone in ~0.2 s
        if self._thread.is_alive():
            # A TLS connection the client left open closes only when the client answers the TLS
            # close (asyncio waits up to 30 s for it); nothing is in flight any more, so stop waiting.
            self._server.force_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


Endpoint = Callable[[Request], Awaitable[Response]]


class Simulator:
    """Base of the four simulators: native records in memory, a lock, the control API.

    Subclasses build ``self.routes`` (Starlette routes of the CRM's API) and implement the user
    handle (create, edit, move_stage, delete, restore, merge, bulk_import) and ``truth``: what the CRM holds
    right now, the judge every sync is compared with. Object names in the handle are the CRM's
    own (``Opportunity``, ``deals``, ...). The same handle is exposed over HTTP under ``/_sandbox``.
    """

    name = "sandbox"
    hooks: SimulatorHooks

    def __init__(self, knobs: Knobs | None = None) -> None:
        import threading as _threading

        self.knobs = knobs or Knobs()
        self.limiter = RateLimiter(self.knobs)
        self.log = RequestLog()
        self.lock = _threading.RLock()
        self.clock = SimClock()
        self.script = ResponseScript()
        self.capture = RequestCapture()

    # --- the user handle -------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        raise NotImplementedError

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def move_stage(self, deal_id: str, stage: str) -> None:
        raise NotImplementedError

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        raise NotImplementedError

    def merge(self, object_name: str, winner_id: str, loser_id: str) -> None:
        raise NotImplementedError

    def restore(self, object_name: str, record_id: str) -> None:
        """Bring a soft-deleted record back (recycle bin, archive, deleted deals), as a user can."""
        raise NotImplementedError

    def bulk_import(self, object_name: str, rows: list[dict[str, Any]], *, same_timestamp: bool = True) -> list[str]:
        raise NotImplementedError

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --- assembly ---------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        raise NotImplementedError

    def build_app(self) -> ASGIApp:
        from starlette.applications import Starlette

        app = Starlette(routes=[*control_routes(self), *self.api_routes()])
        return SandboxMiddleware(app, self.hooks, self.knobs, self.limiter, self.log, self.clock, self.script,
                                 self.capture)


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status a simulator's API error carries (HubSpot ``status``, Salesforce ``http_status``)."""
    for name in ("status", "http_status", "status_code"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 400 <= value < 600:
            return value
    return None


def control_routes(sim: Simulator) -> list[Any]:
    """``/_sandbox/...``: knobs, counters and the user handle over HTTP (no auth, loopback only)."""
    from starlette.routing import Route

    async def knobs(request: Request) -> Response:
        if request.method == "PUT":
            try:
                sim.knobs.update(orjson.loads(await request.body()))
            except (KeyError, TypeError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
        return json_response(sim.knobs.to_dict())

    async def counters(request: Request) -> Response:
        if request.method == "POST":
            sim.log.reset()
            sim.limiter.reset()
        return json_response({**sim.log.snapshot(), "limits": sim.limiter.snapshot()})

    async def objects(request: Request) -> Response:
        object_name = request.path_params["object_name"]
        record_id = request.path_params.get("record_id")
        try:
            body = orjson.loads(await request.body()) if request.method in ("POST", "PATCH", "PUT") else {}
            with sim.lock:
                if request.method == "GET":
                    deleted = request.query_params.get("include_deleted") == "true"
                    return json_response(sim.truth(object_name, include_deleted=deleted))
                if request.method == "POST" and record_id is None:
                    if isinstance(body, list):
                        same = request.query_params.get("same_timestamp", "true") == "true"
                        return json_response({"ids": sim.bulk_import(object_name, body, same_timestamp=same)}, 201)
                    return json_response({"id": sim.create(object_name, body)}, 201)
                if request.method == "PATCH" and record_id is not None:
                    if "stage" in body and len(body) == 1:
                        sim.move_stage(record_id, body["stage"])
                    else:
                        sim.edit(object_name, record_id, body)
                    return json_response({"id": record_id})
                if request.method == "DELETE" and record_id is not None:
                    sim.delete(object_name, record_id, hard=request.query_params.get("hard") == "true")
                    return json_response({"id": record_id})
                if request.method == "POST" and record_id is not None:  # merge: POST /{winner} {"loser": id}
                    sim.merge(object_name, record_id, str(body["loser"]))
                    return json_response({"id": record_id})
        except KeyError as exc:
            return json_response({"error": f"not found: {exc}"}, 404)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        except Exception as exc:  # noqa: BLE001 - a simulator's own API error: answer as its API does
            status = _status_of(exc)
            if status is None:
                raise
            return json_response({"error": str(exc)}, status)
        return json_response({"error": "unsupported"}, 405)

    return [
        Route("/_sandbox/knobs", knobs, methods=["GET", "PUT"]),
        Route("/_sandbox/counters", counters, methods=["GET", "POST"]),
        Route("/_sandbox/objects/{object_name}", objects, methods=["GET", "POST"]),
        Route("/_sandbox/objects/{object_name}/{record_id}", objects, methods=["PATCH", "DELETE", "POST"]),
    ]
