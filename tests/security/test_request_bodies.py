"""Attack replay (issue 13, items 1 and 9): oversized request bodies, and the multipart label.

1. The 200 MiB batch limit was checked against ``Content-Length`` only: a *chunked* ``text/csv``
   body of 200.06 MiB was read whole and scored (200 after 46 s, server RSS 5.3 GB), with no
   token needed. Now ``services/common/body_limit.py`` counts every body as it streams in, on every route
   of both services, and refuses with 413 the moment the count passes the limit. The
   services are built here with a small limit (``LIMIT``) so the replays stay small; the
   production limit is the same code path with ``MAX_UPLOAD_BYTES`` (inference) and
   ``MAX_REQUEST_BYTES`` (training).
9. A multipart ``version`` of 65 characters got 404 where JSON and the query string give 422.

Memory is asserted structurally, not timed: driven through ASGI with an endless stream of
chunks, the service stops pulling at the first chunk past the limit, so it never holds more
than the limit plus one chunk, however long the client keeps sending.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from permeability.services.inference.app import create_inference_app
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.ports import free_port
from tests.unit.services.inference_support import (
    SEED_SAMPLE,
    Champion,
    patch_registry,
    publish_version,
    tiny_model,
)

LIMIT = 8 * 1024
CHUNK = 1024
#: Each content type a route may read, with the start of a well-formed body of that type (the
#: rest is padding): the body is refused for its size, not for being malformed.
OPENINGS = {
    "application/json": b'{"records": [',
    "multipart/form-data; boundary=xyz": b"--xyz\r\nContent-Disposition: form-data; "
    b'name="file"; filename="lab.csv"\r\nContent-Type: text/csv\r\n\r\nMuestra,Grados_C\n',
    "text/csv": b"Muestra,Grados_C\n",
}
CONTENT_TYPES = tuple(OPENINGS)


@dataclass
class Services:
    inference: TestClient
    training: TestClient

    def client(self, name: str) -> TestClient:
        client: TestClient = getattr(self, name)
        return client


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Both services, started (lifespans run), each with a body limit of ``LIMIT`` bytes."""
    settings = Settings(home=tmp_path_factory.mktemp("bodies") / "storage")
    champion = Champion()
    with pytest.MonkeyPatch.context() as patch:
        patch_registry(patch, champion)
        publish_version(settings, "0.1", tiny_model())
        champion.label = "0.1"
        inference = create_inference_app(settings, max_body_bytes=LIMIT)
        training = create_training_app(settings, max_body_bytes=LIMIT)
        with TestClient(inference) as inference_client, TestClient(training) as training_client:
            yield Services(inference_client, training_client)


def _post_routes(app: FastAPI) -> list[str]:
    """Every POST path the app documents, path parameters filled with a plausible label."""
    paths = [path for path, operations in app.openapi()["paths"].items() if "post" in operations]
    return [path.replace("{version}", "0.1") for path in paths]


def _all_post_routes() -> list[tuple[str, str]]:
    settings = Settings(home="unused")  # routes do not depend on settings; nothing starts here
    apps = {"inference": create_inference_app(settings), "training": create_training_app(settings)}
    return [(name, path) for name, app in apps.items() for path in _post_routes(app)]


POST_ROUTES = _all_post_routes()


def _chunks(content_type: str, size: int) -> Iterator[bytes]:
    """``size`` bytes of a body of that type, in chunks (sent with Transfer-Encoding: chunked,
    no Content-Length)."""
    body = OPENINGS[content_type] + b" " * (size - len(OPENINGS[content_type]))
    for start in range(0, size, CHUNK):
        yield body[start : start + CHUNK]


def _assert_refused_naming_the_limit(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["limit_bytes"] == LIMIT
    assert f"{LIMIT} bytes" in body["detail"]


def test_every_post_route_of_both_services_is_covered() -> None:
    assert set(POST_ROUTES) >= {
        ("inference", "/inference"),
        ("inference", "/inference/batch"),
        ("training", "/train"),
        ("training", "/versions/0.1/promote"),
        ("training", "/evaluate"),
    }


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("service", "path"), POST_ROUTES)
def test_a_chunked_body_one_byte_over_the_limit_gets_413(
    services: Services, service: str, path: str, content_type: str
) -> None:
    response = services.client(service).post(
        path, content=_chunks(content_type, LIMIT + 1), headers={"Content-Type": content_type}
    )
    assert "content-length" not in response.request.headers  # really sent chunked
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_refused_naming_the_limit(response)


