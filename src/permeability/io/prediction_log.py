"""The prediction log: every guide value given, as a Delta table ``predictions`` in the feature store.

Evaluation later joins it with the lab's measured results by ``Muestra``, so each row keeps
the inputs (the structure as typed and its canonical name), the outputs, the model version,
the interval level and the latency.

Writing one Delta commit per request would cost milliseconds and leave thousands of tiny
files, so requests only append to in-memory column buffers (a lock and a few list appends,
about 2 µs) and a background thread writes everything buffered as ONE append commit
every ``flush_interval_s`` seconds, or sooner when ``max_buffer_rows`` are waiting. The
flusher converts the buffers to Arrow a few thousand values at a time and pauses between
steps, so a request thread never waits more than about a millisecond for the GIL (in one
piece, 25k rows held it ~20 ms and showed up as p99 latency spikes). ``close()``
stops the thread and flushes what is left, so a clean shutdown loses nothing. If a write
fails (disk full, store unreachable) the rows are kept and retried on the next flush; only
beyond ``max_pending_rows`` are the oldest dropped, and that is logged with the count.

With ``write_in_subprocess=True`` (the inference service) the Delta write itself runs in a
helper process: the flusher hands it the batch as Arrow IPC bytes and waits. The write holds
the GIL in stretches of 3–5 ms and costs tens of milliseconds of CPU per commit; in the serving
process that showed up as p99 latency, in its own process the OS shares the cores in finer
slices and the request thread never waits for it. The rows stay in this process until the
helper reports the commit, so the guarantees above hold unchanged (a crashed helper is a failed
write: the rows are kept and the next flush starts a new helper).

Several processes (uvicorn workers, the CLI) may append to the same table at once: Delta's
optimistic concurrency lets concurrent appends both commit.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
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
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PORC_HUMEDAD,
)

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
    ]
)
COLUMNS: Final = tuple(SCHEMA.names)

# Rows per conversion step of a flush (well under 1 ms of GIL each), and the pause after
# each step that hands the GIL to a request thread waiting for it.
_SLICE_ROWS: Final = 4096
_YIELD_S: Final = 0.00005

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
        self._columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
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
        """Buffer one prediction; never touches the disk."""
        with self._lock:
            for name, values in self._columns.items():
                values.append(row.get(name))
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
        """Write everything buffered as one Delta commit; returns the rows written.

        A row holding a value its column cannot store (text where a number belongs) could
        never be written: it alone is dropped, counted in ``rows_dropped`` and logged with
        the column and the value, instead of failing every later flush.
        """
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
            columns, self._columns = self._columns, {name: [] for name in COLUMNS}
            tables, self._tables = self._tables, []
            self._buffered = 0
        if columns["timestamp"]:
            tables.insert(0, self._convert(columns))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _convert(self, columns: dict[str, list[Any]]) -> pa.Table:
        """The buffered single rows as a table; a row holding a value its column cannot
        store (text where a number belongs) could never be written, so it is dropped,
        counted in ``rows_dropped`` and logged with the column and the value."""
        while True:
            try:
                return _columns_to_table_yielding(columns)
            except UnstorableValueError as exc:
                bad = _unstorable_rows(columns[exc.column], SCHEMA.field(exc.column).type)
                if not bad:  # the slice failed as a whole: no row to blame, nothing to retry
                    raise
                logger.error(
                    "prediction log dropped %d rows whose %r cannot be stored: %s",
                    len(bad),
                    exc.column,
                    exc,
                )
                self.rows_dropped += len(bad)
                columns = {
                    name: [v for i, v in enumerate(values) if i not in bad]
                    for name, values in columns.items()
                }

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
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        try:
            self._writer.submit(
                append_ipc, self.uri, sink.getvalue().to_pybytes(), self.storage_options
            ).result(timeout=600)
        except (BrokenProcessPool, TimeoutError):
            # The helper died or hangs: the next flush starts a new one. A write error inside
            # a healthy helper (store unwritable) just fails this flush; the helper stays.
            broken, self._writer = self._writer, None
            broken.shutdown(wait=False, cancel_futures=True)
            raise


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


def append_ipc(uri: str, data: bytes, storage_options: dict[str, str] | None) -> None:
    """:func:`append_table` for a table sent as Arrow IPC stream bytes (the helper process)."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        append_table(uri, reader.read_all(), storage_options)


