"""Served predictions matched with the lab's later results: records, never replicate numbers."""

from __future__ import annotations

import datetime
from typing import Any

import pandas as pd

from permeability.monitoring.evaluation import evaluate_scored
from permeability.monitoring.matching import served_scored
from tests.unit.monitoring.evaluation_support import prediction_log, records, store_rows


def test_served_predictions_are_matched_with_later_results_latest_guide_value_wins() -> None:
    log = prediction_log(
        [
            ("2025-05-01T10:00", "0.1", 7, 4.0),
            ("2025-05-01T11:00", "0.1", 7, 5.0),  # the same sample asked again
            ("2025-05-01T12:00", "0.2", 7, 9.0),  # another version
            ("2025-05-01T13:00", "0.1", 8, 5.0),  # no lab result yet
        ]
    )
    labelled = records([(7, 7.5, "BOPP")])
    scored = served_scored(log, labelled, "0.1")
    assert len(scored) == 1
    row = scored.iloc[0]
    assert row["predicted"] == 5.0
    assert row["measured"] == 7.5
    assert row["when"] == pd.Timestamp("2025-05-01 11:00")
    result = evaluate_scored(scored)
    assert result.decisions["wrong_approvals"] == 1  # 7.5 > 6 was approved


def test_served_scored_of_an_empty_log_is_empty() -> None:
    assert served_scored(prediction_log([]), records([(1, 5.0, "BOPP")]), "0.1").empty


# -- issue 11: records, not replicate numbers -----------------------------------------------


def _served(rows: list[dict[str, Any]]) -> pd.DataFrame:
    log = prediction_log(
        [(str(r["at"]), "0.1", int(r["Muestra"]), float(r["prediction"])) for r in rows]
    )
    for column in ("CONSECUTIVO", "Referencia", "Fecha"):
        log[column] = [r.get(column) for r in rows]
    return log


def test_served_predictions_join_on_consecutivo_with_muestra_repeated() -> None:
    store = store_rows(
        [
            {"CONSECUTIVO": "101", "Muestra": 1, "Permeabilidad": 5.0, "Fecha": "2026-03-02"},
            {"CONSECUTIVO": "102", "Muestra": 2, "Permeabilidad": 5.2, "Fecha": "2026-03-02"},
            {"CONSECUTIVO": "103", "Muestra": 1, "Permeabilidad": 9.0, "Fecha": "2026-03-09"},
            {"CONSECUTIVO": "104", "Muestra": 2, "Permeabilidad": 9.4, "Fecha": "2026-03-09"},
        ]
    )
    log = _served(
        [
            {"at": "2026-03-09T10:00", "Muestra": 1, "prediction": 8.8, "CONSECUTIVO": "103"},
            {"at": "2026-03-02T10:00", "Muestra": 1, "prediction": 4.9, "CONSECUTIVO": "101"},
            {"at": "2026-03-02T10:01", "Muestra": 2, "prediction": 5.1, "CONSECUTIVO": "102.0"},
        ]
    )
    scored = served_scored(log, store, "0.1").sort_values("predicted")
    # Each guide value meets its own record; joined on Muestra, 4.9 would have met 9.0 too.
    assert scored["predicted"].tolist() == [4.9, 5.1, 8.8]
    assert scored["measured"].tolist() == [5.0, 5.2, 9.0]


def test_without_a_record_number_the_identity_must_agree_never_muestra_alone() -> None:
    store = store_rows(
        [
            {"Muestra": 1, "Permeabilidad": 5.0, "Fecha": "2026-03-02", "Referencia": "R-1"},
            {"Muestra": 1, "Permeabilidad": 9.0, "Fecha": "2026-03-09", "Referencia": "R-2"},
        ]
    )
    log = _served(
        [
            {
                "at": "2026-03-09T10:00",
                "Muestra": 1,
                "prediction": 8.0,
                "Fecha": datetime.date(2026, 3, 9),
                "Referencia": "R-2",
            },
            {"at": "2026-03-09T11:00", "Muestra": 1, "prediction": 1.0},  # no date, no reference
            {
                "at": "2026-03-09T12:00",
                "Muestra": 1,
                "prediction": 2.0,
                "Fecha": datetime.date(2026, 3, 9),
                "Referencia": "R-1",  # the date of one test, the reference of the other
            },
        ]
    )
    scored = served_scored(log, store, "0.1")
    assert scored["predicted"].tolist() == [8.0]
    assert scored["measured"].tolist() == [9.0]


def test_a_number_no_record_has_meets_only_unnumbered_records() -> None:
    store = store_rows(
        [
            {"CONSECUTIVO": "7", "Muestra": 1, "Permeabilidad": 5.0, "Fecha": "2026-03-02"},
            {"CONSECUTIVO": None, "Muestra": 1, "Permeabilidad": 6.0, "Fecha": "2026-03-02"},
        ]
    )
    store.loc[1, "Grados_C"] = 25.0  # another test of the same day
    common = {"Muestra": 1, "Fecha": datetime.date(2026, 3, 2)}
    log = _served(
        [
            {"at": "2026-03-02T10:00", "prediction": 4.0, "CONSECUTIVO": "8", **common},
            {"at": "2026-03-02T10:01", "prediction": 4.5, "CONSECUTIVO": "9", **common},
        ]
    )
    log["Grados_C"] = [38.0, 25.0]
    scored = served_scored(log, store, "0.1")
    # 8 at 38 °C has the identity of record 7, but another number: not that record. 9 at 25 °C
    # meets the unnumbered record by its identity.
    assert scored["predicted"].tolist() == [4.5]
    assert scored["measured"].tolist() == [6.0]


def test_a_record_predicted_twice_counts_once_with_its_latest_guide_value() -> None:
    store = store_rows([{"CONSECUTIVO": "5", "Muestra": 1, "Permeabilidad": 5.0}])
    log = _served(
        [
            {"at": "2026-03-02T11:00", "Muestra": 1, "prediction": 4.8, "CONSECUTIVO": "5"},
            {"at": "2026-03-02T10:00", "Muestra": 1, "prediction": 3.0, "CONSECUTIVO": "5"},
        ]
    )
    assert served_scored(log, store, "0.1")["predicted"].tolist() == [4.8]
