"""The main job (``permeability up``): the whole loop on the embedded defaults.

Each step first looks at what exists and reuses it, so a second run does no work twice and
never fails because the first one succeeded:

1. a lab source: ``PERMEABILITY_SOURCE`` if set, else a synthetic export generated once
   into ``<home>/data/raw/``;
2. an acquisition (incremental: an unchanged source loads nothing and makes no version);
3. a first model version, trained only when the model store has none;
4. a champion, promoted only when the registry has none;
5. an evaluation of the champion on data that arrived after its training;
6. the services: training API, inference API and lab page, MLflow UI, scheduler, each a
   child process supervised here; Ctrl-C (or any child dying) stops them all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from permeability.errors import InvalidInputError, PermeabilityError
from permeability.pipelines.base import JobContext, job_context
from permeability.settings import Settings

STAGE = "up"
GENERATED_SOURCE_NAME = "lab_export.csv"

Action = Literal["created", "reused", "ran", "skipped"]


class UpOptions(BaseModel):
    """What ``up`` builds when nothing exists yet, and where it serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(default=5000, ge=100, description="Rows of the generated lab export.")
    seed: int = Field(default=42, ge=0)
    model: str = "auto"
    version: str = "0.1"
    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    host: str = "127.0.0.1"
    training_port: int = Field(default=8000, ge=1, le=65535)
    inference_port: int = Field(default=8001, ge=1, le=65535)
    ui_port: int = Field(default=5000, ge=1, le=65535)


class StepOutcome(BaseModel):
    step: str
    action: Action
    detail: str


class UpReport(BaseModel):
    source: str
    champion: str | None
    steps: list[StepOutcome]
    seconds: float

    def summary(self) -> str:
        lines = [f"{s.step:<10} {s.action:<8} {s.detail}" for s in self.steps]
        return "\n".join([*lines, f"champion: {self.champion or 'none'}"])


def prepare(settings: Settings, options: UpOptions) -> UpReport:
    """Steps 1-5: make sure there is data, a feature-set version, a champion and an evaluation."""
    started = time.perf_counter()
    with job_context(STAGE, settings) as context:
        steps: list[StepOutcome] = []
        source, outcome = _ensure_source(context, options)
        steps.append(outcome)
        steps.append(_acquire(context, source))
        steps.append(_ensure_trained(context, options))
        champion, outcome = _ensure_champion(context)
        steps.append(outcome)
        steps.append(_evaluate(context))
        for step in steps:
            context.logger.info("%s: %s (%s)", step.step, step.action, step.detail)
    return UpReport(
        source=source,
        champion=champion,
        steps=steps,
        seconds=round(time.perf_counter() - started, 2),
    )


def _ensure_source(context: JobContext, options: UpOptions) -> tuple[str, StepOutcome]:
    if context.settings.source:
        return context.settings.source, StepOutcome(
            step="source", action="reused", detail=f"PERMEABILITY_SOURCE={context.settings.source}"
        )
    path = context.paths.raw / GENERATED_SOURCE_NAME
    if path.exists():
        return str(path), StepOutcome(step="source", action="reused", detail=str(path))
    from permeability.pipelines.synthetic import generate_data

    # The lab's real export layout: the first run meets what a real lab hands over.
    result = generate_data(
        context.settings, rows=options.rows, seed=options.seed, out=path, layout="real"
    )
    detail = (
        f"generated {result.rows} synthetic lab records ({result.layout} layout, "
        f"seed {result.seed}) in {path}"
    )
    return str(path), StepOutcome(step="source", action="created", detail=detail)


def _acquire(context: JobContext, source: str) -> StepOutcome:
    from permeability.pipelines.acquisition import acquire

    report = acquire(context.settings, source, table=context.settings.source_table)
    action: Action = "ran" if report.rows_loaded else "reused"
    return StepOutcome(step="acquire", action=action, detail=report.summary())


def _ensure_trained(context: JobContext, options: UpOptions) -> StepOutcome:
    from permeability.io.model_store import ModelStore
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    available = [
        v.label for v in ModelStore(context.paths.models).versions() if v.status == "available"
    ]
    if available:
        return StepOutcome(step="train", action="reused", detail=f"versions {', '.join(available)}")
    spec = TrainingSpec.parse(
        model=options.model, version=options.version, test_size=options.test_size
    )
    result = train(context.settings, spec, config=context.config)
    detail = (
        f"version {result.version}: {result.chosen_model} on feature set "
        f"v{result.feature_set_version}, held-out MAE {result.metrics['mae']:.4g}, "
        f"R² {result.metrics['r2']:.4f}"
    )
    return StepOutcome(step="train", action="created", detail=detail)


def _ensure_champion(context: JobContext) -> tuple[str | None, StepOutcome]:
    from permeability.pipelines.promotion import list_versions, promote

    report = list_versions(context.settings)
    if report.champion is not None:
        return report.champion, StepOutcome(
            step="promote", action="reused", detail=f"champion is {report.champion}"
        )
    candidates = [v for v in report.versions if v.status == "available"]
    if not candidates:
        return None, StepOutcome(step="promote", action="skipped", detail="no servable version")
    label = candidates[-1].version
    promote(context.settings, label, reason="first champion (permeability up)")
    return label, StepOutcome(step="promote", action="created", detail=f"champion is {label}")


