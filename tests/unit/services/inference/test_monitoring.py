"""``GET /monitoring``: the latest evaluation's snapshot, read once per change, open like the
other GETs; 404 with a sentence saying what to run while there is none."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.io.monitoring_snapshot import snapshot_path, write_snapshot
from permeability.monitoring.snapshot import MonitoringSnapshot
from permeability.services.common.errors import install_error_handlers
from permeability.services.inference import page
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.monitoring import (
    MONITORING_PATH,
    SnapshotCache,
    monitoring_router,
)
from permeability.settings import Settings
from tests.monitoring_snapshots import realistic_snapshot


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(monitoring_router)
    return app


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture
def folder(settings: Settings) -> Path:
    return settings.paths.monitoring


def _cache(app: FastAPI) -> SnapshotCache:
    cache = app.state.monitoring_snapshot
    assert isinstance(cache, SnapshotCache)
    return cache


def test_no_snapshot_is_a_404_saying_what_to_run(client: TestClient) -> None:
    response = client.get(MONITORING_PATH)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "NoSnapshotError"
    assert "no evaluation has been recorded yet" in body["detail"]
    assert "permeability evaluate" in body["detail"]


def test_a_written_snapshot_is_answered_whole(client: TestClient, folder: Path) -> None:
    assert client.get(MONITORING_PATH).status_code == 404
    snapshot = realistic_snapshot(champion="0.3", run_id="a" * 32)
    write_snapshot(folder, snapshot)
    response = client.get(MONITORING_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert MonitoringSnapshot.model_validate(response.json()) == snapshot
    body = response.json()
    assert body["window"] == {
        "since": "2024-01-01",
        "first": "2024-01-08",
        "last": "2024-03-27",
        "rows": 142,
        "tests": 48,
    }
    assert [series["status"] for series in body["control_chart"]] == [
        "out_of_control",
        "in_control",
    ]


def test_polling_reads_the_file_once_until_it_changes(
    app: FastAPI, client: TestClient, folder: Path
) -> None:
    write_snapshot(folder, realistic_snapshot(champion="0.1"))
    for _ in range(5):
        assert client.get(MONITORING_PATH).json()["champion"] == "0.1"
    assert _cache(app).reads == 1
    write_snapshot(folder, realistic_snapshot(champion="0.2"))  # the next evaluation
    assert client.get(MONITORING_PATH).json()["champion"] == "0.2"
    assert client.get(MONITORING_PATH).json()["champion"] == "0.2"
    assert _cache(app).reads == 2


def test_a_replaced_file_of_the_same_size_and_time_is_still_seen(
    app: FastAPI, client: TestClient, folder: Path
) -> None:
    """An evaluation renames a new file into place: a new inode, whatever the clock says."""
    path = write_snapshot(folder, realistic_snapshot(champion="0.1"))
    before = path.stat()
    assert client.get(MONITORING_PATH).json()["champion"] == "0.1"
    write_snapshot(folder, realistic_snapshot(champion="0.2"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert client.get(MONITORING_PATH).json()["champion"] == "0.2"


def test_a_removed_snapshot_is_a_404_again(client: TestClient, folder: Path) -> None:
    write_snapshot(folder, realistic_snapshot())
    assert client.get(MONITORING_PATH).status_code == 200
    snapshot_path(folder).unlink()
    assert client.get(MONITORING_PATH).status_code == 404


def test_a_broken_file_is_a_404_read_once_and_replaced_by_the_next_evaluation(
    app: FastAPI, client: TestClient, folder: Path
) -> None:
    folder.mkdir(parents=True)
    snapshot_path(folder).write_text('{"evaluation_id": 3}', encoding="utf-8")
    for _ in range(3):
        response = client.get(MONITORING_PATH)
        assert response.status_code == 404
        assert "cannot be read" in response.json()["detail"]
        assert "the next evaluation replaces it" in response.json()["detail"]
    assert _cache(app).reads == 1
    write_snapshot(folder, realistic_snapshot())
    assert client.get(MONITORING_PATH).status_code == 200


# -- in the inference service ----------------------------------------------------------------


def test_the_service_answers_it_without_the_token(settings: Settings) -> None:
    guarded = settings.model_copy(update={"inference_token": SecretStr("s3cret")})
    write_snapshot(settings.paths.monitoring, realistic_snapshot(champion="0.4"))
    client = TestClient(create_inference_app(guarded))  # no lifespan: no model is needed
    response = client.get(MONITORING_PATH)
    assert response.status_code == 200
    assert response.json()["champion"] == "0.4"


def test_the_openapi_document_states_the_snapshot_and_the_404(settings: Settings) -> None:
    schema = TestClient(create_inference_app(settings)).get("/openapi.json").json()
    operation = schema["paths"][MONITORING_PATH]["get"]
    assert "security" not in operation
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/MonitoringSnapshot"}
    missing = operation["responses"]["404"]["content"]["application/json"]["schema"]
    assert missing == {"$ref": "#/components/schemas/ErrorResponse"}
    assert {"FigureWindow", "ChartSeries", "DriftReport", "Event"} <= set(
        schema["components"]["schemas"]
    )


# -- the page's monitoring view: its words exist in both languages ---------------------------


def test_every_text_the_monitoring_view_uses_is_translated() -> None:
    """``static/monitoring.js`` and ``control_chart.js`` build keys from the snapshot's kinds
    too: each must exist."""
    strings = json.loads((page.STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
    script = "".join(
        (page.STATIC_DIR / name).read_text(encoding="utf-8")
        for name in ("monitoring.js", "control_chart.js")
    )
    used = set(re.findall(r"\bt\(\"([\w.]+)\"", script))
    snapshot = realistic_snapshot()
    used |= {f"mon.event.{event.kind}" for event in snapshot.events}
    used |= {f"mon.severity.{severity}" for severity in ("info", "warning", "critical")}
    used |= {f"mon.chart.status.{s}" for s in ("in_control", "out_of_control", "too_few_points")}
    used |= {f"mon.rule.{rule}" for rule in ("1", "2", "3", "4")}
    assert snapshot.drift is not None
    used |= {f"mon.feature.{test.feature}" for test in snapshot.drift.tests}
    assert "mon.window.rows" in used
    for language in ("en", "es"):
        assert sorted(key for key in used if key not in strings[language]) == [], language


def test_every_event_kind_has_a_name_on_the_page() -> None:
    from permeability.monitoring.events import EVENT_KINDS

    strings = json.loads((page.STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
    for language in ("en", "es"):
        assert [k for k in EVENT_KINDS if f"mon.event.{k}" not in strings[language]] == []
