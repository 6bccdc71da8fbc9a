"""Logging in: a given session id, or OAuth (password / client_credentials) at ``base_url``."""

from __future__ import annotations

from crmsync.connectors.base import AuthError, FatalError
from crmsync.connectors.salesforce.transport import TOKEN_PATH, Login, SalesforceSession, error_code
from crmsync.settings import ConnectionSettings

DEFAULT_LOGIN_URL = "https://login.salesforce.com"


def identity_user(identity: object) -> str | None:
    """The user id at the end of the OAuth ``id`` (identity URL ``…/id/<org id>/<user id>``)."""
    if not isinstance(identity, str):
        return None
    tail = identity.rstrip("/").rsplit("/", 1)[-1]
    return tail if len(tail) in (15, 18) and tail.startswith("005") and tail.isalnum() else None


def oauth_login(conn: ConnectionSettings) -> Login | None:
    """A login function for the configured OAuth grant, or None when a session id is configured."""
    client_id, client_secret = conn.secret("client_id"), conn.secret("client_secret")
    username, password = conn.secret("username"), conn.secret("password")
    if username and password:
        form = {"grant_type": "password", "client_id": client_id or "", "client_secret": client_secret or "",
                "username": username, "password": password + (conn.secret("security_token") or "")}
    elif client_id and client_secret:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    else:
        return None
    token_url = (conn.base_url or DEFAULT_LOGIN_URL).rstrip("/") + TOKEN_PATH

    def login(session: SalesforceSession) -> tuple[str, str]:
        response = session.post(token_url, data=form, headers={"Accept": "application/json"})
        if response.status_code != 200:
            code, description = error_code(response)
            raise AuthError(f"Salesforce login failed: {response.status_code} {code}: {description}".strip(),
                            status=response.status_code)
        body = response.json()
        token, instance = body.get("access_token"), body.get("instance_url")
        if not token or not instance:
            raise AuthError("Salesforce login answered without access_token/instance_url")
        session.user_id = identity_user(body.get("id"))
        return str(token), str(instance)

    return login


def connect(conn: ConnectionSettings, session: SalesforceSession) -> None:
    """Authenticate ``session`` per the connection's credentials (raises AuthError/FatalError)."""
    login = oauth_login(conn)
    if login is not None:
        session.authenticate(login)
        return
    token, instance = conn.secret("session_id"), conn.secret("instance_url") or conn.options.get("instance_url")
    if not token or not instance:
        raise FatalError(f"connection {conn.name}: configure username+password(+client_id/secret), "
                         "client_id+client_secret, or session_id+instance_url")
    session.authenticate(None, token, str(instance))
