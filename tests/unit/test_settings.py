from __future__ import annotations

from pathlib import Path

import pytest

from permeability.settings import get_settings


def test_home_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERMEABILITY_HOME", str(tmp_path / "elsewhere"))
    settings = get_settings()
    assert settings.paths.root == (tmp_path / "elsewhere").resolve()
    assert settings.resolved_tracking_uri == f"sqlite:///{settings.paths.root}/mlflow/mlflow.db"
    assert settings.resolved_feature_store_uri == str(
        settings.paths.root / "data" / "feature_store"
    )


def test_mlflow_tracking_uri_overrides_the_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5555")
    assert get_settings().resolved_tracking_uri == "http://127.0.0.1:5555"


def test_layout_is_created_only_on_demand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERMEABILITY_HOME", str(tmp_path / "root"))
    paths = get_settings().paths
    assert not paths.root.exists()
    paths.ensure()
    assert {p.name for p in paths.root.iterdir()} >= {"data", "logs", "models"}


def test_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERMEABILITY_API_TOKEN", "s3cret")
    settings = get_settings()
    assert settings.api_token is not None
    assert "s3cret" not in repr(settings)
    assert settings.api_token.get_secret_value() == "s3cret"
