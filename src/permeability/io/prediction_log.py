"""The prediction log: every guide value given, as a Delta table ``predictions`` in the feature store.

Evaluation later joins it with the lab's measured results on the record key (``CONSECUTIVO``
when the request gave it, else the record's identity: test date, ``Referencia``, structure,
``Muestra`` (the replicate number) and conditions), so each row keeps the inputs (the
structure as typed and its canonical name), the record fields the request carried, the
outputs, the model version, the interval level and the latency.

**Schema changes.** The record fields (``CONSECUTIVO``, ``Referencia``, ``Fecha``; issue 11)
are nullable columns at the end of :data:`SCHEMA`. Every append is written with Delta's
``schema_mode="merge"``, so the first append of this code to a log created before them adds
the columns to the table (one metadata change in that commit; the old rows read them as
null) and later appends are plain. :func:`read_predictions` gives every column of
:data:`SCHEMA` even for a log no new row reached yet. A process running the code from before
the change cannot append to a log that already has the new columns: upgrade every writer of
one log together (the service's workers and ``permeability predict`` share the package).

Writing one Delta commit per request would cost milliseconds and leave thousands of tiny
files, so requests only append to in-memory column buffers (typed C arrays, see
:mod:`permeability.io.prediction_rows`: a lock and a few appends, about 3 µs) and a
background thread writes everything buffered as ONE append commit every
``flush_interval_s`` seconds, or sooner when ``max_buffer_rows`` are waiting. Turning the
buffers into Arrow reads no Python object back but the request ids, so the flusher holds the
GIL for milliseconds per flush, not the tens of milliseconds that lists of Python values cost
(those showed up as p99 latency of the serving thread). ``close()``
stops the thread and flushes what is left, so a clean shutdown loses nothing. If a write
fails (disk full, store unreachable) the rows are kept and retried on the next flush; only
beyond ``max_pending_rows`` are the oldest dropped, and that is logged with the count.

With ``write_in_subprocess=True`` (the inference service) the Delta write itself runs in a
helper process: the flusher hands it the batch as an Arrow IPC file and waits. The write holds
the GIL in stretches of 3–5 ms and costs tens of milliseconds of CPU per commit; in the serving
process that showed up as p99 latency, in its own process the OS shares the cores in finer
slices and the request thread never waits for it. The rows stay in this process until the
helper reports the commit, so the guarantees above hold unchanged (a crashed helper is a failed
write: the rows are kept and the next flush starts a new helper).

Several processes (uvicorn workers, the CLI) may append to the same table at once: Delta's
optimistic concurrency lets concurrent appends both commit.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from permeability.domain.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CONSECUTIVO,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PORC_HUMEDAD,
    REFERENCIA,
)
from permeability.io.prediction_rows import RowBuffer, UnstorableValueError, timestamps

PREDICTIONS_TABLE: Final = "predictions"
ENDPOINTS: Final = ("single", "batch", "cli")

_FLOAT_COLUMNS: Final = (
    GRADOS_C,
    PORC_HUMEDAD,
    *CALIBRES,
    CALIBRE_PROM,
    "prediction",
    "lower",
    "upper",
    "level",
    "spec_limit",
    "p_exceed",
    "latency_ms",
)

SCHEMA: Final = pa.schema(
    [
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field(MUESTRA, pa.int64()),
        pa.field(GRADOS_C, pa.float64()),
        pa.field(PORC_HUMEDAD, pa.float64()),
        pa.field(ESTRUCTURA, pa.string()),
        pa.field("structure", pa.string()),
        *(pa.field(c, pa.float64()) for c in (*CALIBRES, CALIBRE_PROM)),
        pa.field("prediction", pa.float64()),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
        pa.field("level", pa.float64()),
        pa.field("spec_limit", pa.float64()),
        pa.field("p_exceed", pa.float64()),
        pa.field("decision", pa.string()),
        pa.field("latency_ms", pa.float64()),
        # The record fields (issue 11), last: where a log created before them puts them when
        # it gains them (Delta's schema merge appends new columns), so both orders agree.
        pa.field(CONSECUTIVO, pa.string()),
        pa.field(REFERENCIA, pa.string()),
        pa.field(FECHA, pa.date32()),
    ]
)
COLUMNS: Final = tuple(SCHEMA.names)
#: Columns a log written before issue 11 lacks (null in its rows).
RECORD_COLUMNS: Final = (CONSECUTIVO, REFERENCIA, FECHA)

# Set when the first append creates the table (Delta ignores it on later appends). Every
# write replays the log since the last checkpoint, so with Delta's default of one checkpoint
# per 100 commits a 5-s append cost 25 ms after a checkpoint and 55-65 ms before the next
# (measured, 25k rows); one every 10 commits keeps it near the low end. File statistics only
# for the columns one filters the log by: the other 19 cost CPU on every commit and no
# query uses them (readers do not need statistics to read the table).
TABLE_CONFIGURATION: Final[dict[str, str | None]] = {
    "delta.checkpointInterval": "10",
    "delta.dataSkippingStatsColumns": f"timestamp,endpoint,version,{MUESTRA},structure",
}

logger = logging.getLogger("permeability.prediction_log")


def predictions_uri(feature_store_uri: str) -> str:
    """The log's table below the feature store root (a path or an object-store URI)."""
    return f"{feature_store_uri.rstrip('/')}/{PREDICTIONS_TABLE}"


