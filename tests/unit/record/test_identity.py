from __future__ import annotations

import numpy as np
import pandas as pd

from permeability.record.identity import (
    DEFAULT_IDENTITY,
    censor_below_limit,
    dates_from_parts,
    key_text,
    resolve_record_key,
    whole_number_text,
)

NAN = np.nan


def test_date_parts_make_a_date_only_when_all_three_are_whole_and_real() -> None:
    year = np.array([2021, 2021, 2021.5, 21, 2021, NAN])
    month = np.array([3, 2, 1, 1, 13, 1])
    day = np.array([4, 30, 1, 1, 1, 1])
    built = dates_from_parts(year, month, day)
    assert str(built[0].astype("datetime64[D]")) == "2021-03-04"
    assert np.isnat(built[1:]).all()  # 30 Feb, half a year, year 21, month 13, a missing part


def test_the_record_key_is_consecutivo_when_present_else_the_identity() -> None:
    assert resolve_record_key(None, ["CONSECUTIVO", "Muestra"]) == ("CONSECUTIVO",)
    assert resolve_record_key(None, ["Muestra"]) == DEFAULT_IDENTITY
    assert resolve_record_key(("Referencia", "Muestra"), ["CONSECUTIVO"]) == (
        "Referencia",
        "Muestra",
    )


def test_key_text_is_stable_across_types() -> None:
    assert key_text(pd.Series([17.0, 17.5, NAN])).tolist() == ["17", "17.5", ""]
    assert key_text(pd.Series(["17.0", " A-1 ", None], dtype="str")).tolist() == ["17", "A-1", ""]
    assert whole_number_text(" 17.00 ") == "17"
    assert whole_number_text("17.5") == "17.5"


def test_zero_and_values_under_the_limit_are_stored_at_it_and_flagged() -> None:
    values, flags = censor_below_limit(np.array([0.0, 0.0001, 0.0005, 2.0, -1.0, NAN]), 0.0005)
    assert values[:4].tolist() == [0.0005, 0.0005, 0.0005, 2.0]
    assert values[4] == -1.0  # negative: left for the range rule to reject
    assert flags.tolist() == [True, True, False, False, False, False]
