from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permeability.errors import InvalidInputError
from permeability.record.rules import (
    INPUT_RANGE_RULES,
    MEASURED_COLUMNS,
    RANGE_RULES,
    REQUIRED_INPUTS,
    RangeRule,
    absent_required_columns,
    caliper_mean_problem,
    caliper_means_consistent,
    not_sample_numbers,
    structure_names_ok,
)
from permeability.record.sample_schema import sample_schema, validate_samples
from permeability.record.schema import CALIBRES, caliper_mean_consistent
from tests.record_columns import add_record_columns


def clean_frame(n: int = 4) -> pd.DataFrame:
    readings = {c: np.full(n, 20.0) for c in CALIBRES}
    frame = pd.DataFrame(
        {
            "Muestra": np.arange(1, n + 1, dtype=np.int64),
            "Grados_C": np.full(n, 38.0),
            "Porc_Humedad": np.full(n, 90.0),
            "Estructura": pd.Series(["BOPP"] * n, dtype="str"),
            **readings,
            "CalibreProm": np.full(n, 20.0),
            "Permeabilidad": np.full(n, 5.0),
            "Fecha": pd.Series(pd.to_datetime(["2024-01-01"] * n)).astype("datetime64[ns]"),
            "n_calibres_imputados": np.zeros(n, dtype=np.int64),
        }
    )
    return add_record_columns(frame)


def test_range_rule_honours_open_and_closed_bounds() -> None:
    rule = RangeRule("x", 0.0, 100.0, low_inclusive=False, high_inclusive=True)
    values = np.array([0.0, 1e-9, 100.0, 100.0001, np.nan, np.inf, -np.inf])
    assert rule.outside(values).tolist() == [True, False, False, True, False, True, True]
    assert rule.describe() == "(0, 100]"


def test_declared_ranges_come_from_the_schema_module() -> None:
    assert RANGE_RULES["Porc_Humedad"].describe() == "(0, 100]"
    assert RANGE_RULES["Grados_C"].describe() == "[0, 80]"
    assert RANGE_RULES["Permeabilidad"].outside(np.array([0.0, 0.001])).tolist() == [True, False]
    assert set(RANGE_RULES) >= {*CALIBRES, "CalibreProm"}


def test_a_rule_words_its_range_with_the_unit_and_gives_pydantic_bounds() -> None:
    humidity = RANGE_RULES["Porc_Humedad"]
    assert humidity.problem == "is outside (0, 100] % RH"
    assert humidity.bounds() == (None, 0.0, 100.0, None)
    assert RANGE_RULES["Grados_C"].bounds() == (0.0, None, 80.0, None)
    assert RANGE_RULES["Calibre1"].problem == "is outside (0, 2000] µm"
    assert RangeRule("x", 0.0, 1.0).problem == "is outside [0, 1]"


def test_the_measured_result_is_acquisitions_alone() -> None:
    assert sorted(MEASURED_COLUMNS) == ["Permeabilidad"]
    assert list(INPUT_RANGE_RULES) == ["Grados_C", "Porc_Humedad", *CALIBRES, "CalibreProm"]
    assert REQUIRED_INPUTS == ("Muestra", "Grados_C", "Porc_Humedad", "Estructura")


def test_absent_required_columns_count_the_readings_left() -> None:
    present = {"Muestra", "Grados_C", "Estructura", "Calibre1", "Calibre2", "Calibre3"}
    assert absent_required_columns(present, 3, REQUIRED_INPUTS) == ["Porc_Humedad"]
    assert absent_required_columns(present, 4, REQUIRED_INPUTS) == [
        "Porc_Humedad",
        "Calibre4",
        "Calibre5",
    ]


def test_a_sample_number_is_a_whole_number_from_zero() -> None:
    values = np.array([0.0, 3.0, 2.5, -1.0, 2.0**53 + 2, np.inf, np.nan])
    assert not_sample_numbers(values).tolist() == [False, False, True, True, True, True, False]


def test_an_inconsistent_caliper_mean_is_worded_with_its_tolerance() -> None:
    assert caliper_mean_problem(16.6) == (
        "does not match the mean of the readings (16.60 µm, tolerance ± 0.50 µm)"
    )


@given(
    stated=st.floats(0.01, 2000, allow_nan=False),
    mean=st.floats(0.01, 2000, allow_nan=False),
)
def test_vectorised_consistency_agrees_with_the_scalar_rule(stated: float, mean: float) -> None:
    assert bool(caliper_means_consistent([stated], [mean])[0]) == caliper_mean_consistent(
        stated, mean
    )


def test_structure_names_need_a_letter_and_a_sane_length() -> None:
    names = ["BOPP", "PET/LDPE", "123", "", "/", "X" * 81, "'; DROP TABLE MUESTRAS; --", None]
    assert structure_names_ok(names).tolist() == [
        True,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
    ]


def test_a_clean_frame_passes_the_schema() -> None:
    frame = clean_frame()
    assert validate_samples(frame) is not None
    assert "ingested_at" in sample_schema(with_ingested_at=True).columns
    assert "pc_1" in sample_schema(pc_columns=["pc_1"]).columns


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [
        ("Porc_Humedad", 120.0, "Porc_Humedad"),
        ("Permeabilidad", 0.0, "Permeabilidad"),
        ("Calibre3", -1.0, "Calibre3"),
        ("CalibreProm", 200.0, "CalibreProm does not match"),
        ("Estructura", "123", "Estructura"),
    ],
)
def test_a_broken_value_is_reported_with_its_column(
    column: str, value: float | str, named: str
) -> None:
    frame = clean_frame()
    frame.loc[1, column] = value
    with pytest.raises(InvalidInputError, match=named):
        validate_samples(frame)


def test_repeated_record_ids_break_the_schema_but_repeated_replicate_numbers_do_not() -> None:
    frame = clean_frame()
    frame.loc[2, "Muestra"] = 1  # a replicate number: many tests have a replicate 1
    validate_samples(frame)
    frame.loc[2, "record_id"] = "1"
    with pytest.raises(InvalidInputError, match="record_id"):
        validate_samples(frame)


def test_wrong_dtype_breaks_the_schema() -> None:
    frame = clean_frame().assign(Grados_C=lambda f: f["Grados_C"].astype(str))
    with pytest.raises(InvalidInputError, match="Grados_C"):
        validate_samples(frame)
