"""A cap on request bodies, counted as they stream in: 413 past the limit, whatever the route.

Why here and not in the routes: a limit checked against ``Content-Length`` is bypassed by a
chunked body (which has none), and a route that calls ``request.body()`` or ``request.form()``
has buffered the whole body before it can look at its size. This pure-ASGI middleware sits
in front of every route of both services (``create_training_app``, ``create_inference_app``)
and wraps ``receive``:

- a declared ``Content-Length`` above the limit is refused before a byte is read;
- otherwise every chunk is counted as the app pulls it; the chunk that takes the count past
  the limit is never handed over: ``receive`` raises :class:`BodyTooLargeError` instead, so
  the app stops reading and nothing past the limit is held. Memory is bounded by the limit
  plus one chunk, however long the client keeps sending;
- the answer is always the same 413 JSON body (the shared error shape of ``services/common/errors.py``,
  naming the limit), even when a route caught the error and tried to answer something else
  (FastAPI turns an exception while reading a JSON body into a 400): once the limit is
  passed, the app's answer is replaced.

Why not FastAPI's own ``max_body_size``: it counts the same way, but when the client declared
a ``Content-Length`` above the limit it replaces any answer with ``text/plain`` "Content Too
Large", which is neither the documented JSON error nor says what the limit is.

The 413 closes the connection (``Connection: close``): the rest of the body is never read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MIB: Final = 1024 * 1024


class BodyTooLargeError(Exception):
    """Raised from ``receive`` once the body passes the limit. A route that reads the body by
    hand lets it through; if one catches it, its answer is replaced by the 413 anyway."""


def describe_limit(max_bytes: int) -> str:
    """``200 MiB`` for whole mebibytes, else the bytes (a test's small limit reads right)."""
    if max_bytes >= _MIB and max_bytes % _MIB == 0:
        return f"{max_bytes // _MIB} MiB"
    return f"{max_bytes} bytes"


def too_large_body(max_bytes: int) -> bytes:
    """The 413 body: ``detail`` in words, and the limit in bytes for programs."""
    return json.dumps(
        {
            "detail": f"request body larger than {describe_limit(max_bytes)}, the most this "
            f"service accepts ({max_bytes} bytes); send it in smaller parts",
            "limit_bytes": max_bytes,
        }
    ).encode()


class BodyLimitMiddleware:
    """Refuses (413) any HTTP request whose body passes ``max_bytes``, counted as it streams."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        limits = {"max_bytes": max_bytes, **(path_limits or {})}
        for name, value in limits.items():
            if value < 0:
                raise ValueError(f"body limit of {name} must be >= 0, got {value}")
        self.app = app
        self.max_bytes = max_bytes
        #: Smaller limits for paths whose bodies are small by nature (a single sample): a
        #: route that reads its body whole then holds at most that much.
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        if _declared_length(scope) > limit:
            await self._refuse(send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:  # asked again after the refusal: do not read on
                raise BodyTooLargeError(describe_limit(limit))
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLargeError(describe_limit(limit))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app answered after the refusal (it caught the error): say 413 instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLargeError:
            if started:
                raise
            started = True
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        body = too_large_body(limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    """The ``Content-Length`` the client declared (0 when absent or unreadable: the server
    refuses a malformed one itself, and the streaming count applies anyway)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
