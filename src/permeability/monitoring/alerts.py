"""What an evaluation of the champion is worth telling someone: drift, degradation, coverage.

:func:`evaluation_events` reads one version's evaluation (:class:`~permeability.monitoring.
evaluation.VersionEvaluation`) next to the metrics it had at training and returns the
:class:`~permeability.monitoring.events.Event` list the notifier sends:

* ``drift``: the drift report flagged inputs, the structure mix, the target or the residuals;
* ``new_structure``: recent lab results of structures the version never trained on;
* ``degradation``: the chosen metric on the new lab results is worse than at training by more
  than the margin (relative for error metrics, absolute for R²);
* ``coverage``: the interval coverage on the new lab results is outside ``level ± tolerance``
  *and* a binomial test on the tests (not the rows: a test's replicates are not independent
  draws) says the difference is more than chance at ``alpha``; a handful of results outside
  the band by luck is not news.

Degradation and coverage need ``min_rows`` new lab results; fewer say too little either way.
Only the champion's evaluation raises them (:func:`evaluation_events` is called for it alone):
a challenger's drift is nobody's problem until it serves.

Pure: no delivery, no tracking.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict
from scipy.stats import binomtest

from permeability.monitoring.comparison import HIGHER_IS_BETTER, ComparisonMetric
from permeability.monitoring.evaluation import VersionEvaluation
from permeability.monitoring.events import Event
from permeability.monitoring.reports import ALL_STRUCTURES, DriftReport, EvaluationMetrics


class AlertThresholds(BaseModel):
    """When an evaluation's figures become events (from the configuration's evaluation part)."""

    model_config = ConfigDict(frozen=True)

    metric: ComparisonMetric = "mae"
    margin: float = 0.25
    coverage_tolerance: float = 0.05
    alpha: float = 0.01
    min_rows: int = 10


def evaluation_events(
    evaluation: VersionEvaluation,
    trained: Mapping[str, float],
    thresholds: AlertThresholds,
    *,
    experiment_id: str | None = None,
) -> list[Event]:
    """The events one version's evaluation raises (see the module docstring)."""
    common = {"run_id": evaluation.run_id, "experiment_id": experiment_id}
    events: list[Event] = []
    if evaluation.drift is not None:
        events.extend(_drift_events(evaluation.version, evaluation.drift, common))
    recent = evaluation.recent
    if recent is not None and recent.n >= thresholds.min_rows:
        degraded = _degradation(evaluation.version, recent, trained, thresholds, common)
        if degraded is not None:
            events.append(degraded)
        covered = _coverage(evaluation.version, recent, thresholds, common)
        if covered is not None:
            events.append(covered)
    return events


def _drift_events(version: str, drift: DriftReport, common: dict[str, str | None]) -> list[Event]:
    events: list[Event] = []
    flagged = drift.flagged
    new = drift.flagged_new_structures
    if flagged:
        features = sorted(
            {
                t.feature if t.structure == ALL_STRUCTURES else f"{t.feature} [{t.structure}]"
                for t in flagged
            }
        )
        events.append(
            Event(
                kind="drift",
                severity="warning",
                subject=version,
                figures={
                    "version": version,
                    "features": ", ".join(features),
                    "new_structures": ", ".join(sorted(new)),
                    "rows": drift.n_current,
                    "reference_rows": drift.n_reference,
                    "largest_psi": round(max(t.psi for t in flagged), 3),
                },
                # The same flagged features of the same version are the same finding.
                key=f"drift:{version}:{'|'.join(features)}",
                **common,
            )
        )
    if new:
        names = sorted(new)
        events.append(
            Event(
                kind="new_structure",
                severity="info",
                subject=", ".join(names)[:200],
                figures={
                    "version": version,
                    "structures": ", ".join(f"{name} ({new[name]})" for name in names),
                    "rows": sum(new.values()),
                },
                key=f"new_structure:{version}:{'|'.join(names)}",
                **common,
            )
        )
    return events


def _degradation(
    version: str,
    recent: EvaluationMetrics,
    trained: Mapping[str, float],
    thresholds: AlertThresholds,
    common: dict[str, str | None],
) -> Event | None:
    metric = thresholds.metric
    now, before = recent.metrics.get(metric), trained.get(metric)
    if now is None or before is None:
        return None
    if metric in HIGHER_IS_BETTER:
        worse_by = before - now
    elif before > 0:
        worse_by = (now - before) / before
    else:
        return None
    if not worse_by > thresholds.margin:
        return None
    # What the message shows: the metric's own relative change, signed (an R² that fell
    # from 0.8 to 0.6 changed by -25 %, whatever the absolute rule that flagged it).
    change = (now - before) / abs(before) if before else float("nan")
    return Event(
        kind="degradation",
        severity="critical" if worse_by > 2 * thresholds.margin else "warning",
        subject=version,
        figures={
            "version": version,
            "metric": metric,
            "recent": round(now, 6),
            "trained": round(before, 6),
            "change": round(change, 4),
            "margin": thresholds.margin,
            "rows": recent.n,
            "tests": recent.tests,
            "first": recent.first,
            "last": recent.last,
        },
        key=f"degradation:{version}:{metric}:{recent.last}",
        **common,
    )


def _coverage(
    version: str,
    recent: EvaluationMetrics,
    thresholds: AlertThresholds,
    common: dict[str, str | None],
) -> Event | None:
    coverage, level = recent.metrics.get("coverage"), recent.level
    if coverage is None:
        return None
    low, high = level - thresholds.coverage_tolerance, level + thresholds.coverage_tolerance
    if low <= coverage <= high:
        return None
    # Tests, not rows, are the independent draws; rows stand in when tests are unknown.
    draws = recent.tests or recent.n
    inside = round(coverage * draws)
    p_value = float(binomtest(inside, draws, level).pvalue)
    if p_value >= thresholds.alpha:
        return None
    return Event(
        kind="coverage",
        severity="warning",
        subject=version,
        figures={
            "version": version,
            "coverage": round(coverage, 4),
            "level": level,
            "band_low": round(low, 4),
            "band_high": round(high, 4),
            "p_value": float(f"{p_value:.3g}"),
            "rows": recent.n,
            "tests": recent.tests,
            "first": recent.first,
            "last": recent.last,
        },
        key=f"coverage:{version}:{'low' if coverage < low else 'high'}:{recent.last}",
        **common,
    )
