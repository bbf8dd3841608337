"""The one command line: parses, dispatches to a job, prints the result. No logic lives here.

Every command that produces a result accepts ``--json`` and then prints it as one JSON object
on the last line of standard output. Failures exit non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel

from permeability.errors import PermeabilityError
from permeability.settings import get_settings

app = typer.Typer(
    name="permeability",
    help="Guide values for film permeability (WVTR) and the MLOps loop behind them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

P = ParamSpec("P")
R = TypeVar("R")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, PermeabilityError) else f"{type(exc).__name__}: {text}"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into exit status 1 and a one-line reason on stderr (details go to the log)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from exc

    return wrapper


def emit(result: BaseModel | dict[str, Any], as_json: bool, summary: str) -> None:
    """The human summary, or the result as one JSON line."""
    payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    if as_json:
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        typer.echo(summary)


class ExportLayout(StrEnum):
    """Column layouts ``generate-data`` writes."""

    REAL = "real"
    SEED = "seed"


@app.command("generate-data")
@reports_errors
def generate_data(
    out: Annotated[Path, typer.Option(help="Output file: .csv, .xlsx, or .db/.sqlite (SQLite).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of lab records.")] = 5000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same file.")] = 42,
    clean: Annotated[
        bool, typer.Option(help="Write a tidy export instead of a messy one.")
    ] = False,
    start_id: Annotated[
        int,
        typer.Option(
            min=0, help="First CONSECUTIVO (seed layout: Muestra); continue an earlier file."
        ),
    ] = 1,
    start_date: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="First test date (YYYY-MM-DD); default 2024-01-01."
        ),
    ] = None,
    layout: Annotated[
        ExportLayout,
        typer.Option(
            help="real: the lab's export (CONSECUTIVO, replicates, Año/Mes/Día); "
            "seed: the seed's record (Muestra as sample id, Fecha)."
        ),
    ] = ExportLayout.REAL,
    as_json: JsonFlag = False,
) -> None:
    """Write a physically grounded synthetic lab export (as messy as a real one)."""
    from permeability.pipelines.synthetic import generate_data as run

    result = run(
        get_settings(),
        rows=rows,
        seed=seed,
        out=out,
        messy=not clean,
        start_id=start_id,
        start_date=start_date.date() if start_date else None,
        layout=layout.value,
    )
    emit(result, as_json, f"wrote {result.rows} rows ({result.layout} layout) to {result.path}")


@app.command()
@reports_errors
def acquire(
    source: Annotated[
        str | None,
        typer.Option(help="CSV or .xlsx path, or a SQLAlchemy URL. Default: PERMEABILITY_SOURCE."),
    ] = None,
    table: Annotated[str | None, typer.Option(help="Table to read from a SQL source.")] = None,
    query: Annotated[str | None, typer.Option(help="SELECT to run on a SQL source.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Extract lab records, clean and validate them, fit the caliper PCA, load the feature store."""
    from permeability.pipelines.acquisition import acquire as run

    settings = get_settings()
    chosen = source or settings.source
    if not chosen:
        raise typer.BadParameter("give --source or set PERMEABILITY_SOURCE", param_hint="--source")
    report = run(settings, chosen, table=table or settings.source_table, query=query)
    emit(report, as_json, report.summary())


@app.command()
@reports_errors
def schedule(
    once: Annotated[
        bool, typer.Option(help="Run every configured job once now, then exit.")
    ] = False,
) -> None:
    """Run the configured jobs (acquisition, evaluation, log compaction) on their cron expressions."""
    from permeability.runtime.scheduler import run_scheduler

    run_scheduler(get_settings(), once=once)


@app.command()
@reports_errors
def compact(
    retention_hours: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep files the compaction replaced this many hours (time travel over them "
            "keeps working); 0 deletes them now.",
        ),
    ] = 168,
    as_json: JsonFlag = False,
) -> None:
    """Compact the prediction log's small files and delete the ones replaced long enough ago."""
    from permeability.pipelines.compaction import compact as run

    report = run(get_settings(), retention_hours=retention_hours)
    emit(report, as_json, report.summary())


