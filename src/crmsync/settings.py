"""Typed settings: ``config/crmsync.yaml`` overlaid by ``CRMSYNC__*`` environment variables.

Credentials are ``SecretStr``: they print as ``**********`` and ``secret_values()`` hands them
to the log redactor. A bad file fails with ``SettingsError`` naming the file, the key path and
what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from crmsync.yaml_loader import load_yaml

ConnectionKind = Literal["salesforce", "hubspot", "pipedrive", "meteroid", "gong", "outreach", "apollo", "salesloft"]
#: connection kinds that are CRMs (synced into the record tables, rules applied); the others are
#: billing (meteroid), revenue intelligence (gong) and sales-engagement tools, each with its own job
CRM_KINDS = frozenset({"salesforce", "hubspot", "pipedrive"})
CALL_KINDS = frozenset({"gong"})  # call systems: the worker pulls their calls on their schedule
DEFAULT_CONFIG_PATH = Path("config/crmsync.yaml")
DEFAULT_STORE_URL = "sqlite:///crmsync.db"
ENV_PREFIX = "CRMSYNC__"


class SettingsError(ValueError):
    """A configuration mistake, with where it is and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleSettings(_Strict):
    interval_seconds: int | None = Field(default=300, ge=5)
    cron: str | None = None  # crontab expression; wins over the interval when set
    delete_sweep_cron: str = "0 3 * * *"
    # a sweep that would mark more than this share of an object's stored records deleted stops and
    # waits for `crmsync sweep --confirm` (a CRM answering with an empty or partial id list, a
    # permission change, a wrong base URL: never a reason to delete what the store holds)
    delete_sweep_max_share: float = Field(default=0.1, gt=0, le=1)
    rules_after_sync: bool = True


class BudgetSettings(_Strict):
    daily_share: float = Field(default=0.5, gt=0, le=1)  # share of the CRM's daily quota crmsync may use
    reserve_for_push: int = Field(default=500, ge=0)  # calls kept back for business writes


class ConnectionSettings(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    kind: ConnectionKind
    base_url: str | None = None  # override, e.g. the sandbox or a proxy
    ca_bundle: Path | None = None  # a CA file for TLS (sandbox, corporate proxies)
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    objects: list[str] = Field(default_factory=lambda: ["owners", "pipelines", "stages", "accounts", "deals"])
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    # object -> {source field: canonical field or "extra.<name>"}
    field_mappings: dict[str, dict[str, str]] = Field(default_factory=dict)
    writable_fields: dict[str, list[str]] = Field(default_factory=dict)  # object -> fields crmsync may write
    options: dict[str, Any] = Field(default_factory=dict)  # connector-specific knobs
    enabled: bool = True

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("options")
    @classmethod
    def _valid_engine_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The sync engine's own knobs (the connectors check theirs)."""
        for name, whole in (("commit_pages", True), ("commit_seconds", False)):
            if name not in value:
                continue
            number = value[name]
            kinds = int if whole else int | float
            if isinstance(number, bool) or not isinstance(number, kinds) or number <= 0:
                wanted = "a whole number" if whole else "a number"
                raise ValueError(f"options.{name}: expected {wanted} above 0, got {number!r}")
        return value

    @property
    def is_crm(self) -> bool:
        return self.kind in CRM_KINDS

    def secret(self, key: str) -> str | None:
        value = self.credentials.get(key)
        return value.get_secret_value() if value is not None else None


class StoreSettings(_Strict):
    url: str = DEFAULT_STORE_URL

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if value.startswith("postgresql"):
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                url = make_url(value)
            except (ArgumentError, ValueError):
                raise ValueError("not a valid database URL (expected postgresql+psycopg://USER@HOST:PORT/DB)") from None
            if not url.host:
                raise ValueError("the database URL names no host (expected postgresql+psycopg://USER@HOST:PORT/DB)")
            if url.port is not None and not 0 < url.port < 65536:
                raise ValueError(f"port {url.port} is out of range (1-65535)")
        return value


def check_http_url(value: str) -> str:
    """A base URL the connectors can call: ``http(s)://host[:port][/path]``; the error says what is wrong."""
    from urllib.parse import urlsplit

    text = value.strip()
    if text != value or any(ch.isspace() for ch in text):
        raise ValueError("contains whitespace")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:  # e.g. a port that is not a number or out of range
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme + ':' if parts.scheme else '(none)'} is not http: or https: "
                         "(expected e.g. https://api.example.com)")
    if not parts.netloc or not parts.hostname:
        raise ValueError("names no host (expected e.g. https://api.example.com)")
    if port == 0:
        raise ValueError("port 0 is not a port to call")
    return text


