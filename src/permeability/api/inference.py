"""The inference service (port 8001): guide values, intervals and decisions for lab samples.

``permeability serve inference`` runs :func:`create_inference_app`. Endpoints:

- ``POST /inference``: the seed's body -> prediction, interval, limit, decision, P(exceed);
- ``POST /inference/batch``: JSON records, or a CSV/xlsx upload (multipart) or ``text/csv``
  body -> every row back with its outputs (JSON or CSV);
- ``GET /health``, ``GET /ready``, ``GET /versions``, ``GET /specs``, ``GET /metrics``.

Speed is a design constraint: the single-sample endpoint is ``async`` and does only
microseconds of work on the event loop (pydantic parsing, dictionary lookups, the model's
numpy fast path, a buffered log append). Anything that can block (loading a version from
disk, scoring a batch, reading an upload) runs in the thread pool. The MLflow registry is
read only by a background thread (the champion label, every few seconds), the prediction log
is flushed by another, and BLAS/OpenMP pools are limited to one thread per worker (several
uvicorn workers on a small machine would otherwise fight over the cores).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from pydantic_core import to_json

from permeability.api import page
from permeability.api.errors import install_error_handlers
from permeability.api.inference_schemas import (
    BatchRequest,
    BatchResponse,
    ConditionsOut,
    Decision,
    HealthResponse,
    InferenceRequest,
    InferenceResponse,
    ReadyResponse,
    SampleInput,
    SpecificationOut,
    SpecsResponse,
    VersionOut,
    VersionsResponse,
)
from permeability.config import ProjectConfig, load_config
from permeability.domain.intervals import decide
from permeability.domain.specs import PERMEABILITY_UNIT, SpecificationSet, SpecLimit
from permeability.errors import InvalidInputError
from permeability.io.model_cache import (
    LoadedModel,
    ModelCache,
    NoChampionError,
    UnknownVersionError,
    VersionUnavailableError,
)
from permeability.io.prediction_log import PredictionLog, predictions_uri
from permeability.io.specs import SpecsWatcher
from permeability.jobs.predict import (
    DecisionPolicy,
    ScoredBatch,
    jsonable_records,
    read_table,
    records_frame,
    score_frame,
    to_csv_text,
)
from permeability.settings import Settings, get_settings

#: How often the background thread re-reads the champion alias and the specs file.
REFRESH_SECONDS: Final = 5.0
MAX_UPLOAD_BYTES: Final = 200 * 1024 * 1024
_LOG_NAME: Final = "inference-api"

logger = logging.getLogger("permeability.inference")


# -- metrics ---------------------------------------------------------------------------------


class InferenceMetrics:
    """Prometheus metrics in a registry of this app (several apps may live in one process).

    With several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` to a shared empty folder
    and ``/metrics`` aggregates every worker (prometheus_client's multiprocess mode).
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "permeability_inference_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "permeability_inference_request_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
            registry=self.registry,
        )
        self.predictions = Counter(
            "permeability_inference_predictions",
            "Predictions made, by decision ('none' when no limit applied).",
            ["decision"],
            registry=self.registry,
        )
        self.load_errors = Counter(
            "permeability_inference_model_load_errors",
            "Versions that failed to load (missing or corrupt files).",
            ["version"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._decision_children = {
            d: self.predictions.labels(d) for d in ("approve", "reject", "retest", "none")
        }

    def observe(self, endpoint: str, status_code: int, seconds: float) -> None:
        """About a microsecond: label children are looked up once and kept."""
        key = (endpoint, status_code)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(endpoint, str(status_code))
        counter.inc()
        histogram = self._latency_children.get(endpoint)
        if histogram is None:
            histogram = self._latency_children[endpoint] = self.latency.labels(endpoint)
        histogram.observe(seconds)

    def count_decision(self, decision: str | None, amount: int = 1) -> None:
        if amount:
            self._decision_children[decision or "none"].inc(amount)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import CollectorRegistry, multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


_ENDPOINTS: Final = frozenset(
    {"/inference", "/inference/batch", "/health", "/ready", "/versions", "/specs", "/metrics"}
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MetricsMiddleware:
    """Counts every HTTP answer (422s and 404s included) with its latency; pure ASGI, so it
    adds microseconds, not the tens a ``BaseHTTPMiddleware`` costs."""

    def __init__(self, app: ASGIApp, metrics: InferenceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = [500]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                code[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in _ENDPOINTS else "other"
            self.metrics.observe(endpoint, code[0], time.perf_counter() - started)


# -- service state ---------------------------------------------------------------------------


@dataclass
class InferenceState:
    """What the lifespan set up; requests only read it."""

    settings: Settings
    config: ProjectConfig
    cache: ModelCache
    specs: SpecsWatcher
    log: PredictionLog
    metrics: InferenceMetrics
    policy: DecisionPolicy
    request_ids: Callable[[], str]


def _request_id_source() -> Callable[[], str]:
    """Unique ids across workers and restarts at the cost of a counter increment."""
    prefix = uuid.uuid4().hex[:10]
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def _state(request: Request) -> InferenceState:
    state: InferenceState | None = getattr(request.app.state, "inference", None)
    if state is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the inference service has not started (its start-up did not run or failed; "
            "see logs/inference-api.log)",
        )
    return state


class _Maintenance:
    """One background thread: champion alias, changed model files, changed specs file."""

    def __init__(self, cache: ModelCache, specs: SpecsWatcher, every_s: float) -> None:
        self.cache = cache
        self.specs = specs
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.cache.refresh()
                self.specs.refresh()
            except Exception:
                logger.exception("inference refresh failed")


def _limit_threads() -> Any:
    """One BLAS/OpenMP thread per worker (HGB with default threads collapses under load)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


# -- single sample ---------------------------------------------------------------------------

inference_router = APIRouter(tags=["inference"])

_SINGLE_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "Unknown version (the body lists the available ones), or no champion."},
    422: {
        "description": "A field is invalid or the structure is unknown to the version; "
        "`detail[].loc` names the field."
    },
    503: {"description": "The version exists but cannot serve (missing or corrupt files)."},
}


async def _model_for(state: InferenceState, version: str | None) -> LoadedModel:
    loaded = state.cache.peek(version)
    if loaded is None:  # first use of a version: load it off the event loop
        loaded = await run_in_threadpool(state.cache.get, version)
    return loaded


def _unknown_structure(raw: str, canonical: str, loaded: LoadedModel, loc: tuple[Any, ...]) -> Any:
    known = sorted(loaded.known_structures)
    return RequestValidationError(
        [
            {
                "loc": loc,
                "msg": f"structure {raw!r} ({canonical}) is not known to version "
                f"{loaded.version}; known structures: {', '.join(known)}",
                "type": "unknown_structure",
                "input": raw,
                "ctx": {"known": known},
            }
        ]
    )


@functools.lru_cache(maxsize=512)
def _specification(limit: SpecLimit) -> dict[str, Any]:
    """The response's view of a limit (limits are immutable: built once per limit)."""
    return _specification_model(limit).model_dump(mode="json")


def _specification_model(limit: SpecLimit) -> SpecificationOut:
    return SpecificationOut(
        structure=limit.structure,
        limit=limit.max_permeability,
        conditions=ConditionsOut(
            temperature_c=limit.temperature_c,
            temperature_tolerance_c=limit.temperature_tolerance_c,
            humidity_pct=limit.humidity_pct,
            humidity_tolerance_pct=limit.humidity_tolerance_pct,
        ),
        min_thickness_um=limit.min_thickness_um,
        max_thickness_um=limit.max_thickness_um,
        method=limit.method,
        note=limit.note,
    )


def _decision_reason(
    decision: str, p_exceed: float, limit: SpecLimit, policy: DecisionPolicy
) -> str:
    rule = {
        "approve": f"< {policy.approve_below:g}",
        "reject": f"> {policy.reject_above:g}",
        "retest": f"between {policy.approve_below:g} and {policy.reject_above:g}: too close to "
        "call, run the full test",
    }[decision]
    return (
        f"{decision}: P(WVTR > {limit.max_permeability:g}) = {p_exceed:.3g} {rule}; "
        f"limit {limit.describe()}"
    )


def answer_sample(
    loaded: LoadedModel,
    sample: SampleInput,
    specs: SpecificationSet,
    policy: DecisionPolicy,
    *,
    level: float,
    champion: str | None,
    request_id: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer (shaped as InferenceResponse) for one validated sample, and its
    prediction-log row (without time fields).

    Pure CPU work of a few microseconds for linear models: no DataFrame, no I/O.
    """
    model = loaded.model
    structure = model.features.canonical_structure(sample.Estructura)
    if structure not in loaded.known_structures:
        raise _unknown_structure(
            sample.Estructura, structure, loaded, ("body", "data_test", "Estructura")
        )
    record = sample.model_dump()
    record["Estructura"] = structure
    prediction = model.predict_record(record)
    if not 0.0 < prediction < math.inf:
        raise InvalidInputError(
            "the model gives no finite positive value for this sample; its inputs are far "
            "outside the data it was trained on"
        )
    lower, upper = model.interval(prediction, structure, level)
    match = specs.match(structure, sample.Grados_C, sample.Porc_Humedad, sample.CalibreProm)
    decision: Decision | None = None
    p_exceed: float | None = None
    reason = f"no decision: {match.reason}"
    if match.limit is not None:
        p_exceed = model.p_exceed(prediction, structure, match.limit.max_permeability)
        decision = decide(p_exceed, policy.approve_below, policy.reject_above)
        reason = _decision_reason(decision, p_exceed, match.limit, policy)
    # A plain dict, serialised by pydantic-core: building pydantic models here would cost
    # more than the prediction. Its shape is InferenceResponse (checked by the tests).
    response: dict[str, Any] = {
        "version": loaded.version,
        "champion": loaded.version == champion,
        "model": loaded.model_name,
        "request_id": request_id,
        "Muestra": sample.Muestra,
        "structure": structure,
        "prediction": {"value": prediction, "unit": PERMEABILITY_UNIT},
        "interval": {
            "level": level,
            "lower": lower,
            "upper": upper if upper < math.inf else None,
            "unit": PERMEABILITY_UNIT,
            "method": "split-conformal",
            "calibration": model.calibration.source(structure),
        },
        "specification": None if match.limit is None else _specification(match.limit),
        "decision": decision,
        "p_exceed": p_exceed,
        "decision_reason": reason,
    }
    log_row = {
        "request_id": request_id,
        "endpoint": "single",
        "version": loaded.version,
        **record,
        "Estructura": sample.Estructura,
        "structure": structure,
        "prediction": prediction,
        "lower": lower,
        "upper": upper,
        "level": level,
        "spec_limit": None if match.limit is None else match.limit.max_permeability,
        "p_exceed": p_exceed,
        "decision": decision,
    }
    return response, log_row


def parse_inference_request(raw: bytes) -> InferenceRequest:
    """Parse and validate in one pass (pydantic-core reads the JSON itself); errors come back
    as FastAPI's 422 body, each ``loc`` starting with ``body``."""
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [_json_safe({**e, "loc": ("body", *e["loc"])}) for e in exc.errors(include_url=False)]
        ) from None


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    """A body that is not UTF-8 comes back as bytes in ``input``; show it, do not crash on it."""
    if isinstance(error.get("input"), bytes):
        error["input"] = error["input"].decode("utf-8", errors="replace")
    return error


_INFERENCE_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
}


@inference_router.post(
    "/inference",
    response_model=InferenceResponse,
    responses=_SINGLE_ERRORS,
    openapi_extra={"requestBody": _INFERENCE_BODY},
    summary="Guide value, interval and decision for one sample (the seed's body)",
)
async def infer(request: Request) -> Response:
    started = time.perf_counter()
    body = parse_inference_request(await request.body())
    state = _state(request)
    loaded = await _model_for(state, body.version)
    response, log_row = answer_sample(
        loaded,
        body.data_test,
        state.specs.current,
        state.policy,
        level=state.policy.level if body.level is None else body.level,
        champion=state.cache.champion,
        request_id=state.request_ids(),
    )
    state.metrics.count_decision(response["decision"])
    log_row["timestamp"] = time.time()
    log_row["latency_ms"] = (time.perf_counter() - started) * 1000.0
    state.log.append(log_row)
    # Serialised here: FastAPI would validate the finished response model a second time.
    return Response(to_json(response), media_type="application/json")


# -- batches ---------------------------------------------------------------------------------

_BATCH_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {"schema": BatchRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A .csv or .xlsx lab file with the seed's columns.",
                    },
                    "version": {"type": "string", "maxLength": 64},
                    "level": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                },
            }
        },
        "text/csv": {"schema": {"type": "string", "description": "CSV text with a header row."}},
    },
}
_BATCH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "model": BatchResponse,
        "description": "Every input row in order with its outputs (JSON or CSV).",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    404: _SINGLE_ERRORS[404],
    413: {"description": "The upload is larger than the server accepts."},
    415: {"description": "Send application/json, multipart/form-data or text/csv."},
    422: {"description": "The body or the file cannot be read as a batch (says why)."},
    503: _SINGLE_ERRORS[503],
}


@dataclass(frozen=True)
class _BatchInput:
    frame: pd.DataFrame
    version: str | None
    level: float | None
    missing_columns: str
    not_objects: Any = None
    from_file: bool = False


def _level_from_text(text: Any) -> float | None:
    if text is None or text == "":
        return None
    try:
        level = float(text)
    except (TypeError, ValueError):
        raise InvalidInputError(f"level must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"level must be between 0 and 1 (exclusive), got {level:g}")
    return level


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInputError("version must be text")
    return value


async def _read_batch(request: Request, version: str | None, level: float | None) -> _BatchInput:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_UPLOAD_BYTES:
        raise _TooLargeError()
    if kind == "application/json":
        return await _read_json_batch(request, version, level)
    if kind == "multipart/form-data":
        return await _read_multipart_batch(request, version, level)
    if kind in ("text/csv", "text/plain"):
        data = await request.body()
        frame = await run_in_threadpool(read_table, data, "body.csv")
        return _BatchInput(frame, version, level, "refuse", from_file=True)
    raise _UnsupportedMediaError(kind)


async def _read_json_batch(
    request: Request, version: str | None, level: float | None
) -> _BatchInput:
    try:
        raw = await request.json()
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"body is not valid JSON: {exc}", "type": "json_invalid"}]
        ) from exc
    try:
        body = BatchRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    frame, not_objects = records_frame(body.records)
    return _BatchInput(
        frame,
        body.version if body.version is not None else version,
        body.level if body.level is not None else level,
        "rows",
        not_objects=not_objects,
    )


async def _read_multipart_batch(
    request: Request, version: str | None, level: float | None
) -> _BatchInput:
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:
        raise InvalidInputError(f"multipart body cannot be read: {exc}") from exc
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidInputError("multipart body needs a file field named 'file' (.csv or .xlsx)")
    data = await upload.read()
    name = upload.filename or "upload.csv"
    frame = await run_in_threadpool(read_table, data, name)
    return _BatchInput(
        frame,
        _text_or_none(form.get("version")) or version,
        _level_from_text(form.get("level")) if form.get("level") is not None else level,
        "refuse",
        from_file=True,
    )


class _TooLargeError(Exception):
    pass


class _UnsupportedMediaError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _wants_csv(request: Request, fmt: str | None, from_file: bool) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    if "text/csv" in accept:
        return True
    if "application/json" in accept:
        return False
    return from_file


def _score_batch(
    state: InferenceState, loaded: LoadedModel, batch: _BatchInput, level: float | None
) -> ScoredBatch:
    policy = DecisionPolicy.from_params(state.config.inference, level)
    scored = score_frame(
        batch.frame,
        loaded,
        state.specs.current,
        policy,
        endpoint="batch",
        request_id=state.request_ids(),
        missing_columns=batch.missing_columns,
    )
    if batch.not_objects is not None and batch.not_objects.any():
        errors = scored.frame["error"].to_numpy(dtype=object).copy()
        errors[batch.not_objects] = "record is not a JSON object with the sample's fields"
        scored.frame["error"] = pd.Series(errors, index=scored.frame.index, dtype=object)
    columns, count = scored.log_columns()
    state.log.append_columns(columns, count)
    for decision, amount in scored.decision_counts().items():
        state.metrics.count_decision(decision, amount)
    state.metrics.count_decision(None, scored.predicted - sum(scored.decision_counts().values()))
    return scored


@inference_router.post(
    "/inference/batch",
    response_model=None,
    responses=_BATCH_RESPONSES,
    openapi_extra={"requestBody": _BATCH_BODY},
    summary="Score many samples: JSON records, or a CSV/xlsx file",
)
async def infer_batch(
    request: Request,
    version: str | None = Query(
        default=None, min_length=1, max_length=64, description="Default: champion."
    ),
    level: float | None = Query(default=None, gt=0.0, lt=1.0, description="Interval level."),
    fmt: str | None = Query(
        default=None,
        alias="format",
        pattern="^(json|csv)$",
        description="Answer as json or csv (default: Accept header, else like the input).",
    ),
) -> Response:
    state = _state(request)
    try:
        batch = await _read_batch(request, version, level)
    except _TooLargeError:
        return JSONResponse(
            {"detail": f"upload larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
    except _UnsupportedMediaError as exc:
        return JSONResponse(
            {
                "detail": f"content type {exc.kind or 'none'!r} is not accepted; send "
                "application/json, multipart/form-data (field 'file') or text/csv"
            },
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    loaded = await _model_for(state, batch.version)
    scored = await run_in_threadpool(_score_batch, state, loaded, batch, batch.level)
    if _wants_csv(request, fmt, batch.from_file):
        text = await run_in_threadpool(to_csv_text, scored.frame)
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8")
    records = await run_in_threadpool(jsonable_records, scored.frame)
    body = BatchResponse(
        version=scored.version,
        level=scored.level,
        rows=scored.rows,
        predicted=scored.predicted,
        failed=scored.failed,
        decisions=scored.decision_counts(),
        records=records,
    )
    return JSONResponse(body.model_dump(mode="json"))


# -- service endpoints -----------------------------------------------------------------------

service_router = APIRouter(tags=["service"])


@service_router.get("/health", response_model=HealthResponse, summary="The process is alive")
async def health() -> HealthResponse:
    return HealthResponse(pid=os.getpid())


@service_router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "No model is loaded (says why)."}},
    summary="A model is loaded and requests can be answered",
)
async def ready(request: Request) -> Response:
    state = _state(request)
    loaded = state.cache.loaded_versions
    champion = state.cache.champion
    if loaded:
        body = ReadyResponse(ready=True, champion=champion, loaded_versions=loaded)
        return JSONResponse(body.model_dump(mode="json"))
    if champion is None:
        why = "no version is promoted as champion" + (
            f" ({state.cache.champion_error})" if state.cache.champion_error else ""
        )
    else:
        why = f"champion {champion} is not loaded"
        problem = next((s.reason for s in state.cache.states() if s.version == champion), None)
        if problem:
            why += f": {problem}"
    body = ReadyResponse(ready=False, reason=why, champion=champion, loaded_versions=[])
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status.HTTP_503_SERVICE_UNAVAILABLE
    )


@service_router.get("/versions", response_model=VersionsResponse, summary="What can serve")
async def versions(request: Request) -> VersionsResponse:
    state = _state(request)
    states = await run_in_threadpool(state.cache.states)
    return VersionsResponse(
        champion=state.cache.champion,
        champion_error=state.cache.champion_error,
        versions=[
            VersionOut(
                version=s.version,
                status=s.status,
                reason=s.reason,
                champion=s.champion,
                loaded=s.loaded,
                model=s.model_name,
                created_at=s.created_at,
                metrics=dict(s.metrics),
                n_train=s.n_train,
                run_id=s.run_id,
                known_structures=list(s.known_structures),
                interval_level=s.interval_level,
            )
            for s in states
        ],
    )


@service_router.get("/specs", response_model=SpecsResponse, summary="Specification limits in force")
async def specs(request: Request) -> SpecsResponse:
    watcher = _state(request).specs
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
    payload, content_type = _state(request).metrics.exposition()
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


async def _start(
    settings: Settings, metrics: InferenceMetrics
) -> tuple[InferenceState, _Maintenance]:
    """Config, limits, the champion loaded (off the event loop), log and refresher started."""
    config = load_config(settings.config_file)
    watcher = SpecsWatcher.from_settings(settings, config)
    cache = ModelCache.from_settings(settings, champion_ttl_s=REFRESH_SECONDS)
    cache.on_load_error = lambda version, _reason: metrics.load_errors.labels(version).inc()
    await asyncio.to_thread(cache.refresh)
    log = PredictionLog(predictions_uri(settings.resolved_feature_store_uri))
    log.start()
    maintenance = _Maintenance(cache, watcher, REFRESH_SECONDS)
    maintenance.start()
    state = InferenceState(
        settings=settings,
        config=config,
        cache=cache,
        specs=watcher,
        log=log,
        metrics=metrics,
        policy=DecisionPolicy.from_params(config.inference),
        request_ids=_request_id_source(),
    )
    return state, maintenance


def create_inference_app(settings: Settings | None = None) -> FastAPI:
    """The inference service; settings are read now (or given), models are loaded at start."""
    resolved = settings if settings is not None else get_settings()
    metrics_registry = InferenceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from permeability.io.logs import close_logging, configure_logging
        from permeability.jobs.base import new_run_id

        limits = _limit_threads()
        paths = resolved.paths.ensure()
        service_logger = configure_logging(paths.logs, _LOG_NAME, new_run_id())
        try:
            state, maintenance = await _start(resolved, metrics_registry)
        except Exception:
            service_logger.exception("inference service failed to start")
            close_logging()
            limits.restore_original_limits()
            raise
        app.state.inference = state
        log, cache = state.log, state.cache
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's way, so collections during requests stay short.
        gc.collect()
        gc.freeze()
        service_logger.info(
            "inference service ready; champion %s, loaded %s, specs %s",
            cache.champion,
            cache.loaded_versions,
            state.specs.current.source,
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
            close_logging()
            limits.restore_original_limits()

    app = FastAPI(
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
    install_error_handlers(app)
    _install_inference_errors(app)
    app.include_router(inference_router)
    app.include_router(service_router)
    app.include_router(page.router)  # the lab page at / (api/page.py)
    app.add_middleware(MetricsMiddleware, metrics=metrics_registry)
    _document_request_models(app)
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
