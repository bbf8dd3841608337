"""The outbox: one file per delivery still owed to a channel, until it is sent or given up.

``<home>/notifications/outbox/<channel>/<time>-<id>.json``, written durably before anything is
attempted, so a job that exits (or dies) before a slow channel answered loses nothing: the next
process with a dispatcher (the scheduler, a service, the next command that notifies) sends it.

Two processes may drain the same outbox: a delivery is *claimed* by renaming its file to
``...json.claimed-<pid>`` (a rename succeeds for one of them only), and only its claimant
sends it. A claim whose process is gone, or older than :data:`STALE_CLAIM_SECONDS`, goes back
to the queue. Delivery is therefore at least once: a process killed between the server's
answer and the removal of the claim sends that message again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from permeability.io.durable import write_text_durably
from permeability.monitoring.events import Event

#: Longer than any send can take (a channel's timeout is at most 120 s).
STALE_CLAIM_SECONDS: Final = 900.0
_CLAIM: Final = ".claimed-"
_logger = logging.getLogger("permeability.notifications")


class Delivery(BaseModel):
    """An event owed to one channel, with its attempts so far."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    publication: str = Field(description="The id of the event's line in events.jsonl.")
    channel: str
    event: Event
    enqueued_at: datetime
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.enqueued_at:%Y%m%dT%H%M%S%f}-{self.id}.json"


@dataclass(frozen=True)
class Claim:
    """A delivery this process holds (its file renamed to the claim's path)."""

    delivery: Delivery
    path: Path
    queued_path: Path


class Outbox:
    """The pending deliveries of one storage root, one folder per channel."""

    def __init__(self, folder: Path) -> None:
        self.root = folder / "outbox"

    def put(self, delivery: Delivery) -> None:
        folder = self.root / delivery.channel
        folder.mkdir(parents=True, exist_ok=True)
        write_text_durably(folder / delivery.file_name, delivery.model_dump_json())

    def pending(self, channel: str) -> list[Delivery]:
        """The channel's queued deliveries, oldest first; an unreadable file is set aside
        (renamed ``.bad``) and logged."""
        folder = self.root / channel
        if not folder.is_dir():
            return []
        found: list[Delivery] = []
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(Delivery.model_validate_json(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # claimed by another process meanwhile
            except (ValidationError, UnicodeDecodeError) as exc:
                _logger.error("outbox file %s is unreadable, set aside as .bad: %s", path, exc)
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name + ".bad"))
        return found

    def count(self, channel: str) -> int:
        """Deliveries owed to ``channel`` (queued or being attempted)."""
        folder = self.root / channel
        if not folder.is_dir():
            return 0
        return sum(1 for p in folder.iterdir() if p.name.endswith(".json") or _CLAIM in p.name)

    def claim(self, delivery: Delivery) -> Claim | None:
        """Take the delivery for this process; ``None`` when another one took it first."""
        queued = self.root / delivery.channel / delivery.file_name
        claimed = queued.with_name(f"{queued.name}{_CLAIM}{os.getpid()}")
        try:
            queued.rename(claimed)
        except FileNotFoundError:
            return None
        # The claim's age is its own, not the queued file's: other processes judge staleness by it.
        with contextlib.suppress(OSError):
            os.utime(claimed)
        return Claim(delivery, claimed, queued)

    def requeue(self, claim: Claim, delivery: Delivery) -> None:
        """Put the delivery back, updated (a failed attempt and when to try next)."""
        write_text_durably(claim.queued_path, delivery.model_dump_json())
        claim.path.unlink(missing_ok=True)

    def remove(self, claim: Claim) -> None:
        """The delivery is settled (sent, or given up and recorded)."""
        claim.path.unlink(missing_ok=True)

    def recover_stale_claims(self, channel: str) -> int:
        """Requeue claims left by dead processes (or too old to be alive); how many."""
        folder = self.root / channel
        if not folder.is_dir():
            return 0
        recovered = 0
        for path in folder.glob(f"*.json{_CLAIM}*"):
            name, _, pid = path.name.rpartition(_CLAIM)
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if _process_alive(pid) and age < STALE_CLAIM_SECONDS:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.rename(path.with_name(name))
                recovered += 1
                _logger.warning("outbox %s: requeued %s, claimed by process %s", channel, name, pid)
        return recovered


def _process_alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
