"""The training service: its app factory (start-up, routers, error contract, body limit).

``permeability serve training`` runs it (port 8000, as the seed). One router per resource:
:mod:`~permeability.services.training.trainings` (``POST /train``, ``GET /trainings``),
:mod:`~permeability.services.training.models` (``GET /models``),
:mod:`~permeability.services.training.versions` (``GET /versions``, promotion),
:mod:`~permeability.services.training.health` (``GET /health``),
:mod:`~permeability.services.training.evaluation` (``POST /evaluate``) and
:mod:`~permeability.services.training.retraining` (``POST /retrain``). Trainings that died
half-way are reconciled at start-up (:mod:`permeability.pipelines.training_recovery`).

Logging is routed once at start-up to ``logs/training-api.log``; requests do not re-route it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from permeability.pipelines.training_queue import TrainingQueue, TrainingQueueFullError
from permeability.services.common.body_limit import BodyLimitMiddleware
from permeability.services.common.deps import ServiceState, configured_token
from permeability.services.common.errors import document_error_contract, install_error_handlers
from permeability.services.training import (
    evaluation,
    health,
    models,
    retraining,
    trainings,
    versions,
)
from permeability.settings import Settings, get_settings

#: Bodies here are a few hundred bytes of JSON (/train, promotion, /evaluate); anything past
#: this is refused with 413 while it streams in, chunked or not (services/common/body_limit.py).
MAX_REQUEST_BYTES: Final = 1024 * 1024


async def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrainingQueueFullError)  # noqa: S101 - registered for this class only
    return JSONResponse(
        {"detail": str(exc), "error": type(exc).__name__},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(exc.retry_after)},
    )


def create_training_app(
    settings: Settings | None = None, *, max_body_bytes: int = MAX_REQUEST_BYTES
) -> FastAPI:
    """The training service; settings are read now (or given), MLflow is set up at start.
    Request bodies past ``max_body_bytes`` get 413 (tests give a small limit)."""
    resolved = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from permeability.config import load_config
        from permeability.io.logs import process_scope
        from permeability.io.mlflow_setup import describe_uri
        from permeability.io.registry import Registry
        from permeability.pipelines.base import new_run_id
        from permeability.pipelines.notifying import start_dispatcher
        from permeability.pipelines.training_recovery import reconcile_trainings

        paths = resolved.paths.ensure()
        with process_scope("training-api", new_run_id(), paths.logs) as logger:
            registry = Registry.from_settings(resolved)
            registry.setup()
            config = load_config(resolved.config_file)
            reconcile_trainings(resolved, logger, registry=registry)
            # Notifications earlier commands left undelivered, and retries of this service's.
            dispatcher = start_dispatcher(resolved, config)
            app.state.training_queue = TrainingQueue.for_models(paths.models, config.training)
            app.state.service = ServiceState(config=config, registry=registry, logger=logger)
            logger.info(
                "training service ready; tracking %s", describe_uri(registry.config.tracking_uri)
            )
            try:
                yield
            finally:
                app.state.service = None
                if dispatcher is not None:
                    dispatcher.stop(timeout=1.0)

    app = FastAPI(
        title="permeability training service",
        description="Train guide-value models for film WVTR, tracked and registered in MLflow.",
        version=_package_version(),
        lifespan=lifespan,
    )
    app.state.settings = resolved
    app.state.service = None
    install_error_handlers(app)
    app.add_exception_handler(TrainingQueueFullError, _queue_full)
    for resource in (trainings, models, versions, health, evaluation, retraining):
        app.include_router(resource.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    document_error_contract(app, token_required=configured_token(resolved) is not None)
    return app


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("permeability")
    except PackageNotFoundError:
        return "0"
