"""The MLflow adapter on an embedded SQLite store: runs, registration by label, the alias."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from permeability.errors import ConflictError, InvalidInputError, NotFoundError
from permeability.io.registry import (
    CHAMPION_ALIAS,
    LABEL_TAG,
    Registry,
    RegistryConfig,
    describe_uri,
    import_mlflow,
    is_remote_tracking,
    mlflow_ui_command,
    safe_metric_name,
)
from permeability.settings import Settings


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """One store for the module: creating a SQLite tracking schema costs a second or more."""
    settings = Settings(home=tmp_path_factory.mktemp("registry") / "storage")
    settings.paths.ensure()
    registry = Registry.from_settings(settings)
    registry.setup()
    return registry


def _model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    return folder


def _registered(registry: Registry, tmp_path: Path, label: str) -> tuple[str, str]:
    run_id = registry.start_run(run_name=label, tags={LABEL_TAG: label}, start_time_ms=0)
    model_id, _ = registry.create_logged_model(run_id, tags={LABEL_TAG: label})
    registry.upload_logged_model(run_id, model_id, _model_dir(tmp_path))
    version = registry.register(model_id=model_id, run_id=run_id, tags={LABEL_TAG: label})
    registry.finish_run(run_id)
    return run_id, version.version


def test_embedded_defaults_put_everything_under_the_home(settings: Settings) -> None:
    config = RegistryConfig.from_settings(settings)

    assert config.tracking_uri == f"sqlite:///{settings.paths.mlflow_db}"
    assert config.artifact_location == settings.paths.mlflow_artifacts.as_uri()
    assert config.lock_file.parent == settings.paths.mlflow_db.parent


def test_a_tracking_server_decides_where_artifacts_go(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    config = RegistryConfig.from_settings(Settings(home=home))

    assert config.tracking_uri == "http://127.0.0.1:5999"
    assert config.artifact_location is None


def test_setup_creates_the_experiment_and_the_registered_model(registry: Registry) -> None:
    client = registry.client
    experiment = client.get_experiment_by_name("permeability")

    assert experiment is not None
    assert experiment.artifact_location == registry.config.artifact_location
    assert client.get_registered_model("permeability").name == "permeability"
    assert registry.setup() == experiment.experiment_id  # idempotent


def test_telemetry_is_off_once_mlflow_is_imported() -> None:
    import_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_a_run_keeps_params_metrics_tags_and_artifacts(registry: Registry, tmp_path: Path) -> None:
    run_id = registry.start_run(run_name="r", tags={"feature_set_version": "3"}, start_time_ms=1)
    registry.log_run_data(
        run_id,
        params={"model": "Ridge", "cv": None, "long": "x" * 7000},
        metrics={"mae": 1.25, "mae_PET_LDPE": 0.5},
        tags={"data_hash": "abc"},
    )
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(b"png")
    registry.log_artifacts(run_id, tmp_path / "plots", "plots")
    registry.finish_run(run_id)

    run = registry.get_run(run_id)
    assert run.status == "FINISHED"
    assert run.params["model"] == "Ridge"
    assert run.params["cv"] == "None"
    assert len(run.params["long"]) == 6000
    assert run.metrics == {"mae": 1.25, "mae_PET_LDPE": 0.5}
    assert run.tags["feature_set_version"] == "3"
    assert run.tags["data_hash"] == "abc"
    assert registry.list_artifacts(run_id) == ["plots/a.png"]


def test_a_failed_run_is_marked_failed(registry: Registry) -> None:
    run_id = registry.start_run(run_name="doomed", tags={}, start_time_ms=1)
    registry.finish_run(run_id, failed=True)
    assert registry.get_run(run_id).status == "FAILED"


def test_registered_versions_are_found_by_label(registry: Registry, tmp_path: Path) -> None:
    run_id, version = _registered(registry, tmp_path, "label-a")

    found = registry.find_label("label-a")
    assert found is not None
    assert (found.version, found.run_id, found.label) == (version, run_id, "label-a")
    assert found.source.startswith("models:/m-")
    assert registry.find_label("label-unknown") is None
    assert "label-a" in {v.label for v in registry.list_versions()}


def test_a_label_cannot_be_registered_twice(registry: Registry, tmp_path: Path) -> None:
    _registered(registry, tmp_path, "label-b")
    before = len(registry.list_versions())
    other = tmp_path / "other"
    other.mkdir()

    with pytest.raises(ConflictError, match="'label-b' is already registered"):
        _registered(registry, other, "label-b")
    assert len(registry.list_versions()) == before


def test_promotion_moves_the_champion_alias_and_records_why(
    registry: Registry, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first = _registered(registry, tmp_path / "a", "promo-1")
    _, second = _registered(registry, tmp_path / "b", "promo-2")

    registry.promote("promo-1", tags={"promoted_by": "ana", "promotion_reason": "best mae"})
    registry.promote("promo-2", tags={"promoted_by": "luis"})

    client = registry.client
    assert str(client.get_model_version_by_alias("permeability", CHAMPION_ALIAS).version) == second
    champion = registry.champion()
    assert champion is not None
    assert (champion.label, champion.is_champion) == ("promo-2", True)
    assert client.get_model_version("permeability", first).tags["promotion_reason"] == "best mae"
    assert client.get_model_version("permeability", second).tags["promoted_by"] == "luis"
    listed = {v.label: v.is_champion for v in registry.list_versions()}
    assert listed["promo-2"] is True
    assert listed["promo-1"] is False


def test_promoting_an_unknown_label_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        registry.promote("nope", tags={})


def test_no_champion_before_any_promotion(registry: Registry) -> None:
    other_model = replace(registry.config, model_name="permeability-untouched")
    fresh = Registry(other_model)  # same store, a registered model nobody trained yet
    fresh.setup()
    assert fresh.champion() is None
    assert fresh.list_versions() == []


def test_listing_a_never_created_store_creates_nothing(settings: Settings) -> None:
    registry = Registry.from_settings(settings)

    assert registry.list_versions() == []
    assert not settings.paths.mlflow_db.exists()


def test_concurrent_writers_from_threads_all_land(registry: Registry, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def writer(index: int) -> None:
        folder = tmp_path / f"w{index}"
        folder.mkdir()
        try:
            barrier.wait()
            _registered(registry, folder, f"thread-{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    labels = [v.label for v in registry.list_versions()]
    assert all(labels.count(f"thread-{i}") == 1 for i in range(4))


def test_the_write_lock_excludes_other_holders(registry: Registry) -> None:
    entered = threading.Event()
    events: list[str] = []

    def second() -> None:
        with registry.write_lock():
            events.append("second")

    with registry.write_lock():
        thread = threading.Thread(target=second)
        thread.start()
        entered.wait(0.3)
        events.append("first")
        time.sleep(0.1)
    thread.join()

    assert events == ["first", "second"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("PET/LDPE", "mae_PET_LDPE"), ("BOPP MET", "mae_BOPP_MET"), ("///", "mae_unnamed")],
)
def test_structure_names_become_safe_metric_names(name: str, expected: str) -> None:
    assert safe_metric_name("mae", name) == expected


def test_colliding_safe_names_are_kept_apart() -> None:
    taken: set[str] = set()
    names = [safe_metric_name("mae", n, taken) for n in ("BOPP MET", "BOPP-MET", "BOPP/MET")]
    assert names == ["mae_BOPP_MET", "mae_BOPP_MET_2", "mae_BOPP_MET_3"]


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


def test_setup_leaves_the_users_tracking_variable_alone(registry: Registry, tmp_path: Path) -> None:
    registry.setup()

    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert Settings(home=tmp_path / "two").resolved_tracking_uri.endswith("two/mlflow/mlflow.db")
    assert import_mlflow().get_tracking_uri() == registry.config.tracking_uri


def test_runs_models_and_versions_are_found_by_tag(registry: Registry, tmp_path: Path) -> None:
    tags = {LABEL_TAG: "tagged", "training_attempt": "attempt-1"}
    run_id = registry.start_run(run_name="tagged", tags=tags, start_time_ms=0)
    model_id, _ = registry.create_logged_model(run_id, tags=tags)
    registry.upload_logged_model(run_id, model_id, _model_dir(tmp_path))
    version = registry.register(model_id=model_id, run_id=run_id, tags=tags)
    registry.set_run_tags(run_id, {"note": "seen"})

    (run,) = registry.runs_tagged("training_attempt", "attempt-1")
    assert (run.run_id, run.status, run.tags["note"]) == (run_id, "RUNNING", "seen")
    assert registry.logged_models_tagged("training_attempt", "attempt-1") == {model_id: "READY"}
    assert [v.version for v in registry.versions_tagged("training_attempt", "attempt-1")] == [
        version.version
    ]
    assert registry.runs_tagged("training_attempt", "attempt-2") == []
    assert registry.versions_tagged("training_attempt", "attempt-2") == []
    assert registry.logged_models_tagged("training_attempt", "attempt-2") == {}
    registry.finish_run(run_id)


def test_a_tag_value_that_would_break_a_search_filter_is_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="cannot be used in an MLflow search filter"):
        registry.runs_tagged("training_attempt", "x' or '1'='1")
