"""The prediction spool: every answered prediction on the local disk before its answer is sent.

Why: the prediction log (:mod:`permeability.io.predictions.log`) keeps rows in memory for up to
one flush interval (5 s) and then commits them to Delta in one append. A process killed with
``kill -9`` (or by the OOM killer) runs no shutdown code, and issue 13 measured the cost:
10,908 of 51,392 answered predictions (the last ~5 s) never reached the log. So each answer is
also appended here before it is sent, and what a dead process's spool holds is replayed into
the log: by the next start of the service, and by the flushers of the processes still running.

**Layout.** One folder (``<home>/logs/prediction-spool``) shared by the service's processes;
per process, ``<id>.lock``, held with ``flock`` for the process's life (the OS drops the lock
when the process dies, however it dies: that is how a spool is known to be orphaned), and
segments ``<id>.<n>.spool``. A segment is a sequence of records::

    "PS" | kind u8 | 0 | payload length u64 | seq u64 | crc32 u32 | payload

``seq`` numbers the process's records from 1; kind :data:`ROW` is one row as JSON (NaN and
infinities as JSON's ``NaN``/``Infinity`` extensions, dates as ISO text) and :data:`TABLE` is a
scored batch as an Arrow IPC stream; the CRC covers the header before it and the payload.

**Durability (the fsync policy).** A record is written with ONE ``write()`` system call before
the answer leaves, and not fsynced there. What survives the death of a process is what reached
the kernel's page cache, so that is enough for ``kill -9``, the OOM killer or a crash of Python.
A power loss or a kernel crash loses what the kernel had not yet written to the disk: the
segment in use is fsynced (with the folder) when the flusher closes it, once per flush, so
such a failure can lose the answers of the last flush interval (5 s by default), as before.
An fsync per answer would cost more than the answer itself.

**Exactly once.** Every Delta commit that writes spooled rows carries a Delta transaction
identifier: app id :attr:`SpoolWriter.transaction_id`, version = the seq of the newest record
it covers. A segment is deleted only after a commit covering it is confirmed; a replay asks the
table for the dead spool's version and writes only the records above it (again with the
identifier), so a commit that landed just before the crash, or a replay cut short by another
crash, is never written twice.

**Torn records.** A process killed in the middle of a write leaves a partial last record: it
fails its length or CRC check, is dropped with a log line, and was never answered (the answer
waits for the write). A damaged record elsewhere is skipped up to the next valid record, with
the bytes skipped logged as an error.

Needs ``fcntl`` (POSIX); :data:`SPOOL_AVAILABLE` is False elsewhere, and the log then runs
without a spool. The folder must be on a local disk (``flock`` on network file systems is
not to be trusted).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pyarrow as pa
from pydantic_core import from_json, to_json

from permeability.io.durable import fsync_dir

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

SPOOL_AVAILABLE: Final = fcntl is not None
SPOOL_FOLDER: Final = "prediction-spool"
#: Record kinds: one row (JSON), a batch of rows (Arrow IPC stream).
ROW: Final = 1
TABLE: Final = 2
MAGIC: Final = b"PS"
_HEADER: Final = struct.Struct("<2sBxQQ")  # magic, kind, padding, payload length, seq
_CRC: Final = struct.Struct("<I")
HEADER_BYTES: Final = _HEADER.size + _CRC.size
LOCK_SUFFIX: Final = ".lock"
#: A lock file being created (renamed to ``.lock`` once locked).
NEW_LOCK_SUFFIX: Final = ".lock-new"
SEGMENT_SUFFIX: Final = ".spool"
_TRANSACTION_PREFIX: Final = "permeability-prediction-spool-"

logger = logging.getLogger("permeability.prediction_spool")


@dataclass(frozen=True)
class SpoolRecord:
    seq: int
    kind: int
    payload: memoryview


# -- what a record holds ---------------------------------------------------------------------


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One row as JSON (pydantic-core: microseconds; numpy scalars as their Python value)."""
    return to_json(row, fallback=_python_value)


def _python_value(value: Any) -> Any:
    item = getattr(value, "item", None)
    if item is None:
        raise TypeError(f"a {type(value).__name__} cannot be spooled")
    return item()


def decode_row(payload: memoryview | bytes, date_columns: Sequence[str]) -> dict[str, Any]:
    """:func:`encode_row` undone; ``date_columns`` come back as dates (JSON has no dates)."""
    row: dict[str, Any] = from_json(bytes(payload))
    for name in date_columns:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = datetime.date.fromisoformat(value)
    return row


