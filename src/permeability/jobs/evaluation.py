"""Evaluate trained versions on what happened after their training, track it, compare, promote.

For each version evaluated (the champion by default, one ``version``, or ``all_versions``):

1. **Recent labelled rows**: rows of the current feature-store version that the version did
   not train on (a Muestra absent from its training feature set, or changed since), optionally
   only those dated on or after ``since`` (test date, else load time). The version predicts
   them with the intervals and decisions the inference service would give.
2. **Served predictions**: the prediction log's guide values of that version for those same
   samples, as they were served (``since`` filters by request time).
3. **Drift**: the recent rows against the version's training feature set (inputs, structure
   mix, new structures, the target, and the model's residuals against its calibration).

Everything is computed before anything is written. A request that finds nothing to evaluate
(unknown version, an empty window, no new labelled data) raises a clear error and writes
nothing to MLflow. Then one MLflow run per version in experiment ``permeability-evaluation``,
linked to the training run (tags, and the version's logged model as the run's input), with the
metrics, the drift verdict and the figures.

``compare`` scores the champion and every other available version on the *same* rows (those
none of them trained on); ``promote_if_better`` (a margin) implies ``compare`` and moves the
``champion`` alias when a challenger wins by it (:func:`permeability.domain.evaluation.
compare_versions`), recording the reason in the registry, the runs and the log.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from permeability.config import ProjectConfig, load_config
from permeability.domain.drift import DriftReport, DriftThresholds
from permeability.domain.evaluation import (
    ComparisonOutcome,
    EvaluationMetrics,
)
from permeability.errors import (
    EmptyFeatureStoreError,
    InvalidInputError,
    NotFoundError,
    invalid_input_from,
)
from permeability.jobs.base import JobContext, job_context, new_run_id
from permeability.settings import Settings

STAGE: Final = "evaluate"
EVALUATION_EXPERIMENT: Final = "permeability-evaluation"
#: Prefix of the served-prediction metrics (the recent-row metrics carry no prefix).
SERVED_PREFIX: Final = "served_"


class NothingToEvaluateError(EmptyFeatureStoreError):
    """No labelled rows (and no served prediction) are newer than the version's training."""


class EvaluationRequest(BaseModel):
    """What to evaluate; shared by the CLI, ``POST /evaluate`` and scheduled jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str | None = Field(default=None, description="A version label; default the champion.")
    all_versions: bool = Field(default=False, description="Evaluate every available version.")
    since: datetime | None = Field(
        default=None, description="Only rows dated (or predictions made) at or after this."
    )
    compare: bool = Field(
        default=False, description="Score the champion and all other versions on the same rows."
    )
    promote_if_better: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="Move the champion alias to a challenger that wins by this margin.",
    )

    @field_validator("version")
    @classmethod
    def _safe_label(cls, value: str | None) -> str | None:
        from permeability.io.model_store import validate_label

        return None if value is None else validate_label(value)

    @field_validator("since")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        """Stored dates are naive UTC; an aware ``since`` is converted, a naive one is UTC."""
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationRequest:
        if self.version is not None and self.all_versions:
            raise ValueError("give either a version or all versions, not both")
        return self

    @property
    def comparing(self) -> bool:
        return self.compare or self.promote_if_better is not None

    @classmethod
    def parse(cls, **fields: Any) -> EvaluationRequest:
        """Build a request, turning pydantic's report into one sentence naming the field."""
        since = fields.get("since")
        if isinstance(since, date) and not isinstance(since, datetime):
            fields["since"] = datetime(since.year, since.month, since.day)
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise invalid_input_from(exc) from exc


class VersionEvaluation(BaseModel):
    """One version's evaluation: its scores on recent and served rows, drift, and the run."""

    version: str
    model_name: str
    is_champion: bool
    training_run_id: str | None
    registry_version: str | None
    training_feature_set_version: int | None
    recent_rows: int
    served_rows: int
    recent: EvaluationMetrics | None
    served: EvaluationMetrics | None
    drift: DriftReport | None
    run_id: str | None = None


