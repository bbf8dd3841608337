"""A replica against a real ``mlflow server``: the champion over REST, its files through the
server's artifact proxy, into a home that had nothing (a cache: deleted, fetched again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from permeability.io.model_cache import ModelCache, VersionUnavailableError
from permeability.io.model_store import ModelStore
from permeability.io.registry_rest import RegistryRequestError, RemoteRegistry
from permeability.services.inference.app import create_inference_app
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.ports import free_port
from tests.unit.io.mlflow_server_support import MlflowServer

#: The tests that start a real ``mlflow server`` (the others need no process).
needs_server = pytest.mark.integration


def settings_on(home: Path, tracking_uri: str) -> Settings:
    """Settings of a host whose ``MLFLOW_TRACKING_URI`` is ``tracking_uri``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        return Settings(home=home)


def train_and_promote(settings: Settings, label: str, model: str) -> None:
    """The training host's side, with the project's own jobs (its feature store is filled)."""
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec

    train(settings, TrainingSpec.parse(model=model, version=label, test_size=0.25))
    promote(settings, label, reason="test")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    running = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def lab() -> pd.DataFrame:
    from permeability.synthetic.generator import generate_lab_data

    return generate_lab_data(400, 5, mess=None)


@pytest.fixture(scope="module")
def training_home(
    server: MlflowServer, lab: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The ``train`` host: trained ``r1`` against the server and promoted it."""
    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire

    folder = tmp_path_factory.mktemp("train")
    settings = settings_on(folder / "storage", server.url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        acquire(settings, str(write_lab_export(lab, folder / "lab.csv")))
        train_and_promote(settings, "r1", "Ridge")
    return settings


@needs_server
def test_the_champion_and_its_versions_are_read_over_rest(
    server: MlflowServer, training_home: Settings
) -> None:
    registry = RemoteRegistry(server.url)
    champion = registry.champion()
    assert champion is not None
    assert champion.label == registry.champion_label()
    assert champion.source.startswith("models:/m-")
    assert registry.version_labelled(champion.label or "") == champion
    assert registry.version_labelled("never-trained") is None
    assert RemoteRegistry(server.url, "no-such-model").champion() is None


@needs_server
def test_a_replica_resolves_fetches_and_loads_without_importing_mlflow(
    server: MlflowServer, training_home: Settings, tmp_path: Path
) -> None:
    """``import mlflow`` is ≈ 1 s of a replica's start: the serving path must not need it
    (checked in a fresh interpreter: this one imported MLflow to train)."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from permeability.io.model_cache import ModelCache\n"
        "from permeability.settings import Settings\n"
        f"cache = ModelCache.from_settings(Settings(home=Path({str(tmp_path / 'replica')!r})))\n"
        "cache.refresh()\n"
        "print(cache.get(None).version)\n"
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == RemoteRegistry(server.url).champion_label()


@needs_server
def test_a_fetched_version_is_the_trained_folder(
    server: MlflowServer, training_home: Settings, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "replica" / "models")
    path = RemoteRegistry(server.url).fetch_label("r1", store)
    trained = training_home.paths.models / "r1"
    files = sorted(p.relative_to(trained) for p in trained.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    for relative in files:
        assert (path / relative).read_bytes() == (trained / relative).read_bytes(), relative
    assert store.inspect("r1").status == "available"
    assert not list((store.root / ".staging").iterdir())  # nothing left half-written
    with pytest.raises(Exception, match="not registered"):
        RemoteRegistry(server.url).fetch_label("never-trained", store)


@needs_server
def test_a_replica_with_an_empty_home_serves_the_champion_and_follows_promotions(
    server: MlflowServer,
    training_home: Settings,
    lab: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("permeability.services.inference.app.REFRESH_SECONDS", 0.2)
    replica = settings_on(tmp_path / "replica", server.url)
    assert not replica.paths.models.exists()
    first = RemoteRegistry(server.url).champion_label()
    assert first is not None
    with TestClient(create_inference_app(replica)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["champion"] == first
        answer = client.post("/inference", json={"data_test": dict(SEED_SAMPLE)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == first

        label = f"p{free_port()}"  # a label no other test of the module trains
        train_and_promote(training_home, label, "LinearRegression")  # on the `train` host
        deadline = time.monotonic() + 20
        while client.get("/ready").json()["champion"] != label and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["champion"] == label
        assert sorted(ready.json()["loaded_versions"]) == sorted([first, label])
        answer = client.post("/inference", json={"data_test": dict(SEED_SAMPLE)})
        assert answer.json()["version"] == label
        assert answer.json()["model"] == "LinearRegression"

    served = ModelCache.from_settings(replica).get(first)
    local = ModelCache.from_settings(training_home).get(first)
    sample = lab.head(20)
    np.testing.assert_array_equal(
        served.model.predict_frame(sample), local.model.predict_frame(sample)
    )


@needs_server
def test_the_model_folder_is_a_cache_deleted_it_is_fetched_again(
    server: MlflowServer, training_home: Settings, tmp_path: Path
) -> None:
    replica = settings_on(tmp_path / "replica", server.url)
    cache = ModelCache.from_settings(replica, champion_ttl_s=0.01)
    cache.refresh()
    champion = cache.champion
    assert champion is not None
    assert champion in cache.loaded_versions
    shutil.rmtree(replica.paths.models / champion)
    cache.refresh()  # evicts the vanished version, fetches and loads it again
    assert champion in cache.loaded_versions
    assert (replica.paths.models / champion / "metadata.json").is_file()


def test_an_unreachable_server_is_reported_and_retried(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryRequestError, match="unreachable"):
        RemoteRegistry(down).champion()
    cache = ModelCache.from_settings(settings_on(tmp_path / "replica", down), champion_ttl_s=0.0)
    cache.refresh()
    assert cache.champion is None
    assert "unreachable" in (cache.champion_error or "")
    cache.refresh()  # asked again, not given up
    assert "unreachable" in (cache.champion_error or "")
    with pytest.raises(Exception, match="no champion"):
        cache.get(None)


@needs_server
def test_a_champion_that_cannot_be_fetched_is_unavailable_with_the_reason(
    server: MlflowServer, training_home: Settings, tmp_path: Path
) -> None:
    """The server says which label is champion but its files cannot be had (here: the
    artifact store lost them); the replica says why, and tries again later, not per request."""
    replica = settings_on(tmp_path / "replica", server.url)
    registry = RemoteRegistry(server.url)

    def broken_fetch(label: str, store: ModelStore) -> object:
        raise RegistryRequestError(f"{label}: the artifact store lost the files")

    cache = ModelCache(
        ModelStore(replica.paths.models),
        registry.champion_label,
        champion_ttl_s=60,
        fetch=broken_fetch,
    )
    cache.refresh()
    assert cache.champion == registry.champion_label()
    with pytest.raises(VersionUnavailableError, match="lost the files"):
        cache.get(None)
    states = {s.version: s for s in cache.states()}
    assert "lost the files" in (states[cache.champion or ""].reason or "")
    assert cache.load_errors == 1  # the request above got the remembered reason


def test_credentials_are_taken_as_mlflow_takes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with_user = RemoteRegistry("http://ana:s3cret@mlflow.internal:5000")
    request = with_user.client.build_request("GET", with_user.base_url)
    assert with_user.client.auth is not None
    signed = next(with_user.client.auth.sync_auth_flow(request))
    assert signed.headers["Authorization"].startswith("Basic ")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    with_token = RemoteRegistry("http://mlflow.internal:5000")
    assert with_token.client.headers["Authorization"] == "Bearer t0ken"
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    assert "Authorization" not in RemoteRegistry("http://mlflow.internal:5000").client.headers


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://bucket/mlflow/1/models/m-1/artifacts", "not served by the tracking server"),
        ("file:///srv/mlflow/artifacts/1/models/m-1", "not served by the tracking server"),
    ],
)
def test_an_artifact_store_the_server_does_not_proxy_is_refused_with_the_fix(
    uri: str, problem: str
) -> None:
    from permeability.io.registry_rest import _proxied_path

    with pytest.raises(RegistryRequestError, match=problem) as caught:
        _proxied_path(uri)
    assert "--serve-artifacts" in str(caught.value)
    assert _proxied_path("mlflow-artifacts:/1/models/m-1/artifacts") == "1/models/m-1/artifacts"
    assert _proxied_path("mlflow-artifacts://store:5000/1/models/m-1") == "1/models/m-1"


@pytest.mark.parametrize(
    "name", ["..", ".", "", "../../etc/cron.d/x", "/etc/passwd", "other/MLmodel"]
)
def test_a_listing_cannot_write_outside_the_folder(name: str) -> None:
    from permeability.io.registry_rest import _safe_name

    with pytest.raises(RegistryRequestError, match="artifact listing"):
        _safe_name(name, "1/models/m-1/artifacts")


def test_a_listing_names_files_relative_or_below_the_folder() -> None:
    from permeability.io.registry_rest import _safe_name

    assert _safe_name("MLmodel", "1/models/m-1/artifacts") == "MLmodel"
    assert _safe_name("1/models/m-1/artifacts/MLmodel", "1/models/m-1/artifacts") == "MLmodel"
