"""MLflow tracking on an embedded SQLite store: set-up, the write lock, runs, metric names."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from permeability.io.mlflow_setup import import_mlflow
from permeability.io.tracking import RegistryConfig, Tracking, safe_metric_name
from permeability.settings import Settings


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Tracking:
    """One store for the module: creating a SQLite tracking schema costs a second or more."""
    settings = Settings(home=tmp_path_factory.mktemp("tracking") / "storage")
    settings.paths.ensure()
    tracking = Tracking.from_settings(settings)
    tracking.setup()
    return tracking


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


def test_setup_creates_the_experiment_and_the_registered_model(tracking: Tracking) -> None:
    client = tracking.client
    experiment = client.get_experiment_by_name("permeability")

    assert experiment is not None
    assert experiment.artifact_location == tracking.config.artifact_location
    assert client.get_registered_model("permeability").name == "permeability"
    assert tracking.setup() == experiment.experiment_id  # idempotent


def test_a_run_keeps_params_metrics_tags_and_artifacts(tracking: Tracking, tmp_path: Path) -> None:
    run_id = tracking.start_run(run_name="r", tags={"feature_set_version": "3"}, start_time_ms=1)
    tracking.log_run_data(
        run_id,
        params={"model": "Ridge", "cv": None, "long": "x" * 7000},
        metrics={"mae": 1.25, "mae_PET_LDPE": 0.5},
        tags={"data_hash": "abc"},
    )
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.png").write_bytes(b"png")
    tracking.log_artifacts(run_id, tmp_path / "plots", "plots")
    tracking.finish_run(run_id)

    run = tracking.get_run(run_id)
    assert run.status == "FINISHED"
    assert run.params["model"] == "Ridge"
    assert run.params["cv"] == "None"
    assert len(run.params["long"]) == 6000
    assert run.metrics == {"mae": 1.25, "mae_PET_LDPE": 0.5}
    assert run.tags["feature_set_version"] == "3"
    assert run.tags["data_hash"] == "abc"
    assert tracking.list_artifacts(run_id) == ["plots/a.png"]


def test_a_failed_run_is_marked_failed(tracking: Tracking) -> None:
    run_id = tracking.start_run(run_name="doomed", tags={}, start_time_ms=1)
    tracking.finish_run(run_id, failed=True)
    assert tracking.get_run(run_id).status == "FAILED"


def test_the_write_lock_excludes_other_holders(tracking: Tracking) -> None:
    entered = threading.Event()
    events: list[str] = []

    def second() -> None:
        with tracking.write_lock():
            events.append("second")

    with tracking.write_lock():
        thread = threading.Thread(target=second)
        thread.start()
        entered.wait(0.3)
        events.append("first")
        time.sleep(0.1)
    thread.join()

    assert events == ["first", "second"]


def test_setup_leaves_the_users_tracking_variable_alone(tracking: Tracking, tmp_path: Path) -> None:
    tracking.setup()

    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert Settings(home=tmp_path / "two").resolved_tracking_uri.endswith("two/mlflow/mlflow.db")
    assert import_mlflow().get_tracking_uri() == tracking.config.tracking_uri


def test_a_tag_value_that_would_break_a_search_filter_is_refused(tracking: Tracking) -> None:
    with pytest.raises(ValueError, match="cannot be used in an MLflow search filter"):
        tracking.runs_tagged("training_attempt", "x' or '1'='1")


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
