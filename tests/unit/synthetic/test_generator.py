"""The seed layout's export: reproducible, shaped like the seed's record, as asked."""

from __future__ import annotations

from datetime import date

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
    RECORD_COLUMNS,
)
from permeability.synthetic.catalogue import base_mix
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import QUIRKS
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


def test_same_seed_gives_the_same_frame() -> None:
    first = generate_lab_data(3_000, 11, with_truth=True)
    second = generate_lab_data(3_000, 11, with_truth=True)
    pd.testing.assert_frame_equal(first, second)


def test_another_seed_gives_other_data() -> None:
    first = generate_lab_data(500, 1, mess=MessSpec.none())
    second = generate_lab_data(500, 2, mess=MessSpec.none())
    assert not first[PERMEABILIDAD].equals(second[PERMEABILIDAD])
    assert not first[ESTRUCTURA].equals(second[ESTRUCTURA])


def test_tidy_and_messy_exports_of_a_seed_describe_the_same_samples(
    messy: pd.DataFrame, tidy: pd.DataFrame
) -> None:
    untouched = messy[messy[QUIRKS] == ""].set_index(MUESTRA)
    same = tidy.set_index(MUESTRA).loc[untouched.index]
    assert len(untouched) > MESSY_ROWS * 0.4
    pd.testing.assert_frame_equal(
        untouched[list(NUMERIC_COLUMNS)].astype(float), same[list(NUMERIC_COLUMNS)]
    )
    assert (untouched[ESTRUCTURA] == same[ESTRUCTURA]).all()


def test_tidy_export_has_the_seed_columns_with_numeric_types(tidy: pd.DataFrame) -> None:
    plain = generate_lab_data(200, 3, mess=MessSpec.none())
    assert list(plain.columns) == list(RECORD_COLUMNS)
    assert plain[MUESTRA].dtype == np.int64
    for column in NUMERIC_COLUMNS:
        assert plain[column].dtype == np.float64, column
    assert not tidy[list(RECORD_COLUMNS)].isna().any().any()
    assert set(tidy[ESTRUCTURA]) <= set(base_mix())


def test_tidy_values_are_physical_and_calipers_agree(tidy: pd.DataFrame) -> None:
    assert (tidy[PERMEABILIDAD] > 0).all()
    assert tidy[PORC_HUMEDAD].between(1, 100).all()
    assert tidy[GRADOS_C].between(14, 46).all()
    readings = tidy[list(CALIBRES)].to_numpy()
    assert (readings > 0).all()
    assert np.allclose(tidy[CALIBRE_PROM], np.round(readings.mean(axis=1), 2))
    spread = readings.std(axis=1) / readings.mean(axis=1)
    assert 0.005 < float(np.median(spread)) < 0.06


def test_muestra_and_fecha_increase_from_the_given_start() -> None:
    frame = generate_lab_data(
        1_000, 5, start_id=5_001, start_date=date(2026, 3, 1), mess=MessSpec.none()
    )
    assert frame[MUESTRA].tolist() == list(range(5_001, 6_001))
    dates = pd.to_datetime(frame[FECHA], format="%Y-%m-%d")
    assert dates.is_monotonic_increasing
    assert dates.iloc[0] == pd.Timestamp("2026-03-01")
    assert 600 <= (dates.iloc[-1] - dates.iloc[0]).days <= 730


def test_truth_columns_only_on_request() -> None:
    frame = generate_lab_data(100, 1)
    assert list(frame.columns) == list(RECORD_COLUMNS)


def test_messy_export_keeps_the_requested_row_count(messy: pd.DataFrame) -> None:
    assert len(messy) == MESSY_ROWS


def test_bad_generation_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="rows"):
        generate_lab_data(0, 1)
    with pytest.raises(InvalidInputError, match="seed"):
        generate_lab_data(10, -1)
