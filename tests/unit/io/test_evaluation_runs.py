"""Evaluation runs on an embedded SQLite store: what one run records, and what a failure leaves.

The versions' results are built from small scored tables (no training): the run writer only
needs a result, its scored rows, its lineage and what the whole evaluation shares.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permeability.config import ProjectConfig
from permeability.io.evaluation_runs import (
    EVALUATION_EXPERIMENT,
    EvaluationScope,
    VersionRun,
    evaluation_registry,
    metric_values,
    write_evaluation_runs,
)
from permeability.io.registry import Registry
from permeability.monitoring.comparison import ComparisonOutcome, compare_versions
from permeability.monitoring.drift import detect_drift
from permeability.monitoring.evaluation import (
    VersionEvaluation,
    evaluate_scored,
)
from permeability.monitoring.reports import DriftReport, EvaluationMetrics
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec

TRAINING_RUN = "0123456789abcdef0123456789abcdef"
SINCE = datetime(2026, 1, 1)
#: Two structures whose metric names collide once made safe for the MLflow UI.
STRUCTURES = ("PET/LDPE", "PET LDPE", "BOPP")


def _scored(rows: int, seed: int, *, noise: float = 0.2) -> pd.DataFrame:
    """Scored rows (``SCORED_COLUMNS``) with log-normal errors and wide intervals."""
    rng = np.random.default_rng(seed)
    measured = np.exp(rng.normal(1.0, 1.0, rows))
    predicted = measured * np.exp(rng.normal(0.0, noise, rows))
    limit = np.where(np.arange(rows) % 2 == 0, 5.0, np.nan)
    return pd.DataFrame(
        {
            "Muestra": np.arange(1, rows + 1),
            "structure": [STRUCTURES[i % len(STRUCTURES)] for i in range(rows)],
            "measured": measured,
            "predicted": predicted,
            "lower": predicted / 3.0,
            "upper": predicted * 3.0,
            "level": 0.9,
            "limit": limit,
            "p_exceed": np.where(np.isfinite(limit), 0.5, np.nan),
            "decision": np.where(np.isfinite(limit), "retest", ""),
            "when": pd.date_range("2026-01-02", periods=rows, freq="h"),
        }
    )


def _run(
    version: str,
    recent_scored: pd.DataFrame,
    *,
    served_scored: pd.DataFrame | None = None,
    drift: DriftReport | None = None,
    lineage: dict[str, str] | None = None,
) -> VersionRun:
    served_scored = served_scored if served_scored is not None else pd.DataFrame()
    lineage = lineage if lineage is not None else {"run_id": TRAINING_RUN, "experiment": "exp"}
    result = VersionEvaluation(
        version=version,
        model_name="LinearRegression",
        is_champion=version == "0.1",
        training_run_id=lineage.get("run_id"),
        registry_version="3",
        training_feature_set_version=2,
        recent_rows=len(recent_scored),
        served_rows=len(served_scored),
        recent=evaluate_scored(recent_scored) if len(recent_scored) else None,
        served=evaluate_scored(served_scored) if len(served_scored) else None,
        drift=drift,
    )
    return VersionRun(result, lineage, recent_scored, served_scored)


def _scope(comparison: ComparisonOutcome | None = None) -> EvaluationScope:
    return EvaluationScope(
        evaluation_id="eval-1",
        feature_set_version=4,
        since=SINCE,
        comparing=comparison is not None,
        promote_if_better=None,
        comparison=comparison,
        config=ProjectConfig(),
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """One store for the module: creating a SQLite tracking schema costs a second or more."""
    settings = Settings(home=tmp_path_factory.mktemp("evaluation-runs") / "storage")
    settings.paths.ensure()
    return evaluation_registry(settings)


@pytest.fixture(scope="module")
def drifted() -> DriftReport:
    """A humidity shift between a version's training data and its recent rows."""
    training = generate_lab_data(600, 11, mess=MessSpec.none())
    recent = generate_lab_data(
        300, 12, start_id=601, mess=MessSpec.none(), drift=DriftSpec(humidity_shift_pct=-10.0)
    )
    report = detect_drift(training, recent)
    assert report.drifted
    return report


