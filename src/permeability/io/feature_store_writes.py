"""How a load becomes one Delta commit of the feature store: Parquet files, their statistics,
add and remove actions, written here rather than by deltalake's write operations.

A load writes its Parquet files first (at most ``ROWS_PER_FILE`` rows each, sorted by record
id so that each file's record-id range is tight) and commits them in one transaction
afterwards (``create_table_with_add_actions`` / ``DeltaTable.create_write_transaction``). Files
of a load that dies before its commit are never referenced: the table still reads exactly as
before. An update rewrites only the files holding a replaced record: their other rows are
written again and the old files removed, in the same commit.

Why not deltalake's ``write_deltalake`` (create, append) and ``DeltaTable.merge`` on the record
id (upsert): they give the same table (rows, versions, schema, protocol, our commit metadata;
the content hash of every version is equal; only the history's operation names differ), but
were slower in the same run of
``bench/feature_store_commit.py`` (deltalake 1.6.6, 2-core machine shared with other work,
median wall seconds, by hand -> library; upsert: a tenth of the records updated and as many
new; append: those new ones alone)::

    stored records   create               upsert               append
      300,000 (5x)   0.74 -> 0.90 (1.21)  0.96 -> 1.39 (1.44)  0.097 -> 0.101 (1.04)
    1,000,000 (3x)   1.41 -> 1.70 (1.20)  2.66 -> 4.65 (1.75)  0.26 -> 0.49 (1.89)

The merge joins every row of the files it scans with the changes and builds each output
column with per-row CASE expressions, where ``_take_out`` only tests record-id membership in
the files whose record-id range holds a replaced id; ``write_deltalake`` plans each write
through DataFusion and keeps statistics of all 23 columns. Run the bench again when deltalake
changes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Mapping
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from permeability.io.feature_store_files import filesystem
from permeability.record.rules import IMPUTED_COLUMN
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_ID,
)

ROWS_PER_FILE: Final = 500_000
#: Columns whose min/max go into the file statistics (for file pruning); null counts: all.
STATS_COLUMNS: Final = (
    RECORD_ID,
    MUESTRA,
    GRADOS_C,
    PORC_HUMEDAD,
    *CALIBRES,
    CALIBRE_PROM,
    PERMEABILIDAD,
    IMPUTED_COLUMN,
)


def create_table(
    table_uri: str,
    data: pa.Table,
    *,
    name: str,
    configuration: Mapping[str, str | None],
    storage_options: dict[str, str] | None,
    properties: CommitProperties,
) -> None:
    """Version 0: the table (schema of ``data``) holding ``data``, in one commit."""
    adds = _write_files(filesystem(table_uri, storage_options), data)
    create_table_with_add_actions(
        table_uri,
        Schema.from_arrow(data.schema),
        adds,
        mode="error",
        name=name,
        configuration=dict(configuration),
        storage_options=storage_options,
        commit_properties=properties,
    )


def replace_and_add(
    table_uri: str,
    table: DeltaTable,
    data: pa.Table,
    replaced: Collection[str],
    *,
    storage_options: dict[str, str] | None,
    properties: CommitProperties,
) -> None:
    """One commit: the stored rows of ``replaced`` record ids out, every row of ``data`` in."""
    files = filesystem(table_uri, storage_options)
    remainders, removes = _take_out(files, table, replaced, data.schema)
    adds = _write_files(files, pa.concat_tables([*remainders, data]))
    table.create_write_transaction(
        [*adds, *removes], "append", data.schema, commit_properties=properties
    )


def _file_stats(part: pa.Table) -> str:
    """Delta file statistics: row count, nulls, min/max of numeric columns (for file pruning)."""
    stats: dict[str, Any] = {
        "numRecords": part.num_rows,
        "nullCount": {name: part[name].null_count for name in part.column_names},
        "minValues": {},
        "maxValues": {},
    }
    for name in STATS_COLUMNS:
        if part[name].null_count < part.num_rows:
            bounds = pc.min_max(part[name])
            stats["minValues"][name] = bounds["min"].as_py()
            stats["maxValues"][name] = bounds["max"].as_py()
    return json.dumps(stats)


def _write_files(files: pafs.FileSystem, data: pa.Table) -> list[AddAction]:
    """Parquet files of at most ROWS_PER_FILE rows, sorted by record id (tight file ranges)."""
    ordered = data.sort_by(RECORD_ID)
    adds = []
    for offset in range(0, ordered.num_rows, ROWS_PER_FILE):
        part = ordered.slice(offset, ROWS_PER_FILE)
        name = f"part-{uuid.uuid4().hex}.snappy.parquet"
        with files.open_output_stream(name) as out:
            pq.write_table(part, out, compression="snappy")
        size = files.get_file_info(name).size
        adds.append(AddAction(name, int(size or 0), {}, _now_ms(), True, _file_stats(part)))
    return adds


def _take_out(
    files: pafs.FileSystem, table: DeltaTable, replaced: Collection[str], schema: pa.Schema
) -> tuple[list[pa.Table], list[RemoveAction]]:
    """For each data file holding a replaced record: its other rows, and a remove action."""
    if not replaced:
        return [], []
    keys = pa.array(sorted(replaced), pa.string())
    low, high = keys[0].as_py(), keys[-1].as_py()
    remainders, removes = [], []
    for entry in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        first, last = entry.get(f"min.{RECORD_ID}"), entry.get(f"max.{RECORD_ID}")
        if first is not None and last is not None and (last < low or first > high):
            continue
        part = pq.read_table(entry["path"], filesystem=files).cast(schema)
        hit = pc.is_in(part[RECORD_ID], value_set=keys)
        if not pc.any(hit).as_py():
            continue
        remainders.append(part.filter(pc.invert(hit)))
        removes.append(RemoveAction(entry["path"], True, _now_ms(), int(entry["size_bytes"]), {}))
    return remainders, removes


def _now_ms() -> int:
    return int(time.time() * 1000)