class EvaluationReport(BaseModel):
    """What one evaluation did; ``evaluate --json`` and ``POST /evaluate`` return exactly this."""

    evaluation_id: str
    experiment: str
    feature_set_version: int
    since: str | None
    evaluated: list[VersionEvaluation]
    skipped: dict[str, str]
    comparison: ComparisonOutcome | None
    promoted: str | None
    drift_flagged: bool
    seconds: float

    def summary(self) -> str:
        lines = []
        for item in self.evaluated:
            scores = item.recent or item.served
            figures = (
                f"MAE {scores.metrics['mae']:.4g}, MAPE {scores.metrics['mape']:.3g} %, "
                f"coverage {scores.metrics['coverage']:.1%}, wrong approvals "
                f"{scores.decisions['wrong_approvals']}"
                if scores is not None
                else "no scores"
            )
            drift = item.drift.summary() if item.drift is not None else "drift not assessed"
            lines.append(
                f"version {item.version}: {item.recent_rows} recent rows, {item.served_rows} "
                f"served predictions; {figures}; {drift}; run {item.run_id}"
            )
        lines.extend(f"version {v}: skipped ({why})" for v, why in self.skipped.items())
        if self.comparison is not None:
            lines.append(f"comparison: {self.comparison.reason}")
        if self.promoted is not None:
            lines.append(f"promoted {self.promoted} to champion")
        return "\n".join(lines)


#: The ``args`` a scheduled evaluation accepts (config ``schedule.jobs[].args``).
SCHEDULE_ARGS: Final = ("version", "all", "compare", "promote_if_better", "since", "since_days")


def evaluation_request_from_args(
    args: Mapping[str, str | int | float | bool], *, now: datetime | None = None
) -> EvaluationRequest:
    """A request from a schedule entry's ``args``; ``since_days: 30`` means the last 30 days."""
    unknown = sorted(set(args) - set(SCHEDULE_ARGS))
    if unknown:
        raise InvalidInputError(
            f"scheduled evaluation: unknown args {unknown}; allowed: {', '.join(SCHEDULE_ARGS)}"
        )
    if "since" in args and "since_days" in args:
        raise InvalidInputError(
            "scheduled evaluation: give args.since or args.since_days, not both"
        )
    since: Any = args.get("since")
    if "since_days" in args:
        days = args["since_days"]
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidInputError(
                f"scheduled evaluation: args.since_days must be a whole number of days >= 1, "
                f"got {days!r}"
            )
        since = (now or datetime.now(UTC)).replace(tzinfo=None) - pd.Timedelta(days=days)
    return EvaluationRequest.parse(
        version=args.get("version"),
        all_versions=args.get("all", False),
        since=since,
        compare=args.get("compare", False),
        promote_if_better=args.get("promote_if_better"),
    )


def evaluate(
    settings: Settings,
    *,
    version: str | None = None,
    all_versions: bool = False,
    since: date | datetime | None = None,
    compare: bool = False,
    promote_if_better: float | None = None,
    config: ProjectConfig | None = None,
    logger: logging.Logger | None = None,
) -> EvaluationReport:
    """Evaluate, track and (optionally) compare and promote; see the module docstring.

    A long-running service passes its own ``logger`` (the job context re-routes process-wide
    logging, which concurrent requests must not do); the CLI and the scheduler pass none.
    """
    request = EvaluationRequest.parse(
        version=version,
        all_versions=all_versions,
        since=since,
        compare=compare,
        promote_if_better=promote_if_better,
    )
    return run_evaluation(settings, request, config=config, logger=logger)


def run_evaluation(
    settings: Settings,
    request: EvaluationRequest,
    *,
    config: ProjectConfig | None = None,
    logger: logging.Logger | None = None,
) -> EvaluationReport:
    """:func:`evaluate` for an already validated request."""
    if logger is None:
        with job_context(STAGE, settings, config=config) as context:
            return _evaluate(context, request)
    resolved = config if config is not None else load_config(settings.config_file)
    context = JobContext(settings, resolved, settings.paths.ensure(), new_run_id(), logger)
    return _evaluate(context, request)


# -- what to evaluate -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A loaded version and what its training saw."""

    label: str
    model: Any
    metadata: Mapping[str, Any]
    training_frame: pd.DataFrame | None
    training_feature_set: int | None
    is_champion: bool

    @property
    def lineage(self) -> Mapping[str, Any]:
        return dict(self.metadata.get("lineage") or {})


@dataclass(frozen=True)
class _Scored:
    """One version's computed evaluation, before anything is written."""

    candidate: _Candidate
    recent_scored: pd.DataFrame
    served_scored: pd.DataFrame
    recent: EvaluationMetrics | None
    served: EvaluationMetrics | None
    drift: DriftReport | None


