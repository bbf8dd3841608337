"""Replaying the spools of dead processes into the prediction log, exactly once.

A process of the inference service spools every answered prediction before answering
(:mod:`permeability.io.predictions.spool`) and deletes its spool once a commit covers it. A
spool whose process is gone (killed, crashed, or stopped while the store was unwritable)
still holds rows the log may lack; :func:`replay_spools` finds such spools, and for each:

1. takes its lock file's ``flock`` without waiting: refused while its process lives (it holds
   the lock for its whole life) or while another process replays it;
2. asks the Delta table which version the spool's transaction id last committed;
3. reads its segments in order (a torn last record is dropped: it was never answered) and
   writes each one's records above that version in one commit, with the same transaction id
   and the version of its newest record (so the dead process's own commits, and a replay's,
   are never written again), then deletes the spool. A crash anywhere in between leaves the
   spool for the next replay, which again writes only what the table lacks.

It runs at the start of the service (before it reports ready) and after each flush of every
running process, so a worker that died is replayed by its siblings without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from permeability.io.predictions.rows import UnstorableValueError
from permeability.io.predictions.schema import (
    DATE_COLUMNS,
    concat,
    conform,
    new_row_buffer,
)
from permeability.io.predictions.spool import (
    NEW_LOCK_SUFFIX,
    TABLE,
    SpoolRecord,
    decode_row,
    decode_table,
    fcntl,
    lock_path,
    read_segment,
    segment_paths,
    spool_ids,
    transaction_id,
)
from permeability.io.predictions.writer import Transaction

#: A lock file still being created after this long belongs to a process that died starting
#: (a fresh one may be between its creation and its lock: left alone).
STALE_NEW_LOCK_S: Final = 60.0

logger = logging.getLogger("permeability.prediction_log")


@dataclass
class ReplayCounts:
    rows: int = 0
    """Rows written into the log."""
    dropped: int = 0
    """Spooled rows that the log's schema cannot store (spooled by another release)."""


@dataclass(frozen=True)
class Orphan:
    """The spool of a process that is gone (its lock is held by the caller of :func:`claim`)."""

    directory: Path
    app_id: str

    @property
    def transaction_id(self) -> str:
        return transaction_id(self.app_id)

    def segments(self) -> list[Path]:
        return segment_paths(self.directory, self.app_id)

    def remove(self) -> None:
        for path in self.segments():
            path.unlink(missing_ok=True)
        lock_path(self.directory, self.app_id).unlink(missing_ok=True)


def replay_spools(
    directory: Path,
    own: str | None,
    *,
    committed: Callable[[str], int],
    write: Callable[[pa.Table, Transaction], None],
) -> ReplayCounts:
    """Replay every spool in ``directory`` but ``own`` whose process is gone (module
    docstring). ``committed(transaction id)`` is the table's version for it (0: none),
    ``write`` makes one commit. Never raises: a spool that fails is logged and kept."""
    counts = ReplayCounts()
    for app_id in orphan_candidates(directory, own):
        try:
            with claim(directory, app_id) as orphan:
                if orphan is not None:  # None: its process is alive
                    _replay(orphan, committed, write, counts)
        except Exception as exc:
            logger.error(
                "prediction log: replaying the spool %s failed (kept for the next try): %s: %s",
                app_id,
                type(exc).__name__,
                exc,
            )
    return counts


def orphan_candidates(directory: Path, own: str | None) -> list[str]:
    """Ids of the spools in ``directory`` other than ``own`` (alive or not: see :func:`claim`).
    Also removes lock files left half-created by a process that died while starting."""
    if not directory.is_dir():
        return []
    stale = time.time() - STALE_NEW_LOCK_S
    for entry in directory.glob(f"*{NEW_LOCK_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < stale and _unlocked(entry):
                entry.unlink(missing_ok=True)
    return sorted(spool_ids(directory) - {own or ""})


@contextlib.contextmanager
def claim(directory: Path, app_id: str) -> Iterator[Orphan | None]:
    """The spool ``app_id`` if its process is gone (None while it lives, or while another
    process replays it); its lock is held until the block ends."""
    assert fcntl is not None  # noqa: S101 (the log has no spool without fcntl)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(lock_path(directory, app_id), flags, 0o600)
    except FileNotFoundError:  # the folder went away
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield Orphan(directory, app_id)
    finally:
        os.close(fd)


def _unlocked(path: Path) -> bool:
    assert fcntl is not None  # noqa: S101
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _replay(
    orphan: Orphan,
    committed: Callable[[str], int],
    write: Callable[[pa.Table, Transaction], None],
    counts: ReplayCounts,
) -> None:
    """One commit per segment (memory bounded by a segment, one flush interval of rows);
    the versions grow with the segments, so a replay cut short resumes where it stopped."""
    segments = orphan.segments()
    done = committed(orphan.transaction_id) if segments else 0
    records = written = already = 0
    for path in segments:
        spooled = read_segment(path)
        fresh = [r for r in spooled if r.seq > done]
        records += len(spooled)
        already += len(spooled) - len(fresh)
        table, dropped = records_table(fresh)
        if table.num_rows:
            done = max(r.seq for r in fresh)
            write(table, (orphan.transaction_id, done))
        written += table.num_rows
        counts.rows += table.num_rows
        counts.dropped += dropped
    if records:
        logger.warning(
            "prediction log: replayed %d rows from the spool of a process that ended before "
            "writing them (%s; %d of its %d records were in the log already)",
            written,
            orphan.app_id,
            already,
            records,
        )
    orphan.remove()


def records_table(records: Sequence[SpoolRecord]) -> tuple[pa.Table, int]:
    """The rows of spooled records as one table of the log's schema, and how many rows were
    dropped because that schema cannot store them (logged)."""
    rows = new_row_buffer()
    tables = []
    dropped = 0
    for record in records:
        if record.kind == TABLE:
            tables.append(conform(decode_table(record.payload)))
            continue
        try:
            rows.append(decode_row(record.payload, DATE_COLUMNS))
        except UnstorableValueError as exc:
            dropped += 1
            logger.error("prediction log dropped a spooled row that cannot be stored: %s", exc)
    if len(rows):
        tables.insert(0, rows.to_table())
    return concat(tables), dropped
