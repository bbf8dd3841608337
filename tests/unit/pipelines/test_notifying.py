"""notify(): every event recorded, each sent where it is wanted, repeats held back, and the job
never blocked or failed by a channel; the outbox outlives the process; send_test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from permeability.config import ProjectConfig
from permeability.errors import InvalidInputError
from permeability.io.notifications.dispatcher import stop_dispatchers, wait_for_deliveries
from permeability.io.notifications.history import History, Published
from permeability.io.notifications.outbox import Outbox
from permeability.monitoring.events import Event
from permeability.notifications_config import NotificationParams
from permeability.pipelines.base import job_context
from permeability.pipelines.notifying import notify, send_test, start_dispatcher
from permeability.settings import Settings
from tests.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Certificates,
    black_hole,
    eventually,
    free_port,
    make_certificates,
    smtp_server,
    webhook_server,
)

REPO = Path(__file__).resolve().parents[3]
DRIFT = Event(kind="drift", severity="warning", subject="1.3", figures={"version": "1.3"})
COVERAGE = Event(kind="coverage", severity="info", subject="1.3", figures={"coverage": 0.8})
FAILED = Event(
    kind="job_failed", severity="critical", subject="nightly", figures={"job": "nightly"}
)
FAST_RETRY = {"attempts": 3, "first_backoff_seconds": 0.05, "factor": 2.0}


@pytest.fixture(autouse=True)
def _no_dispatcher_left() -> Iterator[None]:
    yield
    stop_dispatchers(timeout=2.0)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def config_with(*channels: dict[str, Any], **section: Any) -> ProjectConfig:
    notifications = {"channels": list(channels), "retry": FAST_RETRY, **section}
    return ProjectConfig(notifications=NotificationParams.model_validate(notifications))


def hook(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "url": url, "timeout": 1.0, **extra}


def mail(port: int, certificates: Certificates, **extra: Any) -> dict[str, Any]:
    return {
        "name": "lab-mail", "kind": "email", "host": "127.0.0.1", "port": port,
        "sender": "lab@example.org", "to": ["qa@example.org"], "ca_file": str(certificates.ca_file),
        "username_env": "LAB_SMTP_USER", "password_env": "LAB_SMTP_PASSWORD", "timeout": 2.0,
        **extra,
    }  # fmt: skip


def publish(settings: Settings, config: ProjectConfig, events: list[Event]) -> float:
    """notify() inside a job, as a pipeline calls it; how long the call took."""
    with job_context("evaluate", settings, config=config) as context:
        started = time.monotonic()
        notify(context, events)
        return time.monotonic() - started


def test_each_event_is_recorded_and_sent_where_wanted(
    settings: Settings, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("LAB_SMTP_PASSWORD", SMTP_PASSWORD)
    with smtp_server(certificates) as (port, mailbox), webhook_server() as server:
        config = config_with(
            mail(port, certificates, events=["drift", "job_failed"]),
            hook("teams", server.url, format="teams", min_severity="warning"),
            language="en",
        )
        publish(settings, config, [DRIFT, COVERAGE, FAILED])
        assert wait_for_deliveries() == 0

    subjects = sorted(m["Subject"].strip() for m in mailbox.messages)
    assert subjects == [
        "[permeability] Critical: Scheduled job nightly failed",
        "[permeability] Warning: Drift in the data of model 1.3",
    ]
    cards = [r.body["attachments"][0]["content"]["body"][0]["text"] for r in server.requests]
    assert sorted(cards) == [
        "Critical: Scheduled job nightly failed",
        "Warning: Drift in the data of model 1.3",
    ]
    entries = History(settings.paths.notifications).entries()
    assert [e.event.kind for e in entries] == ["drift", "coverage", "job_failed"]
    delivered = {e.event.kind: sorted((s.channel, s.status) for s in e.deliveries) for e in entries}
    assert delivered == {
        "drift": [("lab-mail", "delivered"), ("teams", "delivered")],
        "coverage": [],
        "job_failed": [("lab-mail", "delivered"), ("teams", "delivered")],
    }
    log = (settings.paths.logs / "evaluate.log").read_text(encoding="utf-8")
    assert "notification coverage (info) '1.3': no channel wants it" in log
    assert "notification drift (warning) '1.3': queued for lab-mail, teams" in log


def test_the_same_finding_is_not_sent_again_within_the_repeat_window(settings: Settings) -> None:
    with webhook_server() as server:
        config = config_with(hook("hook", server.url), repeat_after_hours=24)
        publish(settings, config, [DRIFT])
        later = DRIFT.model_copy(update={"run_id": "next-night", "occurred_at": datetime.now(UTC)})
        publish(settings, config, [later, later])
        assert wait_for_deliveries() == 0
        assert len(server.requests) == 1

        entries = History(settings.paths.notifications).entries()
        assert [e.suppressed is None for e in entries] == [True, False, False]
        assert entries[1].suppressed is not None
        assert entries[1].suppressed.startswith(f"repeat of {entries[0].id} published ")
        assert "within repeat_after_hours=24" in entries[1].suppressed

        publish(settings, config_with(hook("hook", server.url), repeat_after_hours=0), [DRIFT])
        assert wait_for_deliveries() == 0
        assert len(server.requests) == 2


def test_a_finding_older_than_the_window_is_sent_again(settings: Settings) -> None:
    History(settings.paths.notifications).append(
        Published(at=datetime.now(UTC) - timedelta(hours=25), event=DRIFT, channels=("hook",))
    )
    with webhook_server() as server:
        publish(settings, config_with(hook("hook", server.url), repeat_after_hours=24), [DRIFT])
        assert wait_for_deliveries() == 0
        assert len(server.requests) == 1


def test_unreachable_channels_do_not_hold_the_job(settings: Settings) -> None:
    with black_hole() as silent:
        config = config_with(
            hook("silent", f"http://127.0.0.1:{silent}/", timeout=5.0),
            hook("absent", f"http://127.0.0.1:{free_port()}/"),
            exit_wait_seconds=0.4,
        )
        took = publish(settings, config, [DRIFT, FAILED])
        assert took < 0.5

        started = time.monotonic()
        left = wait_for_deliveries()  # what the process does at exit
        assert time.monotonic() - started < 0.4 + 0.3
    assert left >= 2  # the silent channel's two are still in their first 5-second attempt
    outbox = Outbox(settings.paths.notifications)
    assert outbox.count("silent") == 2


def test_a_notification_problem_is_logged_never_raised(settings: Settings) -> None:
    settings.paths.root.mkdir(parents=True)
    settings.paths.notifications.write_text("a file where the folder should be", encoding="utf-8")
    config = config_with(hook("hook", "http://127.0.0.1:9/"))
    publish(settings, config, [DRIFT])  # does not raise
    log = (settings.paths.logs / "evaluate.log").read_text(encoding="utf-8")
    assert "notifications: 1 event(s) could not be published" in log


def test_no_events_is_nothing_to_do(settings: Settings) -> None:
    publish(settings, config_with(hook("hook", "http://127.0.0.1:9/")), [])
    assert not settings.paths.notifications.exists()


def run_notifying_process(home: Path, config: Path) -> subprocess.CompletedProcess[str]:
    script = (
        "from permeability.monitoring.events import Event\n"
        "from permeability.pipelines.base import job_context\n"
        "from permeability.pipelines.notifying import notify\n"
        "from permeability.settings import get_settings\n"
        "with job_context('evaluate', get_settings()) as context:\n"
        "    notify(context, [Event(kind='drift', severity='warning', subject='1.3')])\n"
    )
    env = {**os.environ, "PERMEABILITY_HOME": str(home), "PERMEABILITY_CONFIG_FILE": str(config)}
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip


def write_config(path: Path, port: int, **section: Any) -> Path:
    channel = hook("hook", f"http://127.0.0.1:{port}/hook")
    notifications = {"channels": [channel], "retry": {**FAST_RETRY, "first_backoff_seconds": 0.2}}
    path.write_text(yaml.safe_dump({"notifications": {**notifications, **section}}))
    return path


def test_a_finished_command_waits_for_its_delivery_even_through_a_retry(
    settings: Settings, tmp_path: Path
) -> None:
    with webhook_server([503]) as server:
        config = write_config(tmp_path / "c.yaml", server.port, exit_wait_seconds=5)
        run_notifying_process(settings.paths.root, config)
        assert len(server.requests) == 2  # the failure, then the retry 0.2 s later
    assert Outbox(settings.paths.notifications).count("hook") == 0


def test_the_outbox_outlives_the_process_and_the_next_dispatcher_sends_it(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path / "c.yaml", port, exit_wait_seconds=0)
    process = run_notifying_process(settings.paths.root, config)
    assert "notification drift (warning) '1.3': queued for hook" in process.stderr
    assert Outbox(settings.paths.notifications).count("hook") == 1

    with webhook_server(port=port) as server:
        from permeability.config import load_config

        dispatcher = start_dispatcher(settings, load_config(config))
        assert dispatcher is not None
        assert eventually(lambda: len(server.requests) == 1)
    assert server.requests[0].body["event"]["subject"] == "1.3"
    assert eventually(lambda: Outbox(settings.paths.notifications).count("hook") == 0)
    (entry,) = History(settings.paths.notifications).entries()
    assert [(s.channel, s.status) for s in entry.deliveries] == [("hook", "delivered")]


def test_start_dispatcher_without_channels_is_none(settings: Settings) -> None:
    assert start_dispatcher(settings, ProjectConfig()) is None


def test_send_test_reaches_every_channel_whatever_it_filters(
    settings: Settings, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("LAB_SMTP_PASSWORD", SMTP_PASSWORD)
    with smtp_server(certificates) as (port, mailbox), webhook_server() as server:
        config = config_with(
            mail(port, certificates, events=["drift"], min_severity="critical"),
            hook("slack", server.url, format="slack", events=["promoted"]),
            hook("absent", f"http://127.0.0.1:{free_port()}/"),
        )
        results = send_test(settings, config)

    assert [(r.channel, r.kind, r.ok) for r in results] == [
        ("lab-mail", "email", True),
        ("slack", "webhook/slack", True),
        ("absent", "webhook/json", False),
    ]
    assert results[2].error is not None
    assert results[2].error.startswith("ConnectError")
    assert mailbox.messages[0]["Subject"].strip() == (
        "[permeability] Información: Mensaje de prueba de permeability al canal lab-mail"
    )
    assert "lab-mail" in mailbox.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert server.requests[0].body["text"].startswith(":information_source: Información")
    entries = History(settings.paths.notifications).entries()
    assert {e.event.kind for e in entries} == {"test"}
    assert sorted((e.event.subject, e.deliveries[0].status) for e in entries) == [
        ("absent", "failed"),
        ("lab-mail", "delivered"),
        ("slack", "delivered"),
    ]


def test_send_test_without_channels_says_how_to_configure_them(settings: Settings) -> None:
    with pytest.raises(InvalidInputError, match="no notification channels are configured"):
        send_test(settings, ProjectConfig())