def _evaluation_registry(settings: Settings) -> Any:
    from permeability.io.registry import Registry, RegistryConfig

    config = replace(RegistryConfig.from_settings(settings), experiment_name=EVALUATION_EXPERIMENT)
    return Registry(config)


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


def _load_candidates(
    context: JobContext, labels: list[str], champion: str | None, feature_store: Any
) -> tuple[list[_Candidate], dict[str, str]]:
    from permeability.io.model_cache import ModelCache, VersionUnavailableError
    from permeability.io.model_store import ModelStore

    cache = ModelCache(ModelStore(context.paths.models), lambda: champion)
    training_sets: dict[int, pd.DataFrame] = {}
    loaded: list[_Candidate] = []
    skipped: dict[str, str] = {}
    for label in labels:
        try:
            model = cache.get(label)
        except VersionUnavailableError as exc:
            skipped[label] = exc.reason
            continue
        fsv = _feature_set_version(model.metadata)
        frame = None
        if fsv is not None:
            if fsv not in training_sets:
                training_sets[fsv] = _training_frame(feature_store, fsv, label)
            frame = training_sets[fsv]
        loaded.append(_Candidate(label, model.model, model.metadata, frame, fsv, label == champion))
    return loaded, skipped


def _feature_set_version(metadata: Mapping[str, Any]) -> int | None:
    value = (metadata.get("lineage") or {}).get("feature_set_version")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _training_frame(feature_store: Any, version: int, label: str) -> pd.DataFrame:
    try:
        return feature_store.read(version).frame
    except NotFoundError as exc:
        raise NotFoundError(
            f"version '{label}' was trained on feature-set version {version}, which the "
            f"feature store no longer has ({exc})"
        ) from exc


def _unseen_rows(candidate: _Candidate, current: pd.DataFrame) -> np.ndarray:
    """Rows the version did not train on; without lineage, rows loaded after it was created."""
    from permeability.domain.evaluation import new_since_training

    if candidate.training_frame is not None:
        return new_since_training(current, candidate.training_frame)
    created = pd.to_datetime(str(candidate.metadata.get("created_at")), errors="coerce", utc=True)
    if pd.isna(created) or "ingested_at" not in current.columns:
        return np.zeros(len(current), dtype=bool)
    loaded = pd.to_datetime(current["ingested_at"], errors="coerce", utc=True)
    return np.asarray((loaded > created).fillna(False).to_numpy(dtype=bool))


# -- computing ----------------------------------------------------------------------------


def _thresholds(config: ProjectConfig) -> DriftThresholds:
    params = config.evaluation
    return DriftThresholds(
        psi=params.drift_psi,
        alpha=params.drift_alpha,
        min_rows=params.drift_min_rows,
        bins=params.drift_bins,
    )


def _score(
    context: JobContext,
    candidate: _Candidate,
    window: pd.DataFrame,
    served_window: pd.DataFrame,
    predictions: pd.DataFrame,
    specs: Any,
) -> _Scored:
    from permeability.domain.drift import detect_drift
    from permeability.domain.evaluation import (
        DecisionRule,
        calibration_reference,
        evaluate_scored,
        recent_residuals,
        score_labelled,
        served_scored,
        usable_rows,
    )

    inference = context.config.inference
    rule = DecisionRule(inference.interval_level, inference.approve_below, inference.reject_above)
    recent_scored = (
        usable_rows(score_labelled(candidate.model, window, specs, rule))
        if len(window)
        else pd.DataFrame()
    )
    served = usable_rows(served_scored(predictions, served_window, candidate.label))
    recent = evaluate_scored(recent_scored) if len(recent_scored) else None
    served_metrics = evaluate_scored(served) if len(served) else None
    drift = None
    if len(recent_scored) and candidate.training_frame is not None:
        drift = detect_drift(
            candidate.training_frame,
            window,
            _thresholds(context.config),
            residuals=(calibration_reference(candidate.model), recent_residuals(recent_scored)),
        )
    return _Scored(candidate, recent_scored, served, recent, served_metrics, drift)


def _read_predictions(context: JobContext) -> pd.DataFrame:
    from permeability.io.prediction_log import read_predictions

    return read_predictions(context.settings.resolved_feature_store_uri)


def _window_text(request: EvaluationRequest) -> str:
    return f" since {request.since.isoformat()}" if request.since is not None else ""


