"""Keeping the prediction log small: compact its many small files, then delete the replaced ones.

The inference service appends the log (:mod:`permeability.io.predictions.log`) as one Delta
commit every few seconds per worker, so a day of serving leaves tens of thousands of small
Parquet files and every full read of the log (evaluation) opens all of them.
:func:`compact_predictions` rewrites them into few large files with Delta's OPTIMIZE (a
``dataChange=false`` commit: same rows, new files) and then VACUUMs the files that the log no
longer references and that were replaced more than ``retention_hours`` ago, so time travel
over that window keeps working.

**By day.** The log is partitioned by the UTC day of the request
(:mod:`permeability.io.predictions.partitions`), and a compaction rewrites only the days it is
given, by default the days holding more than one file: the days appended since the last
compaction (yesterday's and today's for a nightly run), never the compacted history, so its
cost follows a day's appends and not the log's age. An unpartitioned log (an earlier release)
is migrated to the partitions first, once. The vacuum stays retention-based over the whole
table (it deletes only files replaced more than ``retention_hours`` ago).

Only the ``predictions`` table is touched: the feature table's old versions are read back
for reproducibility (training records its ``feature_set_version``) and must never be vacuumed.

Concurrency, as measured with deltalake 1.6.6:

* an append racing the OPTIMIZE commits too (a blind append conflicts with nothing); if
  deltalake nevertheless refuses the OPTIMIZE commit, it is planned again on the new version
  and retried, and appends are never touched;
* two OPTIMIZEs racing each other BOTH commit (its conflict check lets concurrent removals
  with ``dataChange=false`` through), and every row of the files both rewrote is then stored
  twice. Callers must run one compaction at a time (the job holds a lock); a race that got
  through anyway is detected here and raised, naming the versions, instead of passing silently.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from permeability.errors import InvalidInputError
from permeability.io.predictions.partitions import DAY, days_predicate, migrate_to_partitioned
from permeability.io.predictions.schema import predictions_uri

if TYPE_CHECKING:
    from deltalake import DeltaTable

#: Time travel over the last week keeps working by default.
DEFAULT_RETENTION_HOURS: Final = 168
#: Attempts at the OPTIMIZE commit when deltalake refuses it as conflicting.
COMPACT_ATTEMPTS: Final = 5
#: A file the log does not reference is deleted only once it is this old: an append writes its
#: file before its commit, and that file must survive until the commit lands (seconds; the
#: log's writing helper gives up after 10 minutes).
UNREFERENCED_MIN_AGE_HOURS: Final = 1
#: Reads of the recent history before giving up (each retried read saw a commit land).
HISTORY_ATTEMPTS: Final = 50
#: commitInfo key tagging each OPTIMIZE this module commits with an id of its own.
COMMIT_ID_KEY: Final = "permeability.compaction_id"

logger = logging.getLogger("permeability.log_maintenance")


class ConcurrentCompactionError(RuntimeError):
    """Another OPTIMIZE committed while this one ran: rows both rewrote may now be doubled."""


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction did to the ``predictions`` table.

    ``files_before``/``files_after`` count the files the table's current version references
    (appends made meanwhile are in ``files_after`` and ``rows``); ``files_rewritten`` became
    ``files_written`` in the OPTIMIZE commit ``optimize_version`` (None: nothing to compact);
    ``attempts`` counts OPTIMIZE commits tried; ``files_vacuumed`` were deleted from storage.
    ``days`` are the day partitions compacted (``files_rewritten`` all belong to them),
    ``migrated_version`` the commit that moved an unpartitioned log into day partitions (None:
    it had them), ``optimize_seconds`` the time of the OPTIMIZE alone.
    """

    table: str
    table_exists: bool
    retention_hours: int
    files_before: int = 0
    files_after: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    rows: int = 0
    version_before: int | None = None
    version_after: int | None = None
    optimize_version: int | None = None
    attempts: int = 0
    files_vacuumed: int = 0
    seconds: float = 0.0
    days: tuple[date, ...] = ()
    migrated_version: int | None = None
    optimize_seconds: float = 0.0


@dataclass(frozen=True)
class _Optimized:
    metrics: dict[str, Any]
    version: int | None
    attempts: int