class PredictionLog:
    """Buffered, batched appends to the ``predictions`` Delta table (see the module docstring).

    ``append`` takes one row as a mapping with the keys of :data:`COLUMNS`; ``timestamp`` is
    epoch seconds (``time.time()``), the cheapest clock to read on a request path.
    ``append_frame`` takes a whole scored batch at once (already column-shaped).
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
    ) -> None:
        self.uri = uri
        self.write_in_subprocess = write_in_subprocess
        self._writer: ProcessPoolExecutor | None = None
        self.flush_interval_s = flush_interval_s
        self.max_buffer_rows = max_buffer_rows
        self.max_pending_rows = max_pending_rows
        self.storage_options = storage_options
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._rows = _new_row_buffer()
        self._tables: list[pa.Table] = []
        self._buffered = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_written = 0
        self.rows_dropped = 0
        self.commits = 0
        self.last_error: str | None = None

    # -- request side: cheap -------------------------------------------------------------

    def append(self, row: Mapping[str, Any]) -> None:
        """Buffer one prediction; never touches the disk.

        A row holding a value its column cannot store (text where a number belongs, no
        request id) could never be written: it alone is dropped, counted in
        ``rows_dropped`` and logged with the column and the value.
        """
        with self._lock:
            try:
                self._rows.append(row)
            except UnstorableValueError as exc:
                self.rows_dropped += 1
                logger.error("prediction log dropped a row that cannot be stored: %s", exc)
                return
            self._buffered += 1
            if self._buffered >= self.max_buffer_rows:
                self._wake.set()

    def append_columns(self, columns: Mapping[str, Any], count: int) -> None:
        """Buffer many predictions given column-wise: arrays of ``count`` values, or one
        scalar for a column that is the same on every row (request id, version, level)."""
        if count == 0:
            return
        table = columns_to_table(columns, count)
        with self._lock:
            self._tables.append(table)
            self._buffered += table.num_rows
            if self._buffered >= self.max_buffer_rows:
                self._wake.set()

    @property
    def pending_rows(self) -> int:
        with self._lock:
            return self._buffered

    # -- writer side ---------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered as one Delta commit; returns the rows written."""
        with self._write_lock:
            table = self._take()
            if table is None:
                return 0
            try:
                self._write(table)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.error("prediction log write of %d rows failed: %s", table.num_rows, exc)
                self._requeue(table)
                return 0
            self.rows_written += table.num_rows
            self.commits += 1
            self.last_error = None
            return int(table.num_rows)

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        if self.write_in_subprocess and self._writer is None:
            # Started now, not at the first flush: its start-up (a Python process importing
            # deltalake, about 1.5 s of CPU) would otherwise compete with the first requests.
            self._writer = _start_writer()
        self._thread = threading.Thread(
            target=self._run, name="prediction-log-flusher", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher, write what is left and stop the writing process, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.flush()
        if self.pending_rows and self.write_in_subprocess:
            # The helper may be gone (a crash, or a signal sent to the whole process group):
            # the last rows are written here rather than lost.
            self.write_in_subprocess = False
            self.flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()

    def _take(self) -> pa.Table | None:
        with self._lock:
            if self._buffered == 0:
                return None
            rows, self._rows = self._rows, _new_row_buffer()
            tables, self._tables = self._tables, []
            self._buffered = 0
        if len(rows):
            tables.insert(0, rows.to_table())
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _requeue(self, table: pa.Table) -> None:
        with self._lock:
            self._tables.insert(0, table)
            self._buffered += table.num_rows
            excess = self._buffered - self.max_pending_rows
            if excess > 0:
                combined = pa.concat_tables(self._tables)
                self._tables = [combined.slice(excess)]
                self._buffered -= excess
                self.rows_dropped += excess
                logger.error(
                    "prediction log dropped its %d oldest unwritten rows (store unwritable)",
                    excess,
                )

    def _write(self, table: pa.Table) -> None:
        started = time.perf_counter()
        if self.write_in_subprocess:
            self._write_elsewhere(table)
        else:
            append_table(self.uri, table, self.storage_options)
        logger.info(
            "prediction log: %d rows in one commit (%.0f ms%s)",
            table.num_rows,
            (time.perf_counter() - started) * 1000,
            ", written by a helper process" if self.write_in_subprocess else "",
        )

    def _write_elsewhere(self, table: pa.Table) -> None:
        """The commit made by the helper process (started on first use, restarted if it died)."""
        if self._writer is None:
            self._writer = _start_writer()
        # Handed over as an Arrow IPC file: writing it releases the GIL, while building a
        # bytes object and pickling it to the helper held the GIL ~4 ms each per 40k rows.
        handle, path = tempfile.mkstemp(prefix="permeability-predictions-", suffix=".arrow")
        os.close(handle)
        try:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
            self._writer.submit(append_ipc_file, self.uri, path, self.storage_options).result(
                timeout=600
            )
        except (BrokenProcessPool, TimeoutError):
            # The helper died or hangs: the next flush starts a new one. A write error inside
            # a healthy helper (store unwritable) just fails this flush; the helper stays.
            broken, self._writer = self._writer, None
            broken.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _start_writer() -> ProcessPoolExecutor:
    """The helper process, started and told to import the Delta writer (without waiting)."""
    writer = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_prepare_writer,
    )
    writer.submit(_ready)
    return writer


