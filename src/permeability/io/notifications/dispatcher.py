"""Deliver the outbox in the background: a daemon thread per channel, retries with backoff.

One thread per channel, so a black-holed webhook waiting out its timeout never delays the
e-mail. A worker sends what is due in its channel's outbox, then sleeps until the next retry
is due, it is woken (a new delivery), or :data:`POLL_SECONDS` passed (deliveries another
process left behind). Each failure is one log line (no secret in it) and one ``retrying`` or
``failed`` line in the history; nothing here raises into the job that published.

There is one dispatcher per storage root and configuration in a process
(:func:`dispatcher_for`). A command that published waits for its own deliveries at exit, at
most ``exit_wait_seconds`` (:func:`wait_for_deliveries`, registered with :mod:`atexit` by
:func:`register_exit_wait`); what is left stays in the outbox for the next process.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from permeability.io.logs import log_scope
from permeability.io.notifications.delivery import DeliveryError
from permeability.io.notifications.history import Delivered, History
from permeability.io.notifications.links import Links
from permeability.io.notifications.outbox import Claim, Delivery, Outbox
from permeability.io.notifications.sending import Channel, deliver
from permeability.notifications_config import NotificationParams

#: How often an idle worker looks for deliveries left by other processes.
POLL_SECONDS: Final = 30.0
_logger = logging.getLogger("permeability.notifications")


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """The workers of one storage root's channels, and which deliveries this process owes."""

    def __init__(
        self, folder: Path, params: NotificationParams, links: Links, logs_dir: Path
    ) -> None:
        self.folder = folder
        self.params = params
        self.links = links
        self.logs_dir = logs_dir
        self.outbox = Outbox(folder)
        self.history = History(folder)
        self.run_id = uuid.uuid4().hex[:12]
        self._stopping = threading.Event()
        self._owed = threading.Condition()
        #: Deliveries published by this process and not settled: id -> when next due.
        self._mine: dict[str, datetime] = {}
        self._workers = {c.name: _Worker(self, c) for c in params.channels}

    def start(self) -> Dispatcher:
        for worker in self._workers.values():
            worker.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the workers to stop after their current attempt; wait up to ``timeout``."""
        self._stopping.set()
        for worker in self._workers.values():
            worker.wake.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers.values():
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def submit(self, deliveries: Iterable[Delivery]) -> None:
        """Deliveries just written to the outbox by this process: owe them and wake their workers."""
        channels = set()
        with self._owed:
            for delivery in deliveries:
                self._mine[delivery.id] = delivery.next_attempt_at
                channels.add(delivery.channel)
        for name in channels:
            worker = self._workers.get(name)
            if worker is not None:
                worker.wake.set()

    def wait(self, timeout: float) -> int:
        """Wait until every delivery this process published is settled or due only after
        ``timeout`` seconds; how many were still owed by then."""
        deadline = time.monotonic() + timeout
        with self._owed:
            while True:
                left = deadline - time.monotonic()
                horizon = _now() + timedelta(seconds=max(0.0, left))
                owed = sum(1 for due in self._mine.values() if due <= horizon)
                if owed == 0 or left <= 0:
                    return owed
                self._owed.wait(left)

    def settle(self, delivery_id: str, next_due: datetime | None) -> None:
        """A delivery was sent or given up (``None``), or is due again at ``next_due``."""
        with self._owed:
            if delivery_id in self._mine:
                if next_due is None:
                    del self._mine[delivery_id]
                else:
                    self._mine[delivery_id] = next_due
            self._owed.notify_all()


class _Worker(threading.Thread):
    """Drains one channel's outbox until the dispatcher stops."""

    def __init__(self, dispatcher: Dispatcher, channel: Channel) -> None:
        super().__init__(name=f"notify-{channel.name}", daemon=True)
        self.dispatcher = dispatcher
        self.channel = channel
        self.wake = threading.Event()

    def run(self) -> None:
        d = self.dispatcher
        with log_scope("notifications", d.run_id, d.logs_dir):
            while not d.stopping:
                self.wake.clear()
                try:
                    delay = self.drain()
                except Exception:
                    _logger.exception(
                        "channel %s: the outbox could not be drained", self.channel.name
                    )
                    delay = POLL_SECONDS
                self.wake.wait(min(delay, POLL_SECONDS))

    def drain(self) -> float:
        """Attempt every due delivery; seconds until the next one is due."""
        d = self.dispatcher
        d.outbox.recover_stale_claims(self.channel.name)
        next_due: datetime | None = None
        for delivery in d.outbox.pending(self.channel.name):
            if d.stopping:
                break
            due: datetime | None
            if delivery.next_attempt_at > _now():
                due = delivery.next_attempt_at
            else:
                claim = d.outbox.claim(delivery)
                if claim is None:
                    continue
                due = self.attempt(claim)
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        if next_due is None:
            return POLL_SECONDS
        return max(0.0, (next_due - _now()).total_seconds())

    def attempt(self, claim: Claim) -> datetime | None:
        """Send one claimed delivery; when to try it again, or ``None`` once settled."""
        d = self.dispatcher
        delivery = claim.delivery
        event = delivery.event
        attempts = delivery.attempts + 1
        started = time.monotonic()
        try:
            deliver(self.channel, event, d.params.language, d.links)
        except DeliveryError as exc:
            return self._failed(claim, attempts, str(exc), exc.permanent)
        except Exception as exc:  # a bug must not kill the worker; log it like any failure
            _logger.exception("channel %s: unexpected failure", self.channel.name)
            return self._failed(claim, attempts, f"{type(exc).__name__}: {exc}", False)
        d.outbox.remove(claim)
        d.history.append(
            Delivered(
                id=delivery.publication,
                channel=self.channel.name,
                at=_now(),
                status="delivered",
                attempts=attempts,
            )
        )
        _logger.info(
            "channel %s: delivered %s %r (attempt %d, %.2fs)",
            self.channel.name,
            event.kind,
            event.subject,
            attempts,
            time.monotonic() - started,
        )
        d.settle(delivery.id, None)
        return None

    def _failed(self, claim: Claim, attempts: int, reason: str, permanent: bool) -> datetime | None:
        d = self.dispatcher
        delivery = claim.delivery
        policy = d.params.retry
        now = _now()
        next_due = now + timedelta(seconds=policy.backoff(attempts))
        limit = delivery.enqueued_at + timedelta(seconds=policy.max_total_seconds)
        give_up = permanent or attempts >= policy.attempts or next_due > limit
        where = f"channel {self.channel.name}: {delivery.event.kind} {delivery.event.subject!r}"
        if give_up:
            d.outbox.remove(claim)
            why = "cannot succeed" if permanent else f"after {attempts} attempt(s)"
            _logger.error("%s not delivered, given up %s: %s", where, why, reason)
            record = Delivered(
                id=delivery.publication,
                channel=self.channel.name,
                at=now,
                status="failed",
                attempts=attempts,
                error=reason,
            )
            d.history.append(record)
            d.settle(delivery.id, None)
            return None
        d.outbox.requeue(
            claim,
            delivery.model_copy(
                update={"attempts": attempts, "next_attempt_at": next_due, "last_error": reason}
            ),
        )
        _logger.warning(
            "%s attempt %d of %d failed: %s; next in %.1fs",
            where,
            attempts,
            policy.attempts,
            reason,
            (next_due - now).total_seconds(),
        )
        d.history.append(
            Delivered(
                id=delivery.publication,
                channel=self.channel.name,
                at=now,
                status="retrying",
                attempts=attempts,
                error=reason,
                next_attempt_at=next_due,
            )
        )
        d.settle(delivery.id, next_due)
        return next_due


