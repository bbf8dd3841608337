"""Trainings take turns: at most ``training.max_concurrent`` at once, the rest wait in line.

Why: each training reads the whole feature store and fits models; five at once on a 2-core
machine took the service to 15.9 GB and ran no faster than one after the other. The cap is
held by :class:`~permeability.io.training_slots.TrainingSlots` (file locks under the model
store), so the training service and ``permeability train`` shells share it.

Inside one process, waiting requests form a FIFO line of at most ``training.max_queued``:
only the head of the line tries for a slot, so requests start in arrival order. Slots freed
by another process are not announced, so the head polls (every ``poll_seconds``); slots
freed in this process wake it at once. A request that finds the line full is refused with
:class:`TrainingQueueFullError` (the API answers 503 with Retry-After). Across processes the
order is whoever polls first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from permeability.config import TrainingParams
from permeability.errors import PermeabilityError
from permeability.io.training_slots import Slot, SlotHolder, TrainingSlots

#: Retry-After before this process has seen a training finish (the seed data trains in
#: seconds, real `auto` trainings in about a minute).
_UNKNOWN_DURATION_SECONDS = 60.0


class TrainingQueueFullError(PermeabilityError):
    """Every slot is busy and the line is full; ``retry_after`` is a guess in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunningTraining(BaseModel):
    version: str = Field(description="The label being trained.")
    started_at: str = Field(description="When it got its slot (UTC, ISO 8601).")
    pid: int = Field(description="Process training it (the service or a CLI).")
    host: str


class QueuedTraining(BaseModel):
    version: str
    position: int = Field(description="1 = next to start.")
    queued_at: str = Field(description="When the request arrived (UTC, ISO 8601).")


class TrainingsView(BaseModel):
    """What ``GET /trainings`` shows: the cap, who runs, who waits in this process's line."""

    max_concurrent: int
    max_queued: int
    running: list[RunningTraining] = Field(
        description="Trainings holding a slot now, in any process on this machine."
    )
    queued: list[QueuedTraining] = Field(description="This service's line, next first.")


@dataclass(eq=False)
class _Ticket:
    label: str
    queued_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class TrainingQueue:
    """FIFO line in front of the machine's training slots (thread-safe)."""

    def __init__(self, slots: TrainingSlots, *, max_queued: int, poll_seconds: float = 0.5):
        self.slots = slots
        self.max_queued = max_queued
        self.poll_seconds = poll_seconds
        self._condition = threading.Condition()
        self._line: deque[_Ticket] = deque()
        self._durations: deque[float] = deque(maxlen=10)

    @classmethod
    def for_models(cls, models_root: Path, params: TrainingParams) -> TrainingQueue:
        slots = TrainingSlots.for_models(models_root, params.max_concurrent)
        return cls(slots, max_queued=params.max_queued)

    @contextmanager
    def turn(self, label: str, *, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Wait for a slot in arrival order, hold it for the block, then wake the next.

        ``on_wait`` is called once, with a sentence saying who runs, if the caller must wait.
        """
        slot = self._wait_for_slot(_Ticket(label), on_wait)
        started = time.monotonic()
        try:
            yield
        finally:
            slot.release()
            with self._condition:
                self._durations.append(time.monotonic() - started)
                self._condition.notify_all()

    def _wait_for_slot(self, ticket: _Ticket, on_wait: Callable[[str], None] | None) -> Slot:
        with self._condition:
            if not self._line:
                slot = self.slots.try_acquire(SlotHolder.this_process(ticket.label))
                if slot is not None:
                    return slot
            if len(self._line) >= self.max_queued:
                raise self._full()
            self._line.append(ticket)
            try:
                if on_wait is not None:
                    on_wait(self._waiting_sentence(ticket))
                while True:
                    if self._line[0] is ticket:
                        slot = self.slots.try_acquire(SlotHolder.this_process(ticket.label))
                        if slot is not None:
                            return slot
                    self._condition.wait(self.poll_seconds)
            finally:
                self._line.remove(ticket)  # served, or gave up (interrupted)
                self._condition.notify_all()

    def _full(self) -> TrainingQueueFullError:
        retry_after = max(1, math.ceil(self._typical_duration()))
        return TrainingQueueFullError(
            f"{self.slots.capacity} training(s) running and {len(self._line)} waiting, the "
            f"most this service queues (training.max_queued={self.max_queued}); retry in "
            f"about {retry_after} s",
            retry_after,
        )

    def _typical_duration(self) -> float:
        if not self._durations:
            return _UNKNOWN_DURATION_SECONDS
        return sum(self._durations) / len(self._durations)

    def _waiting_sentence(self, ticket: _Ticket) -> str:
        running = ", ".join(h.label for h in self.slots.running()) or "another process"
        return (
            f"version {ticket.label} waits for a training slot "
            f"(training.max_concurrent={self.slots.capacity}; running: {running}; "
            f"position {len(self._line)} in this process's line)"
        )

    def view(self) -> TrainingsView:
        with self._condition:
            line = list(self._line)
        return TrainingsView(
            max_concurrent=self.slots.capacity,
            max_queued=self.max_queued,
            running=[
                RunningTraining(version=h.label, started_at=h.started_at, pid=h.pid, host=h.host)
                for h in self.slots.running()
            ],
            queued=[
                QueuedTraining(version=t.label, position=i, queued_at=t.queued_at)
                for i, t in enumerate(line, start=1)
            ],
        )
