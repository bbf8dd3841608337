"""Publish events: the one call every stage makes to tell people what it found.

``notify(context, events)`` records each event in ``events.jsonl``, queues it in the outbox of
each channel that wants it (its kinds and least severity) unless the same finding (its
``key``) went out less than ``repeat_after_hours`` ago, and hands the queue to this process's
dispatcher, which sends in the background. It returns in milliseconds whatever the channels
do, and never raises: a notification problem is logged, the job goes on. A command waits for
its deliveries at exit for at most ``exit_wait_seconds``; long-lived processes (the scheduler,
the services) call :func:`start_dispatcher` at start so that what earlier commands left in the
outbox is sent.

``send_test`` is ``permeability notify --test``: a ``test`` event on every channel, now and
in this thread (no filter, no repeat rule, one attempt each), with each channel's outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from permeability.config import ProjectConfig
from permeability.errors import InvalidInputError
from permeability.io.notifications.delivery import DeliveryError
from permeability.io.notifications.dispatcher import (
    Dispatcher,
    dispatcher_for,
    register_exit_wait,
)
from permeability.io.notifications.history import Delivered, History, Published
from permeability.io.notifications.links import Links
from permeability.io.notifications.outbox import Delivery, Outbox
from permeability.io.notifications.sending import Channel, deliver, wants
from permeability.monitoring.events import Event
from permeability.notifications_config import NotificationParams
from permeability.pipelines.base import JobContext, job_context
from permeability.settings import Settings

NO_CHANNELS = (
    "no notification channels are configured: add notifications.channels to the YAML file "
    "named by PERMEABILITY_CONFIG_FILE, e.g. - {name: lab-mail, kind: email, host: "
    "smtp.lab.local, sender: lab@example.org, to: [qa@example.org]} (docs/monitoring.md)"
)


class ChannelResult(BaseModel):
    """How one channel took the test message."""

    model_config = ConfigDict(frozen=True)

    channel: str
    kind: str
    ok: bool
    error: str | None = None
    seconds: float


def notify(context: JobContext, events: Sequence[Event]) -> None:
    """Record ``events`` and send them on the channels that want them, in the background.

    Never raises and never waits for a channel: failures are logged in the job's log."""
    if not events:
        return
    try:
        publish(context.settings, context.config.notifications, events, context.logger)
    except Exception:
        context.logger.exception("notifications: %d event(s) could not be published", len(events))


def publish(
    settings: Settings,
    params: NotificationParams,
    events: Sequence[Event],
    logger: logging.Logger,
) -> list[Delivery]:
    """Record, filter and queue ``events``; start the dispatcher for what was queued."""
    folder = settings.paths.notifications
    history, outbox = History(folder), Outbox(folder)
    queued: list[Delivery] = []
    with history.locked():
        for event in events:
            now = datetime.now(UTC)
            repeat = _repeat_of(history, event, params, now)
            channels = () if repeat else tuple(c.name for c in params.channels if wants(c, event))
            record = Published(at=now, event=event, channels=channels, suppressed=repeat)
            for name in channels:  # the outbox first: a crash now repeats, never loses
                delivery = Delivery(
                    publication=record.id,
                    channel=name,
                    event=event,
                    enqueued_at=now,
                    next_attempt_at=now,
                )
                outbox.put(delivery)
                queued.append(delivery)
            history.append(record)
            logger.info(
                "notification %s (%s) %r: %s",
                event.kind,
                event.severity,
                event.subject,
                repeat
                or (f"queued for {', '.join(channels)}" if channels else "no channel wants it"),
            )
    if queued:
        dispatcher_for(folder, params, Links.from_settings(settings), settings.paths.logs).submit(
            queued
        )
        register_exit_wait()
    return queued


def start_dispatcher(settings: Settings, config: ProjectConfig) -> Dispatcher | None:
    """Send what earlier processes left in the outbox, and keep retrying, for as long as this
    process lives (the scheduler and the services call it at start); ``None`` without channels."""
    params = config.notifications
    if not params.channels:
        return None
    paths = settings.paths.ensure()
    return dispatcher_for(paths.notifications, params, Links.from_settings(settings), paths.logs)


def send_test(settings: Settings, config: ProjectConfig) -> list[ChannelResult]:
    """A ``test`` event on every channel, each attempted once and at the same time; their
    outcomes, in the configured order (also recorded in ``events.jsonl``)."""
    params = config.notifications
    if not params.channels:
        raise InvalidInputError(NO_CHANNELS)
    with job_context("notify", settings, config=config) as context:
        links = Links.from_settings(settings)
        history = History(context.paths.notifications)

        def one(channel: Channel) -> ChannelResult:
            return _test_channel(channel, params, links, history, context.logger)

        with ThreadPoolExecutor(max_workers=len(params.channels)) as pool:
            return list(pool.map(one, params.channels))


def _test_channel(
    channel: Channel,
    params: NotificationParams,
    links: Links,
    history: History,
    logger: logging.Logger,
) -> ChannelResult:
    event = Event(
        kind="test", severity="info", subject=channel.name, figures={"channel": channel.name}
    )
    record = Published(at=datetime.now(UTC), event=event, channels=(channel.name,))
    history.append(record)
    kind = channel.kind if channel.kind == "email" else f"webhook/{channel.format}"
    started = time.monotonic()
    error: str | None = None
    try:
        deliver(channel, event, params.language, links)
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # report it on its channel, whatever it is
        error = f"{type(exc).__name__}: {exc}"
    seconds = round(time.monotonic() - started, 3)
    history.append(
        Delivered(
            id=record.id,
            channel=channel.name,
            at=datetime.now(UTC),
            status="failed" if error else "delivered",
            attempts=1,
            error=error,
        )
    )
    if error:
        logger.error("test message on channel %s failed: %s", channel.name, error)
    else:
        logger.info("test message delivered on channel %s (%.2fs)", channel.name, seconds)
    return ChannelResult(
        channel=channel.name, kind=kind, ok=error is None, error=error, seconds=seconds
    )


def _repeat_of(
    history: History, event: Event, params: NotificationParams, now: datetime
) -> str | None:
    """Why ``event`` is not sent again (the same key went out recently), or ``None``."""
    if params.repeat_after_hours <= 0:
        return None
    last = history.last_sent(event.key)
    if last is None or now - last.at >= timedelta(hours=params.repeat_after_hours):
        return None
    return (
        f"repeat of {last.id} published {last.at:%Y-%m-%d %H:%M} UTC "
        f"(within repeat_after_hours={params.repeat_after_hours:g})"
    )
