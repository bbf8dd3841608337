"""Evaluate trained versions on what happened after their training, track it, compare, promote.

For each version evaluated (the champion by default, one ``version``, or ``all_versions``):

1. **Recent labelled rows**: rows of the current feature-store version that the version did
   not train on (a record, ``record_id``, absent from its training feature set, or changed
   since), optionally only those dated on or after ``since`` (test date, else load time). The
   version predicts them with the intervals and decisions the inference service would give.
   Non-product rows (calibration and reference films, unreported materials) are left out.
2. **Served predictions**: the prediction log's guide values of that version for those same
   records, as they were served (``since`` filters by request time), matched on
   ``CONSECUTIVO`` or the record's identity, never on ``Muestra`` (a replicate number) alone.
3. **Drift**: the recent rows against the version's training feature set (inputs, structure
   mix, new structures, the target, and the model's residuals against its calibration).

Everything is computed before anything is written. A request that finds nothing to evaluate
(unknown version, an empty window, no new labelled data) raises a clear error and writes
nothing to MLflow. Then one MLflow run per version in experiment ``permeability-evaluation``,
linked to the training run (tags, and the version's logged model as the run's input), with the
metrics, the drift verdict and the figures (:mod:`permeability.pipelines.evaluation_record`).

``compare`` scores the champion and every other available version on the *same* rows (those
none of them trained on); ``promote_if_better`` (a margin) implies ``compare`` and moves the
``champion`` alias when a challenger wins by it (:func:`permeability.monitoring.comparison.
compare_versions`), recording the reason in the registry, the runs and the log. The request
and the report are :mod:`permeability.pipelines.evaluation_request`'s.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from permeability.config import ProjectConfig
from permeability.errors import EmptyFeatureStoreError, NotFoundError
from permeability.io.evaluation_runs import evaluation_registry
from permeability.monitoring.comparison import ComparisonOutcome, compare_versions
from permeability.monitoring.evaluation import score_version
from permeability.monitoring.windows import (
    labelled_when,
    on_or_after,
    shared_window,
    unseen_rows,
    window_text,
)
from permeability.pipelines.base import JobContext, job_context
from permeability.pipelines.evaluation_findings import (
    chart_references,
    publish_chart_only,
    publish_findings,
)
from permeability.pipelines.evaluation_record import ScoredVersion, record_evaluation
from permeability.pipelines.evaluation_request import EvaluationReport, EvaluationRequest
from permeability.settings import Settings

if TYPE_CHECKING:
    from permeability.io.evaluation_inputs import LoadedVersion

STAGE: Final = "evaluate"


class NothingToEvaluateError(EmptyFeatureStoreError):
    """No labelled rows (and no served prediction) are newer than the version's training."""


def evaluate(
    settings: Settings,
    *,
    version: str | None = None,
    all_versions: bool = False,
    since: date | datetime | None = None,
    compare: bool = False,
    promote_if_better: float | None = None,
    config: ProjectConfig | None = None,
) -> EvaluationReport:
    """Evaluate, track and (optionally) compare and promote; see the module docstring."""
    request = EvaluationRequest.parse(
        version=version,
        all_versions=all_versions,
        since=since,
        compare=compare,
        promote_if_better=promote_if_better,
    )
    return run_evaluation(settings, request, config=config)


def run_evaluation(
    settings: Settings,
    request: EvaluationRequest,
    *,
    config: ProjectConfig | None = None,
) -> EvaluationReport:
    """:func:`evaluate` for an already validated request."""
    with job_context(STAGE, settings, config=config) as context:
        return _evaluate(context, request)


# -- what to evaluate -------------------------------------------------------------------------


def _champion_label(registry: Any) -> tuple[str | None, str | None]:
    """(champion label, problem): a registry that was never created has no champion."""
    if not registry.has_store():
        return None, "nothing was ever registered"
    try:
        champion = registry.champion()
    except Exception as exc:
        return None, f"registry unreachable: {type(exc).__name__}: {exc}"
    return (None, "no version carries the alias") if champion is None else (champion.label, None)


def _labels_to_evaluate(
    request: EvaluationRequest, store: Any, champion: str | None, problem: str | None
) -> list[str]:
    from permeability.io.model_cache import NoChampionError, UnknownVersionError

    labels = store.labels()
    if request.version is not None:
        if request.version not in labels:
            raise UnknownVersionError(request.version, labels)
        return [request.version]
    if request.all_versions or request.comparing:
        if not labels:
            raise NotFoundError("no version is in the model store; train one first")
        return labels
    if champion is None:
        raise NoChampionError(labels, f"{problem}; give --version or --all")
    return [champion]


# -- computing ----------------------------------------------------------------------------


