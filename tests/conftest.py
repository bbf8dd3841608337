"""Shared fixtures: a fresh storage root per test, and the real services of this machine kind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from permeability.settings import Settings

POSTGRES_URL = os.environ.get(
    "PERMEABILITY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "PERMEABILITY_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is missing, except under CI (``PERMEABILITY_REQUIRE_SERVICES=1``)."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("PERMEABILITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and PERMEABILITY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def _kept_in_tests(name: str) -> bool:
    """Test-infrastructure variables survive; every product setting is reset."""
    return name.startswith("PERMEABILITY_TEST_") or name == "PERMEABILITY_REQUIRE_SERVICES"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's storage, tracking server or token, or phones home."""
    for name in list(os.environ):
        if name.startswith("PERMEABILITY_") and not _kept_in_tests(name):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("PERMEABILITY_HOME", str(tmp_path / "storage"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def mariadb_url() -> str:
    require_service("MariaDB", "127.0.0.1", 3306)
    return MARIADB_URL