_registry_lock = threading.Lock()
_dispatchers: dict[Path, Dispatcher] = {}
_exit_wait_registered = False


def dispatcher_for(
    folder: Path, params: NotificationParams, links: Links, logs_dir: Path
) -> Dispatcher:
    """This process's running dispatcher for ``folder``, started (or restarted when the
    configuration changed)."""
    with _registry_lock:
        current = _dispatchers.get(folder)
        if current is not None and current.params == params and current.links == links:
            return current
        if current is not None:
            current.stop(timeout=0.0)
        started = Dispatcher(folder, params, links, logs_dir).start()
        _dispatchers[folder] = started
        return started


def stop_dispatchers(timeout: float = 1.0) -> None:
    """Stop every dispatcher of this process (tests; a service shutting down)."""
    with _registry_lock:
        running = list(_dispatchers.values())
        _dispatchers.clear()
    for dispatcher in running:
        dispatcher.stop(timeout=timeout)


def wait_for_deliveries() -> int:
    """Give this process's deliveries up to their ``exit_wait_seconds`` (one deadline for all);
    how many were left to the outbox."""
    with _registry_lock:
        running = list(_dispatchers.values())
    started = time.monotonic()
    left = 0
    for dispatcher in running:
        budget = dispatcher.params.exit_wait_seconds - (time.monotonic() - started)
        owed = dispatcher.wait(max(0.0, budget))
        if owed:
            _logger.warning(
                "%d notification(s) not delivered yet; left in %s for the next process",
                owed,
                dispatcher.outbox.root,
            )
        left += owed
    return left


def register_exit_wait() -> None:
    """Make the process wait for its deliveries at exit (once per process)."""
    global _exit_wait_registered
    with _registry_lock:
        if _exit_wait_registered:
            return
        atexit.register(wait_for_deliveries)
        _exit_wait_registered = True