def encode_table(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue()


def decode_table(payload: memoryview | bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


def transaction_id(app_id: str) -> str:
    """The Delta transaction app id under which a spool's rows are committed."""
    return _TRANSACTION_PREFIX + app_id


def lock_path(directory: Path, app_id: str) -> Path:
    """The file whose ``flock`` says the spool's process is alive."""
    return directory / f"{app_id}{LOCK_SUFFIX}"


def segment_paths(directory: Path, app_id: str) -> list[Path]:
    """A spool's segments, oldest first."""
    return sorted(directory.glob(f"{app_id}.*{SEGMENT_SUFFIX}"))


def spool_ids(directory: Path) -> set[str]:
    """Ids of the spools in ``directory`` (from their lock files and segments)."""
    ids: set[str] = set()
    for entry in directory.iterdir():
        if entry.name.endswith(LOCK_SUFFIX):
            ids.add(entry.name.removesuffix(LOCK_SUFFIX))
        elif entry.name.endswith(SEGMENT_SUFFIX):
            ids.add(entry.name.split(".", 1)[0])
    return ids


# -- this process's spool --------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedSegment:
    """A segment no longer written to; :meth:`SpoolWriter.settle` makes it durable."""

    path: Path
    fd: int


class SpoolWriter:
    """This process's spool: appends records, rotates segments, deletes them once committed.

    Not thread-safe: the prediction log calls :meth:`append` and :meth:`rotate` under its own
    lock with its own count of appends as ``seq``, so the spool's order is the order rows enter
    the log's buffers, and the count read under that lock covers exactly the rows buffered.
    """

    def __init__(self, directory: Path) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise RuntimeError("the prediction spool needs fcntl (POSIX)")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.app_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.transaction_id = transaction_id(self.app_id)
        self._segments = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._lock_fd: int | None = _create_locked(lock_path(directory, self.app_id))

    def append(self, seq: int, kind: int, payload: bytes | pa.Buffer) -> None:
        """Write one record with one system call (``seq``: increasing). An OSError (disk
        full) leaves the segment as it was before the call."""
        if self._lock_fd is None:
            raise ValueError("the prediction spool is closed")
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None  # noqa: S101 (opened just above)
        header = _HEADER.pack(MAGIC, kind, len(payload), seq)
        head = header + _CRC.pack(zlib.crc32(payload, zlib.crc32(header)))
        try:
            _write_all(self._fd, head, payload)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(head) + len(payload)

    def rotate(self) -> ClosedSegment | None:
        """Stop writing to the current segment (the next record opens a new one); None when
        no record was written since the last rotation. Cheap: call it under the log's lock."""
        if self._fd is None or self._path is None:
            return None
        closed = ClosedSegment(self._path, self._fd)
        self._fd, self._path, self._size = None, None, 0
        return closed

    def settle(self, segment: ClosedSegment) -> Path:
        """fsync and close a rotated segment (off the request path; see the fsync policy)."""
        try:
            os.fsync(segment.fd)
        except OSError as exc:
            logger.error("prediction spool: fsync of %s failed: %s", segment.path, exc)
        finally:
            os.close(segment.fd)
        fsync_dir(self.directory)  # the segment's directory entry
        return segment.path

    def discard(self, paths: Sequence[Path]) -> None:
        """Delete segments whose every record a confirmed commit covers."""
        for path in paths:
            path.unlink(missing_ok=True)

    def close(self, *, remove: bool) -> None:
        """Stop spooling; ``remove`` deletes this process's segments and lock (everything was
        committed), else they stay for the next start to replay."""
        if self._lock_fd is None:
            return
        segment = self.rotate()
        if segment is not None:
            self.settle(segment)
        if remove:
            self.discard(segment_paths(self.directory, self.app_id))
            lock_path(self.directory, self.app_id).unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _open_segment(self) -> None:
        self._segments += 1
        path = self.directory / f"{self.app_id}.{self._segments:08d}{SEGMENT_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(path, flags, 0o600)
        self._path, self._size = path, 0


def _create_locked(path: Path) -> int:
    """The lock file, created under another name, locked, then renamed into place: whoever
    sees ``<id>.lock`` finds it locked (else a scan could take a starting process for dead)."""
    assert fcntl is not None  # noqa: S101 (checked by the caller)
    new = path.with_name(path.name.removesuffix(LOCK_SUFFIX) + NEW_LOCK_SUFFIX)
    fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(new, path)
    except BaseException:
        os.close(fd)
        new.unlink(missing_ok=True)
        raise
    return fd


def _write_all(fd: int, head: bytes, payload: bytes | pa.Buffer) -> None:
    total = len(head) + len(payload)
    if isinstance(payload, bytes):  # a row: copied after its header (cheaper than writev)
        written = os.write(fd, head + payload)
    else:  # a batch: its Arrow buffer written from where it is
        written = os.writev(fd, [head, payload])
    if written < total:  # a short write (rare: a signal, a quota): finish it
        rest = memoryview(b"".join([head, memoryview(payload)]))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


# -- reading a segment back ------------------------------------------------------------------


def read_segment(path: Path) -> list[SpoolRecord]:
    """Every valid record of a segment, in order; a torn last record is dropped with a log
    line, a damaged one elsewhere is skipped up to the next valid record (logged as an error)."""
    data = memoryview(path.read_bytes())
    records: list[SpoolRecord] = []
    position = 0
    while position < len(data):
        record = _parse(data, position)
        if record is not None:
            records.append(record)
            position += HEADER_BYTES + len(record.payload)
            continue
        resume = _next_valid(data, position + 1)
        if resume is None:
            logger.warning(
                "prediction spool: dropped a torn last record in %s (%d bytes at byte %d): a "
                "write cut short when its process died, so that prediction was never answered",
                path,
                len(data) - position,
                position,
            )
            break
        logger.error(
            "prediction spool: skipped %d unreadable bytes at byte %d of %s (a damaged record)",
            resume - position,
            position,
            path,
        )
        position = resume
    return records


def _parse(data: memoryview, position: int) -> SpoolRecord | None:
    if len(data) - position < HEADER_BYTES:
        return None
    magic, kind, length, seq = _HEADER.unpack_from(data, position)
    if magic != MAGIC or kind not in (ROW, TABLE):
        return None
    start = position + HEADER_BYTES
    if length > len(data) - start:
        return None
    header = data[position : position + _HEADER.size]
    (crc,) = _CRC.unpack_from(data, position + _HEADER.size)
    payload = data[start : start + length]
    if zlib.crc32(payload, zlib.crc32(header)) != crc:
        return None
    return SpoolRecord(seq, kind, payload)


def _next_valid(data: memoryview, start: int) -> int | None:
    raw = data.obj if isinstance(data.obj, bytes) else bytes(data)
    position = raw.find(MAGIC, start)
    while position != -1:
        if _parse(data, position) is not None:
            return position
        position = raw.find(MAGIC, position + 1)
    return None
