"""Training slots: a machine-wide cap on trainings running at once, shared by every process.

A training can take gigabytes; five at once on two cores took the training service to
15.9 GB. The cap must hold across the training service (its worker processes) and any
``permeability train`` started from a shell, so it lives on disk, next to the model store:
``models/.slots/slot-<i>.lock``, one file per slot. Holding a slot is holding an exclusive
``flock`` on its file; the kernel drops it when the holder dies, so a killed training never
keeps its slot. The holder writes who it is (label, pid, host, start) into the file, which is
how any process can list the trainings running right now.

The files are never deleted (no lock-file dance is needed) and a process that configured a
smaller cap simply uses fewer of them. POSIX only, as the model store's reservations.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SLOTS_DIR = ".slots"


@dataclass(frozen=True)
class SlotHolder:
    """Who holds a slot: written into the slot file while held."""

    label: str
    pid: int
    host: str
    started_at: str

    @classmethod
    def this_process(cls, label: str) -> SlotHolder:
        return cls(label, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat())


class Slot:
    """One held slot; :meth:`release` (or the holder's death) frees it."""

    def __init__(self, fd: int, index: int, holder: SlotHolder) -> None:
        self.fd: int | None = fd
        self.index = index
        self.holder = holder

    def release(self) -> None:
        """Clear the holder's record, then drop the lock (idempotent)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class TrainingSlots:
    """``capacity`` slots under ``folder``; :meth:`try_acquire` takes a free one or none."""

    def __init__(self, folder: Path, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.folder = folder
        self.capacity = capacity

    @classmethod
    def for_models(cls, models_root: Path, capacity: int) -> TrainingSlots:
        return cls(models_root / SLOTS_DIR, capacity)

    def _path(self, index: int) -> Path:
        return self.folder / f"slot-{index}.lock"

    def try_acquire(self, holder: SlotHolder) -> Slot | None:
        """A free slot, locked and stamped with ``holder``; None when all are taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for index in range(self.capacity):
            fd = os.open(self._path(index), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(asdict(holder)).encode("utf-8"), 0)
            except BaseException:
                os.close(fd)  # closing drops the lock too
                raise
            return Slot(fd, index, holder)
        return None

    def running(self) -> list[SlotHolder]:
        """Holders of the slots that are held right now, in any process, oldest first.

        A slot is probed with a shared, non-blocking lock: taken means free (a dead holder's
        stale record is ignored). The probe is released at once; an acquirer that tried in
        that instant just tries again at its next poll.
        """
        holders: list[SlotHolder] = []
        if not self.folder.is_dir():
            return holders
        for path in sorted(self.folder.glob("slot-*.lock")):
            holder = _held_by(path)
            if holder is not None:
                holders.append(holder)
        return sorted(holders, key=lambda h: h.started_at)


def _held_by(path: Path) -> SlotHolder | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _parse_holder(os.pread(fd, 4096, 0))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _parse_holder(raw: bytes) -> SlotHolder:
    """The holder's record; a holder caught between locking and writing is 'unknown'."""
    try:
        fields: dict[str, Any] = json.loads(raw.decode("utf-8"))
        return SlotHolder(
            label=str(fields["label"]),
            pid=int(fields["pid"]),
            host=str(fields["host"]),
            started_at=str(fields["started_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return SlotHolder(label="(unknown)", pid=0, host="", started_at="")
