"""Project errors as HTTP answers: a status and a JSON body naming the field and the problem.

| error                    | status | why                                                        |
|--------------------------|--------|------------------------------------------------------------|
| InvalidInputError        | 422    | the request is understood but a value is not acceptable    |
| NotFoundError            | 404    | the version (or model, file) asked for does not exist      |
| ConflictError            | 409    | it would overwrite something immutable (a version label)   |
| EmptyFeatureStoreError   | 409    | the request is valid, the server's state is not ready: run |
|                          |        | ``permeability acquire`` first, then retry the same body    |
| other PermeabilityError  | 400    |                                                            |

Bodies look like FastAPI's own: ``{"detail": "<one sentence>", "error": "<ErrorClass>"}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

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


def status_for(error: PermeabilityError) -> int:
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return status.HTTP_400_BAD_REQUEST


async def _permeability_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermeabilityError)  # noqa: S101 - registered for this class only
    code = status_for(exc)
    _logger.info(
        "%s %s -> %d %s: %s", request.method, request.url.path, code, type(exc).__name__, exc
    )
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PermeabilityError, _permeability_error)
