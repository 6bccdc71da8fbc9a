"""OAuth token endpoint, session ids and the middleware hooks (auth, limits, error bodies)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from crmsync.sandbox.core import RateLimiter, SimulatorHooks
from crmsync.sandbox.salesforce.responses import sf_error, sf_json

DEFAULT_DAILY_LIMIT = 100_000
TOKEN_PATH = "/services/oauth2/token"
_ID_SEGMENT = re.compile(r"^(?=[0-9A-Za-z]*\d)[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")
_LOCATOR_SEGMENT = re.compile(r"^[0-9A-Za-z]{15,18}-\d+$")


@dataclass(frozen=True)
class SandboxCredentials:
    """What the simulated org accepts at its token endpoint (sandbox-only values)."""

    client_id: str = "crmsync-sandbox-client"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a loopback simulator's fixture value
    username: str = "integration@crmsync.example"
    password: str = "sandbox-password"  # noqa: S105 - password + security token, as Salesforce expects
    refresh_token: str = "5Aep861sandbox.refresh.token"  # noqa: S105 - what the web-server flow would have issued


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, float] = {}
        self.issued = 0

    def issue(self) -> str:
        token = "00D" + "000000000001!" + secrets.token_urlsafe(40)
        with self._lock:
            self._live[token] = time.monotonic()
            self.issued += 1
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            return token in self._live

    def expire_all(self) -> None:
        with self._lock:
            self._live.clear()

    def add(self, token: str) -> None:
        with self._lock:
            self._live[token] = time.monotonic()


class SalesforceHooks(SimulatorHooks):
    name = "salesforce"

    def __init__(self, sessions: Sessions, knobs_limit: RateLimiter) -> None:
        self.sessions = sessions
        self.limiter = knobs_limit

    def route_of(self, method: str, path: str) -> str:
        parts = path.split("/")
        out = []
        for i, part in enumerate(parts):
            if _LOCATOR_SEGMENT.match(part):
                out.append("{locator}")
            elif _ID_SEGMENT.match(part):
                out.append("{id}")
            elif i > 0 and parts[i - 1].endswith("__c") and "sobjects" in parts:
                out.append("{value}")
            else:
                out.append(part)
        return f"{method} " + "/".join(out)

    def is_public(self, path: str) -> bool:
        return path.startswith("/_sandbox") or path == TOKEN_PATH

    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token or not self.sessions.valid(token.strip()):
            return None
        return hashlib.sha256(token.strip().encode()).hexdigest()[:12]

    def unauthorized(self) -> Response:
        return sf_error("INVALID_SESSION_ID", "Session expired or invalid", 401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        if which == "daily":
            return sf_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        return sf_error("REQUEST_LIMIT_EXCEEDED", "Too many requests. Retry after the indicated time.", 429,
                        headers={"Retry-After": str(max(1, round(retry_after)))})

    def server_error(self, status: int) -> Response:
        if status == 503:
            return sf_error("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please retry.", 503,
                            headers={"Retry-After": "1"})
        return sf_error("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if "
                        "you contact support: 0000000000-00000 (0000000000)", status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        snap = limiter.snapshot()
        limit = snap["daily_limit"] if snap["daily_limit"] is not None else DEFAULT_DAILY_LIMIT
        return {"Sforce-Limit-Info": f"api-usage={snap['daily_used']}/{limit}"}


async def token_endpoint(request: Request, creds: SandboxCredentials, sessions: Sessions) -> Response:
    """``POST /services/oauth2/token``: password, client_credentials and refresh_token grants.

    The refresh_token grant (REST API guide, "Understanding the OAuth Refresh Token Process",
    developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/intro_understanding_refresh_token_oauth.htm) takes
    ``client_id``, ``client_secret`` (or HTTP Basic) and ``refresh_token``; it answers a new
    access token without a new refresh token (rotation off), and ``invalid_grant`` with 400 for a
    refresh token the org did not issue."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip()).decode()
            client_id, _, client_secret = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            return _grant_error("invalid_grant", "client identifier invalid")
    grant = form.get("grant_type")
    if grant not in ("password", "client_credentials", "refresh_token"):
        return _grant_error("unsupported_grant_type", "grant type not supported")
    if not (secrets.compare_digest(client_id or "", creds.client_id)
            and secrets.compare_digest(client_secret or "", creds.client_secret)):
        return _grant_error("invalid_grant", "client identifier invalid")
    if grant == "password" and not (
            secrets.compare_digest(form.get("username", ""), creds.username)
            and secrets.compare_digest(form.get("password", ""), creds.password)):
        return _grant_error("invalid_grant", "authentication failure")
    if grant == "refresh_token" and not secrets.compare_digest(form.get("refresh_token", ""), creds.refresh_token):
        return _grant_error("invalid_grant", "expired access/refresh token")
    token = sessions.issue()
    instance = f"{request.url.scheme}://{request.url.netloc}"
    return sf_json({"access_token": token, "instance_url": instance,
                    "id": f"{instance}/id/00D000000000001AAA/005000000000001AAA", "token_type": "Bearer",
                    "issued_at": str(int(time.time() * 1000)), "scope": "web api",
                    "signature": base64.b64encode(hashlib.sha256(token.encode()).digest()).decode()})


def _grant_error(code: str, description: str) -> Response:
    return sf_json({"error": code, "error_description": description}, 400)
