"""Console accounts and sessions.

Passwords are hashed with argon2id (argon2-cffi defaults); the store never sees a password.
A session cookie carries 32 random bytes; the store keeps only their sha256, with the session's
CSRF token and expiry, so a leaked database does not yield live sessions and signing out ends
the session server-side.

Login throttling: each failed attempt for a user doubles a lock-out (1 s after the third miss,
up to 15 minutes); a successful login resets it. Per-address throttling is ``LoginThrottle``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from crmsync.model import now_utc
from crmsync.store import Store
from crmsync.store import tables as t

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
SESSION_TTL = dt.timedelta(hours=12)
FREE_FAILURES = 3
MAX_LOCK = dt.timedelta(minutes=15)
MIN_PASSWORD = 10

_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user mistake about accounts (bad name, short password, duplicate user)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: dt.datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(store: Store, username: str, password: str, role: str) -> User:
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise AccountError("username: 1 to 64 characters, no spaces")
    if role not in ROLES:
        raise AccountError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    try:
        with store.engine.begin() as conn:
            new_id = conn.execute(insert(t.console_users).values(
                username=username, password_hash=_hasher.hash(password), role=role, created_at=now_utc(),
                failed_logins=0).returning(t.console_users.c.id)).scalar_one()
    except IntegrityError:
        raise AccountError(f"username: {username!r} already exists") from None
    return User(int(new_id), username, role)  # type: ignore[arg-type]


def set_password(store: Store, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    with store.engine.begin() as conn:
        n = conn.execute(update(t.console_users).where(t.console_users.c.username == username)
                         .values(password_hash=_hasher.hash(password), failed_logins=0, locked_until=None)).rowcount
    if not n:
        raise AccountError(f"username: no user {username!r}")


def list_users(store: Store) -> list[User]:
    c = t.console_users.c
    with store.engine.connect() as conn:
        return [User(i, u, r) for i, u, r in conn.execute(select(c.id, c.username, c.role).order_by(c.username))]


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User | None
    error: str | None = None


def authenticate(store: Store, username: str, password: str, *, now: dt.datetime | None = None) -> LoginResult:
    """Check a password; the same message for an unknown user and a wrong password."""
    now = now or now_utc()
    c = t.console_users.c
    with store.engine.begin() as conn:
        row = conn.execute(select(c.id, c.username, c.role, c.password_hash, c.failed_logins, c.locked_until)
                           .where(c.username == username.strip())).first()
        if row is None:
            _hasher.hash(password)  # spend the same time as a real check
            return LoginResult(None, "wrong username or password")
        if row.locked_until is not None and row.locked_until > now:
            wait = int((row.locked_until - now).total_seconds()) + 1
            return LoginResult(None, f"too many failed attempts; try again in {wait} s")
        try:
            _hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            failures = row.failed_logins + 1
            locked = None
            if failures >= FREE_FAILURES:
                locked = now + min(MAX_LOCK, dt.timedelta(seconds=2 ** (failures - FREE_FAILURES)))
            conn.execute(update(t.console_users).where(c.id == row.id)
                         .values(failed_logins=failures, locked_until=locked))
            return LoginResult(None, "wrong username or password")
        values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        conn.execute(update(t.console_users).where(c.id == row.id).values(**values))
    return LoginResult(User(row.id, row.username, row.role))


def open_session(store: Store, user: User) -> tuple[str, Session]:
    """A new session; returns the cookie token (shown to the browser only) and the session."""
    token = secrets.token_urlsafe(32)
    now = now_utc()
    session = Session(user, secrets.token_urlsafe(32), now + SESSION_TTL)
    with store.engine.begin() as conn:
        conn.execute(delete(t.console_sessions).where(t.console_sessions.c.expires_at < now))
        conn.execute(insert(t.console_sessions).values(token_hash=_token_hash(token), user_id=user.id,
                                                       csrf_token=session.csrf_token, created_at=now,
                                                       expires_at=session.expires_at))
    return token, session


def find_session(store: Store, token: str) -> Session | None:
    s, u = t.console_sessions.c, t.console_users.c
    stmt = (select(s.csrf_token, s.expires_at, u.id, u.username, u.role)
            .join(t.console_users, u.id == s.user_id).where(s.token_hash == _token_hash(token)))
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None or row.expires_at <= now_utc():
        return None
    return Session(User(row.id, row.username, row.role), row.csrf_token, row.expires_at)


def close_session(store: Store, token: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(t.console_sessions).where(t.console_sessions.c.token_hash == _token_hash(token)))


class LoginThrottle:
    """At most ``limit`` login attempts per client address per ``window`` seconds (in memory)."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(address, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True