def _ready() -> None:
    """A first task: makes the pool start its process now rather than at the first write."""


def _prepare_writer() -> None:
    _ignore_interrupts()
    import deltalake  # noqa: F401  (imported once here, not inside the first commit)


def _ignore_interrupts() -> None:
    """Ctrl-C in a terminal, or a supervisor's SIGTERM, reaches the whole process group; the
    helper must outlive it, so the service's last flush at shutdown still has it. The service
    stops it afterwards (and if the service dies, the helper's queue closes and it exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def append_table(uri: str, table: pa.Table, storage_options: dict[str, str] | None) -> None:
    """One Delta append commit of ``table`` (creating the table with the log's settings)."""
    from deltalake import write_deltalake

    for attempt in (1, 2):
        try:
            write_deltalake(
                uri,
                table,
                mode="append",
                # Adds the columns a log created by an earlier release lacks (see the module
                # docstring); when the schemas already agree it writes no metadata.
                schema_mode="merge",
                configuration=TABLE_CONFIGURATION,
                storage_options=storage_options,
            )
            return
        except Exception:
            if attempt == 2:
                raise
            # Two writers creating the table at the same instant: the loser retries as an
            # ordinary append to the table the winner created.
            time.sleep(0.05)


def append_ipc_file(uri: str, path: str, storage_options: dict[str, str] | None) -> None:
    """:func:`append_table` for a table handed over as an Arrow IPC file (the helper process)."""
    with pa.memory_map(path) as source:
        append_table(uri, pa.ipc.open_file(source).read_all(), storage_options)


def _new_row_buffer() -> RowBuffer:
    return RowBuffer(SCHEMA, unique_text=("request_id",))


def _constant(value: Any, field: pa.Field, count: int) -> pa.Array:
    """``count`` copies of one value without a Python list of ``count`` items."""
    if field.name == "timestamp":
        return timestamps(np.full(count, value, dtype=np.float64))
    if value is None:
        return pa.nulls(count, type=field.type)
    if pa.types.is_date32(field.type):
        return _dates(np.full(count, value, dtype="datetime64[D]"))
    if pa.types.is_string(field.type):
        indices = pa.array(np.zeros(count, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())
    return pa.array(np.full(count, value), type=field.type)


def columns_to_table(columns: Mapping[str, Any], count: int) -> pa.Table:
    """An Arrow table in the log's schema from arrays (length ``count``) or scalars.

    The record fields are optional (null when absent): callers written before them still
    log; every other column must be given.
    """
    missing = [c for c in COLUMNS if c not in columns and c not in RECORD_COLUMNS]
    if missing:
        raise ValueError(f"prediction log rows lack columns {missing}")
    arrays = []
    for field in SCHEMA:
        value: Any = columns.get(field.name)
        if np.ndim(value) == 0:
            arrays.append(_constant(value, field, count))
        elif field.name == "timestamp":
            arrays.append(timestamps(value))
        elif field.name in _FLOAT_COLUMNS:
            arrays.append(pa.array(np.asarray(value, dtype=np.float64), type=pa.float64()))
        elif field.name == MUESTRA:
            arrays.append(pa.array(np.asarray(value, dtype=np.int64), type=pa.int64()))
        elif pa.types.is_date32(field.type):
            arrays.append(_dates(value))
        else:
            arrays.append(
                pa.array(np.asarray(value, dtype=object), type=pa.string(), from_pandas=True)
            )
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _dates(values: Any) -> pa.Array:
    """Dates (numpy ``datetime64``, ``datetime.date`` objects, None/NaT for missing) as date32."""
    days = np.asarray(values, dtype="datetime64[D]")
    missing = np.isnat(days)
    numbers = days.astype(np.int64).astype(np.int32)
    return pa.array(numbers, type=pa.int32(), mask=missing if missing.any() else None).cast(
        pa.date32()
    )


def read_predictions(
    feature_store_uri: str, storage_options: dict[str, str] | None = None
) -> pd.DataFrame:
    """The whole log (empty frame with the log's columns when nothing was logged yet).

    A log written before a column existed (the record fields) reads it as null in every row,
    so readers see one shape whatever release wrote the log.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(predictions_uri(feature_store_uri), storage_options=storage_options)
    except TableNotFoundError:
        return SCHEMA.empty_table().to_pandas()
    frame = table.to_pyarrow_table().to_pandas()
    for name in COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    return frame
