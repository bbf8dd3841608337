"""The training service: ``POST /train``, ``GET /models``, ``GET /versions``, promotion, health.

``permeability serve training`` runs it (port 8000, as the seed). Training answers when done,
as the seed does; the endpoint is a plain ``def``, so FastAPI runs each request in its
thread pool and two trainings proceed side by side. They cannot corrupt each other: the
label is reserved first (a second request for the same label gets 409), MLflow is driven by
explicit run ids, registry writes are serialised by a file lock (see
:mod:`permeability.jobs.training`).

Logging is routed once at start-up to ``logs/training-api.log``; requests do not re-route it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Body, FastAPI, status

from permeability.api.deps import (
    Authorized,
    ServiceDep,
    ServiceState,
    SettingsDep,
    configured_token,
)
from permeability.api.errors import install_error_handlers
from permeability.api.evaluation import evaluation_router
from permeability.api.schemas import (
    HealthResponse,
    ModelOut,
    ModelsResponse,
    PromoteRequest,
    PromoteResponse,
    TrainRequest,
    TrainResponse,
    VersionOut,
    VersionsResponse,
)
from permeability.settings import Settings, get_settings

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

train_router = APIRouter(tags=["train"])
models_router = APIRouter(tags=["models"])
versions_router = APIRouter(tags=["versions"])
health_router = APIRouter(tags=["health"])


@train_router.post(
    "/train",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainResponse,
    responses=_REFUSALS,  # type: ignore[arg-type]
    summary="Train, track, register and store one version",
)
def train(
    body: TrainRequest, settings: SettingsDep, service: ServiceDep, _: Authorized
) -> TrainResponse:
    from permeability.jobs.training import train as run_training

    result = run_training(
        settings,
        body.to_spec(),
        config=service.config,
        registry=service.registry,
        logger=service.logger,
    )
    return TrainResponse.from_result(result)


@models_router.get("/models", response_model=ModelsResponse, summary="The model catalogue")
def list_models() -> ModelsResponse:
    from permeability.domain.models import catalogue

    return ModelsResponse(models=[ModelOut.model_validate(m.to_dict()) for m in catalogue()])


@versions_router.get("/versions", response_model=VersionsResponse, summary="Trained versions")
def list_versions(settings: SettingsDep, service: ServiceDep) -> VersionsResponse:
    from permeability.jobs.promotion import list_versions as run_listing

    return VersionsResponse.from_report(run_listing(settings, registry=service.registry))


@versions_router.get(
    "/versions/{version}",
    response_model=VersionOut,
    responses={404: {"description": "No such version."}},
    summary="One trained version",
)
def get_version(version: str, settings: SettingsDep, service: ServiceDep) -> VersionOut:
    from permeability.errors import NotFoundError
    from permeability.io.model_store import validate_label
    from permeability.jobs.promotion import list_versions as run_listing

    validate_label(version)
    report = run_listing(settings, registry=service.registry)
    for info in report.versions:
        if info.version == version:
            return VersionOut.from_info(info)
    raise NotFoundError(f"version '{version}' is neither in the model store nor in the registry")


@versions_router.post(
    "/versions/{version}/promote",
    response_model=PromoteResponse,
    responses=_REFUSALS,  # type: ignore[arg-type]
    summary="Move the 'champion' alias to this version",
)
def promote(
    version: str,
    settings: SettingsDep,
    service: ServiceDep,
    _: Authorized,
    body: Annotated[PromoteRequest | None, Body()] = None,
) -> PromoteResponse:
    from permeability.jobs.promotion import promote as run_promotion

    request = body or PromoteRequest()
    result = run_promotion(
        settings,
        version,
        reason=request.reason,
        promoted_by=request.promoted_by or "api",
        config=service.config,
        registry=service.registry,
        logger=service.logger,
    )
    return PromoteResponse.from_result(result)


@health_router.get("/health", response_model=HealthResponse, summary="Liveness and wiring")
def health(settings: SettingsDep, service: ServiceDep) -> HealthResponse:
    from permeability.io.registry import describe_uri

    return HealthResponse(
        status="ok",
        tracking_uri=describe_uri(service.registry.config.tracking_uri),
        feature_store_uri=describe_uri(settings.resolved_feature_store_uri),
        models_dir=str(settings.paths.models),
        auth_required=configured_token(settings) is not None,
    )


def create_training_app(settings: Settings | None = None) -> FastAPI:
    """The training service; settings are read now (or given), MLflow is set up at start."""
    resolved = settings if settings is not None else get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from permeability.config import load_config
        from permeability.io.logs import close_logging, configure_logging
        from permeability.io.registry import Registry, describe_uri
        from permeability.jobs.base import new_run_id

        paths = resolved.paths.ensure()
        logger = configure_logging(paths.logs, "training-api", new_run_id())
        registry = Registry.from_settings(resolved)
        registry.setup()
        config = load_config(resolved.config_file)
        app.state.service = ServiceState(config=config, registry=registry, logger=logger)
        logger.info(
            "training service ready; tracking %s", describe_uri(registry.config.tracking_uri)
        )
        try:
            yield
        finally:
            app.state.service = None
            close_logging()

    app = FastAPI(
        title="permeability training service",
        description="Train guide-value models for film WVTR, tracked and registered in MLflow.",
        version=_package_version(),
        lifespan=lifespan,
    )
    app.state.settings = resolved
    app.state.service = None
    install_error_handlers(app)
    for router in (train_router, models_router, versions_router, health_router):
        app.include_router(router)
    app.include_router(evaluation_router)
    return app


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("permeability")
    except PackageNotFoundError:
        return "0"
