"""The MLflow runs of an evaluation: one per version, in experiment ``permeability-evaluation``.

Each run is linked to the version's training run (tags, a note with a link, and the version's
logged model as the run's input) and holds the params the evaluation used, the flat metrics of
the recent rows and the served predictions (the latter prefixed ``served_``), the drift verdict,
the comparison when there was one, and the figures, tables and ``evaluation.json`` as artifacts.

Every run's figures and tables are drawn before the first run is created: a drawing error
writes nothing to MLflow. A run whose writing fails is marked FAILED, not left RUNNING.
The job decides what to evaluate and computes it (:mod:`permeability.pipelines.evaluation`); this
module only decides how it lands in MLflow, through :class:`~permeability.io.registry.Registry`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from permeability.config import ProjectConfig
from permeability.io.cells import write_csv
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig, safe_metric_name
from permeability.monitoring.comparison import ComparisonOutcome
from permeability.monitoring.evaluation import VersionEvaluation
from permeability.monitoring.reports import ALL_STRUCTURES, DriftReport, EvaluationMetrics
from permeability.monitoring.windows import window_text
from permeability.settings import Settings

EVALUATION_EXPERIMENT: Final = "permeability-evaluation"
#: Prefix of the served-prediction metrics and files (the recent-row ones carry no prefix).
SERVED_PREFIX: Final = "served_"
#: MLflow caps a tag at 5000 characters; longer drift summaries and reasons are cut there.
_TAG_LIMIT: Final = 5000


def evaluation_registry(settings: Settings) -> Registry:
    """The configured tracking store, writing runs to the evaluation experiment."""
    config = replace(RegistryConfig.from_settings(settings), experiment_name=EVALUATION_EXPERIMENT)
    return Registry(config)


@dataclass(frozen=True)
class EvaluationScope:
    """What every run of one evaluation shares: the request, the settings and the verdict."""

    evaluation_id: str
    feature_set_version: int
    since: datetime | None
    comparing: bool
    promote_if_better: float | None
    comparison: ComparisonOutcome | None
    config: ProjectConfig


@dataclass(frozen=True)
class VersionRun:
    """One version's computed evaluation, with what the run needs beyond the result.

    ``lineage`` is the version's training lineage (run id, experiment, logged model id);
    the scored frames hold one row per evaluated sample (``SCORED_COLUMNS``).
    """

    evaluation: VersionEvaluation
    lineage: Mapping[str, Any]
    recent_scored: pd.DataFrame
    served_scored: pd.DataFrame


def write_evaluation_runs(
    registry: Registry, scope: EvaluationScope, runs: Sequence[VersionRun]
) -> list[str]:
    """One finished MLflow run per version, in order; returns their run ids."""
    with tempfile.TemporaryDirectory(prefix="permeability-evaluate-") as scratch:
        folders = [Path(scratch) / str(i) for i in range(len(runs))]
        for run, folder in zip(runs, folders, strict=True):
            _render_artifacts(scope, run, folder)
        registry.setup()
        return [
            _write_run(registry, scope, run, folder)
            for run, folder in zip(runs, folders, strict=True)
        ]


def _write_run(registry: Registry, scope: EvaluationScope, run: VersionRun, folder: Path) -> str:
    """Start the run, log everything (``folder`` from :func:`_render_artifacts`), finish it."""
    run_id = registry.start_run(
        run_name=f"{run.evaluation.version}-evaluation-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        tags=_run_tags(scope, run),
        start_time_ms=int(time.time() * 1000),
    )
    try:
        registry.log_run_data(
            run_id, params=_run_params(scope, run), metrics=_run_metrics(scope, run)
        )
        model_id = run.lineage.get("logged_model_id")
        if model_id:
            registry.link_model_input(run_id, str(model_id))
        registry.log_artifacts(run_id, folder)
    except BaseException:
        registry.finish_run(run_id, failed=True)
        raise
    registry.finish_run(run_id)
    return str(run_id)


# -- what the run records ---------------------------------------------------------------------


def _run_tags(scope: EvaluationScope, run: VersionRun) -> dict[str, str]:
    """Lineage, the drift verdict, the comparison and a note that links the training run."""
    result, lineage = run.evaluation, run.lineage
    training_run = result.training_run_id or ""
    drifted = result.drift is not None and result.drift.drifted
    tags = {
        "version_label": result.version,
        "evaluation_id": scope.evaluation_id,
        "training_run_id": training_run,
        "training_experiment": str(lineage.get("experiment") or ""),
        "registry_version": result.registry_version or "",
        "training_feature_set_version": _text(result.training_feature_set_version) or "",
        "evaluated_feature_set_version": str(scope.feature_set_version),
        "champion": str(result.is_champion).lower(),
        "drift": "flagged" if drifted else "none",
        "mlflow.note.content": _note(scope, result, training_run),
    }
    if result.drift is not None and drifted:
        tags["drift_summary"] = result.drift.summary()[:_TAG_LIMIT]
    if scope.comparison is not None:
        tags["comparison_winner"] = str(scope.comparison.winner or "")
        tags["comparison_reason"] = scope.comparison.reason[:_TAG_LIMIT]
    return tags


def _note(scope: EvaluationScope, result: VersionEvaluation, training_run: str) -> str:
    """The run's description in the MLflow UI (markdown), with a link to the training run."""
    link = f"[{training_run}](#/runs/{training_run})" if training_run else "unknown"
    drift = result.drift.summary() if result.drift is not None else "not assessed"
    lines = [
        f"Evaluation of version **{result.version}** ({result.model_name}), training run {link}.",
        f"Recent labelled rows: {result.recent_rows}; served predictions with a lab "
        f"result: {result.served_rows}{window_text(scope.since)}.",
        f"Drift: {drift}",
    ]
    if scope.comparison is not None:
        lines.append(f"Comparison: {scope.comparison.reason}")
    return "\n\n".join(lines)


