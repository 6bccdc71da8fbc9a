"""HTTP plumbing of the console: sessions from cookies, CSRF checks, roles, security headers.

Every POST carries the session's CSRF token in a ``csrf_token`` field (the login form uses a
double-submit cookie instead, as there is no session yet); a POST without the right token is
refused with 403 before any handler runs. Handlers are plain functions run in a worker thread, as
the store and the rules engine are synchronous.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from crmsync.console.accounts import Session, find_session
from crmsync.store import Store

SESSION_COOKIE = "crmsync_console"
LOGIN_CSRF_COOKIE = "crmsync_console_login"
MAX_FORM_BYTES = 1 << 20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class Req:
    """What a handler sees: the request, its form (POST) and the signed-in session."""

    request: Request
    form: FormData
    session: Session | None

    @property
    def user(self) -> str:
        return self.session.user.username if self.session else "-"

    def query(self, name: str, default: str = "") -> str:
        return str(self.request.query_params.get(name, default))


Handler = Callable[[Req], Response]


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


def forbidden(message: str) -> Response:
    return HTMLResponse(f"<!doctype html><title>Refused</title><main><h1>Refused</h1><p>{message}</p></main>",
                        status_code=403)


def endpoint(store: Store, handler: Handler, *, public: bool = False, admin: bool = False,
             login_form: bool = False) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        started = time.perf_counter()
        token = request.cookies.get(SESSION_COOKIE)
        session = await run_in_threadpool(find_session, store, token) if token else None
        if session is None and not public:
            if request.method == "GET":
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return forbidden("Your session has ended; sign in again.")
        form = FormData()
        if request.method == "POST":
            if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
                return forbidden("The form is too large.")
            form = await request.form()
            sent = str(form.get("csrf_token") or "")
            if login_form:
                expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
            else:
                expected = session.csrf_token if session else ""
            if not expected or not hmac.compare_digest(sent, expected):
                return forbidden("The form's security token is missing or wrong (CSRF check). Reload the page "
                                 "and try again.")
            if admin and (session is None or not session.user.is_admin):
                return forbidden("This needs the admin role; your account can only read.")
        response = await run_in_threadpool(handler, Req(request, form, session))
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        # what the page cost the server (session, queries, render), for bench_console
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    return run


def new_token() -> str:
    return secrets.token_urlsafe(32)


def safe_next(value: Any) -> str:
    """Only same-site paths after login (no open redirect)."""
    text = str(value or "/")
    return text if text.startswith("/") and not text.startswith("//") else "/"


def redirect(path: str, message: str | None = None) -> RedirectResponse:
    """303 to ``path`` (which may end in ``#anchor``), with a message shown once."""
    base, _, anchor = path.partition("#")
    if message:
        base += ("&" if "?" in base else "?") + "msg=" + quote(message)
    return RedirectResponse(base + (f"#{anchor}" if anchor else ""), status_code=303)
