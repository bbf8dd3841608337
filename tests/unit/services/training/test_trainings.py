"""GET /trainings and the queue's place in the training service's contract."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from permeability.io.training_slots import SlotHolder, TrainingSlots
from permeability.services.training.app import create_training_app
from permeability.settings import Settings


def test_an_idle_service_shows_its_cap_and_an_empty_line(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        response = client.get("/trainings")

    assert response.status_code == 200
    assert response.json() == {"max_concurrent": 1, "max_queued": 8, "running": [], "queued": []}


def test_a_training_running_in_another_process_is_shown(settings: Settings) -> None:
    slots = TrainingSlots.for_models(settings.paths.models, 1)
    with TestClient(create_training_app(settings)) as client:
        slot = slots.try_acquire(SlotHolder.this_process("from-the-cli"))
        assert slot is not None
        try:
            running = client.get("/trainings").json()["running"]
        finally:
            slot.release()
        after = client.get("/trainings").json()["running"]

    assert [(r["version"], r["pid"]) for r in running] == [("from-the-cli", os.getpid())]
    assert after == []


def test_the_configured_cap_and_line_are_the_services(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  max_concurrent: 2\n  max_queued: 3\n", encoding="utf-8")
    configured = Settings(home=settings.home, config_file=config)
    with TestClient(create_training_app(configured)) as client:
        view = client.get("/trainings").json()

    assert (view["max_concurrent"], view["max_queued"]) == (2, 3)


def test_the_openapi_document_tells_clients_about_the_full_line(settings: Settings) -> None:
    with TestClient(create_training_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]

    assert "503" in paths["/train"]["post"]["responses"]
    assert "Retry-After" in paths["/train"]["post"]["responses"]["503"]["description"]
    assert "/trainings" in paths
