"""The dispatcher against real servers: retries with backoff, giving up, channels that never
answer, deliveries owed by other processes, and two dispatchers on one outbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from permeability.io.notifications.dispatcher import Dispatcher, dispatcher_for
from permeability.io.notifications.history import Delivered, History, Published
from permeability.io.notifications.links import Links
from permeability.io.notifications.outbox import Delivery, Outbox
from permeability.monitoring.events import Event
from permeability.notifications_config import NotificationParams
from tests.notification_servers import black_hole, eventually, webhook_server
from tests.ports import free_port

LINKS = Links(mlflow_ui=None, page=None)
EVENT = Event(kind="promoted", severity="info", subject="1.4", figures={"version": "1.4"})


def params(*hooks: tuple[str, str], **retry: Any) -> NotificationParams:
    policy = {"attempts": 4, "first_backoff_seconds": 0.05, "factor": 2.0, **retry}
    channels = [
        {"name": name, "kind": "webhook", "url": url, "timeout": 1.0} for name, url in hooks
    ]
    return NotificationParams.model_validate({"channels": channels, "retry": policy})


def queue(folder: Path, *channels: str, event: Event = EVENT) -> list[Delivery]:
    """What a publisher leaves: a history line and one outbox file per channel."""
    now = datetime.now(UTC)
    record = Published(at=now, event=event, channels=channels)
    deliveries = [
        Delivery(
            publication=record.id, channel=name, event=event, enqueued_at=now, next_attempt_at=now
        )
        for name in channels
    ]
    for delivery in deliveries:
        Outbox(folder).put(delivery)
    History(folder).append(record)
    return deliveries


def states(folder: Path) -> dict[str, tuple[str, int]]:
    (entry,) = History(folder).entries()
    return {s.channel: (s.status, s.attempts) for s in entry.deliveries}


def test_a_channel_failing_twice_is_delivered_once_on_the_third_attempt(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with webhook_server([503, 503]) as server:
        dispatcher = dispatcher_for(folder, params(("hook", server.url)), LINKS, logs)
        dispatcher.submit(queue(folder, "hook"))
        assert dispatcher.wait(5.0) == 0
        time.sleep(0.3)  # nothing more arrives after the success
    assert len(server.requests) == 3
    assert states(folder) == {"hook": ("delivered", 3)}
    retries = [
        r for r in History(folder).records() if isinstance(r, Delivered) and r.status == "retrying"
    ]
    assert [(r.attempts, r.error) for r in retries] == [
        (1, "HTTP 503 no: try later"),
        (2, "HTTP 503 no: try later"),
    ]
    assert Outbox(folder).count("hook") == 0
    log = (logs / "notifications.log").read_text(encoding="utf-8")
    assert "channel hook: promoted '1.4' attempt 1 of 4 failed: HTTP 503" in log
    assert "channel hook: promoted '1.4' attempt 2 of 4 failed: HTTP 503" in log
    assert "channel hook: delivered promoted '1.4' (attempt 3" in log
    assert "T0KEN" not in log


def test_a_permanent_failure_is_given_up_at_once(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with webhook_server([404]) as server:
        dispatcher = dispatcher_for(folder, params(("hook", server.url)), LINKS, logs)
        dispatcher.submit(queue(folder, "hook"))
        assert dispatcher.wait(5.0) == 0
    assert len(server.requests) == 1
    assert states(folder) == {"hook": ("failed", 1)}
    log = (logs / "notifications.log").read_text(encoding="utf-8")
    assert "not delivered, given up cannot succeed: HTTP 404" in log


def test_retries_stop_after_the_configured_attempts(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with webhook_server([503] * 10) as server:
        dispatcher = dispatcher_for(folder, params(("hook", server.url), attempts=3), LINKS, logs)
        dispatcher.submit(queue(folder, "hook"))
        assert dispatcher.wait(5.0) == 0
    assert len(server.requests) == 3
    assert states(folder) == {"hook": ("failed", 3)}
    assert "given up after 3 attempt(s)" in (logs / "notifications.log").read_text(encoding="utf-8")


def test_no_retry_is_scheduled_past_the_total_time(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with webhook_server([503]) as server:
        slow = params(("hook", server.url), first_backoff_seconds=30, max_total_seconds=10)
        dispatcher = dispatcher_for(folder, slow, LINKS, logs)
        dispatcher.submit(queue(folder, "hook"))
        assert dispatcher.wait(5.0) == 0
    assert states(folder) == {"hook": ("failed", 1)}


def test_silent_and_absent_channels_neither_block_nor_delay_the_others(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with black_hole() as silent, webhook_server() as server:
        config = params(
            ("silent", f"http://127.0.0.1:{silent}/"),
            ("absent", f"http://127.0.0.1:{free_port()}/"),
            ("good", server.url),
            first_backoff_seconds=60,
        )
        dispatcher = dispatcher_for(folder, config, LINKS, logs)
        deliveries = queue(folder, "silent", "absent", "good")
        started = time.monotonic()
        dispatcher.submit(deliveries)
        assert time.monotonic() - started < 0.05
        assert eventually(lambda: len(server.requests) == 1, timeout=0.5)

        waited = time.monotonic()
        assert dispatcher.wait(0.3) >= 1  # the silent one is still being attempted
        assert time.monotonic() - waited < 0.6
        assert eventually(lambda: states(folder)["silent"] == ("retrying", 1), timeout=3.0)
    assert states(folder) == {
        "silent": ("retrying", 1),
        "absent": ("retrying", 1),
        "good": ("delivered", 1),
    }
    assert Outbox(folder).count("silent") == 1
    assert Outbox(folder).count("absent") == 1
    assert dispatcher.wait(0.0) == 0  # both are due again only in a minute


def test_deliveries_left_by_another_process_are_sent_by_a_new_dispatcher(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    queue(folder, "hook")  # written, never attempted: the writer is gone
    with webhook_server() as server:
        dispatcher_for(folder, params(("hook", server.url)), LINKS, logs)
        assert eventually(lambda: len(server.requests) == 1)
        assert eventually(lambda: states(folder) == {"hook": ("delivered", 1)})


def test_two_dispatchers_on_one_outbox_send_each_delivery_once(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    with webhook_server() as server:
        config = params(("hook", server.url))
        for n in range(20):
            queue(folder, "hook", event=EVENT.model_copy(update={"subject": f"v{n}"}))
        first = Dispatcher(folder, config, LINKS, logs).start()
        second = Dispatcher(folder, config, LINKS, logs).start()
        try:
            assert eventually(lambda: Outbox(folder).count("hook") == 0)
            time.sleep(0.2)
        finally:
            first.stop()
            second.stop()
    subjects = sorted(r.body["event"]["subject"] for r in server.requests)
    assert subjects == sorted(f"v{n}" for n in range(20))


def test_a_changed_configuration_gets_a_new_dispatcher(tmp_path: Path) -> None:
    folder, logs = tmp_path / "notifications", tmp_path / "logs"
    one = dispatcher_for(folder, params(("a", "http://127.0.0.1:9/")), LINKS, logs)
    assert dispatcher_for(folder, params(("a", "http://127.0.0.1:9/")), LINKS, logs) is one
    two = dispatcher_for(folder, params(("b", "http://127.0.0.1:9/")), LINKS, logs)
    assert two is not one
    assert one.stopping
    assert not two.stopping