def _timestamps(values: Any) -> pa.Array:
    micros = np.round(np.asarray(values, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


class UnstorableValueError(ValueError):
    """A buffered value that the log's column cannot hold."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"column {column!r}: {problem}")
        self.column = column


def _unstorable_rows(values: list[Any], type_: pa.DataType) -> set[int]:
    """Positions of the values that do not convert to ``type_`` (one at a time: only run
    after a whole slice failed, which a well-formed row never causes)."""
    bad = set()
    for position, value in enumerate(values):
        try:
            if type_ == pa.timestamp("us", tz="UTC"):
                _timestamps([value])
            else:
                pa.array([value], type=type_)
        except (pa.ArrowException, ValueError, TypeError):
            bad.add(position)
    return bad


def _columns_to_table_yielding(columns: Mapping[str, list[Any]]) -> pa.Table:
    """The buffered rows as an Arrow table, converted a slice of one column at a time.

    Converting Python objects holds the GIL: the whole buffer at once (5 s of requests,
    ~25k rows, ~20 ms) would stall the serving thread for as long, since a thread stuck in
    a C call never answers the interpreter's switch request. Slices of
    :data:`_SLICE_ROWS` values take well under a millisecond each, and the short sleep
    after each one lets a waiting request thread take the GIL (``sleep(0)`` would not: the
    flusher usually takes the GIL straight back before the waiter wakes).
    """
    arrays = []
    for field in SCHEMA:
        values = columns[field.name]
        pieces = []
        for start in range(0, len(values), _SLICE_ROWS):
            part = values[start : start + _SLICE_ROWS]
            try:
                if field.name == "timestamp":
                    pieces.append(_timestamps(part))
                else:
                    pieces.append(pa.array(part, type=field.type))
            except (pa.ArrowException, ValueError, TypeError) as exc:
                raise UnstorableValueError(field.name, str(exc)) from exc
            time.sleep(_YIELD_S)
        arrays.append(pa.chunked_array(pieces, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _constant(value: Any, field: pa.Field, count: int) -> pa.Array:
    """``count`` copies of one value without a Python list of ``count`` items."""
    if field.name == "timestamp":
        return _timestamps(np.full(count, value, dtype=np.float64))
    if value is None:
        return pa.nulls(count, type=field.type)
    if pa.types.is_string(field.type):
        indices = pa.array(np.zeros(count, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array([value])).cast(pa.string())
    return pa.array(np.full(count, value), type=field.type)


def columns_to_table(columns: Mapping[str, Any], count: int) -> pa.Table:
    """An Arrow table in the log's schema from arrays (length ``count``) or scalars."""
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"prediction log rows lack columns {missing}")
    arrays = []
    for field in SCHEMA:
        value = columns[field.name]
        if np.ndim(value) == 0:
            arrays.append(_constant(value, field, count))
        elif field.name == "timestamp":
            arrays.append(_timestamps(value))
        elif field.name in _FLOAT_COLUMNS:
            arrays.append(pa.array(np.asarray(value, dtype=np.float64), type=pa.float64()))
        elif field.name == MUESTRA:
            arrays.append(pa.array(np.asarray(value, dtype=np.int64), type=pa.int64()))
        else:
            arrays.append(
                pa.array(np.asarray(value, dtype=object), type=pa.string(), from_pandas=True)
            )
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def read_predictions(
    feature_store_uri: str, storage_options: dict[str, str] | None = None
) -> pd.DataFrame:
    """The whole log (empty frame with the log's columns when nothing was logged yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(predictions_uri(feature_store_uri), storage_options=storage_options)
    except TableNotFoundError:
        return SCHEMA.empty_table().to_pandas()
    return table.to_pyarrow_table().to_pandas()
