"""The record-field rules shared by the single path and batch scoring (issue 11)."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from permeability.record.problems import Problems
from permeability.record.request_fields import (
    below_detection_limit,
    check_record_fields,
    iso_test_date,
    non_product,
    non_product_message,
    product_structures,
    record_number_text,
)


@pytest.mark.parametrize(
    ("value", "text"), [(17, "17"), (17.0, "17"), (" C-17 ", "C-17"), ("0017", "0017")]
)
def test_a_record_number_is_text(value: object, text: str) -> None:
    assert record_number_text(value) == text


@pytest.mark.parametrize("value", [True, 1.5, -1, "", None, [1], float("nan")])
def test_a_bad_record_number_says_why(value: object) -> None:
    with pytest.raises(ValueError, match="must"):
        record_number_text(value)


def test_a_json_test_date_is_written_yyyy_mm_dd() -> None:
    assert iso_test_date("2026-03-02") == datetime.date(2026, 3, 2)
    for bad in ("2026-3-2", "02/03/2026", "20260302", "2026-03-02T10:00"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            iso_test_date(bad)
    with pytest.raises(ValueError, match="not a calendar date"):
        iso_test_date("2026-13-01")


def test_file_columns_give_one_date_per_row_and_name_every_problem() -> None:
    frame = pd.DataFrame(
        {
            "CONSECUTIVO": ["17.0", "", "x" * 121, "20", "21", "22"],
            "Referencia": ["R-1", "R-1", "", "R-2", "R-3", None],
            "Año": ["2025", "", "2025", "2025", "", "2025"],
            "Mes": ["11", "", "13", "11", "", "1"],
            "Día": ["4", "", "1", "4", "", "2"],
            "Fecha": ["", "05/11/2025", "", "2025-11-05", "soon", ""],
        }
    )
    problems = Problems(len(frame))
    fields = check_record_fields(frame, problems)
    messages = problems.messages(np.arange(len(frame)))
    assert fields.consecutivo.tolist() == ["17", None, None, "20", "21", "22"]
    assert fields.referencia.tolist() == ["R-1", "R-1", None, "R-2", "R-3", None]
    expected = ["2025-11-04", "2025-11-05", "NaT", "NaT", "NaT", "2025-01-02"]
    assert fields.fecha.astype(str).tolist() == expected
    assert messages[0] == messages[1] == messages[5] == []
    assert any("CONSECUTIVO" in m and "longer than 120 characters" in m for m in messages[2])
    assert not any(m.startswith("Referencia") for m in messages[2])  # empty = absent
    assert any("2025/13/1 is not a calendar date" in m for m in messages[2])
    assert messages[3] == ["Fecha 2025-11-05 disagrees with Año/Mes/Día 2025-11-04"]
    assert messages[4] == ["Fecha 'soon' is not a date (expected YYYY-MM-DD or DD/MM/YYYY)"]


def test_without_record_columns_nothing_is_said() -> None:
    frame = pd.DataFrame({"Muestra": [1, 2]})
    problems = Problems(2)
    fields = check_record_fields(frame, problems)
    assert fields.consecutivo.tolist() == [None, None]
    assert np.isnat(fields.fecha).all()
    assert problems.messages(np.arange(2)) == [[], []]


def test_non_products_follow_the_versions_patterns() -> None:
    patterns = ("CALIBRACION*", "MUESTRA-*")
    assert non_product("CALIBRACION", patterns)
    assert not non_product("BOPP", patterns)
    assert not non_product("CALIBRACION", ())
    assert product_structures(["BOPP", "CALIBRACION", "PET"], patterns) == ["BOPP", "PET"]
    assert non_product_message("calibracion ", "CALIBRACION") == (
        "Estructura 'calibracion ' (CALIBRACION) is a calibration/reference film or an "
        "unreported material, not a product: the model gives no guide value for it"
    )


def test_below_the_detection_limit() -> None:
    assert below_detection_limit(0.0001, 0.0005)
    assert not below_detection_limit(0.0005, 0.0005)
    assert not below_detection_limit(0.0001, None)
