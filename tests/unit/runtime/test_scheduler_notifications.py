"""The scheduler sends what earlier commands left in the notification outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from permeability.io.notifications.dispatcher import stop_dispatchers
from permeability.io.notifications.history import History, Published
from permeability.io.notifications.outbox import Delivery, Outbox
from permeability.monitoring.events import Event
from permeability.runtime.scheduler import run_scheduler
from permeability.settings import Settings
from tests.notification_servers import eventually, webhook_server


@pytest.fixture(autouse=True)
def _no_dispatcher_left() -> Iterator[None]:
    yield
    stop_dispatchers(timeout=2.0)


def test_a_scheduler_run_delivers_the_outbox_left_by_a_command(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "storage", config_file=tmp_path / "config.yaml")
    folder = settings.paths.notifications
    event = Event(kind="promoted", severity="info", subject="1.4")
    now = datetime.now(UTC)
    record = Published(at=now, event=event, channels=("hook",))
    Outbox(folder).put(Delivery(publication=record.id, channel="hook", event=event,
                                enqueued_at=now, next_attempt_at=now))  # fmt: skip
    History(folder).append(record)

    with webhook_server() as server:
        settings.config_file.write_text(  # type: ignore[union-attr]
            yaml.safe_dump({
                "schedule": {"jobs": [{"name": "c", "kind": "compact", "cron": "0 3 * * *"}]},
                "notifications": {"channels": [{"name": "hook", "kind": "webhook", "url": server.url}]},
            }),
            encoding="utf-8",
        )  # fmt: skip
        run_scheduler(settings, once=True)
        assert eventually(lambda: len(server.requests) == 1)
    assert server.requests[0].body["event"]["subject"] == "1.4"