class MirrorSettings(_Strict):
    name: str
    source: str  # connection name
    target: str
    direction: Literal["one_way", "two_way"] = "one_way"
    stage_map: dict[str, str] = Field(default_factory=dict)
    field_map: dict[str, str] = Field(default_factory=dict)  # canonical field -> canonical field
    owner_map: dict[str, str] = Field(default_factory=dict)
    field_owner: dict[str, Literal["source", "target"]] = Field(default_factory=dict)


class WorkerSettings(_Strict):
    http_port: int = 9464
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    hygiene_digest_cron: str = "0 7 * * *"
    billing_sync_cron: str = "30 * * * *"


class BillingSettings(_Strict):
    connection: str | None = None  # the meteroid connection's name
    price_master: Literal["billing", "report_only"] = "report_only"
    product_map: dict[str, str] = Field(default_factory=dict)  # CRM product code -> billing plan/component
    amount_tolerance: str = "0.01"
    discount_approval_threshold: str = "20"


class Settings(_Strict):
    store: StoreSettings = Field(default_factory=StoreSettings)
    connections: list[ConnectionSettings] = Field(default_factory=list)
    mirrors: list[MirrorSettings] = Field(default_factory=list)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    # relative to the config file's directory when read from a file (default there: ``rules/``)
    rules_dir: Path = Path("config/rules")
    source_path: Path | None = Field(default=None, exclude=True)

    def connection(self, name: str) -> ConnectionSettings:
        for conn in self.connections:
            if conn.name == name:
                return conn
        known = ", ".join(c.name for c in self.connections) or "none"
        raise SettingsError(f"no connection named {name!r} (configured: {known})")

    def secret_values(self) -> Iterator[str]:
        for conn in self.connections:
            for value in conn.credentials.values():
                if value.get_secret_value():
                    yield value.get_secret_value()
        for value in self.worker.webhook_secrets.values():
            if value.get_secret_value():
                yield value.get_secret_value()
        yield from _url_passwords(self.store.url)


def _url_passwords(url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the store, not here
        return
    if password:
        yield str(password)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``CRMSYNC__STORE__URL=...`` -> {"store": {"url": ...}}; list items by index: ``CONNECTIONS__0__BASE_URL``."""
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        node: Any = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts:
            node[parts[-1]] = value
    return tree


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, dict) and all(k.isdigit() for k in override):
        items = list(base)
        for index, value in override.items():
            i = int(index)
            if i < len(items):
                items[i] = _merge(items[i], value)
            else:
                raise SettingsError(f"environment: connections index {i} is past the end of the list")
        return items
    return override


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a key path in YAML text (composed nodes keep their marks)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if key_node.value == part:
                    found = value_node
                    line = key_node.start_mark.line + 1
                    break
            if found is None:
                return line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_settings(path: Path | str | None = None, *, environ: dict[str, str] | None = None) -> Settings:
    """Read the YAML file (missing default file = defaults), overlay env vars, validate."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None
    config_path = Path(path) if path is not None else Path(environ.get("CRMSYNC_CONFIG", DEFAULT_CONFIG_PATH))
    text = ""
    data: Any = {}
    if config_path.exists():
        try:
            text = config_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{config_path}: not UTF-8 text (byte at offset {exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise SettingsError(f"{config_path}: cannot read ({exc.strerror or exc})") from None
        try:
            data = load_yaml(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise SettingsError(f"{config_path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"{config_path}: expected a mapping at the top level, got {type(data).__name__}")
    elif explicit:
        raise SettingsError(f"{config_path}: no such file")
    data = _merge(data, _env_overrides(environ))
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key_path = ".".join(str(p) for p in loc)
            line = _line_of(text, loc) if text else None
            where = f"{config_path}:{line}" if line else str(config_path)
            problems.append(f"{where}: {key_path}: {error['msg']}")
        raise SettingsError("invalid configuration\n  " + "\n  ".join(problems)) from None
    names = [c.name for c in settings.connections]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SettingsError(f"{config_path}: connections: duplicate names {sorted(duplicates)}")
    settings.source_path = config_path if config_path.exists() else None
    if settings.source_path is not None:
        _resolve_paths(settings, settings.source_path.parent, rules_dir_given="rules_dir" in data)
    return settings


def _resolve_paths(settings: Settings, base: Path, *, rules_dir_given: bool) -> None:
    """Relative paths in a config file mean "beside the file", as dbt and Meltano read theirs, so a
    config works from any working directory. Without ``rules_dir`` the rules are ``rules/`` beside it."""
    base = base.resolve()
    settings.rules_dir = Path(os.path.normpath(base / (settings.rules_dir if rules_dir_given else Path("rules"))))
    for conn in settings.connections:
        if conn.ca_bundle is not None and not conn.ca_bundle.is_absolute():
            conn.ca_bundle = Path(os.path.normpath(base / conn.ca_bundle))
