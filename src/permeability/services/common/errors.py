"""Project errors as HTTP answers, and the one error contract both services document.

| error                    | status | why                                                        |
|--------------------------|--------|------------------------------------------------------------|
| InvalidInputError        | 422    | the request is understood but a value is not acceptable    |
| NotFoundError            | 404    | the version (or model, file) asked for does not exist      |
| ConflictError            | 409    | it would overwrite something immutable (a version label)   |
| EmptyFeatureStoreError   | 409    | the request is valid, the server's state is not ready: run |
|                          |        | ``permeability acquire`` first, then retry the same body    |
| other PermeabilityError  | 400    |                                                            |

Two body shapes, so a client can rely on the type of ``detail`` from the status alone:

- every **422** is :class:`ValidationErrorResponse`: ``{"detail": [{"loc", "msg", "type",
  ...}], "error"?}``, FastAPI's shape; an :class:`InvalidInputError` (a problem found past
  the schema, e.g. two fields that contradict each other) is one item whose ``loc`` is
  ``[]`` (the request as a whole), type ``invalid_input``;
- every other error is :class:`ErrorResponse`: ``{"detail": "<one sentence>", "error"?:
  "<ErrorClass>"}`` (400 for a body that cannot be read, 401, 404, 409, 413, 415, 503); the
  413 comes from ``services/common/body_limit.py`` with ``limit_bytes``.

:func:`document_error_contract` writes both into the OpenAPI document of a service: every
documented error status gets its schema, every operation with a body documents 400 (malformed
body) and 413 (too large), and the bearer token is documented only when it is required, so
the document says what the running service does (schemathesis checks it, every check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from permeability.errors import (
    ConflictError,
    EmptyFeatureStoreError,
    InvalidInputError,
    NotFoundError,
    PermeabilityError,
)

_STATUS: tuple[tuple[type[PermeabilityError], int], ...] = (
    (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (ConflictError, status.HTTP_409_CONFLICT),
    (EmptyFeatureStoreError, status.HTTP_409_CONFLICT),
)

_logger = logging.getLogger("permeability.api")


class ErrorResponse(BaseModel):
    """Any error but 422: one sentence. Some errors add fields (a 404 for an unknown version
    lists ``available`` ones; a 413 gives ``limit_bytes``)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What went wrong, in one sentence.")
    error: str | None = Field(
        default=None,
        description="The error's class (e.g. 'NotFoundError'); absent on errors of the HTTP "
        "layer itself (a malformed body, a missing token).",
    )


class ValidationIssue(BaseModel):
    """One problem of a 422, FastAPI's shape."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(
        description="Where: e.g. ['body', 'data_test', 'Porc_Humedad'], ['query', 'level']; "
        "[] for the request as a whole."
    )
    msg: str = Field(description="The problem, in words.")
    type: str = Field(description="Machine-readable kind, e.g. 'less_than_equal'.")
    input: Any = Field(default=None, description="The value refused, when there is one.")
    ctx: dict[str, Any] | None = Field(default=None, description="The rule's parameters.")


class ValidationErrorResponse(BaseModel):
    """Every 422: the request was read but a value is not acceptable; one item per problem."""

    detail: list[ValidationIssue]
    error: str | None = Field(
        default=None, description="'InvalidInputError' for a problem found past the schema."
    )


def status_for(error: PermeabilityError) -> int:
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


def error_body(error: PermeabilityError, code: int) -> dict[str, Any]:
    """The body of ``error`` answered with ``code``, in the documented shape of that status."""
    if code == status.HTTP_422_UNPROCESSABLE_CONTENT:
        issue = {"loc": [], "msg": str(error), "type": "invalid_input"}
        return {"detail": [issue], "error": type(error).__name__}
    return {"detail": str(error), "error": type(error).__name__}


async def _permeability_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermeabilityError)  # noqa: S101 - registered for this class only
    code = status_for(exc)
    _logger.info(
        "%s %s -> %d %s: %s", request.method, request.url.path, code, type(exc).__name__, exc
    )
    return JSONResponse(error_body(exc, code), status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PermeabilityError, _permeability_error)


# -- the contract in the OpenAPI document ----------------------------------------------------

_REF: Final = "#/components/schemas/{model}"
#: FastAPI's own 422 schema, replaced by ours (a superset: ``error`` may be present).
_FASTAPI_422: Final = ("HTTPValidationError", "ValidationError")
_BODY_ERRORS: Final[dict[int, str]] = {
    status.HTTP_400_BAD_REQUEST: "The body cannot be read (for instance not UTF-8, or a broken "
    "multipart body).",
    status.HTTP_413_CONTENT_TOO_LARGE: "The body is larger than the service accepts "
    "(`limit_bytes`); refused while it streams in, with or without Content-Length.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "A value is not acceptable; `detail[].loc` names it.",
}
_UNAUTHORIZED: Final = "`Authorization: Bearer <token>` is missing or the token is wrong."


def document_error_contract(app: FastAPI, *, token_required: bool) -> None:
    """Make ``app``'s OpenAPI document state its error bodies and its auth as they are.

    ``token_required``: whether the service's token is set now; when it is not, the
    operations drop their bearer requirement (the service accepts any request), when it is,
    every guarded operation documents its 401.
    """
    inner: Callable[[], dict[str, Any]] = app.openapi
    done: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not done:
            done.append(_with_error_contract(inner(), token_required=token_required))
        return done[0]

    app.openapi = openapi  # type: ignore[method-assign]


def _with_error_contract(schema: dict[str, Any], *, token_required: bool) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for name in _FASTAPI_422:
        models.pop(name, None)
    for model in (ErrorResponse, ValidationErrorResponse):
        definition = model.model_json_schema(ref_template=_REF)
        models.update(definition.pop("$defs", {}))
        models[model.__name__] = definition
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            _document_operation(operation, token_required=token_required)
    if not token_required:
        components.pop("securitySchemes", None)
    return schema


def _document_operation(operation: dict[str, Any], *, token_required: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "requestBody" in operation:
        for status_code, description in _BODY_ERRORS.items():
            responses.setdefault(str(status_code), {"description": description})
    if operation.get("parameters"):
        responses.setdefault("422", {"description": _BODY_ERRORS[422]})
    if "security" in operation:
        if token_required:
            responses.setdefault("401", {"description": _UNAUTHORIZED})
        else:
            del operation["security"]
            responses.pop("401", None)
    for key, response in responses.items():
        if not key.startswith(("4", "5")):
            continue
        model = "ValidationErrorResponse" if key == "422" else "ErrorResponse"
        content = response.setdefault("content", {})
        current = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        if not current or current.rsplit("/", 1)[-1] in _FASTAPI_422:
            content["application/json"] = {"schema": {"$ref": _REF.format(model=model)}}
