"""The seed layout's mess: each quirk at its rate, none in a tidy export."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    caliper_mean_consistent,
)
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.synthetic.catalogue import base_mix, structure_catalogue
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import QUIRKS, TRUE_PERMEABILITY
from tests.unit.synthetic.generated_support import (
    MESSY_ROWS,
    NUMERIC_COLUMNS,
    messy_frame,
    tidy_frame,
)


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return messy_frame()


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return tidy_frame()


def _number(cell: object) -> float:
    """What a careful reader makes of a cell: decimal commas, units and spaces removed."""
    if isinstance(cell, str):
        text = re.sub(r"(µm|°C|%)", "", cell).strip().replace(",", ".")
        try:
            return float(text)
        except ValueError:
            return math.nan
    return float(cell)  # type: ignore[arg-type]


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.array([_number(v) for v in frame[column]], dtype=np.float64)


def _rate(mask: pd.Series | np.ndarray) -> float:
    return float(np.mean(mask))


def test_about_30_percent_of_rows_use_decimal_commas(messy: pd.DataFrame) -> None:
    comma = re.compile(r"^\s*-?\d+,\d+")
    has_comma = messy[list(NUMERIC_COLUMNS)].map(
        lambda v: isinstance(v, str) and bool(comma.match(v))
    )
    assert _rate(has_comma.any(axis=1)) == pytest.approx(0.30, abs=0.02)


def test_about_25_percent_of_structures_are_misspelt_yet_recognisable(
    messy: pd.DataFrame,
) -> None:
    canonical = set(structure_catalogue())
    misspelt = ~messy[ESTRUCTURA].isin(canonical)
    assert _rate(misspelt) == pytest.approx(0.25, abs=0.02)
    aliases = build_alias_map()
    recognised = {normalise_structure(raw, aliases) for raw in messy[ESTRUCTURA].unique()}
    assert recognised <= set(base_mix())
    assert {"Bopp metalizado", "bopp", "BOPP "} & set(messy[ESTRUCTURA])


def test_about_3_percent_of_rows_miss_caliper_readings(messy: pd.DataFrame) -> None:
    missing = messy[list(CALIBRES)].isna().any(axis=1)
    assert _rate(missing) == pytest.approx(0.03, abs=0.006)
    assert not messy[CALIBRE_PROM].isna().any()


def test_about_1_percent_of_rows_hold_impossible_values(messy: pd.DataFrame) -> None:
    humidity = _numbers(messy, PORC_HUMEDAD)
    readings = np.column_stack([_numbers(messy, c) for c in CALIBRES])
    mean = _numbers(messy, CALIBRE_PROM)
    target = _numbers(messy, PERMEABILIDAD)
    readings_mean = np.nanmean(readings, axis=1)
    inconsistent = np.array(
        [not caliper_mean_consistent(m, r) for m, r in zip(mean, readings_mean, strict=True)]
    )
    impossible = (
        (humidity > 100)
        | (humidity <= 0)
        | (np.nan_to_num(readings, nan=1.0) <= 0).any(axis=1)
        | inconsistent
        | ~(target > 0)
    )
    assert _rate(impossible) == pytest.approx(0.01, abs=0.003)
    assert (humidity > 100).any()
    assert (humidity <= 0).any()
    assert {"n/a", "N/A"} & {v for v in messy[PERMEABILIDAD] if isinstance(v, str)}


def test_exactly_one_percent_of_rows_are_pasted_twice(messy: pd.DataFrame) -> None:
    repeated = messy.drop(columns=[QUIRKS]).duplicated()
    assert repeated.sum() == round(MESSY_ROWS * 0.01)
    positions = np.flatnonzero(repeated)
    previous = messy.drop(columns=[QUIRKS]).iloc[positions - 1].reset_index(drop=True)
    copies = messy.drop(columns=[QUIRKS]).iloc[positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(previous, copies)  # each copy sits right after its original


def test_re_measured_samples_keep_their_id_with_a_later_date(messy: pd.DataFrame) -> None:
    distinct = messy.drop(columns=[QUIRKS]).drop_duplicates()
    again = distinct[distinct[MUESTRA].duplicated(keep=False)]
    assert again[MUESTRA].nunique() == round(MESSY_ROWS * 0.005)
    for _, group in again.groupby(MUESTRA):
        assert len(group) == 2
        first, second = group.iloc[0], group.iloc[1]
        assert second[FECHA] > first[FECHA]
        assert first[TRUE_PERMEABILITY] == second[TRUE_PERMEABILITY]


def test_about_half_a_percent_of_rows_have_units_or_stray_spaces(messy: pd.DataFrame) -> None:
    columns = [GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM]
    decorated = messy[columns].map(
        lambda v: isinstance(v, str) and (v != v.strip() or bool(re.search("µm|°C|%", v)))
    )
    assert _rate(decorated.any(axis=1)) == pytest.approx(0.005, abs=0.002)
    with_unit = messy[[*CALIBRES, CALIBRE_PROM]].map(lambda v: str(v).endswith(" µm"))
    assert with_unit.any().any()


def test_a_tidy_export_has_none_of_the_quirks(tidy: pd.DataFrame) -> None:
    assert (tidy[QUIRKS] == "").all()
    assert not tidy.duplicated(subset=[MUESTRA]).any()
    assert set(tidy[ESTRUCTURA]) <= set(structure_catalogue())


def test_mess_rates_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="decimal_comma"):
        MessSpec(decimal_comma=1.5)
    with pytest.raises(InvalidInputError, match="repeated_row"):
        MessSpec(repeated_row=0.4, remeasured=0.2)
