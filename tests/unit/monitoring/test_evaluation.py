"""Evaluation maths: which rows are new, scoring, metrics, served predictions.

The champion/challenger rule is tested in test_comparison.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.model import train_model
from permeability.monitoring import evaluation as ev
from permeability.monitoring.drift import DriftThresholds
from permeability.record.identity import product_rows
from permeability.record.schema import CALIBRES
from permeability.scoring.decisions import DecisionPolicy
from permeability.scoring.specs import SpecificationSet, SpecLimit
from permeability.synthetic.generator import DriftSpec, MessSpec, generate_lab_data

POLICY = DecisionPolicy(level=0.9, approve_below=0.05, reject_above=0.95)


def _scored(**columns: object) -> pd.DataFrame:
    """A scored-rows table; unspecified columns get harmless defaults."""
    n = len(next(iter(columns.values())))  # type: ignore[arg-type]
    base: dict[str, object] = {
        "Muestra": np.arange(1, n + 1),
        "structure": ["BOPP"] * n,
        "level": [0.9] * n,
        "limit": [np.nan] * n,
        "p_exceed": [np.nan] * n,
        "decision": [""] * n,
        "when": pd.date_range("2025-01-01", periods=n, freq="D"),
    }
    base.update(columns)
    return pd.DataFrame(base)


# -- which rows are new ---------------------------------------------------------------------


def _records(rows: list[tuple[int, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Muestra": [r[0] for r in rows],
            "Grados_C": [38.0] * len(rows),
            "Porc_Humedad": [90.0] * len(rows),
            "Estructura": [r[2] for r in rows],
            **{c: [20.0] * len(rows) for c in CALIBRES},
            "CalibreProm": [20.0] * len(rows),
            "Permeabilidad": [r[1] for r in rows],
        }
    )


def test_new_rows_are_unseen_samples_and_changed_records() -> None:
    training = _records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 0.3, "BOPP MET")])
    current = _records([(1, 5.0, "BOPP"), (2, 6.5, "BOPP"), (3, 0.3, "BOPP MET"), (4, 7.0, "PET")])
    current.loc[2, "Calibre3"] = np.nan
    training.loc[2, "Calibre3"] = np.nan  # missing in both: the same record
    assert ev.new_since_training(current, training).tolist() == [False, True, False, True]


CREATED = "2025-06-01T12:00:00+00:00"


def _loaded(current: pd.DataFrame, *stamps: str | None) -> pd.DataFrame:
    """``current`` with an ``ingested_at`` column (UTC) of the given load times."""
    return current.assign(ingested_at=pd.to_datetime(pd.Series(stamps), utc=True))


def test_without_lineage_the_rows_loaded_after_the_version_was_created_are_unseen() -> None:
    current = _loaded(
        _records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 7.0, "PET"), (4, 8.0, "PET")]),
        "2025-05-31T09:00:00+00:00",  # before the version
        "2025-06-01T12:00:00+00:00",  # loaded the very moment it was created
        "2025-06-02T08:00:00+00:00",  # after
        None,  # load time unknown
    )
    assert ev.unseen_rows(current, None, CREATED).tolist() == [False, False, True, False]


def test_without_lineage_or_dates_no_row_counts_as_unseen() -> None:
    current = _loaded(_records([(1, 5.0, "BOPP")]), "2025-06-02T08:00:00+00:00")
    assert ev.unseen_rows(current, None, None).tolist() == [False]
    assert ev.unseen_rows(current, None, "not a date").tolist() == [False]
    assert ev.unseen_rows(current.drop(columns=["ingested_at"]), None, CREATED).tolist() == [False]


def test_with_lineage_the_training_rows_decide_not_the_load_times() -> None:
    training = _records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP")])
    current = _loaded(
        _records([(1, 5.0, "BOPP"), (2, 6.5, "BOPP"), (3, 7.0, "PET")]),
        "2025-06-02T08:00:00+00:00",  # loaded again after creation, unchanged: seen
        "2025-05-31T09:00:00+00:00",  # loaded before creation, but re-measured: unseen
        "2025-05-31T09:00:00+00:00",  # never in its training: unseen
    )
    assert ev.unseen_rows(current, training, CREATED).tolist() == [False, True, True]


def test_shared_window_keeps_the_rows_no_compared_version_trained_on() -> None:
    current = _loaded(
        _records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 7.0, "PET"), (4, 8.0, "PET")]),
        "2025-05-01T00:00:00+00:00",
        "2025-06-10T00:00:00+00:00",
        "2025-06-20T00:00:00+00:00",
        "2025-06-30T00:00:00+00:00",
    )
    unseen = {
        "0.1": ev.unseen_rows(current, None, "2025-06-05T00:00:00+00:00"),  # rows 2, 3, 4
        "0.2": ev.unseen_rows(current, None, "2025-06-15T00:00:00+00:00"),  # rows 3, 4
        # with lineage: trained on rows 1 and 3, so rows 2 and 4 are unseen
        "0.3": ev.unseen_rows(current, _records([(1, 5.0, "BOPP"), (3, 7.0, "PET")]), None),
    }
    kept, dropped = ev.shared_window(unseen, champion="0.1")
    assert sorted(kept) == ["0.1", "0.2", "0.3"]
    assert all(mask.tolist() == [False, False, False, True] for mask in kept.values())
    assert dropped == {}


def test_shared_window_leaves_out_versions_with_nothing_newer_than_the_champion() -> None:
    unseen = {
        "0.1": np.array([False, True, True]),  # the champion
        "0.2": np.array([False, True, False]),  # trained later, row 2 still unseen
        "0.3": np.array([True, False, False]),  # unseen only where the champion trained
        "0.4": np.array([False, False, False]),  # trained on everything
    }
    kept, dropped = ev.shared_window(unseen, champion="0.1")
    assert {label: mask.tolist() for label, mask in kept.items()} == {
        "0.1": [False, True, False],
        "0.2": [False, True, False],
    }
    assert dropped["0.3"].startswith("it trained on every labelled row the champion has not seen")
    assert dropped["0.4"] == "no labelled data arrived after its training"


def test_shared_window_without_a_champion_starts_from_every_versions_unseen_rows() -> None:
    unseen = {
        "0.1": np.array([True, True, False]),
        "0.2": np.array([False, True, True]),
        "0.3": np.array([False, False, False]),
    }
    for champion in (None, "0.9"):  # none set, or set but not among the compared versions
        kept, dropped = ev.shared_window(unseen, champion=champion)
        assert {label: mask.tolist() for label, mask in kept.items()} == {
            "0.1": [False, True, False],
            "0.2": [False, True, False],
        }
        assert dropped == {"0.3": "no labelled data arrived after its training"}


def test_on_or_after_keeps_dated_rows_from_the_day_on() -> None:
    when = pd.Series(pd.to_datetime(pd.Series(["2025-01-01", "2025-02-01", None])))
    assert ev.on_or_after(when, pd.Timestamp("2025-01-15")).tolist() == [False, True, False]
    assert ev.on_or_after(when, None).tolist() == [True, True, True]


def test_when_falls_back_to_the_load_time_for_undated_rows() -> None:
    frame = pd.DataFrame(
        {
            "Fecha": pd.to_datetime(pd.Series(["2025-03-01", None])),
            "ingested_at": pd.to_datetime(["2025-06-01T10:00", "2025-06-02T11:00"], utc=True),
        }
    )
    assert ev.labelled_when(frame).tolist() == [
        pd.Timestamp("2025-03-01"),
        pd.Timestamp("2025-06-02 11:00"),
    ]


# -- metrics ------------------------------------------------------------------------------


def test_evaluate_scored_gives_errors_coverage_and_decision_quality() -> None:
    scored = _scored(
        structure=["BOPP", "BOPP", "PET", "PET"],
        measured=[4.0, 8.0, 20.0, 10.0],
        predicted=[5.0, 5.0, 20.0, 12.0],
        lower=[3.0, 3.0, 15.0, 11.0],
        upper=[7.0, 7.0, 25.0, 15.0],
        limit=[6.0, 6.0, 15.0, 15.0],
        decision=["approve", "approve", "reject", "reject"],
    )
    result = ev.evaluate_scored(scored)
    assert result.n == 4
    assert result.metrics["mae"] == pytest.approx((1 + 3 + 0 + 2) / 4)
    assert result.metrics["coverage"] == pytest.approx(0.5)
    assert result.decisions["approve"] == 2
    assert result.decisions["reject"] == 2
    assert result.decisions["wrong_approvals"] == 1  # 8 > 6 approved
    assert result.decisions["wrong_rejections"] == 1  # 10 <= 15 rejected
    table = result.structure_table().set_index("structure")
    assert table.loc["BOPP", "coverage"] == pytest.approx(0.5)
    assert table.loc["PET", "coverage"] == pytest.approx(0.5)
    assert table.loc["BOPP", "wrong_approvals"] == 1
    assert table.loc["PET", "mae"] == pytest.approx(1.0)
    assert result.first == "2025-01-01T00:00:00"
    assert result.last == "2025-01-04T00:00:00"


def test_rows_without_a_decision_are_not_judged_against_their_limit() -> None:
    scored = _scored(
        measured=[9.0, 9.0],
        predicted=[5.0, 5.0],
        lower=[1.0, 1.0],
        upper=[10.0, 10.0],
        limit=[6.0, 6.0],
        decision=["approve", None],
    )
    decisions = ev.evaluate_scored(scored).decisions
    assert decisions["approve"] == 1
    assert decisions["no_limit"] == 1
    assert decisions["wrong_approvals"] == 1


def test_unusable_rows_are_left_out_and_nothing_usable_is_an_error() -> None:
    scored = _scored(measured=[5.0, -1.0], predicted=[5.0, 5.0], lower=[4, 4], upper=[6, 6])
    assert ev.evaluate_scored(scored).n == 1
    with pytest.raises(InvalidInputError, match="positive"):
        ev.evaluate_scored(scored.iloc[1:])
    with pytest.raises(InvalidInputError, match="lack column"):
        ev.evaluate_scored(scored.drop(columns=["upper"]))


# -- scoring with a real model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    frame = generate_lab_data(1500, 21, mess=MessSpec.none())
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(dtype=np.float64), 0.99)
    return train_model(frame, pca, model="LinearRegression", test_size=0.25).model


def _bopp_limit() -> SpecificationSet:
    limit = SpecLimit(structure="BOPP", max_permeability=6.0, temperature_c=38.0, humidity_pct=90.0)
    return SpecificationSet.from_limits([limit], "test")


def test_score_labelled_gives_service_like_intervals_and_decisions(model) -> None:  # type: ignore[no-untyped-def]
    recent = generate_lab_data(600, 22, start_id=1501, mess=MessSpec.none())
    recent["Fecha"] = pd.to_datetime(recent["Fecha"])
    scored = ev.score_labelled(model, recent, _bopp_limit(), POLICY)
    assert list(scored.columns) == list(ev.SCORED_COLUMNS)
    assert len(scored) == len(recent)
    assert (scored["lower"] <= scored["predicted"]).all()
    assert (scored["predicted"] <= scored["upper"]).all()
    limited = scored["limit"].notna()
    assert limited.any()
    assert set(scored.loc[limited, "decision"]) <= {"approve", "reject", "retest"}
    assert (scored.loc[~limited, "decision"] == "").all()
    assert set(scored.loc[limited, "structure"]) == {"BOPP"}
    result = ev.evaluate_scored(scored)
    assert 0.8 <= result.metrics["coverage"] <= 0.98
    assert result.metrics["r2_log"] > 0.9


def test_a_structure_the_version_never_saw_is_still_scored(model) -> None:  # type: ignore[no-untyped-def]
    recent = generate_lab_data(
        400, 23, start_id=1501, mess=MessSpec.none(), drift=DriftSpec(new_structures=("BOPP/CPP",))
    )
    scored = ev.score_labelled(model, recent, _bopp_limit(), POLICY)
    name = model.features.canonical_structure("BOPP/CPP")  # the version's canonical spelling
    new = scored["structure"] == name
    assert new.any()
    assert np.isfinite(scored.loc[new, "predicted"]).all()
    assert name in {s.structure for s in ev.evaluate_scored(scored).per_structure}


def test_residuals_for_drift_are_log_ratios(model) -> None:  # type: ignore[no-untyped-def]
    scored = _scored(measured=[2.0, 1.0], predicted=[1.0, 1.0], lower=[0, 0], upper=[9, 9])
    residuals = ev.recent_residuals(scored)
    assert residuals.residuals.tolist() == pytest.approx([np.log(2.0), 0.0])
    reference = ev.calibration_reference(model)
    assert len(reference.pooled) == sum(model.calibration.counts.values())


# -- served predictions --------------------------------------------------------------------


def _log(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([r[0] for r in rows], utc=True),
            "version": [r[1] for r in rows],
            "Muestra": [r[2] for r in rows],
            "Grados_C": [38.0] * len(rows),
            "Porc_Humedad": [90.0] * len(rows),
            "structure": ["BOPP"] * len(rows),
            "prediction": [r[3] for r in rows],
            "lower": [r[3] * 0.8 for r in rows],
            "upper": [r[3] * 1.2 for r in rows],
            "level": [0.9] * len(rows),
            "spec_limit": [6.0] * len(rows),
            "p_exceed": [0.01] * len(rows),
            "decision": ["approve"] * len(rows),
        }
    )


def test_served_predictions_are_matched_with_later_results_latest_guide_value_wins() -> None:
    log = _log(
        [
            ("2025-05-01T10:00", "0.1", 7, 4.0),
            ("2025-05-01T11:00", "0.1", 7, 5.0),  # the same sample asked again
            ("2025-05-01T12:00", "0.2", 7, 9.0),  # another version
            ("2025-05-01T13:00", "0.1", 8, 5.0),  # no lab result yet
        ]
    )
    labelled = _records([(7, 7.5, "BOPP")])
    scored = ev.served_scored(log, labelled, "0.1")
    assert len(scored) == 1
    row = scored.iloc[0]
    assert row["predicted"] == 5.0
    assert row["measured"] == 7.5
    assert row["when"] == pd.Timestamp("2025-05-01 11:00")
    result = ev.evaluate_scored(scored)
    assert result.decisions["wrong_approvals"] == 1  # 7.5 > 6 was approved


def test_served_scored_of_an_empty_log_is_empty() -> None:
    assert ev.served_scored(_log([]), _records([(1, 5.0, "BOPP")]), "0.1").empty


# -- issue 11: records, not replicate numbers -----------------------------------------------


def _store(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Feature-store rows of the real export's kind: Muestra 1 and 2 in every test."""
    base = _records([(int(r["Muestra"]), float(r["Permeabilidad"]), "BOPP") for r in rows])
    for column in ("CONSECUTIVO", "Referencia", "Fecha", "record_id", "is_product"):
        values = [r.get(column) for r in rows]
        if any(v is not None for v in values):
            base[column] = values
    if "Fecha" in base.columns:
        base["Fecha"] = pd.to_datetime(base["Fecha"])
    return base


