"""The streaming body cap (``services/common/body_limit.py``) on a bare ASGI app that reads its whole body."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from permeability.services.common.body_limit import BodyLimitMiddleware, describe_limit

CHUNK = 100


async def _echo_length(scope: Any, receive: Any, send: Any) -> None:
    """An app that reads its whole body, then answers its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _call(app: Any, path: str, size: int, declared: int | None = None) -> tuple[int, bytes, int]:
    """POST ``size`` bytes in chunks of ``CHUNK``; (status, body, chunks the app pulled)."""
    pulled = 0
    chunks = [b"x" * CHUNK] * (size // CHUNK) + ([b"x" * (size % CHUNK)] if size % CHUNK else [])
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        chunk = chunks[pulled - 1] if pulled <= len(chunks) else b""
        return {"type": "http.request", "body": chunk, "more_body": pulled < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}

    async def run() -> None:
        await app(scope, receive, send)

    # A thread of its own: the session's browser tests keep a loop running on this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
    return answer["status"], answer["body"], pulled


@pytest.fixture
def app() -> BodyLimitMiddleware:
    return BodyLimitMiddleware(_echo_length, max_bytes=1000, path_limits={"/small": 300})


def test_bodies_up_to_the_limit_reach_the_app(app: BodyLimitMiddleware) -> None:
    assert _call(app, "/big", 1000)[:2] == (200, b"1000")
    assert _call(app, "/small", 300)[:2] == (200, b"300")


def test_a_streamed_body_is_refused_at_the_first_chunk_past_the_limit(
    app: BodyLimitMiddleware,
) -> None:
    status, body, pulled = _call(app, "/big", 5000)
    assert status == 413
    assert json.loads(body)["limit_bytes"] == 1000
    assert pulled == 11  # ten chunks reach the limit; the eleventh passes it and is the last


def test_a_path_with_its_own_limit_is_refused_past_it(app: BodyLimitMiddleware) -> None:
    status, body, pulled = _call(app, "/small", 301)
    assert status == 413
    assert json.loads(body) == {
        "detail": "request body larger than 300 bytes, the most this service accepts "
        "(300 bytes); send it in smaller parts",
        "limit_bytes": 300,
    }
    assert pulled == 4


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    app: BodyLimitMiddleware,
) -> None:
    status, _, pulled = _call(app, "/small", 10, declared=301)
    assert (status, pulled) == (413, 0)


def test_limits_are_described_in_mebibytes_when_whole() -> None:
    assert describe_limit(200 * 1024 * 1024) == "200 MiB"
    assert describe_limit(8192) == "8192 bytes"


def test_a_negative_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="/x must be >= 0"):
        BodyLimitMiddleware(_echo_length, max_bytes=10, path_limits={"/x": -1})
