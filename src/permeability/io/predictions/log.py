"""The prediction log: every guide value given, as a Delta table ``predictions`` in the feature store.

Evaluation later joins it with the lab's measured results on the record key (``CONSECUTIVO``
when the request gave it, else the record's identity: test date, ``Referencia``, structure,
``Muestra`` (the replicate number) and conditions), so each row keeps the inputs (the
structure as typed and its canonical name), the record fields the request carried, the
outputs, the model version, the interval level and the latency.

**Schema changes.** The record fields (``CONSECUTIVO``, ``Referencia``, ``Fecha``; issue 11)
are nullable columns at the end of :data:`~permeability.io.predictions.schema.SCHEMA`. Every append is written with Delta's
``schema_mode="merge"``, so the first append of this code to a log created before them adds
the columns to the table (one metadata change in that commit; the old rows read them as
null) and later appends are plain.
:func:`~permeability.io.predictions.reader.read_predictions` gives every column even for a
log no new row reached yet. A process running the code from before
the change cannot append to a log that already has the new columns: upgrade every writer of
one log together (the service's workers and ``permeability predict`` share the package).

Writing one Delta commit per request would cost milliseconds and leave thousands of tiny
files, so requests only append to in-memory column buffers (typed C arrays, see
:mod:`permeability.io.predictions.rows`: a lock and a few appends, about 3 µs) and a
background thread writes everything buffered as ONE append commit every
``flush_interval_s`` seconds, or sooner when ``max_buffer_rows`` are waiting. Turning the
buffers into Arrow reads no Python object back but the request ids, so the flusher holds the
GIL for milliseconds per flush, not the tens of milliseconds that lists of Python values cost
(those showed up as p99 latency of the serving thread). ``close()``
stops the thread and flushes what is left, so a clean shutdown loses nothing. If a write
fails (disk full, store unreachable) the rows are kept and retried on the next flush; only
beyond ``max_pending_rows`` are the oldest dropped, and that is logged with the count.

With ``write_in_subprocess=True`` (the inference service) the Delta write itself runs in a
helper process that exits with its parent (:mod:`permeability.io.predictions.commits`). The
rows stay in this process until the helper reports the commit, so the guarantees above hold
unchanged (a crashed helper is a failed write: the rows are kept and the next flush starts a
new helper).

**Kill -9** (issue 13): a process killed without its shutdown loses what it buffered, up to
one flush interval of answers. With ``spool_dir`` (the inference service), every append is
also written to this process's spool on the local disk before ``append`` returns, i.e.
before the answer is sent (:mod:`permeability.io.predictions.spool`: format, fsync policy).
Every commit records how far the spool got as a Delta transaction id, and the spool's
segments are deleted once a commit covering them is confirmed. The spool of a process that
died is written into the log by :meth:`PredictionLog.replay_orphans`, exactly once: at the
start of the service and after every flush of every process still running.

Several processes (uvicorn workers, the CLI, replicas on other hosts sharing an object store)
may append to the same table at once: Delta's optimistic concurrency lets concurrent appends
both commit; the one that lost the race for a version number is retried by the writer and
counted in :attr:`PredictionLog.commit_conflicts`. Each batch lands in the partitions of its
requests' UTC days (:mod:`permeability.io.predictions.partitions`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from permeability.io.predictions.commits import Committer
from permeability.io.predictions.replay import replay_spools
from permeability.io.predictions.rows import UnstorableValueError
from permeability.io.predictions.schema import columns_to_table, concat, new_row_buffer
from permeability.io.predictions.spool import (
    ROW,
    SPOOL_AVAILABLE,
    TABLE,
    SpoolWriter,
    encode_row,
    encode_table,
)
from permeability.io.predictions.writer import Transaction

#: A spool that cannot be written is logged at most this often (a full disk fails every answer).
_SPOOL_FAILURE_LOG_S: Final = 60.0

logger = logging.getLogger("permeability.prediction_log")


@dataclass
class _Taken:
    """Rows taken from the buffers for a commit: ``last_seq`` is the number of the newest
    append among them, ``segments`` the spool files a confirmed commit of them frees."""

    table: pa.Table
    last_seq: int
    segments: list[Path] = field(default_factory=list)


class PredictionLog:
    """Buffered, batched appends to the ``predictions`` Delta table (see the module docstring).

    ``append`` takes one row as a mapping with the keys of
    :data:`~permeability.io.predictions.schema.COLUMNS`; ``timestamp`` is
    epoch seconds (``time.time()``), the cheapest clock to read on a request path.
    ``append_columns`` takes a whole scored batch at once (already column-shaped).
    With ``spool_dir``, both return only once the rows are in this process's spool.
    """

    def __init__(
        self,
        uri: str,
        *,
        flush_interval_s: float = 5.0,
        max_buffer_rows: int = 50_000,
        max_pending_rows: int = 2_000_000,
        storage_options: dict[str, str] | None = None,
        write_in_subprocess: bool = False,
        spool_dir: Path | None = None,
    ) -> None:
        self.uri = uri
        self._commits = Committer(uri, storage_options, in_subprocess=write_in_subprocess)
        self.flush_interval_s = flush_interval_s
        self.max_buffer_rows = max_buffer_rows
        self.max_pending_rows = max_pending_rows
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._replay_lock = threading.Lock()
        self._rows = new_row_buffer()
        self._tables: list[pa.Table] = []
        self._pending: list[_Taken] = []  # taken by a flush whose write failed, oldest first
        self._buffered = 0
        self._seq = 0  # appends so far (the spool's record numbers)
        self._check_committed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.rows_dropped = 0
        self.rows_replayed = 0
        self.spool_failures = 0
        self._spool_failure_logged = -math.inf
        self.commits = 0
        self.last_error: str | None = None
        self._spool: SpoolWriter | None = None
        if spool_dir is not None and SPOOL_AVAILABLE:
            self._spool = SpoolWriter(spool_dir)
        elif spool_dir is not None:  # pragma: no cover - Windows
            logger.warning("no prediction spool without fcntl: a kill loses unflushed rows")

    # -- request side: cheap -------------------------------------------------------------

    def append(self, row: Mapping[str, Any]) -> None:
        """Buffer one prediction (and spool it: one write() system call).

        A row holding a value its column cannot store (text where a number belongs, no
        request id) could never be written: it alone is dropped, counted in
        ``rows_dropped`` and logged with the column and the value.
        """
        payload: bytes | None = None
        if self._spool is not None:
            with contextlib.suppress(ValueError, TypeError):  # refused below, or counted
                payload = encode_row(row)
        with self._lock:
            try:
                self._rows.append(row)
            except UnstorableValueError as exc:
                self.rows_dropped += 1
                logger.error("prediction log dropped a row that cannot be stored: %s", exc)
                return
            self._seq += 1
            self._spool_record(ROW, payload)
            self._buffered += 1
            if self._buffered >= self.max_buffer_rows:
                self._wake.set()

    def append_columns(self, columns: Mapping[str, Any], count: int) -> None:
        """Buffer many predictions given column-wise: arrays of ``count`` values, or one
        scalar for a column that is the same on every row (request id, version, level)."""
        if count == 0:
            return
        table = columns_to_table(columns, count)
        payload = encode_table(table) if self._spool is not None else None
        with self._lock:
            self._tables.append(table)
            self._seq += 1
            self._spool_record(TABLE, payload)
            self._buffered += table.num_rows
            if self._buffered >= self.max_buffer_rows:
                self._wake.set()

    def _spool_record(self, kind: int, payload: bytes | pa.Buffer | None) -> None:
        """Under ``self._lock``: the spool's order is the buffers' order. A spool that cannot
        be written (disk full) does not stop answers: counted, and logged now and then."""
        if self._spool is None:
            return
        try:
            if payload is None:
                raise ValueError("a value of the row cannot be written as JSON")
            self._spool.append(self._seq, kind, payload)
        except (OSError, ValueError) as exc:
            self.spool_failures += 1
            now = time.monotonic()
            if now - self._spool_failure_logged >= _SPOOL_FAILURE_LOG_S:
                self._spool_failure_logged = now
                logger.error(
                    "prediction spool write failed (%d so far): %s; answers go on, and a kill "
                    "before the next flush would lose them",
                    self.spool_failures,
                    exc,
                )

    @property
    def commit_conflicts(self) -> int:
        """Commits this log retried because another writer took their version (none lost)."""
        return self._commits.conflicts

    @property
    def pending_rows(self) -> int:
        with self._lock:
            return self._buffered

    # -- writer side ---------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered as one Delta commit; returns the rows written."""
        with self._write_lock:
            taken = self._take()
            if not taken:
                return 0
            try:
                if self._check_committed:
                    taken = self._without_committed(taken)
                table = concat([t.table for t in taken])
                if table.num_rows:
                    self._commits.write(table, self._transaction(taken))
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                rows = sum(t.table.num_rows for t in taken)
                logger.error("prediction log write of %d rows failed: %s", rows, exc)
                self._requeue(taken)
                # The write may have committed before it failed (a helper killed after its
                # commit): the next flush asks the table before writing these rows again.
                self._check_committed = self._spool is not None
                return 0
            self._check_committed = False
            self._discard(taken)
            self.rows_written += table.num_rows
            self.commits += 1 if table.num_rows else 0
            self.last_error = None
            return int(table.num_rows)

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._commits.start_helper()
        self._thread = threading.Thread(
            target=self._run, name="prediction-log-flusher", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher, write what is left and stop the writing process, if any; the
        spool is deleted once everything is written, else kept for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.flush()
        if self.pending_rows and self._commits.in_subprocess:
            # The helper may be gone (a crash, or a signal sent to the whole process group):
            # the last rows are written here rather than lost.
            self._commits.in_subprocess = False
            self.flush()
        self._commits.stop_helper()
        with self._lock:
            spool, self._spool = self._spool, None
        if spool is not None:
            unwritten = self.pending_rows
            spool.close(remove=unwritten == 0)
            if unwritten:
                logger.error(
                    "prediction log: %d rows could not be written; the spool %s keeps them "
                    "for the next start",
                    unwritten,
                    spool.app_id,
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()
            self.replay_orphans()

    def _take(self) -> list[_Taken]:
        closed = None
        with self._lock:
            if self._buffered == 0:
                return []
            rows, self._rows = self._rows, new_row_buffer()
            tables, self._tables = self._tables, []
            taken, self._pending = self._pending, []
            self._buffered = 0
            last_seq = self._seq
            spool = self._spool
            if spool is not None:
                closed = spool.rotate()
        segments = [spool.settle(closed)] if spool is not None and closed is not None else []
        if len(rows):
            tables.insert(0, rows.to_table())
        if tables or segments:
            taken.append(_Taken(concat(tables), last_seq, segments))
        return taken

    def _requeue(self, taken: list[_Taken]) -> None:
        with self._lock:
            self._pending = taken + self._pending
            self._buffered += sum(t.table.num_rows for t in taken)
            excess = self._buffered - self.max_pending_rows
            dropped = 0
            for oldest in self._pending:  # an emptied batch stays: its spool files go with it
                if dropped >= excess:
                    break
                cut = min(oldest.table.num_rows, excess - dropped)
                oldest.table = oldest.table.slice(cut)
                dropped += cut
            if dropped:
                self._buffered -= dropped
                self.rows_dropped += dropped
                logger.error(
                    "prediction log dropped its %d oldest unwritten rows (store unwritable)",
                    dropped,
                )

    def _transaction(self, taken: Sequence[_Taken]) -> Transaction | None:
        if self._spool is None:
            return None
        return self._spool.transaction_id, max(t.last_seq for t in taken)

    def _without_committed(self, taken: list[_Taken]) -> list[_Taken]:
        """The batches a commit has not covered yet (after a write that failed in a way
        that may have committed anyway)."""
        assert self._spool is not None  # noqa: S101 (only checked with a spool)
        done = self._commits.committed(self._spool.transaction_id)
        covered = [t for t in taken if t.last_seq <= done]
        if covered:
            logger.warning(
                "prediction log: %d rows of a failed write were committed after all; "
                "not written again",
                sum(t.table.num_rows for t in covered),
            )
            self._discard(covered)
        return [t for t in taken if t.last_seq > done]

    def _discard(self, taken: Sequence[_Taken]) -> None:
        if self._spool is not None:
            self._spool.discard([path for t in taken for path in t.segments])

    # -- the spools of processes that died -----------------------------------------------

    def replay_orphans(self) -> int:
        """Write into the log what the spools of dead processes hold and it lacks, exactly
        once (:mod:`permeability.io.predictions.replay`); returns the rows written. Never
        raises: a spool that cannot be replayed now is logged and kept for the next try."""
        spool = self._spool
        if spool is None:
            return 0
        with self._replay_lock:
            counts = replay_spools(
                spool.directory,
                spool.app_id,
                committed=self._commits.committed,
                write=self._write_serialised,
            )
        self.rows_replayed += counts.rows
        self.rows_dropped += counts.dropped
        return counts.rows

    def _write_serialised(self, table: pa.Table, transaction: Transaction) -> None:
        """A commit between flushes (one helper, one request at a time)."""
        with self._write_lock:
            self._commits.write(table, transaction)