@pytest.mark.parametrize(("service", "path"), POST_ROUTES)
def test_a_declared_length_over_the_limit_gets_413(
    services: Services, service: str, path: str
) -> None:
    # A valid sample, so no route (nor the lean /inference path) has another reason to refuse.
    sample = json.dumps({"data_test": SEED_SAMPLE}).encode()
    body = sample + b" " * (LIMIT + 1 - len(sample))
    response = services.client(service).post(
        path, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    _assert_refused_naming_the_limit(response)


def _padded_to_limit(text: str) -> Iterator[bytes]:
    """``text`` padded with trailing blank lines/spaces to exactly ``LIMIT`` bytes, chunked."""
    data = text.encode()
    assert len(data) <= LIMIT
    padded = data + b"\n" * (LIMIT - len(data))
    for start in range(0, LIMIT, CHUNK):
        yield padded[start : start + CHUNK]


def test_bodies_up_to_the_limit_are_answered_as_usual(services: Services) -> None:
    csv_text = pd.DataFrame([SEED_SAMPLE] * 3).to_csv(index=False)
    batch = services.inference.post(
        "/inference/batch?format=json",
        content=_padded_to_limit(csv_text),
        headers={"Content-Type": "text/csv"},
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["predicted"] == 3
    single = services.inference.post(
        "/inference",
        content=_padded_to_limit(json.dumps({"data_test": SEED_SAMPLE})),
        headers={"Content-Type": "application/json"},
    )
    assert single.status_code == 200, single.text
    bad_train = services.training.post(
        "/train",
        content=_padded_to_limit(json.dumps({"model": "LinearRegression"})),
        headers={"Content-Type": "application/json"},
    )
    assert bad_train.status_code == 422, bad_train.text  # read, then refused for what it says


# -- memory: never more than the limit plus one chunk is read ---------------------------------


async def _endless_post(app: Any, path: str, content_type: str) -> tuple[int, bytes, int]:
    """POST to ``app`` through ASGI with a body that never ends (chunks of ``CHUNK`` bytes,
    ``more_body`` always true, no Content-Length); returns (status, body, chunks pulled)."""
    pulled = 0
    answer: dict[str, Any] = {"body": b""}
    opening = OPENINGS[content_type]

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        if pulled > 10 * LIMIT // CHUNK:  # far past the limit: the service kept reading
            raise AssertionError(f"the service read {pulled} chunks and went on reading")
        chunk = opening + b" " * (CHUNK - len(opening)) if pulled == 1 else b" " * CHUNK
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", content_type.encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return answer["status"], answer["body"], pulled


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(("service", "path"), POST_ROUTES)
def test_reading_stops_at_the_first_chunk_past_the_limit(
    services: Services, service: str, path: str, content_type: str
) -> None:
    client = services.client(service)
    # On the client's own event loop (the one its lifespan runs in), not asyncio.run: the
    # session's browser tests keep a loop running on this thread.
    assert client.portal is not None
    code, body, pulled = client.portal.call(_endless_post, client.app, path, content_type)
    assert code == 413, body
    assert json.loads(body)["limit_bytes"] == LIMIT
    # LIMIT // CHUNK chunks reach the limit exactly; the next one passes it and is the last.
    assert pulled == LIMIT // CHUNK + 1


# -- a real server, real chunked HTTP -----------------------------------------------------------


@pytest.fixture(scope="module")
def live_inference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The inference service under uvicorn on 127.0.0.1 (limit ``LIMIT``), as attacked."""
    settings = Settings(home=tmp_path_factory.mktemp("live") / "storage")
    champion = Champion()
    with pytest.MonkeyPatch.context() as patch:
        patch_registry(patch, champion)
        publish_version(settings, "0.1", tiny_model())
        champion.label = "0.1"
        port = free_port()
        config = uvicorn.Config(
            create_inference_app(settings, max_body_bytes=LIMIT),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def test_the_replayed_chunked_csv_upload_is_refused_by_a_running_server(
    live_inference: str,
) -> None:
    header = pd.DataFrame([SEED_SAMPLE]).to_csv(index=False).encode()
    rows = header.splitlines(keepends=True)[1]

    def body() -> Iterator[bytes]:  # the attack: a valid CSV that keeps growing, no length
        yield header
        for _ in range((LIMIT // len(rows)) + 2):
            yield rows

    response = httpx.post(
        f"{live_inference}/inference/batch",
        content=body(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    _assert_refused_naming_the_limit(response)
    # The refused connection is closed; the service keeps serving the next client.
    assert httpx.get(f"{live_inference}/health", timeout=10).status_code == 200


# -- item 9: a version label over 64 characters is a 422 however it is sent -------------------


def test_a_multipart_label_over_64_characters_gets_422_like_json_and_query(
    services: Services,
) -> None:
    label = "v" * 65
    csv_file = ("lab.csv", pd.DataFrame([SEED_SAMPLE]).to_csv(index=False).encode(), "text/csv")
    answers = {
        "multipart": services.inference.post(
            "/inference/batch", files={"file": csv_file}, data={"version": label}
        ),
        "json": services.inference.post(
            "/inference/batch", json={"version": label, "records": [SEED_SAMPLE]}
        ),
        "query": services.inference.post(
            f"/inference/batch?version={label}", files={"file": csv_file}
        ),
    }
    for how, response in answers.items():
        assert response.status_code == 422, (how, response.text)
        (problem,) = response.json()["detail"]
        assert problem["loc"][-1] == "version", how
        assert problem["type"] == "string_too_long", how
    assert answers["multipart"].json()["detail"][0]["loc"] == ["body", "version"]


@pytest.mark.parametrize(
    ("fields", "field", "kind"),
    [
        ({"level": "abc"}, "level", "float_parsing"),
        ({"level": "1.5"}, "level", "less_than"),
        ({"level": "nan"}, "level", "finite_number"),
    ],
)
def test_multipart_options_follow_the_json_rules(
    services: Services, fields: dict[str, str], field: str, kind: str
) -> None:
    csv_file = ("lab.csv", pd.DataFrame([SEED_SAMPLE]).to_csv(index=False).encode(), "text/csv")
    response = services.inference.post("/inference/batch", files={"file": csv_file}, data=fields)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert problem["type"] == kind


def test_a_single_sample_body_is_capped_far_below_the_batch_limit() -> None:
    """``POST /inference`` reads its body whole: its own cap (1 MiB) bounds what it can hold,
    where the batch route's 200 MiB would let one request pin 200 MiB."""
    from permeability.services.inference.single import MAX_SAMPLE_BYTES

    app = create_inference_app(Settings(home="unused"))  # the production limits
    client = TestClient(app)  # no lifespan: the cap answers before any route
    over = (b"x" * CHUNK for _ in range(MAX_SAMPLE_BYTES // CHUNK + 1))
    response = client.post("/inference", content=over, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["limit_bytes"] == MAX_SAMPLE_BYTES == 1024 * 1024
