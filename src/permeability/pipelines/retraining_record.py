"""What a retraining decided, as a report and as one MLflow run in ``permeability-retraining``.

Every decision of the ``retrain`` job (:mod:`permeability.pipelines.retraining`) - no trigger,
too few tests, champion kept, challenger promoted, challenger awaiting approval - is one run:
params (the triggers, the window, the holdout, the margin, ``auto_promote``), metrics (both
versions' scores on the holdout tests), tags (``decision``, ``champion``, ``challenger``,
``training_run_id``, ``reason``) and the reason as ``reason.txt`` next to ``retraining.json``
(the report) and the per-test scores. The run is started before the decision is carried out so
that a promotion and the events can name it, and marked FAILED if anything fails before it is
finished.

The ``basis`` tag (``<champion>@v<feature set>``) lets the job see that a challenger was already
trained against this champion on this data (:func:`already_trained`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from permeability.config import ProjectConfig
from permeability.io.cells import write_csv
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig, filter_literal
from permeability.monitoring.comparison import ComparisonOutcome
from permeability.monitoring.events import Event
from permeability.monitoring.reports import EvaluationMetrics
from permeability.monitoring.retraining import Holdout, Trigger
from permeability.settings import Settings

RETRAINING_EXPERIMENT: Final = "permeability-retraining"
#: MLflow caps a tag at 5000 characters.
_TAG_LIMIT: Final = 5000

Decision = Literal["no_trigger", "too_few_tests", "kept", "promoted", "awaiting_approval"]
#: Decisions after which a challenger exists (trained against the champion of the run).
TRAINED_DECISIONS: Final[tuple[Decision, ...]] = ("kept", "promoted", "awaiting_approval")


class RetrainReport(BaseModel):
    """What ``permeability retrain`` and ``POST /retrain`` answer: the decision and its facts."""

    decision: Decision = Field(
        description="no_trigger, too_few_tests, kept (the champion stays), promoted (the "
        "challenger is the champion now) or awaiting_approval (it won; a person decides)."
    )
    reason: str = Field(description="Why, in words, with the figures that decided it.")
    triggers: list[Trigger] = Field(description="Every trigger looked at, met or not.")
    champion: str = Field(description="The champion when the job started.")
    challenger: str | None = Field(description="The generated label of the challenger trained.")
    training_run_id: str | None = Field(description="The challenger's training run.")
    feature_set_version: int = Field(description="The feature-set version the job looked at.")
    new_tests: int = Field(description="Product tests none of whose rows the champion saw.")
    holdout: Holdout | None = Field(description="The tests both versions were judged on.")
    comparison: ComparisonOutcome | None = Field(description="The margin rule's verdict.")
    scores: dict[str, EvaluationMetrics] = Field(
        default_factory=dict, description="Each version's scores on the holdout, one per test."
    )
    promoted: str | None = Field(description="The version promoted, if any.")
    run_id: str = Field(description="The decision's MLflow run.")
    experiment: str = RETRAINING_EXPERIMENT
    events: list[Event] = Field(default_factory=list, description="What people were told.")
    seconds: float

    def summary(self) -> str:
        """One line per fact, for the scheduler's log and the CLI."""
        met = [t.name for t in self.triggers if t.met]
        lines = [
            f"decision: {self.decision}",
            f"reason: {self.reason}",
            f"triggers met: {', '.join(met) or 'none'}",
            f"champion: {self.champion}; feature set v{self.feature_set_version}; "
            f"{self.new_tests} new test(s)",
        ]
        if self.challenger is not None:
            lines.append(f"challenger: {self.challenger} (training run {self.training_run_id})")
        if self.holdout is not None and not self.holdout.problem:
            lines.append(
                f"holdout: {len(self.holdout.tests)} test(s) from {self.holdout.first} to "
                f"{self.holdout.last}; the challenger learnt {self.holdout.learn_tests} new one(s)"
            )
        if self.comparison is not None:
            lines.append(f"comparison: {self.comparison.reason}")
        if self.promoted is not None:
            lines.append(f"promoted: {self.promoted}")
        lines.append(f"run: {self.run_id} ({self.experiment}), {self.seconds:.1f}s")
        return "\n".join(lines)


def retraining_registry(settings: Settings) -> Registry:
    """The configured tracking store, writing runs to the retraining experiment."""
    config = replace(RegistryConfig.from_settings(settings), experiment_name=RETRAINING_EXPERIMENT)
    return Registry(config)


def basis_tag(champion: str, feature_set_version: int) -> str:
    """What a challenger was trained against: the champion and the feature-set version."""
    return f"{champion}@v{feature_set_version}"


