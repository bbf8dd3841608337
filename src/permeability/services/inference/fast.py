"""The hot path of ``POST /inference``: the route's answer without FastAPI's layers around it.

Why: on this 2-core machine kind, FastAPI's request machinery (its middleware stack, routing,
the request object, dependency solving, the response class) costs about 200 µs per request,
while the answer itself (parse, predict, interval, decision, log append) costs about 40 µs.
A service that is judged by single-record throughput and p99 latency cannot spend 80 % of each
request on plumbing.

How: :class:`InferenceApp` is the FastAPI app with one change: ``POST /inference`` is first
offered to :meth:`InferenceApp._fast_inference`, which reads the body and, when the body
parses, the version is already in memory and the answer succeeds, sends that answer (the same
bytes as the route, from the same :func:`~permeability.services.inference.single.respond`).
Anything else (a field error, an unknown or not yet loaded version, a service not started, any
exception, a body larger than a sample could be, a missing or wrong token when
``PERMEABILITY_INFERENCE_TOKEN`` is set) is handed with its body to the FastAPI app, whose
route answers it. So the fast path never shapes an error: every error a client sees is the
documented one, and the route stays the OpenAPI contract.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from fastapi import FastAPI
from pydantic import ValidationError

from permeability.services.common.deps import bearer_credentials, token_matches
from permeability.services.inference.metrics import InferenceMetrics
from permeability.services.inference.schemas import InferenceRequest
from permeability.services.inference.single import respond
from permeability.services.inference.state import InferenceState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INFERENCE_PATH: Final = "/inference"
#: A sample is a few hundred bytes; anything larger than this goes the documented way.
MAX_FAST_BODY_BYTES: Final = 64 * 1024
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class _DeclinedError(Exception):
    """The fast path does not answer this request; the FastAPI route will."""


class InferenceApp(FastAPI):
    """The inference service's FastAPI app, with the lean path for ``POST /inference``.

    ``fast_path`` may be switched off (the equivalence tests compare both ways). ``token``:
    the inference token when one is set; the lean path answers only requests that carry it
    (the route's dependency answers the others, 401). ``body_limit``: the service's body
    limit (``services/common/body_limit.py`` enforces it behind this path, which never reads past it).
    """

    fast_path: bool = True
    metrics: InferenceMetrics | None = None
    token: str | None = None
    body_limit: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_path
            and scope["type"] == "http"
            and scope["path"] == INFERENCE_PATH
            and scope["method"] == "POST"
            and (self.token is None or _authorized(scope, self.token))
        ):
            await self._fast_inference(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _fast_inference(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        # Never read past the service's body limit either: the route then answers 413.
        cap = self.body_limit
        limit = MAX_FAST_BODY_BYTES if cap is None else min(MAX_FAST_BODY_BYTES, cap)
        body, complete, disconnected = await _read_body(receive, limit)
        if disconnected:
            return  # the client left; there is nobody to answer
        state: InferenceState | None = getattr(self.state, "inference", None)
        try:
            if not complete or state is None or len(body) > limit:
                raise _DeclinedError
            payload = _answer(state, body, started)
        except Exception:
            await super().__call__(scope, _replaying(body, complete, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        if self.metrics is not None:
            self.metrics.observe(INFERENCE_PATH, 200, time.perf_counter() - started)


def _authorized(scope: Scope, token: str) -> bool:
    """The request's bearer token is ``token`` (the first Authorization header, as Starlette
    reads it for the route's dependency)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return token_matches(bearer_credentials(value.decode("latin-1")), token)
    return False


def _answer(state: InferenceState, body: bytes, started: float) -> bytes:
    try:
        request = InferenceRequest.model_validate_json(body)
    except ValidationError:
        raise _DeclinedError from None
    loaded = state.cache.peek(request.version)
    if loaded is None:  # not in memory yet: the route loads it off the event loop
        raise _DeclinedError
    return respond(state, request, loaded, started)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, bool]:
    """(body read so far, whether it is the whole body, whether the client disconnected);
    stops reading once the body is larger than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False, True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True, False
        if size > limit:
            return b"".join(chunks), False, False


def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """``receive`` for the FastAPI app: the body already read, then the rest from the client."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not complete}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
