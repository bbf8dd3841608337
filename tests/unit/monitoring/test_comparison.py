"""The champion/challenger rule: who wins, by how much, and the reason given."""

from __future__ import annotations

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.monitoring.comparison import compare_versions, improvement_over
from permeability.monitoring.reports import EvaluationMetrics


def _metrics(mae: float, coverage: float = 0.9, n: int = 100, r2: float = 0.9) -> EvaluationMetrics:
    return EvaluationMetrics(
        n=n,
        level=0.9,
        metrics={"mae": mae, "coverage": coverage, "r2": r2},
        per_structure=[],
        decisions={},
        first=None,
        last=None,
    )


def test_a_challenger_that_wins_by_the_margin_wins_and_the_reason_says_so() -> None:
    outcome = compare_versions(
        {"0.1": _metrics(1.0), "0.2": _metrics(0.9), "0.3": _metrics(0.97)}, "0.1", margin=0.05
    )
    assert outcome.challenger_wins
    assert outcome.winner == "0.2"
    assert outcome.improvement == pytest.approx(0.1)
    assert "0.2 beats champion 0.1" in outcome.reason
    assert "+10.00%" in outcome.reason


def test_a_challenger_below_the_margin_does_not_win() -> None:
    outcome = compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.97)}, "0.1", margin=0.05)
    assert not outcome.challenger_wins
    assert outcome.winner == "0.1"
    assert outcome.best_challenger == "0.2"
    assert outcome.reason.startswith("champion 0.1 stays")


def test_a_challenger_whose_intervals_lie_cannot_win() -> None:
    outcome = compare_versions(
        {"0.1": _metrics(1.0), "0.2": _metrics(0.5, coverage=0.8)}, "0.1", margin=0.05
    )
    assert not outcome.challenger_wins
    assert "coverage 0.800" in outcome.reason


def test_after_a_shift_a_challenger_covering_no_worse_than_the_champion_may_win() -> None:
    # Both fall short of 90 % on shifted data; the challenger's 81 % beats the champion's 76 %.
    outcome = compare_versions(
        {"0.1": _metrics(0.60, coverage=0.76), "0.2": _metrics(0.53, coverage=0.81)},
        "0.1",
        margin=0.05,
    )
    assert outcome.challenger_wins
    assert outcome.winner == "0.2"


def test_a_challenger_covering_worse_than_a_short_champion_still_cannot_win() -> None:
    outcome = compare_versions(
        {"0.1": _metrics(0.60, coverage=0.80), "0.2": _metrics(0.40, coverage=0.70)},
        "0.1",
        margin=0.05,
    )
    assert not outcome.challenger_wins
    assert "below the champion's 0.800" in outcome.reason


def test_r2_is_compared_by_absolute_gain() -> None:
    scores = {"0.1": _metrics(1.0, r2=0.90), "0.2": _metrics(1.0, r2=0.93)}
    assert compare_versions(scores, "0.1", metric="r2", margin=0.02).challenger_wins
    assert not compare_versions(scores, "0.1", metric="r2", margin=0.05).challenger_wins


def test_without_a_champion_nothing_is_promoted() -> None:
    outcome = compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.5)}, None, margin=0.0)
    assert not outcome.challenger_wins
    assert outcome.winner is None
    assert "no champion" in outcome.reason


def test_comparison_refuses_bad_metric_margin_or_different_rows() -> None:
    scores = {"0.1": _metrics(1.0), "0.2": _metrics(0.5)}
    with pytest.raises(InvalidInputError, match="metric"):
        compare_versions(scores, "0.1", metric="accuracy")
    with pytest.raises(InvalidInputError, match="margin"):
        compare_versions(scores, "0.1", margin=1.5)
    with pytest.raises(InvalidInputError, match="same rows"):
        compare_versions({"0.1": _metrics(1.0), "0.2": _metrics(0.5, n=99)}, "0.1")


def test_improvement_is_relative_for_errors_and_absolute_for_r2() -> None:
    assert improvement_over("mae", 2.0, 1.5) == pytest.approx(0.25)
    assert improvement_over("mae", 2.0, 2.5) == pytest.approx(-0.25)
    assert improvement_over("r2", 0.80, 0.85) == pytest.approx(0.05)
    assert improvement_over("mae", 0.0, 0.0) == 0.0  # a perfect champion, matched
    assert improvement_over("mae", 0.0, 0.1) == -np.inf  # a perfect champion cannot be beaten
