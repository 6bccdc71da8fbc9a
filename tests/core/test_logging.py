from __future__ import annotations

import io
import json

import pytest

from crmsync.logging import bind, clear, configure_logging, get_logger


@pytest.fixture(autouse=True)
def _reset_context() -> None:
    clear()


def emit(secrets: list[str], **event: object) -> list[dict[str, object]]:
    stream = io.StringIO()
    configure_logging("json", secrets=secrets, stream=stream)
    get_logger("test").info("something.happened", **event)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_configured_secret_never_appears_anywhere_in_a_line() -> None:
    secret = "00Dxx0000001gPL!AQ4AQFakeSessionToken"
    lines = emit([secret], url=f"https://x/?session={secret}", nested={"list": [f"Bearer {secret}"]},
                 error=ValueError(f"login failed for {secret}"))
    text = json.dumps(lines)
    assert secret not in text
    assert text.count("[REDACTED]") >= 3


def test_secret_named_keys_are_redacted_even_when_unknown() -> None:
    lines = emit([], api_token="tok-123456", headers={"Authorization": "Bearer abcdef"}, count=3)
    assert lines[0]["api_token"] == "[REDACTED]"
    assert lines[0]["headers"] == {"Authorization": "[REDACTED]"}
    assert lines[0]["count"] == 3


def test_context_is_bound_with_contextvars_and_timestamps_are_utc() -> None:
    bind(connection="sf-prod", run_id=42)
    lines = emit([])
    assert lines[0]["connection"] == "sf-prod" and lines[0]["run_id"] == 42
    assert str(lines[0]["timestamp"]).endswith("Z")


def test_console_format_renders_without_json() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)
    get_logger().info("hello.world", n=1)
    assert "hello.world" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue())