def compact_predictions(
    feature_store_uri: str,
    storage_options: dict[str, str] | None,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    days: Sequence[date] | None = None,
) -> CompactionResult:
    """Compact the prediction log below ``feature_store_uri``, then vacuum it (module docstring).

    ``days``: the UTC days whose partitions are compacted (None: every day holding more than
    one file). A log that does not exist yet is nothing to compact, not an error: the result
    says ``table_exists=False``.
    """
    if days is not None and not all(
        isinstance(day, date) and not isinstance(day, datetime) for day in days
    ):
        raise InvalidInputError(f"days must be dates (YYYY-MM-DD), got {list(days)!r}")
    if isinstance(retention_hours, bool) or not isinstance(retention_hours, int):
        raise InvalidInputError(
            f"retention_hours must be a whole number of hours, got {retention_hours!r}"
        )
    if retention_hours < 0:
        raise InvalidInputError(f"retention_hours must be 0 or more, got {retention_hours}")
    started = time.perf_counter()
    uri = predictions_uri(feature_store_uri)
    table = _open(uri, storage_options)
    if table is None:
        return CompactionResult(table=uri, table_exists=False, retention_hours=retention_hours)
    version_before = table.version()
    files_before = len(table.file_uris())
    migrated = migrate_to_partitioned(uri, storage_options)
    chosen = (
        sorted(set(days))
        if days is not None
        else _days_with_small_files(_load(uri, storage_options))
    )
    optimize_started = time.perf_counter()
    optimized = _optimize(uri, storage_options, chosen) if chosen else _Optimized({}, None, 0)
    optimize_seconds = time.perf_counter() - optimize_started
    vacuumed = _vacuum(uri, storage_options, retention_hours)
    final = _load(uri, storage_options)
    return CompactionResult(
        table=uri,
        table_exists=True,
        retention_hours=retention_hours,
        files_before=files_before,
        files_after=len(final.file_uris()),
        files_rewritten=int(optimized.metrics.get("numFilesRemoved", 0)),
        files_written=int(optimized.metrics.get("numFilesAdded", 0)),
        rows=_row_count(final),
        version_before=version_before,
        version_after=final.version(),
        optimize_version=optimized.version,
        attempts=optimized.attempts,
        files_vacuumed=vacuumed,
        seconds=round(time.perf_counter() - started, 3),
        days=tuple(chosen),
        migrated_version=migrated,
        optimize_seconds=round(optimize_seconds, 3),
    )


def _load(uri: str, storage_options: dict[str, str] | None) -> DeltaTable:
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=storage_options)


def _open(uri: str, storage_options: dict[str, str] | None) -> DeltaTable | None:
    from deltalake.exceptions import TableNotFoundError

    try:
        return _load(uri, storage_options)
    except TableNotFoundError:
        return None


def _days_with_small_files(table: DeltaTable) -> list[date]:
    """The days whose partition holds more than one file (read from the log's metadata, no
    data file is opened): the days appended since their last compaction."""
    actions = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{DAY}"
    if actions.num_rows == 0 or column not in actions.column_names:
        return []
    counts = pc.value_counts(actions.column(column).cast(pa.date32()))
    return sorted(entry["values"].as_py() for entry in counts if entry["counts"].as_py() > 1)


