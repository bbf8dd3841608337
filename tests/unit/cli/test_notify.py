"""``permeability notify --test`` against real servers, and its refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from permeability.io.notifications.dispatcher import stop_dispatchers
from tests.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    free_port,
    make_certificates,
    smtp_server,
    webhook_server,
)
from tests.unit.cli.cli_support import invoke, last_json


@pytest.fixture(autouse=True)
def _no_dispatcher_left() -> Iterator[None]:
    yield
    stop_dispatchers(timeout=2.0)


def use_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, channels: list[dict[str, Any]]
) -> None:
    path = tmp_path / "config.yaml"
    notifications = {"language": "en", "channels": channels}
    path.write_text(yaml.safe_dump({"notifications": notifications}), encoding="utf-8")
    monkeypatch.setenv("PERMEABILITY_CONFIG_FILE", str(path))


def test_every_channel_gets_the_test_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    certificates = make_certificates(tmp_path / "tls")
    monkeypatch.setenv("LAB_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("LAB_SMTP_PASSWORD", SMTP_PASSWORD)
    with smtp_server(certificates) as (port, mailbox), webhook_server() as server:
        monkeypatch.setenv("TEAMS_WEBHOOK_URL", server.url)
        use_config(monkeypatch, tmp_path, [
            {"name": "lab-mail", "kind": "email", "host": "127.0.0.1", "port": port,
             "sender": "lab@example.org", "to": ["qa@example.org"], "events": ["drift"],
             "username_env": "LAB_SMTP_USER", "password_env": "LAB_SMTP_PASSWORD",
             "ca_file": str(certificates.ca_file)},
            {"name": "teams", "kind": "webhook", "format": "teams", "url_env": "TEAMS_WEBHOOK_URL",
             "min_severity": "critical"},
        ])  # fmt: skip
        result = invoke("notify", "--test", "--json")

    assert result.exit_code == 0, result.output
    payload = last_json(result.stdout)
    assert payload["ok"] is True
    assert [(c["channel"], c["kind"], c["ok"]) for c in payload["channels"]] == [
        ("lab-mail", "email", True),
        ("teams", "webhook/teams", True),
    ]
    # A long subject is folded onto the next line; readers drop the fold's leading space.
    assert mailbox.messages[0]["Subject"].strip() == (
        "[permeability] Info: Test message from permeability to channel lab-mail"
    )
    card = server.requests[0].body["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Info: Test message from permeability to channel teams"


def test_a_failing_channel_exits_1_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with webhook_server([404]) as server:
        use_config(monkeypatch, tmp_path, [
            {"name": "good", "kind": "webhook", "url": f"http://127.0.0.1:{server.port}/ok"},
            {"name": "gone", "kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/",
             "timeout": 1},
        ])  # fmt: skip
        result = invoke("notify", "--test")

    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("good (webhook/json): FAILED after ")
    assert lines[1].startswith("gone (webhook/json): FAILED after ")
    errors = result.stderr.strip().splitlines()
    assert "error: channel good: HTTP 404 no: try later" in errors
    assert any(e.startswith("error: channel gone: ConnectError") for e in errors)


def test_all_delivered_prints_one_line_per_channel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with webhook_server() as server:
        use_config(monkeypatch, tmp_path, [{"name": "hook", "kind": "webhook", "url": server.url}])
        result = invoke("notify", "--test")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("hook (webhook/json): delivered in ")
    assert len(server.requests) == 1


def test_no_channels_is_an_error_saying_how_to_configure_them() -> None:
    result = invoke("notify", "--test")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no notification channels are configured")
    assert "notifications.channels" in result.stderr
    assert "PERMEABILITY_CONFIG_FILE" in result.stderr


def test_without_test_there_is_nothing_to_do() -> None:
    result = invoke("notify")
    assert result.exit_code == 1
    assert "--test sends a test message on every configured channel" in result.stderr


def test_notify_is_listed_in_help() -> None:
    assert "notify" in invoke("--help").stdout