def already_trained(registry: Registry, champion: str, feature_set_version: int) -> str | None:
    """The challenger (and run) already trained against ``champion`` on this feature-set
    version by an earlier retraining, or None."""
    if not registry.has_store():
        return None
    basis = basis_tag(champion, feature_set_version)
    filter_literal(basis)  # labels never hold quotes; refuse rather than search wrongly
    for run in registry.runs_tagged("basis", basis):
        if run.status == "FINISHED" and run.tags.get("decision") in TRAINED_DECISIONS:
            return f"challenger {run.tags.get('challenger')} (retraining run {run.run_id})"
    return None


@contextmanager
def retraining_run(registry: Registry, champion: str, feature_set_version: int) -> Iterator[str]:
    """A started run for one decision; FAILED if the block raises, else finished."""
    registry.setup()
    run_id = registry.start_run(
        run_name=f"retrain-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        tags={"champion": champion, "basis": basis_tag(champion, feature_set_version)},
        start_time_ms=int(time.time() * 1000),
    )
    try:
        yield run_id
    except BaseException:
        registry.finish_run(run_id, failed=True)
        raise
    registry.finish_run(run_id)


def log_decision(
    registry: Registry,
    report: RetrainReport,
    config: ProjectConfig,
    *,
    force: bool,
    per_test: Mapping[str, pd.DataFrame],
) -> None:
    """Params, metrics, tags and artifacts of ``report``'s run (see the module docstring)."""
    registry.log_run_data(
        report.run_id,
        params=_params(report, config, force),
        metrics=_metrics(report),
        tags=_tags(report),
    )
    with tempfile.TemporaryDirectory(prefix="permeability-retrain-") as scratch:
        folder = Path(scratch)
        (folder / "reason.txt").write_text(report.reason + "\n", encoding="utf-8")
        (folder / "retraining.json").write_text(
            json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False),
            encoding="utf-8",
        )
        if per_test:
            (folder / "tables").mkdir()
            for label, table in per_test.items():
                write_csv(table, folder / "tables" / f"{_role(report, label)}_per_test.csv")
        registry.log_artifacts(report.run_id, folder)


def _role(report: RetrainReport, label: str) -> str:
    return "champion" if label == report.champion else "challenger"


def _params(report: RetrainReport, config: ProjectConfig, force: bool) -> dict[str, Any]:
    retraining, evaluation = config.retraining, config.evaluation
    holdout = report.holdout
    return {
        "force": force,
        "triggers_met": ",".join(t.name for t in report.triggers if t.met),
        "on_drift": retraining.on_drift,
        "on_degradation": retraining.on_degradation,
        "min_new_tests": retraining.min_new_tests,
        "new_tests": report.new_tests,
        "feature_set_version": report.feature_set_version,
        "champion": report.champion,
        "window_rows": holdout.window_rows if holdout else "",
        "window_tests": holdout.window_tests if holdout else "",
        "holdout_tests": len(holdout.tests) if holdout else "",
        "learn_tests": holdout.learn_tests if holdout else "",
        "holdout_first": (holdout.first or "") if holdout else "",
        "holdout_last": (holdout.last or "") if holdout else "",
        "holdout_fraction": retraining.holdout_fraction,
        "min_holdout_tests": retraining.min_holdout_tests,
        "test_size": retraining.test_size,
        "margin": retraining.margin,
        "auto_promote": retraining.auto_promote,
        "compare_metric": evaluation.compare_metric,
        "coverage_tolerance": evaluation.coverage_tolerance,
    }


def _metrics(report: RetrainReport) -> dict[str, float]:
    values: dict[str, float] = {"new_tests": float(report.new_tests)}
    if report.holdout is not None:
        values["holdout_tests"] = float(len(report.holdout.tests))
    for label, scores in report.scores.items():
        role = _role(report, label)
        values[f"{role}_n_tests"] = float(scores.n)
        values.update(
            {f"{role}_{k}": float(v) for k, v in scores.metrics.items() if np.isfinite(v)}
        )
    gain = report.comparison.improvement if report.comparison is not None else None
    if gain is not None and np.isfinite(gain):
        values["improvement"] = float(gain)
    return values


def _tags(report: RetrainReport) -> dict[str, str]:
    return {
        "decision": report.decision,
        "champion": report.champion,
        "challenger": report.challenger or "",
        "training_run_id": report.training_run_id or "",
        "promoted": report.promoted or "",
        "reason": report.reason[:_TAG_LIMIT],
        "mlflow.note.content": report.summary().replace("\n", "\n\n")[:_TAG_LIMIT],
    }
