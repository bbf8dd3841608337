"""``POST /inference/batch``: many samples at once, as JSON records or a CSV/xlsx file.

Every row comes back in order with its outputs (see ``jobs/predict.py``, the same scorer as
``permeability predict``); reading uploads and scoring run in the thread pool, never on the
event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from permeability.api.inference_schemas import BatchRequest, BatchResponse
from permeability.api.inference_single import SAMPLE_ERROR_RESPONSES
from permeability.api.inference_state import InferenceState, model_for, state_of
from permeability.errors import InvalidInputError
from permeability.io.model_cache import LoadedModel
from permeability.jobs.predict import (
    DecisionPolicy,
    ScoredBatch,
    jsonable_records,
    read_table,
    records_frame,
    score_frame,
    to_csv_text,
)

MAX_UPLOAD_BYTES: Final = 200 * 1024 * 1024

batch_router = APIRouter(tags=["inference"])


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
    404: SAMPLE_ERROR_RESPONSES[404],
    413: {"description": "The upload is larger than the server accepts."},
    415: {"description": "Send application/json, multipart/form-data or text/csv."},
    422: {"description": "The body or the file cannot be read as a batch (says why)."},
    503: SAMPLE_ERROR_RESPONSES[503],
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
        min_caliper_readings=state.config.acquisition.min_caliper_readings,
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


@batch_router.post(
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
    state = state_of(request)
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
    loaded = await model_for(state, batch.version)
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