def _evaluation_json(registry: Registry, run_id: str, folder: Path) -> dict[str, object]:
    local = registry.client.download_artifacts(run_id, "evaluation.json", str(folder))
    loaded: dict[str, object] = json.loads(Path(local).read_text(encoding="utf-8"))
    return loaded


def test_a_run_records_lineage_settings_metrics_drift_and_artifacts(
    registry: Registry, drifted: DriftReport, tmp_path: Path
) -> None:
    run = _run("0.1", _scored(60, 1), served_scored=_scored(30, 2), drift=drifted)
    [run_id] = write_evaluation_runs(registry, _scope(), [run])

    record = registry.get_run(run_id)
    assert registry.config.experiment_name == EVALUATION_EXPERIMENT
    assert record.status == "FINISHED"
    assert record.tags["mlflow.runName"].startswith("0.1-evaluation-")
    assert {k: record.tags[k] for k in ("version_label", "evaluation_id", "training_run_id")} == {
        "version_label": "0.1",
        "evaluation_id": "eval-1",
        "training_run_id": TRAINING_RUN,
    }
    assert record.tags["training_experiment"] == "exp"
    assert record.tags["registry_version"] == "3"
    assert record.tags["training_feature_set_version"] == "2"
    assert record.tags["evaluated_feature_set_version"] == "4"
    assert record.tags["champion"] == "true"
    assert record.tags["drift"] == "flagged"
    assert "Porc_Humedad" in record.tags["drift_summary"]
    assert "comparison_winner" not in record.tags
    note = record.tags["mlflow.note.content"]
    assert f"[{TRAINING_RUN}](#/runs/{TRAINING_RUN})" in note
    assert (
        "Recent labelled rows: 60; served predictions with a lab result: 30 since 2026-01-01"
        in (note)
    )

    assert record.params["since"] == "2026-01-01T00:00:00"
    assert record.params["compare"] == "False"
    assert record.params["promote_if_better"] == "None"
    assert record.params["interval_level"] == str(ProjectConfig().inference.interval_level)
    assert (record.params["recent_rows"], record.params["served_rows"]) == ("60", "30")

    assert run.evaluation.recent is not None
    assert run.evaluation.served is not None
    assert record.metrics["mae"] == pytest.approx(run.evaluation.recent.metrics["mae"])
    assert record.metrics["served_mae"] == pytest.approx(run.evaluation.served.metrics["mae"])
    assert record.metrics["n_rows"] == 60.0
    assert record.metrics["drift_flagged"] == 1.0
    assert record.metrics["drift_psi_Porc_Humedad"] > 0.2
    assert "comparison_improvement" not in record.metrics

    artifacts = set(registry.list_artifacts(run_id))
    assert {
        "plots/error_over_time.png",
        "plots/coverage_per_structure.png",
        "plots/residuals.png",
        "plots/served_residuals.png",
        "tables/scored_rows.csv",
        "tables/per_structure.csv",
        "tables/served_scored_rows.csv",
        "tables/drift.csv",
        "evaluation.json",
    } <= artifacts
    summary = _evaluation_json(registry, run_id, tmp_path)
    assert summary["version"] == "0.1"
    assert summary["recent_rows"] == 60
    assert "run_id" not in summary  # the run did not exist when the file was written
    assert "comparison" not in summary


def test_a_comparison_lands_in_every_run_of_the_evaluation(
    registry: Registry, tmp_path: Path
) -> None:
    champion, challenger = _run("0.1", _scored(60, 3, noise=0.5)), _run("0.2", _scored(60, 3))
    assert champion.evaluation.recent is not None
    assert challenger.evaluation.recent is not None
    comparison = compare_versions(
        {"0.1": champion.evaluation.recent, "0.2": challenger.evaluation.recent}, "0.1"
    )
    assert comparison.challenger_wins

    run_ids = write_evaluation_runs(registry, _scope(comparison), [champion, challenger])

    assert len(set(run_ids)) == 2
    for run_id, label in zip(run_ids, ("0.1", "0.2"), strict=True):
        record = registry.get_run(run_id)
        assert record.tags["version_label"] == label
        assert record.tags["comparison_winner"] == "0.2"
        assert record.tags["comparison_reason"] == comparison.reason
        assert record.tags["drift"] == "none"
        assert "drift_flagged" not in record.metrics  # drift not assessed
        assert record.params["compare"] == "True"
        assert record.metrics["comparison_improvement"] == pytest.approx(comparison.improvement)
        summary = _evaluation_json(registry, run_id, tmp_path / label)
        assert summary["comparison"] == comparison.model_dump(mode="json")