def _run_params(scope: EvaluationScope, run: VersionRun) -> dict[str, Any]:
    """The request, the decision and drift settings in force, and how many rows were scored."""
    inference, params = scope.config.inference, scope.config.evaluation
    result = run.evaluation
    return {
        "version": result.version,
        "model": result.model_name,
        "since": scope.since.isoformat() if scope.since else "",
        "compare": scope.comparing,
        "promote_if_better": scope.promote_if_better,
        "interval_level": inference.interval_level,
        "approve_below": inference.approve_below,
        "reject_above": inference.reject_above,
        "drift_psi": params.drift_psi,
        "drift_alpha": params.drift_alpha,
        "drift_min_rows": params.drift_min_rows,
        "training_feature_set_version": result.training_feature_set_version,
        "evaluated_feature_set_version": scope.feature_set_version,
        "recent_rows": result.recent_rows,
        "served_rows": result.served_rows,
    }


def _run_metrics(scope: EvaluationScope, run: VersionRun) -> dict[str, float]:
    """Recent-row metrics, ``served_`` metrics, the drift verdict and the comparison's gain."""
    result = run.evaluation
    values: dict[str, float] = {}
    if result.recent is not None:
        values.update(metric_values("", result.recent))
    if result.served is not None:
        values.update(metric_values(SERVED_PREFIX, result.served))
    if result.drift is not None:
        values.update(drift_values(result.drift))
    if scope.comparison is not None and scope.comparison.improvement is not None:
        values["comparison_improvement"] = float(scope.comparison.improvement)
    return values


def metric_values(prefix: str, scores: EvaluationMetrics) -> dict[str, float]:
    """Flat MLflow metrics of one evaluation (structure names made safe for the UI)."""
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
    values = {
        "drift_flagged": float(report.drifted),
        "drift_flags": float(len(report.flagged)),
        "drift_new_structures": float(len(report.flagged_new_structures)),
    }
    for test in report.tests:
        if test.structure == ALL_STRUCTURES:
            values[f"drift_psi_{test.feature}"] = float(test.psi)
    return values


# -- artifacts --------------------------------------------------------------------------------


def _render_artifacts(scope: EvaluationScope, run: VersionRun, folder: Path) -> None:
    """Figures, tables and ``evaluation.json`` in ``folder``, drawn before anything is logged."""
    from permeability.plots.evaluation import evaluation_figures

    result = run.evaluation
    tables = folder / "tables"
    tables.mkdir(parents=True)
    for prefix, frame, scores, what in (
        ("", run.recent_scored, result.recent, "recent labelled rows"),
        (SERVED_PREFIX, run.served_scored, result.served, "served predictions"),
    ):
        if scores is None:
            continue
        evaluation_figures(
            frame,
            scores.per_structure,
            folder / "plots",
            heading=f"version {result.version}: {what} (n={scores.n})",
            level=scores.level,
            prefix=prefix,
        )
        write_csv(frame, tables / f"{prefix}scored_rows.csv")
        write_csv(scores.structure_table(), tables / f"{prefix}per_structure.csv")
    if result.drift is not None:
        write_csv(result.drift.table(), tables / "drift.csv")
    (folder / "evaluation.json").write_text(
        json.dumps(_summary(scope, result), indent=2, ensure_ascii=False, default=str),
        encoding="utf-8",
    )


def _summary(scope: EvaluationScope, result: VersionEvaluation) -> dict[str, Any]:
    """The version's result without its run id (the run does not exist yet), and the verdict."""
    summary = result.model_dump(mode="json", exclude={"run_id"})
    if scope.comparison is not None:
        summary["comparison"] = scope.comparison.model_dump(mode="json")
    return summary


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
