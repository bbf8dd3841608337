"""The long-running commands: ``serve``, ``ui``, ``up``, ``schedule``."""

from __future__ import annotations

from typing import Annotated

import typer

from permeability.cli.output import JsonFlag, emit, reports_errors
from permeability.runtime.serving import Service
from permeability.settings import get_settings


@reports_errors
def schedule(
    once: Annotated[
        bool, typer.Option(help="Run every configured job once now, then exit.")
    ] = False,
) -> None:
    """Run the configured jobs (acquisition, evaluation, log compaction) on their cron expressions."""
    from permeability.runtime.scheduler import run_scheduler

    run_scheduler(get_settings(), once=once)


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
    from permeability.runtime.serving import run_service

    run_service(service, host=host, port=port, workers=workers, access_log=access_log)


@reports_errors
def ui(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open the MLflow UI on the embedded tracking store (one worker, no job runner)."""
    from permeability.runtime.serving import run_mlflow_ui

    status = run_mlflow_ui(
        get_settings(), host=host, port=port, announce=lambda line: typer.echo(line, err=True)
    )
    if status:
        raise typer.Exit(status)


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
