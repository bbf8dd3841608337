"""Against a real MLflow tracking server (PostgreSQL backend, proxied artifacts), and the
``permeability ui`` command on the embedded store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store
from tests.ports import free_port
from tests.unit.io.mlflow_server_support import SERVER_ENV

pytestmark = pytest.mark.integration

SEED_BODY = {"model": "LinearRegression", "version": "0.1", "test_size": 0.25}


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not up after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server we started and its worker (its own process group, by id)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as sink:
        return subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A database of its own for the tracking server, created and dropped by the test."""
    name = f"mlflow_it_{uuid.uuid4().hex[:12]}"
    base = make_url(postgres_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tracking_server(fresh_database: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    process = _start(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", fresh_database,
            "--artifacts-destination", str(tmp_path / "server-artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        log,
        SERVER_ENV,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/health", process, log, timeout=240)
        yield url
    finally:
        _stop(process)


def test_training_through_the_api_lands_on_the_tracking_server(
    tracking_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from permeability.io import pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    settings = Settings(home=tmp_path / "storage")
    assert settings.resolved_tracking_uri == tracking_server
    fill_feature_store(settings, tmp_path / "exports", rows=300, seed=13)

    with TestClient(create_training_app(settings)) as client:
        trained = client.post("/train", json=SEED_BODY)
        assert trained.status_code == 201, trained.text
        promoted = client.post("/versions/0.1/promote", json={"reason": "integration"})
        assert promoted.status_code == 200, promoted.text
        duplicate = client.post("/train", json=SEED_BODY)
        assert duplicate.status_code == 409
    result = trained.json()

    server = MlflowClient(tracking_uri=tracking_server, registry_uri=tracking_server)
    run = server.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert server.get_experiment(run.info.experiment_id).name == "permeability"
    assert run.data.metrics["mae"] == pytest.approx(result["metrics"]["mae"])
    assert run.data.metrics["r2"] == pytest.approx(result["metrics"]["r2"])
    assert run.data.params["model"] == "LinearRegression"
    assert run.data.tags["feature_set_version"] == str(result["feature_set_version"])
    assert run.data.tags["data_hash"] == result["data_hash"]
    artifacts = {a.path for a in server.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/predicted_vs_measured.png", "plots/residuals.png"} <= artifacts
    pca = {a.path for a in server.list_artifacts(run.info.run_id, "pca")}
    assert "pca/pca_explained_variance.png" in pca

    version = server.get_model_version("permeability", result["registry_version"])
    assert version.tags["version_label"] == "0.1"
    assert version.run_id == result["run_id"]
    champion = server.get_model_version_by_alias("permeability", "champion")
    assert str(champion.version) == result["registry_version"]
    assert champion.tags["promotion_reason"] == "integration"
    assert len(server.search_model_versions("name='permeability'")) == 1

    from permeability.io.feature_store import FeatureStore

    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame.head(5)
    served = pyfunc.load_pyfunc_model("models:/permeability@champion")
    local = pyfunc.load_permeability_model(settings.paths.models / "0.1")
    predictions = served.predict(pyfunc.input_example(frame, rows=5))["prediction"]
    np.testing.assert_allclose(predictions, local.predict_frame(frame), rtol=1e-12)


def test_the_ui_command_serves_the_embedded_store(tmp_path: Path) -> None:
    home = tmp_path / "storage"
    port = free_port()
    log = tmp_path / "ui.log"
    process = _start(
        [sys.executable, "-m", "permeability", "ui", "--port", str(port)],
        log,
        {"PERMEABILITY_HOME": str(home), **SERVER_ENV},
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health", process, log, timeout=240)
        experiments = httpx.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
            params={"max_results": 10},
            timeout=10,
        )
        assert experiments.status_code == 200
    finally:
        _stop(process)
    assert (home / "mlflow" / "mlflow.db").is_file()
