"""The champion/challenger rule: does a challenger beat the champion on the same recent rows?

Each compared version's :class:`~permeability.monitoring.evaluation.EvaluationMetrics` (all on
the rows none of them trained on, :func:`permeability.monitoring.windows.shared_window`) becomes
a :class:`Contender`; :func:`compare_versions` picks the best eligible challenger and says in
words why it wins or why the champion stays. Error metrics are compared by relative
improvement (:func:`improvement_over`), R² by absolute gain. Pure: no storage, no tracking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from permeability.errors import InvalidInputError

if TYPE_CHECKING:
    from permeability.monitoring.reports import EvaluationMetrics

#: Metrics where less is better (compared by relative improvement) and more is better
#: (compared by absolute improvement).
LOWER_IS_BETTER: Final = ("mae", "mse", "rmse", "mape")
HIGHER_IS_BETTER: Final = ("r2", "r2_log")
ComparisonMetric = Literal["mae", "mse", "rmse", "mape", "r2", "r2_log"]


class Contender(BaseModel):
    """One version's score on the shared recent rows."""

    model_config = ConfigDict(frozen=True)

    version: str
    value: float
    coverage: float
    eligible: bool
    note: str


class ComparisonOutcome(BaseModel):
    """The champion/challenger verdict and, in words, why."""

    model_config = ConfigDict(frozen=True)

    metric: str
    margin: float
    n: int
    champion: str | None
    contenders: list[Contender]
    best_challenger: str | None
    improvement: float | None
    winner: str | None
    challenger_wins: bool
    reason: str


def improvement_over(metric: str, champion: float, challenger: float) -> float:
    """How much better the challenger is: relative for error metrics, absolute for R²."""
    if metric in HIGHER_IS_BETTER:
        return challenger - champion
    if champion == 0.0:
        return 0.0 if challenger == 0.0 else -np.inf
    return (champion - challenger) / champion


def _check_comparison(metric: str, margin: float, scores: Mapping[str, EvaluationMetrics]) -> None:
    if metric not in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER):
        valid = ", ".join((*LOWER_IS_BETTER, *HIGHER_IS_BETTER))
        raise InvalidInputError(f"comparison metric '{metric}' is unknown; valid: {valid}")
    if not (np.isfinite(margin) and 0.0 <= margin < 1.0):
        raise InvalidInputError(f"margin must be at least 0 and below 1, got {margin}")
    if len({s.n for s in scores.values()}) > 1:
        raise InvalidInputError("versions must be compared on the same rows (their counts differ)")


def _contender(
    version: str,
    score: EvaluationMetrics,
    metric: str,
    coverage_tolerance: float,
    champion_coverage: float | None = None,
) -> Contender:
    coverage = score.metrics["coverage"]
    value = score.metrics.get(metric, float("nan"))
    least = score.level - coverage_tolerance
    if not np.isfinite(value):
        return Contender(
            version=version,
            value=value,
            coverage=coverage,
            eligible=False,
            note=f"{metric} undefined",
        )
    if coverage < least and not (champion_coverage is not None and coverage >= champion_coverage):
        note = f"interval coverage {coverage:.3f} is below {score.level:.2f} - {coverage_tolerance:.2f}"
        if champion_coverage is not None:
            note += f" and below the champion's {champion_coverage:.3f}"
        return Contender(version=version, value=value, coverage=coverage, eligible=False, note=note)
    return Contender(version=version, value=value, coverage=coverage, eligible=True, note="")


def compare_versions(
    scores: Mapping[str, EvaluationMetrics],
    champion: str | None,
    *,
    metric: str = "mae",
    margin: float = 0.05,
    coverage_tolerance: float = 0.05,
) -> ComparisonOutcome:
    """The champion/challenger rule, scored on the same recent rows.

    A challenger wins when (1) its intervals stay honest - coverage at least the nominal level
    minus ``coverage_tolerance`` (a sharper guide value whose intervals lie would approve
    films it should not), or at least the champion's own coverage (after a shift in what the
    lab measures both may fall short; a challenger that covers no worse than what serves now
    is no step back) - and (2) it beats the champion on ``metric`` by at least ``margin``:
    a relative reduction for error metrics (0.05 = 5 % lower MAE), an absolute gain for R².
    The best eligible challenger is the one considered; the reason says what decided it.
    """
    _check_comparison(metric, margin, scores)
    n = next(iter(scores.values())).n if scores else 0
    held_coverage = (
        scores[champion].metrics["coverage"]
        if champion is not None and champion in scores
        else None
    )
    contenders = [
        _contender(v, s, metric, coverage_tolerance, None if v == champion else held_coverage)
        for v, s in sorted(scores.items())
    ]
    outcome = {"metric": metric, "margin": margin, "n": n, "contenders": contenders}
    by_version = {c.version: c for c in contenders}
    if champion is None or champion not in by_version:
        why = "no champion is set" if champion is None else f"champion {champion} was not scored"
        return ComparisonOutcome(
            **outcome,  # type: ignore[arg-type]
            champion=champion,
            best_challenger=None,
            improvement=None,
            winner=None,
            challenger_wins=False,
            reason=f"{why}: nothing to compare against; no promotion",
        )
    held = by_version[champion]
    eligible = [c for c in contenders if c.version != champion and c.eligible]
    if not eligible:
        others = [c for c in contenders if c.version != champion]
        detail = "; ".join(f"{c.version}: {c.note}" for c in others) or "no other version"
        return ComparisonOutcome(
            **outcome,  # type: ignore[arg-type]
            champion=champion,
            best_challenger=None,
            improvement=None,
            winner=champion,
            challenger_wins=False,
            reason=f"champion {champion} stays: no eligible challenger ({detail})",
        )
    lower_better = metric in LOWER_IS_BETTER
    best = min(eligible, key=lambda c: c.value if lower_better else -c.value)
    gain = improvement_over(metric, held.value, best.value)
    wins = gain > 0.0 and gain >= margin
    unit = "relative" if lower_better else "absolute"
    figures = (
        f"{metric} {best.value:.4g} vs {held.value:.4g} on {n} recent results "
        f"({unit} improvement {gain:+.2%} vs margin {margin:.2%})"
        if lower_better
        else f"{metric} {best.value:.4f} vs {held.value:.4f} on {n} recent results "
        f"(improvement {gain:+.4f} vs margin {margin:.4f})"
    )
    if wins:
        reason = f"challenger {best.version} beats champion {champion}: {figures}"
    else:
        reason = f"champion {champion} stays: best challenger {best.version} has {figures}"
    return ComparisonOutcome(
        **outcome,  # type: ignore[arg-type]
        champion=champion,
        best_challenger=best.version,
        improvement=float(gain),
        winner=best.version if wins else champion,
        challenger_wins=wins,
        reason=reason,
    )