def _evaluate(context: JobContext) -> StepOutcome:
    from permeability.pipelines.evaluation import evaluate

    try:
        report = evaluate(context.settings, config=context.config)
    except PermeabilityError as exc:
        # Right after the first training there is usually no newer labelled data: say so.
        return StepOutcome(step="evaluate", action="skipped", detail=str(exc))
    return StepOutcome(step="evaluate", action="ran", detail=report.summary())


@dataclass(frozen=True)
class Service:
    """One child process of ``up`` and how to tell it is ready."""

    name: str
    arguments: tuple[str, ...]
    url: str | None
    ready_path: str | None
    environment: tuple[tuple[str, str], ...] = ()


def services(options: UpOptions, source: str) -> list[Service]:
    """The long-running parts of the loop, as ``python -m permeability`` sub-commands."""
    host = options.host
    return [
        Service(
            "training API",
            ("serve", "training", "--host", host, "--port", str(options.training_port)),
            f"http://{host}:{options.training_port}/docs",
            "/health",
        ),
        Service(
            "inference API and lab page",
            ("serve", "inference", "--host", host, "--port", str(options.inference_port)),
            f"http://{host}:{options.inference_port}/",
            "/health",
            (("OMP_NUM_THREADS", "1"),),
        ),
        Service(
            "MLflow UI",
            ("ui", "--host", host, "--port", str(options.ui_port)),
            f"http://{host}:{options.ui_port}/",
            "/health",
        ),
        Service("scheduler", ("schedule",), None, None, (("PERMEABILITY_SOURCE", source),)),
    ]


def ensure_ports_free(host: str, ports: Sequence[int]) -> None:
    """Fail before starting anything when a port is taken (often: ``up`` is already running)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                raise InvalidInputError(
                    f"port {port} on {host} is already in use (is `permeability up` already running?)"
                )


class Supervisor:
    """Starts the services as children and stops them all together."""

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        self._settings = settings
        self._logger = logger
        self._children: list[tuple[Service, subprocess.Popen[bytes]]] = []

    def start(self, service: Service) -> None:
        environment = {**os.environ, "PERMEABILITY_HOME": str(self._settings.paths.root)}
        environment.update(dict(service.environment))
        command = [sys.executable, "-m", "permeability", *service.arguments]
        # Each service in its own process group: `permeability ui` runs `mlflow ui`, which
        # runs uvicorn; stopping the group stops them all, not only the direct child.
        process = subprocess.Popen(command, env=environment, start_new_session=True)  # noqa: S603
        self._children.append((service, process))
        self._logger.info("started %s (pid %d): %s", service.name, process.pid, " ".join(command))

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Poll each service's health URL; a child that exits meanwhile is an error."""
        deadline = time.monotonic() + timeout_s
        for service, process in self._children:
            if service.url is None or service.ready_path is None:
                continue
            base = service.url.rstrip("/").removesuffix("/docs")
            while not _answers(base + service.ready_path):
                if process.poll() is not None:
                    raise PermeabilityError(
                        f"{service.name} exited with status {process.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise PermeabilityError(
                        f"{service.name} did not answer within {timeout_s:.0f} s"
                    )
                time.sleep(0.25)

    def first_exit(self) -> tuple[Service, int] | None:
        for service, process in self._children:
            code = process.poll()
            if code is not None:
                return service, code
        return None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to every service's process group, SIGKILL to a group still there after
        ``grace_s`` (a service that exited may have left descendants behind: they go too)."""
        for _, process in self._children:
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for service, process in self._children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._logger.warning("%s did not stop in time; killing it", service.name)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        for service, process in self._children:
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _group_alive(process.pid):
                self._logger.warning(
                    "processes left by %s did not stop; killing them", service.name
                )
                _signal_group(process.pid, signal.SIGKILL)
        self._children.clear()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def serve_forever(
    settings: Settings,
    options: UpOptions,
    source: str,
    announce: Callable[[str], None],
) -> int:
    """Run every service until Ctrl-C or until one of them dies; returns the exit status."""
    chosen = services(options, source)
    ensure_ports_free(
        options.host, [options.training_port, options.inference_port, options.ui_port]
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with job_context(STAGE, settings) as context:
        supervisor = Supervisor(settings, context.logger)
        try:
            for service in chosen:
                supervisor.start(service)
            supervisor.wait_ready()
            for service in chosen:
                announce(
                    f"{service.name:<28} {service.url or 'running (' + _cron_note(context) + ')'}"
                )
            announce("Ctrl-C stops them all.")
            while (ended := supervisor.first_exit()) is None:
                time.sleep(0.5)
            service, code = ended
            context.logger.error(
                "%s exited with status %d; stopping the others", service.name, code
            )
            return code or 1
        except KeyboardInterrupt:
            context.logger.info("Ctrl-C: stopping every service")
            return 0
        finally:
            supervisor.stop()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a service manager, ``kill``) stops everything as cleanly as Ctrl-C does."""
    raise KeyboardInterrupt


def _cron_note(context: JobContext) -> str:
    return ", ".join(f"{job.name} '{job.cron}'" for job in context.config.schedule.jobs)
