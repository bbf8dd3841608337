"""The declared rules a clean lab sample obeys, and the pandera schema built from them.

The rules are declared once here and used twice: :mod:`permeability.record.cleaning` applies
them row by row to say *why* a raw row is rejected, and :func:`sample_schema` turns them into
a pandera schema that every frame entering the feature store must pass. Keeping one
declaration means the reasons users read and the schema the store enforces cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pa
from numpy.typing import ArrayLike, NDArray
from pandera.errors import SchemaErrors

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_MEAN_ABS_TOL_UM,
    CALIPER_MEAN_REL_TOL,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    IS_PRODUCT,
    LAYERS,
    MUESTRA,
    PERMEABILIDAD,
    PERMEABILITY_RANGE,
    PORC_HUMEDAD,
    RECORD_FIELDS,
    RECORD_ID,
    TEMPERATURE_RANGE_C,
    TEST_ID,
)

IMPUTED_COLUMN: Final = "n_calibres_imputados"
INGESTED_AT: Final = "ingested_at"
#: Longest structure name accepted: laminates of a few layers fit; pasted paragraphs do not.
MAX_STRUCTURE_LENGTH: Final = 80
#: Ids are parsed as floats first (text may say "12,0"); beyond 2**53 floats skip integers.
MAX_SAMPLE_ID: Final = 2**53


@dataclass(frozen=True)
class RangeRule:
    """A physical range of one numeric column; which bounds are open is part of the physics."""

    column: str
    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True

    def outside(self, values: ArrayLike) -> NDArray[np.bool_]:
        """Where a present (non-NaN) value breaks the range; infinities always do."""
        data = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            too_low = data < self.low if self.low_inclusive else data <= self.low
            too_high = data > self.high if self.high_inclusive else data >= self.high
        return np.asarray((too_low | too_high) & ~np.isnan(data))

    def describe(self) -> str:
        """Interval notation, so a reason says exactly which bound was broken."""
        left = "[" if self.low_inclusive else "("
        right = "]" if self.high_inclusive else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    def check(self) -> pa.Check:
        return pa.Check.in_range(
            self.low,
            self.high,
            include_min=self.low_inclusive,
            include_max=self.high_inclusive,
            error=f"{self.column} outside {self.describe()}",
        )


def _caliper_rule(column: str) -> RangeRule:
    return RangeRule(column, *CALIPER_RANGE_UM, low_inclusive=False)


RANGE_RULES: Final[dict[str, RangeRule]] = {
    GRADOS_C: RangeRule(GRADOS_C, *TEMPERATURE_RANGE_C),
    PORC_HUMEDAD: RangeRule(PORC_HUMEDAD, *HUMIDITY_RANGE_PCT, low_inclusive=False),
    **{column: _caliper_rule(column) for column in (*CALIBRES, CALIBRE_PROM)},
    PERMEABILIDAD: RangeRule(PERMEABILIDAD, *PERMEABILITY_RANGE, low_inclusive=False),
}


def caliper_means_consistent(stated: ArrayLike, readings_mean: ArrayLike) -> NDArray[np.bool_]:
    """Vectorised :func:`permeability.record.schema.caliper_mean_consistent` (same tolerances)."""
    stated_arr = np.asarray(stated, dtype=np.float64)
    mean_arr = np.asarray(readings_mean, dtype=np.float64)
    tolerance = np.maximum(CALIPER_MEAN_ABS_TOL_UM, CALIPER_MEAN_REL_TOL * np.abs(mean_arr))
    return np.asarray(np.abs(stated_arr - mean_arr) <= tolerance)


def structure_names_ok(names: Sequence[object]) -> NDArray[np.bool_]:
    """Whether each name looks like a film: it has a letter and at most MAX_STRUCTURE_LENGTH chars."""
    return np.array(
        [
            isinstance(name, str)
            and 0 < len(name) <= MAX_STRUCTURE_LENGTH
            and any(ch.isalpha() for ch in name)
            for name in names
        ],
        dtype=bool,
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
        GRADOS_C: pa.Column("float64", RANGE_RULES[GRADOS_C].check()),
        PORC_HUMEDAD: pa.Column("float64", RANGE_RULES[PORC_HUMEDAD].check()),
        ESTRUCTURA: pa.Column(
            str,
            pa.Check(_structure_shape, error="Estructura is not a structure name"),
        ),
        **{c: pa.Column("float64", RANGE_RULES[c].check()) for c in (*CALIBRES, CALIBRE_PROM)},
        PERMEABILIDAD: pa.Column("float64", RANGE_RULES[PERMEABILIDAD].check()),
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