def _served(rows: list[dict[str, Any]]) -> pd.DataFrame:
    log = _log([(str(r["at"]), "0.1", int(r["Muestra"]), float(r["prediction"])) for r in rows])
    for column in ("CONSECUTIVO", "Referencia", "Fecha"):
        log[column] = [r.get(column) for r in rows]
    return log


def test_served_predictions_join_on_consecutivo_with_muestra_repeated() -> None:
    store = _store(
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
    scored = ev.served_scored(log, store, "0.1").sort_values("predicted")
    # Each guide value meets its own record; joined on Muestra, 4.9 would have met 9.0 too.
    assert scored["predicted"].tolist() == [4.9, 5.1, 8.8]
    assert scored["measured"].tolist() == [5.0, 5.2, 9.0]


def test_without_a_record_number_the_identity_must_agree_never_muestra_alone() -> None:
    store = _store(
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
    scored = ev.served_scored(log, store, "0.1")
    assert scored["predicted"].tolist() == [8.0]
    assert scored["measured"].tolist() == [9.0]


def test_a_number_no_record_has_meets_only_unnumbered_records() -> None:
    store = _store(
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
    scored = ev.served_scored(log, store, "0.1")
    # 8 at 38 °C has the identity of record 7, but another number: not that record. 9 at 25 °C
    # meets the unnumbered record by its identity.
    assert scored["predicted"].tolist() == [4.5]
    assert scored["measured"].tolist() == [6.0]


def test_a_record_predicted_twice_counts_once_with_its_latest_guide_value() -> None:
    store = _store([{"CONSECUTIVO": "5", "Muestra": 1, "Permeabilidad": 5.0}])
    log = _served(
        [
            {"at": "2026-03-02T11:00", "Muestra": 1, "prediction": 4.8, "CONSECUTIVO": "5"},
            {"at": "2026-03-02T10:00", "Muestra": 1, "prediction": 3.0, "CONSECUTIVO": "5"},
        ]
    )
    assert ev.served_scored(log, store, "0.1")["predicted"].tolist() == [4.8]


def test_new_rows_are_found_by_record_id_not_by_the_replicate_number() -> None:
    training = _store(
        [
            {"record_id": "101", "Muestra": 1, "Permeabilidad": 5.0},
            {"record_id": "102", "Muestra": 2, "Permeabilidad": 5.2},
        ]
    )
    current = _store(
        [
            {"record_id": "101", "Muestra": 1, "Permeabilidad": 5.0},
            {"record_id": "102", "Muestra": 2, "Permeabilidad": 5.2},
            {"record_id": "103", "Muestra": 1, "Permeabilidad": 5.0},  # a new test, replicate 1
            {"record_id": "104", "Muestra": 2, "Permeabilidad": 5.3},
        ]
    )
    assert ev.new_since_training(current, training).tolist() == [False, False, True, True]
    # An old store without record ids falls back on Muestra (and then sees nothing new here).
    old = ev.new_since_training(current.drop(columns="record_id"), training)
    assert old.tolist() == [False, False, False, True]


def test_non_product_rows_are_left_out_of_the_evaluation(model) -> None:  # type: ignore[no-untyped-def]
    recent = generate_lab_data(200, 29, start_id=2001, mess=MessSpec.none())
    recent["is_product"] = [i % 4 != 0 for i in range(len(recent))]
    assert len(product_rows(recent)) == 150
    assert len(product_rows(recent.drop(columns="is_product"))) == 200
    scores = ev.score_version(
        model,
        "0.1",
        training=None,
        window=recent,
        served_window=recent,
        predictions=_log([]),
        specs=_bopp_limit(),
        policy=POLICY,
        thresholds=DriftThresholds(),
    )
    assert len(scores.recent_scored) == 150
