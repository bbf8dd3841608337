"""Which evaluations of the champion raise drift, new-structure, degradation, coverage events."""

from __future__ import annotations

from typing import Any

import pytest

from permeability.monitoring.alerts import AlertThresholds, evaluation_events
from permeability.monitoring.evaluation import VersionEvaluation
from permeability.monitoring.reports import (
    ALL_STRUCTURES,
    DriftReport,
    DriftTest,
    DriftThresholds,
    EvaluationMetrics,
)


def _metrics(*, n: int = 40, tests: int | None = 20, **values: float) -> EvaluationMetrics:
    figures = {"mae": 0.5, "r2": 0.8, "coverage": 0.9}
    figures.update(values)
    return EvaluationMetrics(
        n=n,
        tests=tests,
        level=0.9,
        metrics=figures,
        per_structure=[],
        decisions={"approve": 10, "wrong_approvals": 0},
        first="2026-11-01T00:00:00",
        last="2026-11-30T00:00:00",
    )


def _drift(*, flagged: bool = False, new: dict[str, int] | None = None) -> DriftReport:
    tests = [
        DriftTest(
            feature="Grados_C",
            structure=ALL_STRUCTURES,
            kind="numeric",
            test="ks",
            n_reference=500,
            n_current=40,
            psi=0.9 if flagged else 0.01,
            statistic=0.7 if flagged else 0.05,
            p_value=1e-9 if flagged else 0.8,
            drifted=flagged,
        )
    ]
    return DriftReport(
        thresholds=DriftThresholds(),
        n_reference=500,
        n_current=40,
        tests=tests,
        new_structures=new or {},
        missing_structures=[],
        corrected_alpha=0.01,
    )


def _evaluation(recent: EvaluationMetrics | None, drift: DriftReport | None) -> VersionEvaluation:
    return VersionEvaluation(
        version="v1",
        model_name="Ridge",
        is_champion=True,
        training_run_id="train-run",
        registry_version="1",
        training_feature_set_version=1,
        recent_rows=recent.n if recent else 0,
        served_rows=0,
        recent=recent,
        served=None,
        drift=drift,
        run_id="eval-run",
    )


TRAINED: dict[str, float] = {"mae": 0.5, "r2": 0.8, "coverage": 0.9}


def _kinds(**kwargs: Any) -> list[str]:
    evaluation = _evaluation(kwargs.pop("recent", _metrics()), kwargs.pop("drift", _drift()))
    events = evaluation_events(
        evaluation, kwargs.pop("trained", TRAINED), AlertThresholds(**kwargs)
    )
    return [e.kind for e in events]


def test_a_healthy_champion_raises_nothing() -> None:
    assert _kinds() == []


def test_flagged_drift_is_an_event_naming_the_features_and_linking_the_run() -> None:
    evaluation = _evaluation(_metrics(), _drift(flagged=True))
    [event] = evaluation_events(evaluation, TRAINED, AlertThresholds())
    assert event.kind == "drift"
    assert event.severity == "warning"
    assert event.figures["features"] == "Grados_C"
    assert event.figures["rows"] == 40
    assert event.run_id == "eval-run"


def test_new_structures_are_their_own_event_and_the_same_ones_keep_their_key() -> None:
    drift = _drift(new={"PET-AL-NY-PE": 6, "PLA": 2})
    first = evaluation_events(_evaluation(_metrics(), drift), TRAINED, AlertThresholds())
    again = evaluation_events(_evaluation(_metrics(), drift), TRAINED, AlertThresholds())
    assert [e.kind for e in first] == ["new_structure"]
    assert first[0].figures["structures"] == "PET-AL-NY-PE (6), PLA (2)"
    assert first[0].key == again[0].key


@pytest.mark.parametrize(
    ("mae", "expected"),
    [(0.6, []), (0.7, ["degradation"]), (0.9, ["degradation"])],
)
def test_degradation_is_the_metric_worse_than_at_training_beyond_the_margin(
    mae: float, expected: list[str]
) -> None:
    # MAE 0.5 at training, margin 25 %: 0.6 is +20 % (no event), 0.7 is +40 %.
    assert _kinds(recent=_metrics(mae=mae), margin=0.25) == expected


def test_degradation_far_beyond_the_margin_is_critical() -> None:
    evaluation = _evaluation(_metrics(mae=0.9), None)
    [event] = evaluation_events(evaluation, TRAINED, AlertThresholds(margin=0.25))
    assert event.severity == "critical"
    assert event.figures["change"] == pytest.approx(0.8)
    assert event.figures["tests"] == 20
    assert event.figures["trained"] == 0.5


def test_r2_degrades_by_absolute_loss_and_shows_its_relative_change() -> None:
    assert _kinds(recent=_metrics(r2=0.6), metric="r2", margin=0.1) == ["degradation"]
    assert _kinds(recent=_metrics(r2=0.75), metric="r2", margin=0.1) == []
    evaluation = _evaluation(_metrics(r2=0.6), None)
    [event] = evaluation_events(evaluation, TRAINED, AlertThresholds(metric="r2", margin=0.1))
    assert event.figures["change"] == pytest.approx(-0.25)


def test_too_few_new_results_say_nothing_about_degradation_or_coverage() -> None:
    recent = _metrics(n=8, tests=4, mae=5.0, coverage=0.2)
    assert _kinds(recent=recent, min_rows=10) == []


def test_coverage_outside_its_band_on_enough_tests_is_an_event() -> None:
    # 60 % of 50 tests inside a 90 % interval: far outside 85-95 %, binomial p ~ 1e-9.
    assert _kinds(recent=_metrics(n=100, tests=50, coverage=0.6)) == ["coverage"]


def test_coverage_outside_its_band_by_chance_is_not_news() -> None:
    # 80 % of 10 tests: outside the band, but 8 of 10 at 90 % happens (p ~ 0.26).
    assert _kinds(recent=_metrics(n=20, tests=10, coverage=0.8)) == []


def test_coverage_counts_tests_not_replicate_rows() -> None:
    # The same 80 % on 200 rows would be "significant" as rows; as 10 tests it is not.
    assert _kinds(recent=_metrics(n=200, tests=10, coverage=0.8)) == []
    assert _kinds(recent=_metrics(n=200, tests=None, coverage=0.8)) == ["coverage"]
