"""The last step of an evaluation (:mod:`permeability.pipelines.evaluation`): record it.

What was computed for each version, before anything was written (:class:`ScoredVersion`),
becomes one MLflow run per version in experiment ``permeability-evaluation`` (written by
:mod:`permeability.io.evaluation_runs`), log lines a lab manager can read (drift flagged as
a warning) and the :class:`~permeability.pipelines.evaluation_request.EvaluationReport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from permeability.io.evaluation_runs import (
    EVALUATION_EXPERIMENT,
    EvaluationScope,
    VersionRun,
    write_evaluation_runs,
)
from permeability.monitoring.comparison import ComparisonOutcome
from permeability.monitoring.evaluation import VersionEvaluation, VersionScores
from permeability.monitoring.reports import EvaluationMetrics
from permeability.pipelines.base import JobContext
from permeability.pipelines.evaluation_request import EvaluationReport, EvaluationRequest

if TYPE_CHECKING:
    from permeability.io.evaluation_inputs import LoadedVersion


@dataclass(frozen=True)
class ScoredVersion:
    """One version's computed evaluation, before anything is written."""

    candidate: LoadedVersion
    scores: VersionScores


def record_evaluation(
    context: JobContext,
    request: EvaluationRequest,
    registry: Any,
    feature_set_version: int,
    scored: list[ScoredVersion],
    skipped: dict[str, str],
    comparison: ComparisonOutcome | None,
) -> EvaluationReport:
    """Write one run per version (:mod:`permeability.io.evaluation_runs`), log, report.

    The report's ``promoted`` and ``seconds`` are filled in by the job once it is done.
    """
    scope = EvaluationScope(
        evaluation_id=context.run_id,
        feature_set_version=feature_set_version,
        since=request.since,
        comparing=request.comparing,
        promote_if_better=request.promote_if_better,
        comparison=comparison,
        config=context.config,
    )
    results = [_version_evaluation(item) for item in scored]
    runs = [
        VersionRun(
            result, item.candidate.lineage, item.scores.recent_scored, item.scores.served_scored
        )
        for item, result in zip(scored, results, strict=True)
    ]
    run_ids = write_evaluation_runs(registry, scope, runs)
    evaluated = [
        result.model_copy(update={"run_id": run_id})
        for result, run_id in zip(results, run_ids, strict=True)
    ]
    for item in evaluated:
        if item.drift is not None and item.drift.drifted:
            context.logger.warning("version %s: %s", item.version, item.drift.summary())
        context.logger.info(
            "version %s evaluated in run %s: %s",
            item.version,
            item.run_id,
            _figures(item.recent or item.served),
        )
    return EvaluationReport(
        evaluation_id=context.run_id,
        experiment=EVALUATION_EXPERIMENT,
        feature_set_version=feature_set_version,
        since=request.since.isoformat() if request.since is not None else None,
        evaluated=evaluated,
        skipped=skipped,
        comparison=comparison,
        promoted=None,
        drift_flagged=any(e.drift is not None and e.drift.drifted for e in evaluated),
        seconds=0.0,
    )


def _figures(metrics: EvaluationMetrics | None) -> str:
    if metrics is None:
        return "no scores"
    shown = ("r2", "mae", "rmse", "mape", "coverage")
    return ", ".join(f"{k}={metrics.metrics[k]:.4g}" for k in shown if k in metrics.metrics)


def _version_evaluation(item: ScoredVersion) -> VersionEvaluation:
    """The version's result, before its run exists (the run id is added once written)."""
    candidate, scores = item.candidate, item.scores
    lineage = candidate.lineage
    return VersionEvaluation(
        version=candidate.label,
        model_name=str(candidate.model.model_name),
        is_champion=candidate.is_champion,
        training_run_id=lineage.get("run_id"),
        registry_version=_text(lineage.get("registry_version")),
        training_feature_set_version=candidate.training_feature_set,
        recent_rows=len(scores.recent_scored),
        served_rows=len(scores.served_scored),
        recent=scores.recent,
        served=scores.served,
        drift=scores.drift,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
