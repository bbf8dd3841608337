"""The test date's rules shared by acquisition and batch scoring: Año/Mes/Día as one date."""

from __future__ import annotations

import numpy as np

from permeability.record.dates import DatePart, check_date_parts
from permeability.record.problems import Problems


def _parts(*rows: tuple[float | None, float | None, float | None]) -> dict[str, DatePart]:
    parts = {}
    for column, name in enumerate(("Año", "Mes", "Día")):
        sent = np.array([row[column] for row in rows], dtype=object)
        given = np.array([v is not None for v in sent], dtype=bool)
        values = np.array([np.nan if v is None else v for v in sent], dtype=np.float64)
        parts[name] = DatePart(values, given, sent)
    return parts


def test_three_whole_numbers_make_a_date_and_every_problem_is_named() -> None:
    parts = _parts(
        (2025, 11, 4),
        (None, None, None),
        (2025, 2, 30),
        (2025, None, 4),
        (2025.5, 1, None),
        (1021, 1, 1),
    )
    problems = Problems(6)
    dates = check_date_parts(parts, problems)
    assert dates.astype("datetime64[D]").astype(str).tolist() == [
        "2025-11-04",
        "NaT",
        "NaT",
        "NaT",
        "NaT",
        "NaT",
    ]
    assert problems.messages(np.arange(6)) == [
        [],
        [],
        ["Año/Mes/Día 2025/2/30 is not a calendar date"],
        ["Mes missing: a date in Año/Mes/Día needs all three"],
        ["Año 2025.5 is not a whole number", "Día missing: a date in Año/Mes/Día needs all three"],
        ["Año/Mes/Día 1021/1/1 is not a calendar date"],
    ]


def test_only_the_rows_asked_are_judged() -> None:
    parts = _parts((2025, 2, 30), (2025, 2, 30), (2025, 3, 1))
    problems = Problems(3)
    dates = check_date_parts(parts, problems, where=np.array([False, True, True]))
    assert problems.bad.tolist() == [False, True, False]
    assert np.isnat(dates).tolist() == [True, True, False]
