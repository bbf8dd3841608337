"""The inference service (port 8001): guide values, intervals and decisions for lab samples.

``permeability serve inference`` runs :func:`create_inference_app`. Endpoints:

- ``POST /inference``: the seed's body -> prediction, interval, limit, decision, P(exceed);
- ``POST /inference/batch``: JSON records, or a CSV/xlsx upload (multipart) or ``text/csv``
  body -> every row back with its outputs (JSON or CSV) (``services/inference/batch.py``);
- ``GET /health``, ``GET /ready``, ``GET /versions``, ``GET /specs``, ``GET /metrics``;
- ``GET /monitoring``: the champion's latest evaluation (``services/inference/monitoring.py``);
- ``GET /``: the lab page (``services/inference/page.py``).

Speed is a design constraint: a well-formed single sample is answered by a lean ASGI path in
front of FastAPI's stack (``services/inference/fast.py``) with the same work as the route
(``services/inference/single.py``: pydantic parsing, dictionary lookups, the model's numpy fast
path, a buffered log append). Anything that can block (loading a version from disk, scoring a
batch, reading an upload) runs in the thread pool. The MLflow registry is read at start and then
only by a background thread (``services/inference/state.py``), without importing MLflow
(``io/registry_lookup.py``: ``import mlflow`` was ≈ 1 s of a replica's start, see
``bench/replica_start.py``); the prediction log is flushed by another thread, and
BLAS/OpenMP pools are limited to one thread per worker (several uvicorn workers on a small
machine would otherwise fight over the cores).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from permeability.io.model_cache import (
    NoChampionError,
    UnknownVersionError,
    VersionUnavailableError,
)
from permeability.io.version_state import VersionState
from permeability.modelling.served import LoadedModel
from permeability.record.identity import DEFAULT_NON_PRODUCT, non_product_patterns
from permeability.record.request_fields import product_structures
from permeability.services.common.body_limit import BodyLimitMiddleware
from permeability.services.common.deps import INFERENCE_TOKEN, InferenceAuthorized
from permeability.services.common.errors import document_error_contract, install_error_handlers
from permeability.services.inference import page
from permeability.services.inference.batch import MAX_UPLOAD_BYTES, batch_router
from permeability.services.inference.fast import InferenceApp
from permeability.services.inference.metrics import InferenceMetrics, MetricsMiddleware
from permeability.services.inference.monitoring import monitoring_router
from permeability.services.inference.responses import (
    InferenceHealth,
    InferenceResponse,
    ReadyResponse,
    ServedVersion,
    SpecsResponse,
    VersionsResponse,
)
from permeability.services.inference.schemas import InferenceRequest
from permeability.services.inference.single import (
    MAX_SAMPLE_BYTES,
    SAMPLE_ERROR_RESPONSES,
    parse_inference_request,
    respond,
)
from permeability.services.inference.state import (
    limit_threads,
    model_for,
    start_inference,
    state_of,
)
from permeability.settings import Settings, get_settings

#: How often the background thread re-reads the champion alias and the specs file.
REFRESH_SECONDS: Final = 5.0
_LOG_NAME: Final = "inference-api"


# -- single sample ---------------------------------------------------------------------------

inference_router = APIRouter(tags=["inference"])

_INFERENCE_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
}


@inference_router.post(
    "/inference",
    response_model=InferenceResponse,
    responses=SAMPLE_ERROR_RESPONSES,
    openapi_extra={"requestBody": _INFERENCE_BODY},
    summary="Guide value, interval and decision for one sample (the seed's body)",
)
async def infer(request: Request, _: InferenceAuthorized) -> Response:
    """Also the fallback of the lean path in front of it (services/inference/fast.py), which sends
    here every request it does not answer itself, errors included."""
    started = time.perf_counter()
    body = parse_inference_request(await request.body())
    state = state_of(request)
    loaded = await model_for(state, body.version)
    return Response(respond(state, body, loaded, started), media_type="application/json")


# -- service endpoints -----------------------------------------------------------------------

service_router = APIRouter(tags=["service"])


@service_router.get("/health", response_model=InferenceHealth, summary="The process is alive")
async def health() -> InferenceHealth:
    return InferenceHealth(pid=os.getpid())


@service_router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={
        503: {"model": ReadyResponse, "description": "The champion is not loaded (says why)."}
    },
    summary="The champion is loaded: a request without a version can be answered",
)
async def ready(request: Request) -> Response:
    """Ready means the champion is in memory (a balancer may send any request here); another
    version loaded does not count, and a replica fetching its champion is not ready yet."""
    state = state_of(request)
    loaded = state.cache.loaded_versions
    champion = state.cache.champion
    if champion is not None and champion in loaded:
        body = ReadyResponse(ready=True, champion=champion, loaded_versions=loaded)
        return JSONResponse(body.model_dump(mode="json"))
    if champion is None and state.cache.champion_error:
        why = f"the champion is not known yet: {state.cache.champion_error}"
    elif champion is None:
        why = "no version is promoted as champion"
    else:
        why = f"champion {champion} is not loaded"
        problem = next((s.reason for s in state.cache.states() if s.version == champion), None)
        if problem:
            why += f": {problem}"
    body = ReadyResponse(ready=False, reason=why, champion=champion, loaded_versions=loaded)
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status.HTTP_503_SERVICE_UNAVAILABLE
    )


def _version_out(state: VersionState, loaded: LoadedModel | None) -> ServedVersion:
    """A version as ``GET /versions`` shows it. Its structures never include a non-product
    (the page offers exactly these): filtered by the patterns the version was trained with
    (the loaded model's, else its metadata's), the seed lab's defaults for older versions."""
    if loaded is not None:
        patterns: tuple[str, ...] = loaded.scorer.non_product
        limit = loaded.scorer.detection_limit
    else:
        patterns = state.non_product if state.non_product is not None else DEFAULT_NON_PRODUCT
        limit = state.detection_limit
    return ServedVersion(
        version=state.version,
        status=state.status,
        reason=state.reason,
        champion=state.champion,
        loaded=state.loaded,
        model=state.model_name,
        created_at=state.created_at,
        metrics=dict(state.metrics),
        n_train=state.n_train,
        run_id=state.run_id,
        known_structures=product_structures(state.known_structures, patterns),
        interval_level=state.interval_level,
        non_product=list(non_product_patterns(patterns)),  # as the names are spelled
        detection_limit=limit,
    )


