"""The prediction log's columns, and its rows as Arrow tables of that schema.

Shared by the log (:mod:`permeability.io.predictions.log`), which buffers and commits rows, and
the replay of spools (:mod:`permeability.io.predictions.replay`), which rebuilds rows a dead
process spooled, so both build exactly the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pyarrow as pa

from permeability.io.predictions.rows import RowBuffer, table_from_columns
from permeability.record.schema import (
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

PREDICTIONS_TABLE: Final = "predictions"
ENDPOINTS: Final = ("single", "batch", "cli")

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
#: Columns of dates (a spooled row carries them as ISO text).
DATE_COLUMNS: Final = tuple(f.name for f in SCHEMA if pa.types.is_date32(f.type))


def predictions_uri(feature_store_uri: str) -> str:
    """The log's table below the feature store root (a path or an object-store URI)."""
    return f"{feature_store_uri.rstrip('/')}/{PREDICTIONS_TABLE}"


def new_row_buffer() -> RowBuffer:
    return RowBuffer(SCHEMA, unique_text=("request_id",))


def columns_to_table(columns: Mapping[str, Any], count: int) -> pa.Table:
    """A batch in the log's schema from arrays (length ``count``) or scalars; the record
    fields are optional (null when absent): callers written before them still log."""
    return table_from_columns(SCHEMA, columns, count, optional=RECORD_COLUMNS)


def concat(tables: list[pa.Table]) -> pa.Table:
    """One table of the log's schema (empty for no tables)."""
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def conform(table: pa.Table) -> pa.Table:
    """A batch in today's schema (one spooled by another release may lack or add columns)."""
    if table.schema.equals(SCHEMA):
        return table
    arrays = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, type=f.type)
        for f in SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