class Service(StrEnum):
    """The HTTP services ``serve`` can start."""

    training = "training"
    inference = "inference"


#: Seed ports: training on 8000, inference on 8001.
DEFAULT_PORTS = {Service.training: 8000, Service.inference: 8001}
#: Where each service's app factory lives (imported only when that service is started).
SERVICE_FACTORIES = {
    Service.training: ("permeability.services.training.app", "create_training_app"),
    Service.inference: ("permeability.services.inference.app", "create_inference_app"),
}


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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
@reports_errors
def serve(
    service: Annotated[Service, typer.Argument(help="Which service to run.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port (default: 8000 training, 8001 inference).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="uvicorn worker processes (one per core).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request to the console (costs throughput).")
    ] = True,
) -> None:
    """Run an HTTP service (uvicorn; one worker unless --workers)."""
    import importlib
    import os
    import tempfile

    import uvicorn

    # One BLAS/OpenMP thread per worker: several workers would otherwise oversubscribe the
    # cores (HistGradientBoosting with default threads collapses under concurrent requests).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    module_name, factory_name = SERVICE_FACTORIES[service]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise PermeabilityError(
            f"the {service.value} service is not available: module {module_name} does not exist yet"
        ) from exc
    factory = getattr(module, factory_name)
    bound_port = port or DEFAULT_PORTS[service]
    if workers == 1:
        uvicorn.run(
            factory(get_settings()),
            host=host,
            port=bound_port,
            access_log=access_log,
            lifespan="on",  # a failed start-up stops the server instead of serving without state
        )
        return
    # Worker processes import the app themselves (each reads the same environment); their
    # Prometheus counters are merged through a shared folder (prometheus_client multiprocess).
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="permeability-metrics-")
    )
    from permeability.runtime.workers import run_workers

    run_workers(f"{module_name}:{factory_name}", workers, host, bound_port, access_log=access_log)


@app.command()
@reports_errors
def ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the embedded tracking store (one worker, no job runner)."""
    import os
    import subprocess
    import sys

    from permeability.io.registry import mlflow_ui_command

    command = mlflow_ui_command(get_settings(), host=host, port=port)
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    typer.echo(f"MLflow UI on http://{host}:{port} (Ctrl+C stops it)", err=True)
    completed = subprocess.run([sys.executable, "-m", *command], env=environment, check=False)  # noqa: S603
    if completed.returncode not in (0, -2, 130):
        raise typer.Exit(completed.returncode)


@app.command()
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


@app.command()
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


@app.command()
@reports_errors
def up(
    serve: Annotated[
        bool, typer.Option(help="Start the APIs, the MLflow UI and the scheduler afterwards.")
    ] = True,
    rows: Annotated[
        int, typer.Option(min=100, help="Rows to generate when there is no source.")
    ] = 5000,
    model: Annotated[str, typer.Option(help="Model of the first version.")] = "auto",
    host: Annotated[str, typer.Option(help="Interface the services listen on.")] = "127.0.0.1",
    training_port: Annotated[int, typer.Option(help="Port of the training API.")] = 8000,
    inference_port: Annotated[int, typer.Option(help="Port of the inference API.")] = 8001,
    ui_port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    as_json: JsonFlag = False,
) -> None:
    """The whole loop on the embedded defaults: data, feature store, model, champion, evaluation, services."""
    from permeability.pipelines.up import UpOptions, prepare, serve_forever

    settings = get_settings()
    options = UpOptions(
        rows=rows,
        model=model,
        host=host,
        training_port=training_port,
        inference_port=inference_port,
        ui_port=ui_port,
    )
    report = prepare(settings, options)
    emit(report, as_json, report.summary())
    if serve:
        raise typer.Exit(serve_forever(settings, options, report.source, typer.echo))


if __name__ == "__main__":  # pragma: no cover
    app()