def _evaluate(context: JobContext, request: EvaluationRequest) -> EvaluationReport:
    from permeability.domain.evaluation import labelled_when, on_or_after
    from permeability.io.feature_store import FeatureStore
    from permeability.io.model_store import ModelStore
    from permeability.io.specs import load_configured_specs

    started = time.perf_counter()
    log = context.logger
    registry = _evaluation_registry(context.settings)
    champion, problem = _champion_label(registry)
    labels = _labels_to_evaluate(request, ModelStore(context.paths.models), champion, problem)
    feature_store = FeatureStore(context.settings.resolved_feature_store_uri)
    current = feature_store.read()
    candidates, skipped = _load_candidates(context, labels, champion, feature_store)
    if not candidates:
        raise NotFoundError(
            "no version can be evaluated: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    frame = current.frame
    since = pd.Timestamp(request.since) if request.since is not None else None
    dated = on_or_after(labelled_when(frame), since)
    unseen = {c.label: _unseen_rows(c, frame) for c in candidates}
    if request.comparing:
        unseen, dropped = _shared_window(unseen, champion)
        skipped.update(dropped)
        candidates = [c for c in candidates if c.label in unseen]
    predictions = _read_predictions(context)
    if since is not None and not predictions.empty:
        stamps = pd.to_datetime(predictions["timestamp"], utc=True).dt.tz_convert(None)
        predictions = predictions.loc[(stamps >= since).to_numpy()]
    specs = load_configured_specs(context.settings, context.config)
    scored: list[_Scored] = []
    for candidate in candidates:
        mask = unseen[candidate.label]
        window = frame.loc[mask & dated].reset_index(drop=True)
        result = _score(
            context, candidate, window, frame.loc[mask].reset_index(drop=True), predictions, specs
        )
        if result.recent is None and result.served is None:
            skipped[candidate.label] = _nothing_reason(candidate, current.version, request)
            log.info(
                "version %s: nothing to evaluate (%s)", candidate.label, skipped[candidate.label]
            )
            continue
        scored.append(result)
    if not scored:
        raise NothingToEvaluateError(
            "nothing to evaluate: " + "; ".join(f"version {k}: {v}" for k, v in skipped.items())
        )
    comparison = _compare(context, request, scored, champion)
    report = _record(context, request, registry, current.version, scored, skipped, comparison)
    promoted = _maybe_promote(context, request, registry, comparison)
    return report.model_copy(
        update={"promoted": promoted, "seconds": round(time.perf_counter() - started, 3)}
    )


def _shared_window(
    unseen: Mapping[str, np.ndarray], champion: str | None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """One set of rows for every compared version: those none of them trained on.

    The rows the champion has not seen are the candidates (every version's unseen rows when
    there is no champion); a challenger trained on all of them (e.g. on the latest feature
    set) has nothing to be compared on yet and is left out, with the reason.
    """
    masks = list(unseen.values())
    has_champion = champion is not None and champion in unseen
    base = unseen[str(champion)] if has_champion else np.logical_or.reduce(masks)
    kept = {label: mask for label, mask in unseen.items() if (mask & base).any()}
    dropped = {
        label: "no labelled data arrived after its training"
        if not unseen[label].any()
        else "it trained on every labelled row the champion has not seen; nothing newer to "
        "compare it on yet"
        for label in unseen
        if label not in kept
    }
    if not kept:
        return {}, dropped
    shared = np.logical_and.reduce(list(kept.values()))
    return {label: shared for label in kept}, dropped


def _nothing_reason(candidate: _Candidate, current_version: int, request: EvaluationRequest) -> str:
    trained_on = (
        f"feature set v{candidate.training_feature_set}"
        if candidate.training_feature_set is not None
        else "an unknown feature set"
    )
    return (
        f"no labelled data{_window_text(request)} arrived after its training on {trained_on} "
        f"(the feature store is at v{current_version}) and no served prediction of it has a "
        "lab result yet; acquire new lab results first"
    )


def _compare(
    context: JobContext, request: EvaluationRequest, scored: list[_Scored], champion: str | None
) -> ComparisonOutcome | None:
    from permeability.domain.evaluation import compare_versions

    if not request.comparing:
        return None
    params = context.config.evaluation
    margin = request.promote_if_better
    scores = {s.candidate.label: s.recent for s in scored if s.recent is not None}
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
    from permeability.jobs.promotion import promote

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
        logger=context.logger,
    )
    return winner


# -- writing ------------------------------------------------------------------------------


def _record(
    context: JobContext,
    request: EvaluationRequest,
    registry: Any,
    feature_set_version: int,
    scored: list[_Scored],
    skipped: dict[str, str],
    comparison: ComparisonOutcome | None,
) -> EvaluationReport:
    writers = [
        _RunWriter(context, request, registry, item, feature_set_version, comparison)
        for item in scored
    ]
    with tempfile.TemporaryDirectory(prefix="permeability-evaluate-") as scratch:
        folders = [Path(scratch) / str(i) for i in range(len(writers))]
        for writer, folder in zip(writers, folders, strict=True):
            writer.render(folder)  # figures and tables first: a drawing error writes nothing
        registry.setup()
        run_ids = [w.write(f) for w, f in zip(writers, folders, strict=True)]
    evaluated = []
    for item, run_id in zip(scored, run_ids, strict=True):
        evaluated.append(_version_evaluation(item, run_id))
        if item.drift is not None and item.drift.drifted:
            context.logger.warning("version %s: %s", item.candidate.label, item.drift.summary())
        context.logger.info(
            "version %s evaluated in run %s: %s",
            item.candidate.label,
            run_id,
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


def _version_evaluation(item: _Scored, run_id: str) -> VersionEvaluation:
    candidate = item.candidate
    lineage = candidate.lineage
    return VersionEvaluation(
        version=candidate.label,
        model_name=str(candidate.model.model_name),
        is_champion=candidate.is_champion,
        training_run_id=lineage.get("run_id"),
        registry_version=_text(lineage.get("registry_version")),
        training_feature_set_version=candidate.training_feature_set,
        recent_rows=len(item.recent_scored),
        served_rows=len(item.served_scored),
        recent=item.recent,
        served=item.served,
        drift=item.drift,
        run_id=run_id,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def metric_values(prefix: str, scores: EvaluationMetrics) -> dict[str, float]:
    """Flat MLflow metrics of one evaluation (structure names made safe for the UI)."""
    from permeability.io.registry import safe_metric_name

    values = {f"{prefix}{k}": float(v) for k, v in scores.metrics.items() if np.isfinite(v)}
    values[f"{prefix}n_rows"] = float(scores.n)
    values.update({f"{prefix}decisions_{k}": float(v) for k, v in scores.decisions.items()})
    values[f"{prefix}wrong_approvals"] = float(scores.decisions["wrong_approvals"])
    values[f"{prefix}wrong_rejections"] = float(scores.decisions["wrong_rejections"])
    taken = set(values)
    for row in scores.per_structure:
        for key in ("mae", "mape", "coverage"):
            value = float(getattr(row, key))
            if np.isfinite(value):
                values[safe_metric_name(f"{prefix}{key}", row.structure, taken)] = value
    return values


def drift_values(report: DriftReport) -> dict[str, float]:
    """The drift verdict as metrics: flags, new structures and the overall PSI per feature."""
    from permeability.domain.drift import ALL_STRUCTURES

    values = {
        "drift_flagged": float(report.drifted),
        "drift_flags": float(len(report.flagged)),
        "drift_new_structures": float(len(report.flagged_new_structures)),
    }
    for test in report.tests:
        if test.structure == ALL_STRUCTURES:
            values[f"drift_psi_{test.feature}"] = float(test.psi)
    return values


class _RunWriter:
    """One MLflow run for one version's evaluation; marked FAILED if writing it fails."""

    def __init__(
        self,
        context: JobContext,
        request: EvaluationRequest,
        registry: Any,
        item: _Scored,
        feature_set_version: int,
        comparison: ComparisonOutcome | None,
    ) -> None:
        self.context = context
        self.request = request
        self.registry = registry
        self.item = item
        self.feature_set_version = feature_set_version
        self.comparison = comparison

    def render(self, folder: Path) -> None:
        """Figures, tables and the summary JSON, drawn before anything goes to MLflow."""
        self._artifacts(folder)

    def write(self, folder: Path) -> str:
        """Start the run, log everything (``folder`` from :meth:`render`), finish it."""
        label = self.item.candidate.label
        run_id = self.registry.start_run(
            run_name=f"{label}-evaluation-{datetime.now(UTC):%Y%m%d-%H%M%S}",
            tags=self._tags(),
            start_time_ms=int(time.time() * 1000),
        )
        try:
            self.registry.log_run_data(run_id, params=self._params(), metrics=self._metrics())
            model_id = self.item.candidate.lineage.get("logged_model_id")
            if model_id:
                self.registry.link_model_input(run_id, str(model_id))
            self.registry.log_artifacts(run_id, folder)
        except BaseException:
            self.registry.finish_run(run_id, failed=True)
            raise
        self.registry.finish_run(run_id)
        return str(run_id)

    def _tags(self) -> dict[str, str]:
        candidate, item = self.item.candidate, self.item
        lineage = candidate.lineage
        training_run = _text(lineage.get("run_id")) or ""
        tags = {
            "version_label": candidate.label,
            "evaluation_id": self.context.run_id,
            "training_run_id": training_run,
            "training_experiment": str(lineage.get("experiment") or ""),
            "registry_version": _text(lineage.get("registry_version")) or "",
            "training_feature_set_version": _text(candidate.training_feature_set) or "",
            "evaluated_feature_set_version": str(self.feature_set_version),
            "champion": str(candidate.is_champion).lower(),
            "drift": "flagged" if item.drift is not None and item.drift.drifted else "none",
            "mlflow.note.content": self._note(training_run),
        }
        if item.drift is not None and item.drift.drifted:
            tags["drift_summary"] = item.drift.summary()[:5000]
        if self.comparison is not None:
            tags["comparison_winner"] = str(self.comparison.winner or "")
            tags["comparison_reason"] = self.comparison.reason[:5000]
        return tags

    def _note(self, training_run: str) -> str:
        candidate, item = self.item.candidate, self.item
        link = f"[{training_run}](#/runs/{training_run})" if training_run else "unknown"
        drift = item.drift.summary() if item.drift is not None else "not assessed"
        lines = [
            f"Evaluation of version **{candidate.label}** ({candidate.model.model_name}), "
            f"training run {link}.",
            f"Recent labelled rows: {len(item.recent_scored)}; served predictions with a lab "
            f"result: {len(item.served_scored)}{_window_text(self.request)}.",
            f"Drift: {drift}",
        ]
        if self.comparison is not None:
            lines.append(f"Comparison: {self.comparison.reason}")
        return "\n\n".join(lines)

    def _params(self) -> dict[str, Any]:
        inference, params = self.context.config.inference, self.context.config.evaluation
        candidate = self.item.candidate
        return {
            "version": candidate.label,
            "model": candidate.model.model_name,
            "since": self.request.since.isoformat() if self.request.since else "",
            "compare": self.request.comparing,
            "promote_if_better": self.request.promote_if_better,
            "interval_level": inference.interval_level,
            "approve_below": inference.approve_below,
            "reject_above": inference.reject_above,
            "drift_psi": params.drift_psi,
            "drift_alpha": params.drift_alpha,
            "drift_min_rows": params.drift_min_rows,
            "training_feature_set_version": candidate.training_feature_set,
            "evaluated_feature_set_version": self.feature_set_version,
            "recent_rows": len(self.item.recent_scored),
            "served_rows": len(self.item.served_scored),
        }

    def _metrics(self) -> dict[str, float]:
        item = self.item
        values: dict[str, float] = {}
        if item.recent is not None:
            values.update(metric_values("", item.recent))
        if item.served is not None:
            values.update(metric_values(SERVED_PREFIX, item.served))
        if item.drift is not None:
            values.update(drift_values(item.drift))
        if self.comparison is not None and self.comparison.improvement is not None:
            values["comparison_improvement"] = float(self.comparison.improvement)
        return values

    def _artifacts(self, folder: Path) -> None:
        from permeability.plots.evaluation import evaluation_figures

        item, label = self.item, self.item.candidate.label
        tables = folder / "tables"
        tables.mkdir(parents=True)
        for prefix, frame, scores, what in (
            ("", item.recent_scored, item.recent, "recent labelled rows"),
            (SERVED_PREFIX, item.served_scored, item.served, "served predictions"),
        ):
            if scores is None:
                continue
            evaluation_figures(
                frame,
                scores.per_structure,
                folder / "plots",
                heading=f"version {label}: {what} (n={scores.n})",
                level=scores.level,
                prefix=prefix,
            )
            frame.to_csv(tables / f"{prefix}scored_rows.csv", index=False)
            scores.structure_table().to_csv(tables / f"{prefix}per_structure.csv", index=False)
        if item.drift is not None:
            item.drift.table().to_csv(tables / "drift.csv", index=False)
        summary = _version_evaluation(item, run_id="").model_dump(mode="json")
        summary.pop("run_id", None)
        if self.comparison is not None:
            summary["comparison"] = self.comparison.model_dump(mode="json")
        (folder / "evaluation.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