def _optimize(uri: str, storage_options: dict[str, str] | None, days: Sequence[date]) -> _Optimized:
    """OPTIMIZE of ``days``' partitions on the newest version; a refused commit is planned
    again and retried.

    Every attempt reloads the table, so a retry compacts what the winner left (including
    appends that landed meanwhile) rather than a stale list of files. The commit carries an
    id of its own, which is how it is found in the log afterwards (``table.version()`` after
    the call is the newest version, appends included, not necessarily this commit's).
    """
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError

    for attempt in range(1, COMPACT_ATTEMPTS + 1):
        table = _load(uri, storage_options)
        read_version = table.version()
        commit_id = uuid.uuid4().hex
        try:
            metrics = table.optimize.compact(
                partition_filters=days_predicate(list(days)),
                commit_properties=CommitProperties(custom_metadata={COMMIT_ID_KEY: commit_id}),
            )
        except CommitFailedError as exc:
            if attempt == COMPACT_ATTEMPTS:
                raise
            logger.warning(
                "prediction log compaction conflicted (attempt %d of %d, read version %d): "
                "%s; planning it again",
                attempt,
                COMPACT_ATTEMPTS,
                read_version,
                " ".join(str(exc).split()),
            )
            time.sleep(0.2 * attempt)
            continue
        if not metrics.get("numFilesAdded") and not metrics.get("numFilesRemoved"):
            return _Optimized(metrics, None, attempt)  # nothing to do: no commit was made
        history = _history_since(uri, storage_options, read_version)
        own = _own_commit(history, commit_id, read_version)
        _refuse_concurrent_compactions(uri, history, read_version, own)
        return _Optimized(metrics, own, attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _own_commit(history: list[dict[str, Any]], commit_id: str, read_version: int) -> int:
    """The version of the OPTIMIZE commit tagged ``commit_id``."""
    for entry in history:
        if entry.get(COMMIT_ID_KEY) == commit_id:
            return int(entry["version"])
    raise RuntimeError(f"the OPTIMIZE commit read at version {read_version} is not in the log")


def _refuse_concurrent_compactions(
    uri: str, history: list[dict[str, Any]], read_version: int, own: int
) -> None:
    """Raise when another OPTIMIZE ran on a version that did not include this one's commit.

    Either it committed between this one's read and its commit, or it read before this
    commit and committed after: both rewrote some of the same files, and both commits stand.
    """
    racing = sorted(
        int(entry["version"])
        for entry in history
        if entry.get("operation") == "OPTIMIZE"
        and int(entry["version"]) != own
        and int(entry.get("readVersion", own)) < own
    )
    if racing:
        raise ConcurrentCompactionError(
            f"another compaction of {uri} committed version(s) {racing} while this one "
            f"(read at version {read_version}, committed as version {own}) ran: rows both "
            "rewrote may now be stored twice. Run one compaction at a time; the log before "
            f"both is version {read_version} (DeltaTable.restore), appends made since then "
            "would have to be re-appended"
        )


def _history_since(
    uri: str, storage_options: dict[str, str] | None, version: int
) -> list[dict[str, Any]]:
    """Commit infos of the versions after ``version``, newest first, with their true versions.

    deltalake 1.6.6 numbers history entries down from the version the table was loaded at,
    but lists every commit up to the newest one in storage: when an append lands between the
    load and the listing, the listing holds more entries than asked for and every number is
    off. Such a listing is thrown away and read again (appends come seconds apart).
    """
    for _ in range(HISTORY_ATTEMPTS):
        table = _load(uri, storage_options)
        wanted = table.version() - version
        if wanted <= 0:
            return []
        entries = table.history(limit=wanted)
        if len(entries) == wanted:
            return entries
        time.sleep(0.01)
    raise RuntimeError(
        f"could not read a consistent history of {uri} after version {version}: "
        f"commits kept landing during {HISTORY_ATTEMPTS} reads"
    )


def _vacuum(uri: str, storage_options: dict[str, str] | None, retention_hours: int) -> int:
    """Delete files replaced more than ``retention_hours`` ago; returns how many were deleted.

    Two kinds of garbage, two passes:

    * files a commit replaced, while the log still records it ("lite" vacuum). It only ever
      deletes files the log names as replaced, so it is safe at any retention, 0 included,
      while appends are being written;
    * files the log no longer knows at all ("full" vacuum, which lists storage): checkpoints
      forget a replaced file once its tombstone is older than the table's
      ``delta.deletedFileRetentionDuration`` (7 days, the default retention), so a lite pass
      alone would never delete last week's replaced files; writes that failed before their
      commit also leave such files. An append's file exists before its commit, so this pass
      spares anything younger than :data:`UNREFERENCED_MIN_AGE_HOURS`.
    """
    table = _load(uri, storage_options)
    deleted: list[str] = []
    if retention_hours < UNREFERENCED_MIN_AGE_HOURS:
        deleted += table.vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )
        table = _load(uri, storage_options)
    deleted += table.vacuum(
        retention_hours=max(retention_hours, UNREFERENCED_MIN_AGE_HOURS),
        dry_run=False,
        enforce_retention_duration=False,
        full=True,
    )
    return len(deleted)


def _row_count(table: DeltaTable) -> int:
    """Rows of the current version, from the commit statistics (no data file is opened)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    counts = actions.column("num_records")
    if counts.null_count:
        # A file written without statistics: count from the Parquet footers instead.
        return int(table.to_pyarrow_dataset().count_rows())
    return int(pc.sum(counts).as_py())
