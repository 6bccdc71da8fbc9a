from __future__ import annotations

from pathlib import Path

import pytest

from crmsync.settings import SettingsError, load_settings

GOOD = """\
store:
  url: sqlite:///x.db
connections:
  - name: sf
    kind: salesforce
    base_url: https://127.0.0.1:8443
    credentials:
      password: hunter2-very-secret
    objects: [deals, owners]
    schedule: {interval_seconds: 60}
  - name: hs
    kind: hubspot
    credentials: {access_token: pat-na1-abcdef}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crmsync.yaml"
    path.write_text(text)
    return path


def test_good_file_loads_with_secrets_masked(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={})
    sf = settings.connection("sf")
    assert sf.kind == "salesforce"
    assert sf.schedule.interval_seconds == 60
    assert sf.secret("password") == "hunter2-very-secret"
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()
    assert set(settings.secret_values()) == {"hunter2-very-secret", "pat-na1-abcdef"}


def test_env_overrides_nested_keys_and_list_items(tmp_path: Path) -> None:
    env = {
        "CRMSYNC__STORE__URL": "postgresql://postgres:pw-in-url@127.0.0.1:5432/x",
        "CRMSYNC__CONNECTIONS__1__CREDENTIALS__ACCESS_TOKEN": "from-env-token",
        "UNRELATED": "1",
    }
    settings = load_settings(write(tmp_path, GOOD), environ=env)
    assert settings.store.url == "postgresql+psycopg://postgres:pw-in-url@127.0.0.1:5432/x"
    assert settings.connection("hs").secret("access_token") == "from-env-token"
    assert "pw-in-url" in set(settings.secret_values())


def test_default_store_url_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.store.url == "sqlite:///crmsync.db"
    assert settings.connections == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("kind: salesforce", "kind: zoho"), ["crmsync.yaml:5", "connections.0.kind", "'salesforce'"]),
        (GOOD.replace("interval_seconds: 60", "interval_seconds: soon"),
         ["crmsync.yaml:10", "connections.0.schedule.interval_seconds", "integer"]),
        (GOOD.replace("url: sqlite:///x.db", "url: mysql://x"), ["crmsync.yaml:2", "store.url", "expected sqlite"]),
        (GOOD + "  - name: sf\n    kind: pipedrive\n", ["duplicate names", "sf"]),
        (GOOD.replace("    objects:", "    colour: red\n    objects:"), ["connections.0.colour", "Extra inputs"]),
        ("store: [unclosed\n", ["not valid YAML"]),
        ("- a list\n", ["expected a mapping"]),
    ],
)
def test_bad_config_names_file_line_key_and_expectation(tmp_path: Path, text: str, expected: list[str]) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(write(tmp_path, text), environ={})
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert "hunter2" not in message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_unknown_connection_lists_known_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={})
    with pytest.raises(SettingsError, match="configured: sf, hs"):
        settings.connection("nope")


def test_a_key_given_twice_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "crmsync.yaml"
    path.write_text("store:\n  url: sqlite:///a.db\nworker:\n  health_port: 1\nstore:\n  url: sqlite:///b.db\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert f"{path}:5" in str(info.value) and "duplicate key 'store' (first given on line 1)" in str(info.value)


def test_relative_paths_mean_beside_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project" / "conf"
    project.mkdir(parents=True)
    config = project / "crmsync.yaml"
    config.write_text("rules_dir: ../rules\nconnections:\n  - name: sf\n    kind: salesforce\n"
                      "    ca_bundle: certs/ca.pem\n  - name: hs\n    kind: hubspot\n    ca_bundle: /etc/ca.pem\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("..") / "project" / "conf" / "crmsync.yaml")
    assert settings.rules_dir == (tmp_path / "project" / "rules").resolve()
    assert settings.connection("sf").ca_bundle == project.resolve() / "certs" / "ca.pem"
    assert settings.connection("hs").ca_bundle == Path("/etc/ca.pem")


def test_rules_default_to_rules_beside_the_file_and_to_config_rules_without_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(write(tmp_path, GOOD)).rules_dir == tmp_path.resolve() / "rules"
    assert load_settings(environ={"CRMSYNC_CONFIG": str(tmp_path / "absent.yaml")}).rules_dir == Path("config/rules")
