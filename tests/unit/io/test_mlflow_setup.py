"""MLflow in this process: telemetry off, URIs shown without passwords, the UI command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from permeability.errors import InvalidInputError
from permeability.io.mlflow_setup import (
    describe_uri,
    import_mlflow,
    is_remote_tracking,
    mlflow_ui_command,
)
from permeability.settings import Settings


def test_telemetry_is_off_once_mlflow_is_imported() -> None:
    import_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_passwords_never_show_in_described_uris() -> None:
    masked = describe_uri("postgresql+psycopg://ml:s3cret@db.example:5432/mlflow")
    assert masked == "postgresql+psycopg://ml:***@db.example:5432/mlflow"
    assert describe_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert is_remote_tracking("https://mlflow.example")
    assert not is_remote_tracking("sqlite:////tmp/mlflow.db")


def test_the_ui_command_serves_the_embedded_store_with_one_worker(settings: Settings) -> None:
    command = mlflow_ui_command(settings, host="127.0.0.1", port=5123)

    assert command[:2] == ["mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == settings.resolved_tracking_uri
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--port") + 1] == "5123"
    assert settings.paths.mlflow_artifacts.is_dir()


def test_the_ui_command_refuses_a_remote_tracking_server(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:pw@10.0.0.5:5000")
    settings = Settings(home=home)
    with pytest.raises(InvalidInputError, match=r"tracking server \(http://user:\*\*\*@10"):
        mlflow_ui_command(settings, host="127.0.0.1", port=5000)
