"""The training service: ``POST /train``, ``GET /trainings``, ``GET /models``, ``GET /versions``,
promotion, health.

``permeability serve training`` runs it (port 8000, as the seed). Training answers when done,
as the seed does; the endpoint is a plain ``def``, so FastAPI runs each request in its
thread pool. Requests take turns (:mod:`permeability.pipelines.training_queue`): at most
``training.max_concurrent`` train at once on the machine, the others wait in a FIFO line of
at most ``training.max_queued`` (one more gets 503 with Retry-After), and ``GET /trainings``
shows who runs and who waits. They cannot corrupt each other: the label is reserved first (a
second request for the same label gets 409), MLflow is driven by explicit run ids, registry
writes are serialised by a file lock (see :mod:`permeability.pipelines.training`). Trainings that
died half-way are reconciled at start-up and before versions are listed
(:mod:`permeability.pipelines.training_recovery`).

Logging is routed once at start-up to ``logs/training-api.log``; requests do not re-route it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Final

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request, status
from fastapi.responses import JSONResponse

from permeability.pipelines.promotion import PromotionResult, VersionInfo, VersionsReport
from permeability.pipelines.training_queue import (
    TrainingQueue,
    TrainingQueueFullError,
    TrainingsView,
)
from permeability.pipelines.training_spec import TrainingResult
from permeability.services.common.body_limit import BodyLimitMiddleware
from permeability.services.common.deps import (
    Authorized,
    ServiceDep,
    ServiceState,
    SettingsDep,
    configured_token,
)
from permeability.services.common.errors import document_error_contract, install_error_handlers
from permeability.services.training.evaluation import evaluation_router
from permeability.services.training.schemas import (
    ModelOut,
    ModelsResponse,
    PromoteRequest,
    TrainingHealth,
    TrainRequest,
    version_label_schema,
)
from permeability.settings import Settings, get_settings

#: Bodies here are a few hundred bytes of JSON (/train, promotion, /evaluate); anything past
#: this is refused with 413 while it streams in, chunked or not (services/common/body_limit.py).
MAX_REQUEST_BYTES: Final = 1024 * 1024

#: A version label in a path, documented with the label rules (so a client, or a schema-driven
#: test, knows which labels can exist); the route still checks it and says what is wrong.
VersionPath = Annotated[
    str, Path(description="A version label.", json_schema_extra=version_label_schema())
]

_REFUSALS = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Token required and missing or wrong."},
    status.HTTP_404_NOT_FOUND: {"description": "No such version."},
    status.HTTP_409_CONFLICT: {
        "description": "Label taken (immutable), or the feature store is empty."
    },
    status.HTTP_422_UNPROCESSABLE_CONTENT: {
        "description": "A field is invalid; the body says which."
    },
}
_QUEUE_FULL = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "description": "Every training slot is busy and the line is full; see Retry-After."
    }
}

train_router = APIRouter(tags=["train"])
models_router = APIRouter(tags=["models"])
versions_router = APIRouter(tags=["versions"])
health_router = APIRouter(tags=["health"])


def get_training_queue(request: Request, _: ServiceDep) -> TrainingQueue:
    queue: TrainingQueue = request.app.state.training_queue
    return queue


QueueDep = Annotated[TrainingQueue, Depends(get_training_queue)]


@train_router.post(
    "/train",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingResult,
    responses={**_REFUSALS, **_QUEUE_FULL},  # type: ignore[dict-item]
    summary="Train, track, register and store one version (waits for its turn)",
)
def train(
    body: TrainRequest, settings: SettingsDep, service: ServiceDep, queue: QueueDep, _: Authorized
) -> TrainingResult:
    from permeability.pipelines.training import train as run_training

    result = run_training(
        settings,
        body.to_spec(),
        config=service.config,
        registry=service.registry,
        queue=queue,
    )
    return result


@train_router.get(
    "/trainings", response_model=TrainingsView, summary="Trainings running and waiting"
)
def list_trainings(queue: QueueDep) -> TrainingsView:
    return queue.view()


async def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrainingQueueFullError)  # noqa: S101 - registered for this class only
    return JSONResponse(
        {"detail": str(exc), "error": type(exc).__name__},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(exc.retry_after)},
    )


@models_router.get("/models", response_model=ModelsResponse, summary="The model catalogue")
def list_models() -> ModelsResponse:
    from permeability.modelling.catalogue import catalogue

    return ModelsResponse(models=[ModelOut.model_validate(m.to_dict()) for m in catalogue()])


@versions_router.get("/versions", response_model=VersionsReport, summary="Trained versions")
def list_versions(settings: SettingsDep, service: ServiceDep) -> VersionsReport:
    from permeability.pipelines.promotion import list_versions as run_listing
    from permeability.pipelines.training_recovery import reconcile_trainings

    reconcile_trainings(settings, service.logger, registry=service.registry)
    return run_listing(settings, registry=service.registry)


@versions_router.get(
    "/versions/{version}",
    response_model=VersionInfo,
    responses={404: {"description": "No such version."}},
    summary="One trained version",
)
def get_version(version: VersionPath, settings: SettingsDep, service: ServiceDep) -> VersionInfo:
    from permeability.errors import NotFoundError
    from permeability.io.model_store import validate_label
    from permeability.pipelines.promotion import list_versions as run_listing
    from permeability.pipelines.training_recovery import reconcile_trainings

    validate_label(version)
    reconcile_trainings(settings, service.logger, registry=service.registry)
    report = run_listing(settings, registry=service.registry)
    for info in report.versions:
        if info.version == version:
            return info
    raise NotFoundError(f"version '{version}' is neither in the model store nor in the registry")


@versions_router.post(
    "/versions/{version}/promote",
    response_model=PromotionResult,
    responses=_REFUSALS,  # type: ignore[arg-type]
    summary="Move the 'champion' alias to this version",
)
def promote(
    version: VersionPath,
    settings: SettingsDep,
    service: ServiceDep,
    _: Authorized,
    body: Annotated[PromoteRequest | None, Body()] = None,
) -> PromotionResult:
    from permeability.pipelines.promotion import promote as run_promotion

    request = body or PromoteRequest()
    result = run_promotion(
        settings,
        version,
        reason=request.reason,
        promoted_by=request.promoted_by or "api",
        config=service.config,
        registry=service.registry,
    )
    return result


@health_router.get("/health", response_model=TrainingHealth, summary="Liveness and wiring")
def health(settings: SettingsDep, service: ServiceDep) -> TrainingHealth:
    from permeability.io.registry import describe_uri

    return TrainingHealth(
        status="ok",
        tracking_uri=describe_uri(service.registry.config.tracking_uri),
        feature_store_uri=describe_uri(settings.resolved_feature_store_uri),
        models_dir=str(settings.paths.models),
        auth_required=configured_token(settings) is not None,
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
        from permeability.io.registry import Registry, describe_uri
        from permeability.pipelines.base import new_run_id
        from permeability.pipelines.training_recovery import reconcile_trainings

        paths = resolved.paths.ensure()
        with process_scope("training-api", new_run_id(), paths.logs) as logger:
            registry = Registry.from_settings(resolved)
            registry.setup()
            config = load_config(resolved.config_file)
            reconcile_trainings(resolved, logger, registry=registry)
            app.state.training_queue = TrainingQueue.for_models(paths.models, config.training)
            app.state.service = ServiceState(config=config, registry=registry, logger=logger)
            logger.info(
                "training service ready; tracking %s", describe_uri(registry.config.tracking_uri)
            )
            try:
                yield
            finally:
                app.state.service = None

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
    for router in (train_router, models_router, versions_router, health_router):
        app.include_router(router)
    app.include_router(evaluation_router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    document_error_contract(app, token_required=configured_token(resolved) is not None)
    return app


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("permeability")
    except PackageNotFoundError:
        return "0"