def _score(
    context: JobContext,
    candidate: LoadedVersion,
    window: pd.DataFrame,
    served_window: pd.DataFrame,
    predictions: pd.DataFrame,
    specs: Any,
) -> ScoredVersion:
    """The version scored with the decision policy and drift thresholds of the configuration."""
    scores = score_version(
        candidate.model,
        candidate.label,
        training=candidate.training_frame,
        window=window,
        served_window=served_window,
        predictions=predictions,
        specs=specs,
        policy=context.config.inference.decision_policy(),
        thresholds=context.config.evaluation.drift_thresholds(),
    )
    return ScoredVersion(candidate, scores)


def _evaluate(context: JobContext, request: EvaluationRequest) -> EvaluationReport:
    from permeability.io.evaluation_inputs import load_versions, read_served_predictions
    from permeability.io.feature_store import FeatureStore
    from permeability.io.model_store import ModelStore
    from permeability.io.specs import load_configured_specs

    started = time.perf_counter()
    log = context.logger
    registry = evaluation_registry(context.settings)
    champion, problem = _champion_label(registry)
    labels = _labels_to_evaluate(request, ModelStore(context.paths.models), champion, problem)
    feature_store = FeatureStore(context.settings.resolved_feature_store_uri)
    current = feature_store.read()
    candidates, skipped = load_versions(context.paths.models, labels, champion, feature_store)
    if not candidates:
        raise NotFoundError(
            "no version can be evaluated: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    frame = current.frame
    since = pd.Timestamp(request.since) if request.since is not None else None
    dated = on_or_after(labelled_when(frame), since)
    unseen = {
        c.label: unseen_rows(frame, c.training_frame, c.metadata.get("created_at"))
        for c in candidates
    }
    if request.comparing:
        unseen, dropped = shared_window(unseen, champion)
        skipped.update(dropped)
        candidates = [c for c in candidates if c.label in unseen]
    predictions = read_served_predictions(
        context.settings.resolved_feature_store_uri, request.since
    )
    specs = load_configured_specs(context.settings, context.config)
    chart = chart_references(context, frame, request.since)
    scored: list[ScoredVersion] = []
    for candidate in candidates:
        mask = unseen[candidate.label]
        window = frame.loc[mask & dated].reset_index(drop=True)
        result = _score(
            context, candidate, window, frame.loc[mask].reset_index(drop=True), predictions, specs
        )
        if result.scores.empty:
            skipped[candidate.label] = _nothing_reason(candidate, current.version, request)
            log.info(
                "version %s: nothing to evaluate (%s)", candidate.label, skipped[candidate.label]
            )
            continue
        scored.append(result)
    if not scored:
        publish_chart_only(context, registry, current.version, chart, champion)
        raise NothingToEvaluateError(
            "nothing to evaluate: " + "; ".join(f"version {k}: {v}" for k, v in skipped.items())
        )
    comparison = _compare(context, request, scored, champion)
    report = record_evaluation(
        context, request, registry, current.version, scored, skipped, comparison
    )
    promoted = _maybe_promote(context, request, registry, comparison)
    report = publish_findings(context, registry, report, scored, chart, champion)
    return report.model_copy(
        update={"promoted": promoted, "seconds": round(time.perf_counter() - started, 3)}
    )


def _nothing_reason(
    candidate: LoadedVersion, current_version: int, request: EvaluationRequest
) -> str:
    trained_on = (
        f"feature set v{candidate.training_feature_set}"
        if candidate.training_feature_set is not None
        else "an unknown feature set"
    )
    return (
        f"no labelled data{window_text(request.since)} arrived after its training on {trained_on} "
        f"(the feature store is at v{current_version}) and no served prediction of it has a "
        "lab result yet; acquire new lab results first"
    )


def _compare(
    context: JobContext,
    request: EvaluationRequest,
    scored: list[ScoredVersion],
    champion: str | None,
) -> ComparisonOutcome | None:
    if not request.comparing:
        return None
    params = context.config.evaluation
    margin = request.promote_if_better
    scores = {s.candidate.label: s.scores.recent for s in scored if s.scores.recent is not None}
    outcome = compare_versions(
        scores,
        champion,
        metric=params.compare_metric,
        margin=params.compare_margin if margin is None else margin,
        coverage_tolerance=params.coverage_tolerance,
    )
    context.logger.info("comparison: %s", outcome.reason)
    return outcome


def _maybe_promote(
    context: JobContext,
    request: EvaluationRequest,
    registry: Any,
    comparison: ComparisonOutcome | None,
) -> str | None:
    from permeability.pipelines.promotion import promote

    if request.promote_if_better is None or comparison is None or not comparison.challenger_wins:
        return None
    winner = str(comparison.winner)
    promote(
        context.settings,
        winner,
        reason=f"evaluate --promote-if-better {request.promote_if_better}: {comparison.reason}",
        promoted_by="evaluate",
        config=context.config,
        registry=registry,
    )
    return winner
