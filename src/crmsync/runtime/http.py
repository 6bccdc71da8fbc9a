"""The worker's HTTP endpoint: ``/healthz``, ``/readyz``, ``/metrics`` and the webhook receivers.

- ``GET /healthz``: the process answers (liveness).
- ``GET /readyz``: the store answers ``SELECT 1`` and the scheduler / worker loop is running.
- ``GET /metrics``: Prometheus text or OpenMetrics, as the scraper's ``Accept`` asks (see ``crmsync.runtime.metrics``).
- ``POST /webhooks/hubspot`` and ``/webhooks/hubspot/{connection}``: v3 signature checked, then an
  immediate incremental sync of the connection(s) the events belong to (by ``options.portal_id``,
  or the only HubSpot connection).
- ``POST /webhooks/pipedrive/{connection}``: HTTP Basic credentials checked, then a sync.

The sync itself is requested from the worker (``SyncRequester``): debounced in the embedded
scheduler, a deferred job under the connection's queueing lock in distributed mode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crmsync.logging import get_logger
from crmsync.runtime import webhooks
from crmsync.runtime.metrics import WorkerMetrics
from crmsync.runtime.replay import ReplayGuard
from crmsync.settings import ConnectionSettings, Settings
from crmsync.store import Store

log = get_logger("crmsync.runtime.http")
MAX_BODY = 1 << 20


class SyncRequester(Protocol):
    def request_sync(self, connection: str, *, reason: str, touched: list[tuple[str, str]]) -> str:
        """Ask for an immediate incremental sync; returns what happened (queued, already queued...)."""
        ...

    def is_running(self) -> bool:
        ...


def build_app(settings: Settings, store: Store, metrics: WorkerMetrics, requester: SyncRequester, *,
              clock_ms: Callable[[], int] | None = None) -> Starlette:
    endpoints = _Endpoints(settings, store, metrics, requester, clock_ms)
    return Starlette(routes=[
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        Route("/readyz", endpoints.readyz, methods=["GET"]),
        Route("/metrics", endpoints.metrics_endpoint, methods=["GET"]),
        Route("/webhooks/hubspot", endpoints.hubspot, methods=["POST"]),
        Route("/webhooks/hubspot/{connection}", endpoints.hubspot, methods=["POST"]),
        Route("/webhooks/pipedrive/{connection}", endpoints.pipedrive, methods=["POST"]),
    ])


class _Endpoints:
    """The worker's HTTP endpoints: health, readiness, metrics and the CRMs' webhooks."""

    def __init__(self, settings: Settings, store: Store, metrics: WorkerMetrics, requester: SyncRequester,
                 clock_ms: Callable[[], int] | None) -> None:
        self.settings = settings
        self.secrets = settings.worker.webhook_secrets
        self.store = store
        self.metrics = metrics
        self.requester = requester
        self.clock_ms = clock_ms
        self.guard = ReplayGuard(store)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported as not ready
            checks["store"] = f"unreachable: {type(exc).__name__}"
        checks["scheduler"] = "ok" if self.requester.is_running() else "not running"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.metrics.render_for(request.headers.get("accept"))
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    @staticmethod
    async def read_body(request: Request) -> bytes | None:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return None
        return body

    def trigger(self, conns: list[ConnectionSettings], event: webhooks.WebhookEvent) -> Response:
        outcome = {}
        for conn in conns:
            touched = list(event.touched)
            outcome[conn.name] = self.requester.request_sync(conn.name, reason=f"webhook:{event.source}",
                                                             touched=touched)
        self.metrics.webhooks.labels(event.source, "accepted").inc()
        log.info("webhook.accepted", source=event.source, connections=sorted(outcome), touched=len(event.touched))
        return JSONResponse({"accepted": True, "sync": outcome}, status_code=202)

    def duplicate(self, source: str) -> Response:
        """A delivery seen before (a replay, or the CRM retrying): acknowledged, nothing triggered."""
        self.metrics.webhooks.labels(source, "duplicate").inc()
        log.info("webhook.duplicate", source=source)
        return JSONResponse({"accepted": True, "duplicate": True}, status_code=200)

    def reject(self, source: str, status: int, why: str) -> Response:
        self.metrics.webhooks.labels(source, "rejected").inc()
        log.warning("webhook.rejected", source=source, reason=why)
        return JSONResponse({"accepted": False, "error": why}, status_code=status)

    async def hubspot(self, request: Request) -> Response:
        body = await self.read_body(request)
        if body is None:
            return self.reject("hubspot", 413, "body too large")
        named = request.path_params.get("connection")
        candidates = [c for c in self.settings.connections if c.kind == "hubspot" and c.enabled
                      and (named is None or c.name == named)]
        if not candidates:
            return self.reject("hubspot", 404, "no such HubSpot connection")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        event = webhooks.parse_hubspot(payload) if payload is not None else webhooks.WebhookEvent("hubspot")
        if named is None and len(candidates) > 1:
            candidates = [c for c in candidates if str(c.options.get("portal_id")) in event.account_ids]
            if not candidates:
                return self.reject("hubspot", 404, "no HubSpot connection with this portal id")
        accepted = self._hubspot_signed(request, body, candidates)
        if isinstance(accepted, Response):
            return accepted
        if payload is None:
            return self.reject("hubspot", 400, "body is not JSON")
        if not self.guard.first_time("hubspot", request.headers.get("x-hubspot-signature-v3", ""),
                                     request.headers.get("x-hubspot-request-timestamp", "")):
            return self.duplicate("hubspot")
        return self.trigger(accepted, event)

    def _hubspot_signed(self, request: Request, body: bytes,
                        candidates: list[ConnectionSettings]) -> list[ConnectionSettings] | Response:
        """The candidates whose webhook secret signed this request (v3), or the rejection."""
        accepted = []
        for conn in candidates:
            secret = webhooks.secret_for(self.secrets, "hubspot", conn.name)
            if secret is None:
                continue
            try:
                webhooks.verify_hubspot_v3(
                    secret, method=request.method, uri=str(request.url), body=body,
                    signature=request.headers.get("x-hubspot-signature-v3"),
                    timestamp=request.headers.get("x-hubspot-request-timestamp"),
                    now_ms=self.clock_ms() if self.clock_ms else None)
            except webhooks.WebhookRejected as exc:
                return self.reject("hubspot", 401, str(exc))
            accepted.append(conn)
        if not accepted:
            return self.reject("hubspot", 401, "no webhook secret configured for this connection")
        return accepted

    async def pipedrive(self, request: Request) -> Response:
        body = await self.read_body(request)
        if body is None:
            return self.reject("pipedrive", 413, "body too large")
        name = request.path_params["connection"]
        conn = next((c for c in self.settings.connections if c.name == name and c.kind == "pipedrive" and c.enabled),
                    None)
        if conn is None:
            return self.reject("pipedrive", 404, "no such Pipedrive connection")
        expected = webhooks.secret_for(self.secrets, "pipedrive", conn.name)
        if expected is None:
            return self.reject("pipedrive", 401, "no webhook credentials configured for this connection")
        try:
            webhooks.verify_basic_auth(expected, request.headers.get("authorization"))
        except webhooks.WebhookRejected as exc:
            return self.reject("pipedrive", 401, str(exc))
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self.reject("pipedrive", 400, "body is not JSON")
        if not self.guard.first_time(f"pipedrive:{conn.name}", body):
            return self.duplicate("pipedrive")
        return self.trigger([conn], webhooks.parse_pipedrive(payload))


class HttpServer:
    """uvicorn in a daemon thread (port 0 picks a free port; ``port`` tells which)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="crmsync-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the worker's HTTP endpoint did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        servers = getattr(self._server, "servers", [])
        if servers and servers[0].sockets:
            self.port = int(servers[0].sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
