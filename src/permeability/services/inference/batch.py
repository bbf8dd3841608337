"""``POST /inference/batch``: many samples at once, as JSON records or a CSV/xlsx file.

Every row comes back in order with its outputs (see ``pipelines/predict.py``, the same scorer as
``permeability predict``); reading uploads and scoring run in the thread pool, never on the
event loop.

The frame code (pandas, the table readers, the batch scorer) is imported by the functions that
use it, on the first batch: a replica that starts up imports only what single samples need
(docs/deploy.md, "Replicas that start fast"; ``tests/unit/services/test_serving_imports.py``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from permeability.errors import InvalidInputError
from permeability.modelling.served import LoadedModel
from permeability.services.common.body_limit import BodyTooLargeError
from permeability.services.common.deps import InferenceAuthorized
from permeability.services.inference.responses import BatchResponse
from permeability.services.inference.schemas import BatchOptions, BatchRequest
from permeability.services.inference.single import SAMPLE_ERROR_RESPONSES
from permeability.services.inference.state import InferenceState, model_for, state_of

if TYPE_CHECKING:
    import pandas as pd

    from permeability.scoring.batch import ScoredBatch

#: The largest request body the inference service takes, for every route and content type:
#: ``create_inference_app`` hands it to ``services/common/body_limit.py``, which counts the bytes as they
#: stream in (chunked or not) and answers 413 past it, before the whole body is held.
MAX_UPLOAD_BYTES: Final = 200 * 1024 * 1024

#: Spooled bodies stay in memory up to this size, then go to a temporary file.
_IN_MEMORY_BYTES: Final = 1024 * 1024
T = TypeVar("T")

batch_router = APIRouter(tags=["inference"])


_BATCH_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {"schema": BatchRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
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
    413: {"description": "The body is larger than the service accepts (200 MiB by default)."},
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


def _body_errors(exc: ValidationError) -> RequestValidationError:
    """A pydantic report as FastAPI's 422, each ``loc`` starting with ``body``."""
    return RequestValidationError(
        [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    )


_FORM_FIELDS: Final[frozenset[str]] = frozenset({"file", "version", "level"})


def _form_options(form: Any) -> BatchOptions:
    """The upload's ``version`` and ``level`` fields, by the JSON body's rules (an empty field
    is an absent one). A field the upload does not know is refused by name, as the JSON body
    refuses one."""
    unknown = sorted({name for name in form if name not in _FORM_FIELDS})
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", name),
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
    fields = {name: form.get(name) for name in ("version", "level")}
    try:
        return BatchOptions.model_validate({k: v for k, v in fields.items() if v not in (None, "")})
    except ValidationError as exc:
        raise _body_errors(exc) from exc


async def _read_batch(request: Request, version: str | None, level: float | None) -> _BatchInput:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await _read_json_batch(request, version, level)
    if kind == "multipart/form-data":
        return await _read_multipart_batch(request, version, level)
    if kind in ("text/csv", "text/plain"):
        spooled = await _spooled_body(request)
        frame = await run_in_threadpool(_read_spooled, spooled, _read_csv_body)
        return _BatchInput(frame, version, level, "refuse", from_file=True)
    raise _UnsupportedMediaError(kind)


async def _spooled_body(request: Request) -> IO[bytes]:
    """The body as it streams in, in memory up to 1 MiB and on the local disk past that.

    Why not ``request.body()``: a body over the limit would first be held whole in memory up
    to the limit (200 MiB) before ``services/common/body_limit.py`` refuses it; spooled, the service's
    memory stays flat under that attack (``bench/upload_limit.py``). Multipart uploads are
    spooled the same way by Starlette itself.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY_BYTES)  # noqa: SIM115 (closed by the reader)
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _read_spooled(body: IO[bytes], read: Callable[[bytes], T]) -> T:
    """Read a spooled body whole with ``read`` (off the event loop), then drop the spool."""
    try:
        return read(body.read())
    finally:
        body.close()


def _read_csv_body(data: bytes) -> pd.DataFrame:
    from permeability.pipelines.predict_tables import read_table

    return read_table(data, "body.csv")


async def _read_json_batch(
    request: Request, version: str | None, level: float | None
) -> _BatchInput:
    spooled = await _spooled_body(request)
    try:
        raw = await run_in_threadpool(_read_spooled, spooled, json.loads)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"body is not valid JSON: {exc}", "type": "json_invalid"}]
        ) from exc
    try:
        body = BatchRequest.model_validate(raw)
    except ValidationError as exc:
        raise _body_errors(exc) from exc
    from permeability.pipelines.predict_tables import records_frame

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
    except (BodyTooLargeError, HTTPException):
        raise  # the body limit (413), a malformed multipart body (400): answered as they are
    except Exception as exc:
        raise InvalidInputError(f"multipart body cannot be read: {exc}") from exc
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidInputError("multipart body needs a file field named 'file' (.csv or .xlsx)")
    options = _form_options(form)
    data = await upload.read()
    name = upload.filename or "upload.csv"
    from permeability.pipelines.predict_tables import read_table

    frame = await run_in_threadpool(read_table, data, name)
    return _BatchInput(
        frame,
        options.version if options.version is not None else version,
        options.level if options.level is not None else level,
        "refuse",
        from_file=True,
    )


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
    import pandas as pd

    from permeability.scoring.batch import score_frame

    policy = state.config.inference.decision_policy(level)
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
    # Spooled to the local disk here, before the answer is built and sent (a kill loses none).
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
    _: InferenceAuthorized,
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
    from permeability.pipelines.predict_tables import jsonable_records, to_csv_text

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