def test_the_runs_input_is_the_versions_logged_model(registry: Registry) -> None:
    registry.setup()
    training_run = registry.start_run(run_name="training", tags={}, start_time_ms=0)
    model_id, _ = registry.create_logged_model(training_run, tags={})
    lineage = {"run_id": training_run, "logged_model_id": model_id}

    [run_id] = write_evaluation_runs(
        registry, _scope(), [_run("0.1", _scored(40, 4), lineage=lineage)]
    )

    inputs = registry.client.get_run(run_id).inputs
    assert inputs is not None
    assert [i.model_id for i in inputs.model_inputs or []] == [model_id]


def test_a_drawing_error_writes_nothing_not_even_the_store(settings: Settings) -> None:
    settings.paths.ensure()
    registry = evaluation_registry(settings)
    good = _run("0.1", _scored(40, 5))
    broken = _run("0.2", _scored(40, 6))
    broken = VersionRun(
        broken.evaluation,
        broken.lineage,
        broken.recent_scored.drop(columns=["when"]),  # the error-over-time figure needs it
        broken.served_scored,
    )

    with pytest.raises(KeyError, match="when"):
        write_evaluation_runs(registry, _scope(), [good, broken])

    assert not registry.has_store()


def test_a_run_that_fails_while_logging_is_marked_failed(settings: Settings) -> None:
    settings.paths.ensure()
    blocker = settings.paths.root / "not-a-directory"
    blocker.write_text("a file where the artifact folder should be", encoding="utf-8")
    config = replace(evaluation_registry(settings).config, artifact_location=blocker.as_uri())
    registry = Registry(config)

    with pytest.raises(OSError, match="not-a-directory"):
        write_evaluation_runs(registry, _scope(), [_run("0.1", _scored(40, 7))])

    runs = registry.client.search_runs([registry.experiment_id])
    assert [(r.data.tags["version_label"], r.info.status) for r in runs] == [("0.1", "FAILED")]
    assert runs[0].data.metrics["n_rows"] == 40.0  # what was logged before the failure stays


def _metrics(per_structure_mae: dict[str, float], overall: dict[str, float]) -> EvaluationMetrics:
    rows = [
        {
            "structure": name,
            "n": 10,
            "mae": mae,
            "mape": 10.0,
            "rmse": mae,
            "bias_log": 0.0,
            "coverage": 0.9,
            "mean_width": 1.0,
            "wrong_approvals": 0,
            "wrong_rejections": 0,
        }
        for name, mae in per_structure_mae.items()
    ]
    decisions = {
        "approve": 3,
        "reject": 1,
        "retest": 2,
        "wrong_approvals": 1,
        "wrong_rejections": 0,
    }
    return EvaluationMetrics.model_validate(
        {
            "n": 20,
            "level": 0.9,
            "metrics": overall,
            "per_structure": rows,
            "decisions": decisions,
            "first": None,
            "last": None,
        }
    )


def test_metric_names_are_safe_unique_and_only_finite_values_are_kept() -> None:
    scores = _metrics(
        {"PET/LDPE": 1.0, "PET LDPE": 2.0, "BOPP": float("nan")},
        {"mae": 1.5, "r2": float("nan")},
    )

    values = metric_values("served_", scores)

    assert values["served_mae"] == 1.5
    assert "served_r2" not in values
    assert values["served_n_rows"] == 20.0
    assert values["served_decisions_approve"] == 3.0
    assert values["served_wrong_approvals"] == 1.0
    assert values["served_mae_PET_LDPE"] == 1.0
    assert values["served_mae_PET_LDPE_2"] == 2.0  # a second structure does not overwrite
    assert "served_mae_BOPP" not in values
    assert values["served_coverage_BOPP"] == 0.9
