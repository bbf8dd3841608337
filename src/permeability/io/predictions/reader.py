"""The prediction log read back, in one shape whatever release wrote it (for evaluation).

A read of some time range opens only the day partitions that may hold it
(:mod:`permeability.io.predictions.partitions`); a log still in the unpartitioned layout of an
earlier release is read whole and filtered by ``timestamp``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from permeability.io.predictions.partitions import DAY, day_predicate, is_partitioned
from permeability.io.predictions.schema import COLUMNS, SCHEMA, predictions_uri

if TYPE_CHECKING:
    import pyarrow as pa


def open_predictions(
    feature_store_uri: str,
    storage_options: dict[str, str] | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ds.Dataset | None:
    """The log's files that may hold requests in ``[since, until)`` (naive UTC; None: open)
    as a dataset, pruned to their day partitions; None when nothing was logged yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(predictions_uri(feature_store_uri), storage_options=storage_options)
    except TableNotFoundError:
        return None
    since, until = _naive_utc(since), _naive_utc(until)
    predicate = day_predicate(since, until) if is_partitioned(table) else []
    return table.to_pyarrow_dataset(file_pruning_predicate=predicate or None)


def read_predictions(
    feature_store_uri: str,
    storage_options: dict[str, str] | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The log's requests made in ``[since, until)`` (naive UTC; None: open-ended), every
    column of :data:`~permeability.io.predictions.schema.COLUMNS` (empty frame when nothing
    was logged yet).

    A log written before a column existed (the record fields) reads it as null in every row,
    so readers see one shape whatever release wrote the log; the partition column is not
    part of that shape (it repeats ``timestamp``'s date).
    """
    since, until = _naive_utc(since), _naive_utc(until)
    dataset = open_predictions(feature_store_uri, storage_options, since=since, until=until)
    if dataset is None:
        return SCHEMA.empty_table().to_pandas()
    rows = dataset.to_table(filter=_time_filter(since, until))
    if DAY in rows.column_names:
        rows = rows.drop_columns([DAY])
    frame = rows.to_pandas()
    for name in COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    return frame


def _time_filter(since: datetime | None, until: datetime | None) -> ds.Expression | None:
    """Rows with ``since <= timestamp < until`` (a day partition holds the whole day)."""
    condition: ds.Expression | None = None
    for bound, keep in ((since, pc.greater_equal), (until, pc.less)):
        if bound is None:
            continue
        term = keep(ds.field("timestamp"), _utc(bound))
        condition = term if condition is None else condition & term
    return condition


def _naive_utc(moment: datetime | None) -> datetime | None:
    """An aware datetime as naive UTC (naive ones are UTC already)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _utc(moment: datetime) -> pa.Scalar:
    import pyarrow as pa

    return pa.scalar(pd.Timestamp(moment, tz="UTC").to_pydatetime(), pa.timestamp("us", tz="UTC"))
