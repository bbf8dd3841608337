"""Row problems: collected check by check, worded only for the rows that fail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permeability.record.problems import SHOWN_CHARS, Problems, shown


def test_a_value_is_shown_as_sent() -> None:
    assert shown("120") == "'120'"
    assert shown(True) == "True"
    assert shown([1, 2]) == "[1, 2]"
    assert shown(np.float64(150.0)) == shown(150.0) == "150"
    assert shown(16.4) == "16.4"
    assert shown(float("inf")) == "inf"
    assert shown("x" * 100) == repr("x" * SHOWN_CHARS + "…")
    assert shown(10**100) == "1" + "0" * (SHOWN_CHARS - 1) + "…"


def test_problems_are_worded_only_for_the_rows_that_fail() -> None:
    asked: list[list[int]] = []

    def describe(rows: np.ndarray) -> list[str]:  # type: ignore[type-arg]
        asked.append(rows.tolist())
        return [f"row {r} is odd" for r in rows]

    problems = Problems(6)
    problems.add(np.array([False, True, False, True, False, False]), describe)
    problems.add(np.zeros(6, dtype=bool), describe)  # nothing wrong: never asked
    problems.value(
        np.array([False, True, False, False, False, True]),
        "Grados_C",
        pd.Series(["1", "90", "3", "4", "5", "n"], dtype="str"),
        "is outside [0, 80] °C",
    )
    assert asked == []
    assert problems.bad.tolist() == [False, True, False, True, False, True]
    assert problems.texts().tolist() == [
        "",
        "row 1 is odd; Grados_C '90' is outside [0, 80] °C",
        "",
        "row 3 is odd",
        "",
        "Grados_C 'n' is outside [0, 80] °C",
    ]
    assert asked == [[1, 3]]


def test_details_may_differ_per_row_and_a_typed_placeholder_is_shown() -> None:
    problems = Problems(3)
    problems.value(
        np.array([True, False, True]),
        "Calibre2",
        np.array(["abc", None, "16 kg"], dtype=object),
        np.array(["is not a number", None, "has an unknown unit 'kg'"], dtype=object),
    )
    problems.missing(np.array([False, True, True]), "Muestra", np.array([1, None, " n/a "]))
    problems.each(np.array([False, True, False]), lambda i: f"row {i} needs all three")
    assert problems.messages(np.arange(3)) == [
        ["Calibre2 'abc' is not a number"],
        ["Muestra is missing", "row 1 needs all three"],
        ["Calibre2 '16 kg' has an unknown unit 'kg'", "Muestra 'n/a' is missing"],
    ]
    assert problems.reasons(np.array([2])) == [
        "Calibre2 '16 kg' has an unknown unit 'kg'; Muestra 'n/a' is missing"
    ]
