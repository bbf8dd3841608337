"""Run the HTTP services until stopped: ``permeability serve`` calls :func:`run_service`,
``permeability ui`` calls :func:`run_mlflow_ui`, with the options they parsed.

One worker serves the app in this process. Several workers (``--workers``) are processes that
each import the app's factory themselves (:mod:`permeability.runtime.workers`); their
Prometheus counters are merged through a shared folder (prometheus_client multiprocess). Either
way BLAS/OpenMP pools get one thread per worker.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from enum import StrEnum

from permeability.settings import Settings, get_settings


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


def run_service(
    service: Service, *, host: str, port: int | None, workers: int, access_log: bool
) -> None:
    """Serve ``service`` on ``host``:``port`` (its seed port when None) until stopped."""
    import uvicorn

    # One BLAS/OpenMP thread per worker: several workers would otherwise oversubscribe the
    # cores (HistGradientBoosting with default threads collapses under concurrent requests).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    module_name, factory_name = SERVICE_FACTORIES[service]
    bound_port = port or DEFAULT_PORTS[service]
    if workers == 1:
        factory = getattr(importlib.import_module(module_name), factory_name)
        uvicorn.run(
            factory(get_settings()),
            host=host,
            port=bound_port,
            access_log=access_log,
            lifespan="on",  # a failed start-up stops the server instead of serving without state
        )
        return
    # Worker processes are spawned and import the app themselves (each reads the same
    # environment); the supervisor never imports it, which would only hold its memory (≈ 230
    # MiB of libraries in a process that serves nothing).
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="permeability-metrics-")
    )
    from permeability.runtime.workers import run_workers

    run_workers(f"{module_name}:{factory_name}", workers, host, bound_port, access_log=access_log)


def run_mlflow_ui(
    settings: Settings, *, host: str, port: int, announce: Callable[[str], None]
) -> int:
    """Run the MLflow UI on the embedded tracking store (one worker, no job runner) until
    stopped; ``announce`` gets its address once it is starting. The exit status to end with:
    0 when it stopped on Ctrl+C."""
    from permeability.io.mlflow_setup import mlflow_ui_command

    command = mlflow_ui_command(settings, host=host, port=port)
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    announce(f"MLflow UI on http://{host}:{port} (Ctrl+C stops it)")
    completed = subprocess.run([sys.executable, "-m", *command], env=environment, check=False)  # noqa: S603
    return 0 if completed.returncode in (0, -2, 130) else completed.returncode