@service_router.get("/versions", response_model=VersionsResponse, summary="What can serve")
async def versions(request: Request) -> VersionsResponse:
    state = state_of(request)
    states = await run_in_threadpool(state.cache.states)
    return VersionsResponse(
        champion=state.cache.champion,
        champion_error=state.cache.champion_error,
        versions=[_version_out(s, state.cache.peek(s.version)) for s in states],
    )


@service_router.get("/specs", response_model=SpecsResponse, summary="Specification limits in force")
async def specs(request: Request) -> SpecsResponse:
    watcher = state_of(request).specs
    return SpecsResponse(
        source=watcher.current.source,
        loaded_at=watcher.loaded_at.isoformat(),
        reload_error=watcher.reload_error,
        limits=watcher.current.to_records(),
    )


@service_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    payload, content_type = state_of(request).metrics.exposition()
    return Response(payload, media_type=content_type)


# -- errors ----------------------------------------------------------------------------------


def _install_inference_errors(app: FastAPI) -> None:
    """404 bodies list the available versions; an unservable version is 503 with the reason."""

    async def unknown_version(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UnknownVersionError | NoChampionError)  # noqa: S101
        return JSONResponse(
            {"detail": str(exc), "error": type(exc).__name__, "available": exc.available},
            status_code=status.HTTP_404_NOT_FOUND,
        )

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VersionUnavailableError)  # noqa: S101
        return JSONResponse(
            {"detail": str(exc), "error": type(exc).__name__, "version": exc.version},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    app.add_exception_handler(UnknownVersionError, unknown_version)
    app.add_exception_handler(NoChampionError, unknown_version)
    app.add_exception_handler(VersionUnavailableError, unavailable)


# -- the app ---------------------------------------------------------------------------------


def create_inference_app(
    settings: Settings | None = None, *, max_body_bytes: int = MAX_UPLOAD_BYTES
) -> FastAPI:
    """The inference service; settings are read now (or given), models are loaded at start.

    Every request body is capped at ``max_body_bytes`` (the batch upload limit; tests give a
    small one) and a single sample's at ``MAX_SAMPLE_BYTES``, counted as they stream in; 413
    past it (``services/common/body_limit.py``).
    ``PERMEABILITY_INFERENCE_TOKEN``, when set, guards the POST endpoints.
    """
    resolved = settings if settings is not None else get_settings()
    metrics_registry = InferenceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from permeability.io.logs import process_scope
        from permeability.pipelines.base import new_run_id

        limits = limit_threads()
        paths = resolved.paths.ensure()
        with process_scope(_LOG_NAME, new_run_id(), paths.logs) as service_logger:
            try:
                state, maintenance = await start_inference(
                    resolved, metrics_registry, refresh_s=REFRESH_SECONDS
                )
            except Exception:
                service_logger.exception("inference service failed to start")
                limits.restore_original_limits()
                raise
            app.state.inference = state
            if isinstance(app, InferenceApp):
                app.fast_path = state.config.inference.fast_path
            log, cache = state.log, state.cache
            # Everything built so far lives as long as the process: keep it out of the
            # garbage collector's way, so collections during requests stay short. No
            # collection first: it found no garbage here and cost ≈ 0.1 s of a replica's
            # start (bench/replica_start.py).
            gc.freeze()
            if cache.champion is not None and cache.champion in cache.loaded_versions:
                service_logger.info(
                    "inference service ready; champion %s, loaded %s, specs %s",
                    cache.champion,
                    cache.loaded_versions,
                    state.specs.current.source,
                )
            else:
                service_logger.warning(
                    "inference service started but not ready (GET /ready says why; the "
                    "registry is asked again every %.0f s): champion %s, registry problem: %s",
                    REFRESH_SECONDS,
                    cache.champion,
                    cache.champion_error or "none",
                )
            try:
                yield
            finally:
                maintenance.stop()
                await asyncio.to_thread(log.close)
                service_logger.info(
                    "inference service stopped; %d predictions logged", log.rows_written
                )
                app.state.inference = None
                limits.restore_original_limits()

    app = InferenceApp(
        title="permeability inference service",
        description=(
            "Guide values for the water-vapour transmission rate (WVTR) of packaging films, "
            "with calibrated prediction intervals and approve/reject/retest decisions against "
            "specification limits."
        ),
        version=_package_version(),
        lifespan=lifespan,
    )
    app.state.settings = resolved
    app.state.inference = None
    app.token = INFERENCE_TOKEN.expected(resolved)  # the lean path checks it too
    install_error_handlers(app)
    _install_inference_errors(app)
    app.include_router(inference_router)
    app.include_router(batch_router)
    app.include_router(service_router)
    app.include_router(monitoring_router)
    app.include_router(page.router)  # the lab page at / (services/inference/page.py)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=max_body_bytes,
        path_limits={"/inference": min(MAX_SAMPLE_BYTES, max_body_bytes)},
    )
    app.body_limit = max_body_bytes  # the lean path, in front of the middleware, reads less
    app.add_middleware(MetricsMiddleware, metrics=metrics_registry)  # outermost: counts 413s
    app.metrics = metrics_registry  # the lean path counts what it answers itself
    _document_request_models(app)
    document_error_contract(app, token_required=app.token is not None)
    return app


def _document_request_models(app: FastAPI) -> None:
    """Bodies read by hand (for speed) still appear in the OpenAPI schema with their models."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        request_schema = InferenceRequest.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(request_schema.pop("$defs", {}))
        components["InferenceRequest"] = request_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("permeability")
    except PackageNotFoundError:
        return "0.0.0"
