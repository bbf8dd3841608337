"""The model commands: ``train``, ``promote``, ``versions``, ``evaluate``, ``retrain``,
``predict``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from permeability.cli.output import JsonFlag, emit, reports_errors
from permeability.settings import get_settings


def _parse_params(text: str | None) -> dict[str, Any] | None:
    from permeability.errors import InvalidInputError

    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--params is not valid JSON ({exc.msg})") from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError("--params must be a JSON object of hyperparameters")
    return parsed


@reports_errors
def train(
    model: Annotated[str, typer.Option(help="Catalogue name (see GET /models) or 'auto'.")],
    version: Annotated[str, typer.Option(help="Immutable version label, e.g. 0.1.")],
    test_size: Annotated[float, typer.Option(help="Share of rows held out, in (0, 1).")],
    params: Annotated[
        str | None, typer.Option(help="Hyperparameters as JSON, e.g. '{\"alpha\": 0.1}'.")
    ] = None,
    cv: Annotated[int | None, typer.Option(help="Cross-validation folds (2-20).")] = None,
    description: Annotated[str | None, typer.Option(help="A note kept with the run.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a model on the feature store; track it in MLflow, register and store it.

    Waits its turn while training.max_concurrent trainings run (service or other shells)."""
    from permeability.pipelines.training import train as run
    from permeability.pipelines.training_spec import TrainingSpec

    spec = TrainingSpec.parse(
        model=model,
        version=version,
        test_size=test_size,
        params=_parse_params(params),
        cv=cv,
        description=description,
    )
    result = run(get_settings(), spec)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    emit(
        result,
        as_json,
        f"version {result.version}: {result.chosen_model} on feature set "
        f"v{result.feature_set_version}, run {result.run_id}, registry "
        f"v{result.registry_version}; {metrics}",
    )


@reports_errors
def promote(
    version: Annotated[str, typer.Argument(help="Version label to make the champion.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept as a registry tag).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move the 'champion' alias of registered model 'permeability' to VERSION."""
    from permeability.pipelines.promotion import promote as run

    result = run(get_settings(), version, reason=reason)
    previous = result.previous_champion or "none"
    emit(
        result,
        as_json,
        f"version {result.version} (registry v{result.registry_version}) is now "
        f"{result.alias}; previous: {previous}",
    )


@reports_errors
def versions(as_json: JsonFlag = False) -> None:
    """List trained versions with status, metrics and lineage (trainings that died half-way
    are reconciled first)."""
    from permeability.pipelines.promotion import list_versions
    from permeability.pipelines.training_recovery import reconcile_dead_trainings

    settings = get_settings()
    reconcile_dead_trainings(settings)
    report = list_versions(settings)
    lines = [
        f"{v.version:<16} {v.status:<12} registry={v.registry_version or '-':<4} "
        f"model={v.chosen_model or '-'} feature_set={v.lineage.get('feature_set_version', '-')} "
        + " ".join(f"{k}={v.metrics[k]:.4g}" for k in ("r2", "mae") if k in v.metrics)
        for v in report.versions
    ]
    if report.registry_error:
        lines.append(f"(registry unreachable: {report.registry_error})")
    emit(report, as_json, "\n".join(lines) or "no versions trained yet")


@reports_errors
def evaluate(
    version: Annotated[
        str | None, typer.Option(help="Version label to evaluate (default: the champion).")
    ] = None,
    all_versions: Annotated[
        bool, typer.Option("--all", help="Evaluate every available version.")
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            help="Only lab results dated (and predictions made) on or after this (UTC).",
        ),
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="Score the champion and every other version on the same rows.")
    ] = False,
    promote_if_better: Annotated[
        float | None,
        typer.Option(
            help="Move 'champion' to a challenger that wins by this margin "
            "(0.05 = 5 % lower MAE); implies --compare."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate versions on lab results that arrived after their training; log to MLflow."""
    from permeability.pipelines.evaluation import evaluate as run

    report = run(
        get_settings(),
        version=version,
        all_versions=all_versions,
        since=since,
        compare=compare,
        promote_if_better=promote_if_better,
    )
    emit(report, as_json, report.summary())


@reports_errors
def retrain(
    force: Annotated[
        bool, typer.Option(help="Train a challenger even when no retraining trigger is met.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train a challenger with 'auto' when evaluation or new lab results call for it, judge
    it against the champion on the latest new tests, then promote it or ask for approval
    (retraining.auto_promote). Each decision is a run in MLflow experiment
    'permeability-retraining'."""
    from permeability.pipelines.retraining import retrain as run

    report = run(get_settings(), force=force)
    emit(report, as_json, report.summary())


@reports_errors
def predict(
    input_path: Annotated[
        Path, typer.Option("--input", help="Lab file to score: .csv or .xlsx (seed's columns).")
    ],
    output_path: Annotated[
        Path,
        typer.Option("--output", help="Where to write every row plus its outputs (.csv/.xlsx)."),
    ],
    version: Annotated[
        str | None, typer.Option(help="Version label (default: the champion).")
    ] = None,
    level: Annotated[
        float | None, typer.Option(help="Prediction-interval level (default from config).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a whole file: prediction, interval, decision (and an error per bad row)."""
    from permeability.pipelines.predict import predict_file

    result = predict_file(
        get_settings(), input_path=input_path, output_path=output_path, version=version, level=level
    )
    decisions = ", ".join(f"{k}={v}" for k, v in sorted(result.decisions.items())) or "none"
    emit(
        result,
        as_json,
        f"scored {result.rows} rows with version {result.version} ({result.failed} failed, "
        f"{result.filled_rows} with caliper values filled; decisions: {decisions}) "
        f"-> {result.output}",
    )
