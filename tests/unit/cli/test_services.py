"""The long-running commands: serve, ui."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from permeability.settings import Settings
from tests.unit.cli.cli_support import invoke


def test_serve_training_builds_the_service_on_the_seed_port(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    import uvicorn

    served: dict[str, Any] = {}

    def fake_run(application: FastAPI, **options: Any) -> None:
        served.update(app=application, **options)

    monkeypatch.setattr(uvicorn, "run", fake_run)

    result = invoke("serve", "training")

    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8000)
    with TestClient(served["app"]) as client:
        health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["models_dir"] == str(settings.paths.models)


def test_a_service_that_cannot_be_imported_fails_in_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "permeability.services.inference.app", None)

    result = invoke("serve", "inference", "--port", "8123")

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "permeability.services.inference.app" in lines[0]


def test_serve_refuses_an_unknown_service() -> None:
    result = invoke("serve", "billing")
    assert result.exit_code == 2


def test_ui_runs_mlflow_on_the_embedded_store_with_one_worker(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    ran: dict[str, Any] = {}

    def fake_run(command: list[str], *, env: dict[str, str], check: bool) -> Any:
        ran.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)

    result = invoke("ui", "--port", "5123")

    assert result.exit_code == 0, result.output
    command = ran["command"]
    assert command[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == settings.resolved_tracking_uri
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert ran["env"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_ui_refuses_a_remote_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    result = invoke("ui")
    assert result.exit_code == 1
    assert "tracking server" in result.stderr
