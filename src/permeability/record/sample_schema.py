"""The pandera schema every frame entering the feature store must pass, built from the rules.

The rules themselves are declared once in :mod:`.rules` (without pandas or pandera, so the
inference service's start does not import them, docs/deploy.md "Replicas that start fast"); this
module turns them into checks of a clean-sample frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from permeability.errors import InvalidInputError
from permeability.record.rules import (
    IMPUTED_COLUMN,
    INGESTED_AT,
    MAX_SAMPLE_ID,
    RANGE_RULES,
    RangeRule,
    caliper_means_consistent,
    structure_names_ok,
)
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    IS_PRODUCT,
    LAYERS,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_FIELDS,
    RECORD_ID,
    TEST_ID,
)


def range_check(rule: RangeRule) -> pa.Check:
    """A range rule as a pandera check, worded as the rule words it."""
    return pa.Check.in_range(
        rule.low,
        rule.high,
        include_min=rule.low_inclusive,
        include_max=rule.high_inclusive,
        error=f"{rule.column} outside {rule.describe()}",
    )


def _structure_shape(names: pd.Series) -> pd.Series:
    """Checked once per distinct name: a million rows hold a handful of structures."""
    codes, uniques = pd.factorize(names, use_na_sentinel=True)
    verdict = np.r_[structure_names_ok(list(uniques)), False]
    return pd.Series(verdict[codes], index=names.index)


def _consistent_caliper_mean(frame: pd.DataFrame) -> pd.Series:
    readings_mean = frame[list(CALIBRES)].mean(axis=1)
    return pd.Series(
        caliper_means_consistent(frame[CALIBRE_PROM], readings_mean), index=frame.index
    )


def sample_schema(
    *, with_ingested_at: bool = False, pc_columns: Sequence[str] = ()
) -> pa.DataFrameSchema:
    """The schema of clean samples: one row per record, physical ranges, consistent calipers.

    ``Muestra`` is a replicate number (repeats across tests); ``record_id`` is unique.

    ``with_ingested_at`` and ``pc_columns`` add what the feature store attaches on read.
    """
    columns: dict[str, pa.Column] = {
        RECORD_ID: pa.Column(str, pa.Check.str_length(1, 400), unique=True),
        MUESTRA: pa.Column("int64", pa.Check.in_range(0, MAX_SAMPLE_ID)),
        GRADOS_C: pa.Column("float64", range_check(RANGE_RULES[GRADOS_C])),
        PORC_HUMEDAD: pa.Column("float64", range_check(RANGE_RULES[PORC_HUMEDAD])),
        ESTRUCTURA: pa.Column(
            str,
            pa.Check(_structure_shape, error="Estructura is not a structure name"),
        ),
        **{c: pa.Column("float64", range_check(RANGE_RULES[c])) for c in (*CALIBRES, CALIBRE_PROM)},
        PERMEABILIDAD: pa.Column("float64", range_check(RANGE_RULES[PERMEABILIDAD])),
        FECHA: pa.Column("datetime64[ns]", nullable=True),
        IMPUTED_COLUMN: pa.Column("int64", pa.Check.in_range(0, len(CALIBRES) - 1)),
        **{c: pa.Column(str, nullable=True) for c in RECORD_FIELDS},
        TEST_ID: pa.Column(str),
        LAYERS: pa.Column(str),
        IS_PRODUCT: pa.Column(bool),
        BELOW_DETECTION_LIMIT: pa.Column(bool),
    }
    if with_ingested_at:
        columns[INGESTED_AT] = pa.Column(pd.DatetimeTZDtype("ns", "UTC"))
    for name in pc_columns:
        columns[name] = pa.Column("float64")
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                _consistent_caliper_mean,
                error="CalibreProm does not match the mean of Calibre1..5",
            )
        ],
        strict=False,
        ordered=False,
    )


def validate_samples(frame: pd.DataFrame, *, with_ingested_at: bool = False) -> pd.DataFrame:
    """Check ``frame`` against :func:`sample_schema`; the first failures name column and value."""
    try:
        return sample_schema(with_ingested_at=with_ingested_at).validate(frame, lazy=True)
    except SchemaErrors as exc:
        raise InvalidInputError(
            f"{len(exc.failure_cases)} value(s) break the clean-sample schema: "
            + "; ".join(_failure_summaries(exc.failure_cases))
        ) from exc


def _failure_summaries(cases: pd.DataFrame) -> list[str]:
    """One line per broken check (a frame-wide check fails every column of its rows: once)."""
    summaries = []
    for check, group in cases.groupby("check", sort=False):
        columns = group["column"].dropna().unique()
        first = group.iloc[0]
        if len(columns) == 1:
            summaries.append(
                f"{columns[0]}: {check} (e.g. {first['failure_case']!r} at row {first['index']})"
            )
        else:
            summaries.append(f"{check} (e.g. at row {first['index']})")
    return summaries[:5]
