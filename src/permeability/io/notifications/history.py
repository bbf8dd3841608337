"""``events.jsonl``: every published event, and what became of each of its deliveries.

One JSON line per fact, appended and never rewritten, so a crash can cut at most the line being
written (a cut line is skipped and logged when read): a ``published`` line for each event
(whether or not a channel wanted it, and why it was not sent when it was a repeat), then a
``delivery`` line for each attempt's outcome on a channel (``delivered``, ``retrying``,
``failed``). :meth:`History.entries` folds them into one entry per event with the state of
each channel, for the page, the CLI and the tests; :meth:`History.last_sent` answers whether an
event with the same key went out recently (the repeat rule, ``repeat_after_hours``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from permeability.monitoring.events import Event

HISTORY_FILE: Final = "events.jsonl"
_LOCK_FILE: Final = ".events.lock"
_logger = logging.getLogger("permeability.notifications")
_in_process = threading.Lock()

DeliveryStatus = Literal["delivered", "retrying", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Published(_Record):
    """An event as it was published: the channels it was queued for, or why it was not sent."""

    type: Literal["published"] = "published"
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    at: datetime
    event: Event
    channels: tuple[str, ...]
    suppressed: str | None = None


class Delivered(_Record):
    """The outcome of one attempt on one channel (``retrying``: another attempt is scheduled)."""

    type: Literal["delivery"] = "delivery"
    id: str = Field(description="The publication's id.")
    channel: str
    at: datetime
    status: DeliveryStatus
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None


_LINE: TypeAdapter[Published | Delivered] = TypeAdapter(
    Annotated[Published | Delivered, Field(discriminator="type")]
)


class ChannelState(BaseModel):
    """Where one channel's delivery of an event stands (``queued``: no attempt finished yet)."""

    model_config = ConfigDict(frozen=True)

    channel: str
    status: DeliveryStatus | Literal["queued"]
    attempts: int = 0
    at: datetime | None = None
    error: str | None = None


class HistoryEntry(BaseModel):
    """One published event and every channel's state."""

    model_config = ConfigDict(frozen=True)

    id: str
    at: datetime
    event: Event
    suppressed: str | None
    deliveries: tuple[ChannelState, ...]


class History:
    """The record of one storage root (``<home>/notifications/events.jsonl``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / HISTORY_FILE

    def append(self, record: Published | Delivered) -> None:
        """Add one line in one write (appends of whole lines do not interleave)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = (record.model_dump_json() + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the record for a read-then-append (the repeat check), across threads and
        processes; held for milliseconds."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _in_process, (self.folder / _LOCK_FILE).open("a") as handle:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: the thread lock only
                yield
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def records(self) -> Iterator[Published | Delivered]:
        """Every line in order; a line that does not parse (cut by a crash) is logged and skipped."""
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield _LINE.validate_json(line)
                except ValidationError as exc:
                    _logger.warning(
                        "%s line %d is not a record, skipped: %s",
                        self.path,
                        number,
                        exc.errors()[0]["msg"],
                    )

    def last_sent(self, key: str) -> Published | None:
        """The latest publication of an event with this key that was not itself a repeat."""
        latest: Published | None = None
        for record in self.records():
            if (
                isinstance(record, Published)
                and record.suppressed is None
                and record.event.key == key
                and (latest is None or record.at >= latest.at)
            ):
                latest = record
        return latest

    def entries(self, limit: int | None = None) -> list[HistoryEntry]:
        """Published events, oldest first (the last ``limit`` when given), each with the latest
        state of every channel it was queued for."""
        published: dict[str, Published] = {}
        states: dict[str, dict[str, ChannelState]] = {}
        for record in self.records():
            if isinstance(record, Published):
                published[record.id] = record
                states[record.id] = {
                    name: ChannelState(channel=name, status="queued") for name in record.channels
                }
            else:
                states.setdefault(record.id, {})[record.channel] = ChannelState(
                    channel=record.channel,
                    status=record.status,
                    attempts=record.attempts,
                    at=record.at,
                    error=record.error,
                )
        chosen = list(published.values())
        if limit is not None:
            chosen = chosen[-limit:] if limit > 0 else []
        return [
            HistoryEntry(
                id=p.id,
                at=p.at,
                event=p.event,
                suppressed=p.suppressed,
                deliveries=tuple(states.get(p.id, {}).values()),
            )
            for p in chosen
        ]
