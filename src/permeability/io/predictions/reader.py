"""The prediction log read back whole, in one shape whatever release wrote it (for evaluation)."""

from __future__ import annotations

import pandas as pd

from permeability.io.predictions.schema import COLUMNS, SCHEMA, predictions_uri


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
