"""The prediction log's partitions: one per UTC day of the request time, and the migration of a
log written before them.

Why by day: the plant's log grows by every answer of every replica, while its readers want
days: evaluation reads the requests ``since`` its last run, and the nightly compaction
rewrites the files of the days that changed. With Delta partitioned on a ``day`` column
(``date32``, the UTC date of ``timestamp``), a read of some days opens only their folders
(``day=YYYY-MM-DD/``) and a compaction of one day rewrites only its files: the cost of both
follows the days asked for, not the age of the log. The column is a plain column of the table
(Delta's partitioning is on a column it holds; deltalake's generated columns were not used, so
any Delta reader sees it), derived from ``timestamp`` when a batch is committed
(:func:`with_day`): the buffers, the spool and its replay keep the row schema of
:data:`~permeability.io.predictions.schema.SCHEMA` unchanged, and readers drop the column.

A log created by an earlier release is unpartitioned. It keeps working as it is (appends write
it without ``day``, reads filter its rows by ``timestamp``) until the first
``permeability compact`` migrates it: :func:`migrate_to_partitioned` rewrites every row into the
partitioned layout as ONE overwrite commit, so the Delta history before it stays readable (time
travel to the old versions works until their files are vacuumed), and checks that the new
version holds exactly the rows of the old one. Appends racing it are not lost: the overwrite
is committed only on the version it read (a commit landing meanwhile refuses it and the
migration is read and written again), and an append whose commit meets the changed layout is
refused by Delta and retried by the writer in the new layout.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Final

import pyarrow as pa

if TYPE_CHECKING:
    from deltalake import DeltaTable

DAY: Final = "day"
PARTITION_COLUMNS: Final = (DAY,)
#: Attempts at the migration's overwrite commit (each refused one saw an append land).
MIGRATION_ATTEMPTS: Final = 20

logger = logging.getLogger("permeability.prediction_log")


class MigrationError(RuntimeError):
    """The migrated version does not hold the rows of the version it was written from."""


def with_day(table: pa.Table) -> pa.Table:
    """``table`` with its partition column: the UTC date of each row's ``timestamp``."""
    import pyarrow.compute as pc  # 0.05 s of a replica's start, needed only when writing

    days = pc.cast(table.column("timestamp"), pa.date32())
    if DAY in table.column_names:
        return table.set_column(table.column_names.index(DAY), DAY, days)
    return table.append_column(pa.field(DAY, pa.date32(), nullable=False), days)


def is_partitioned(table: DeltaTable) -> bool:
    """True when the log's table has the day partitions (False: an earlier release's layout)."""
    return list(table.metadata().partition_columns) == list(PARTITION_COLUMNS)


def day_predicate(since: datetime | None, until: datetime | None) -> list[tuple[str, str, str]]:
    """The partition filter keeping the days that may hold requests in ``[since, until)``
    (naive UTC datetimes; None: open-ended). Delta compares partition values as text, which
    orders ISO dates correctly."""
    predicate = []
    if since is not None:
        predicate.append((DAY, ">=", since.date().isoformat()))
    if until is not None:
        last = until.date() if until.time() != datetime.min.time() else until.date() - timedelta(1)
        predicate.append((DAY, "<=", last.isoformat()))
    return predicate


def days_predicate(days: list[date]) -> list[tuple[str, str, list[str]]]:
    """The partition filter of exactly ``days``."""
    return [(DAY, "in", sorted(day.isoformat() for day in days))]


def migrate_to_partitioned(uri: str, storage_options: dict[str, str] | None) -> int | None:
    """Rewrite an unpartitioned log into day partitions (one overwrite commit); returns the
    new version, or None when the log is already partitioned (module docstring)."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from permeability.io.predictions.writer import TABLE_CONFIGURATION

    for attempt in range(1, MIGRATION_ATTEMPTS + 1):
        table = DeltaTable(uri, storage_options=storage_options)
        if is_partitioned(table):
            return None
        read_version = table.version()
        rows = table.to_pyarrow_table()
        started = time.perf_counter()
        try:
            write_deltalake(
                table,
                with_day(rows),
                mode="overwrite",
                partition_by=list(PARTITION_COLUMNS),
                schema_mode="overwrite",
                configuration=TABLE_CONFIGURATION,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except CommitFailedError as exc:
            logger.warning(
                "prediction log migration to day partitions refused (attempt %d of %d, read "
                "version %d): %s; reading it again",
                attempt,
                MIGRATION_ATTEMPTS,
                read_version,
                " ".join(str(exc).split()),
            )
            time.sleep(0.1 * attempt)
            continue
        migrated = DeltaTable(uri, storage_options=storage_options, version=read_version + 1)
        count = migrated.to_pyarrow_dataset().count_rows()
        if count != rows.num_rows or not is_partitioned(migrated):
            raise MigrationError(
                f"the migration of {uri} wrote {count} rows from the {rows.num_rows} of version "
                f"{read_version}; version {read_version} is the log before it "
                "(DeltaTable.restore)"
            )
        logger.warning(
            "prediction log %s migrated to day partitions: %d rows of version %d rewritten as "
            "version %d in %.1fs (the history before it is kept)",
            uri,
            count,
            read_version,
            read_version + 1,
            time.perf_counter() - started,
        )
        return read_version + 1
    raise RuntimeError(
        f"could not migrate {uri} to day partitions: appends kept landing during "
        f"{MIGRATION_ATTEMPTS} attempts; run the compaction again when the log is quieter"
    )
