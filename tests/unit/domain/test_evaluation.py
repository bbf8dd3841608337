"""Evaluation maths: which rows are new, scoring, metrics, served predictions, champion/challenger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.domain import evaluation as ev
from permeability.domain.model import train_model
from permeability.domain.pca import fit_caliper_pca
from permeability.domain.schema import CALIBRES
from permeability.domain.specs import SpecificationSet, SpecLimit
from permeability.domain.synthetic import DriftSpec, MessSpec, generate_lab_data
from permeability.errors import InvalidInputError

RULE = ev.DecisionRule(level=0.9, approve_below=0.05, reject_above=0.95)


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
    scored = ev.score_labelled(model, recent, _bopp_limit(), RULE)
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
    scored = ev.score_labelled(model, recent, _bopp_limit(), RULE)
    new = scored["structure"] == "BOPP/CPP"
    assert new.any()
    assert np.isfinite(scored.loc[new, "predicted"]).all()
    assert "BOPP/CPP" in {s.structure for s in ev.evaluate_scored(scored).per_structure}


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


# -- champion / challenger -------------------------------------------------------------------


def _metrics(
    mae: float, coverage: float = 0.9, n: int = 100, r2: float = 0.9
) -> ev.EvaluationMetrics:
    return ev.EvaluationMetrics(
        n=n,
        level=0.9,
        metrics={"mae": mae, "coverage": coverage, "r2": r2},
        per_structure=[],
        decisions={},
        first=None,
        last=None,
    )


def test_a_challenger_that_wins_by_the_margin_wins_and_the_reason_says_so() -> None:
    outcome = ev.compare_versions(
        {"0.1": _metrics(1.0), "0.2": _metrics(0.9), "0.3": _metrics(0.97)}, "0.1", margin=0.05
    )
    assert outcome.challenger_wins
    assert outcome.winner == "0.2"
    assert outcome.improvement == pytest.approx(0.1)
    assert "0.2 beats champion 0.1" in outcome.reason
    assert "+10.00%" in outcome.reason


def test_a_challenger_below_the_margin_does_not_win() -> None:
    outcome = ev.compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.97)}, "0.1", margin=0.05)
    assert not outcome.challenger_wins
    assert outcome.winner == "0.1"
    assert outcome.best_challenger == "0.2"
    assert outcome.reason.startswith("champion 0.1 stays")


def test_a_challenger_whose_intervals_lie_cannot_win() -> None:
    outcome = ev.compare_versions(
        {"0.1": _metrics(1.0), "0.2": _metrics(0.5, coverage=0.8)}, "0.1", margin=0.05
    )
    assert not outcome.challenger_wins
    assert "coverage 0.800" in outcome.reason


def test_r2_is_compared_by_absolute_gain() -> None:
    scores = {"0.1": _metrics(1.0, r2=0.90), "0.2": _metrics(1.0, r2=0.93)}
    assert ev.compare_versions(scores, "0.1", metric="r2", margin=0.02).challenger_wins
    assert not ev.compare_versions(scores, "0.1", metric="r2", margin=0.05).challenger_wins


def test_without_a_champion_nothing_is_promoted() -> None:
    outcome = ev.compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.5)}, None, margin=0.0)
    assert not outcome.challenger_wins
    assert outcome.winner is None
    assert "no champion" in outcome.reason


def test_comparison_refuses_bad_metric_margin_or_different_rows() -> None:
    scores = {"0.1": _metrics(1.0), "0.2": _metrics(0.5)}
    with pytest.raises(InvalidInputError, match="metric"):
        ev.compare_versions(scores, "0.1", metric="accuracy")
    with pytest.raises(InvalidInputError, match="margin"):
        ev.compare_versions(scores, "0.1", margin=1.5)
    with pytest.raises(InvalidInputError, match="same rows"):
        ev.compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.5, n=99)}, "0.1")
