"""The training job: what lands in MLflow and the model store, and what a refusal leaves."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.errors import (
    ConflictError,
    EmptyFeatureStoreError,
    InvalidInputError,
)
from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingResult, TrainingSpec
from permeability.settings import Settings
from tests.builders import fill_feature_store

EXPECTED_ARTIFACTS = {
    "plots/predicted_vs_measured.png",
    "plots/residuals.png",
    "plots/per_structure_errors.png",
    "pca/pca_explained_variance.png",
    "pca/explained_variance.csv",
    "tables/per_structure_errors.csv",
    "tables/test_predictions.csv",
    "metadata.json",
}


def snapshot(settings: Settings, registry: Registry) -> dict[str, Any]:
    """Everything a training could leave behind, for before/after comparisons."""
    models = settings.paths.models
    hidden = [
        p.relative_to(models).as_posix()
        for name in (".staging", ".reservations")
        for p in (models / name).glob("*")
    ]
    return {
        "folders": ModelStore(models).labels(),
        "hidden": sorted(hidden),
        "versions": [v.version for v in registry.list_versions()],
        "runs": registry.count_runs() if registry.has_store() else 0,
    }


@pytest.fixture(scope="module")
def stocked_registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Registry]:
    root = tmp_path_factory.mktemp("training-job")
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=400, seed=5)
    registry = Registry.from_settings(settings)
    registry.setup()
    return settings, registry


@pytest.fixture(scope="module")
def trained(stocked_registry: tuple[Settings, Registry]) -> TrainingResult:
    settings, _ = stocked_registry
    spec = TrainingSpec.parse(
        model="LinearRegression", version="0.1", test_size=0.25, cv=3, description="first"
    )
    return train(settings, spec)


def test_the_result_names_version_run_lineage_and_metrics(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    settings, registry = stocked_registry
    from permeability.io.feature_store import FeatureStore

    features = FeatureStore(settings.resolved_feature_store_uri).read()
    assert trained.version == "0.1"
    assert (trained.model, trained.chosen_model) == ("LinearRegression", "LinearRegression")
    assert trained.feature_set_version == features.version
    assert trained.data_hash == features.data_hash
    assert {"r2", "mae", "mse", "rmse", "mape", "coverage"} <= set(trained.metrics)
    assert trained.cv_scores
    # Small data: cross-conformal, every training row fits the model and calibrates it.
    assert trained.n_train + trained.n_test == len(features.frame)
    assert trained.n_calibration == trained.n_train
    assert set(trained.per_structure) == set(features.frame["Estructura"].unique())
    assert registry.get_run(trained.run_id).status == "FINISHED"


def test_the_run_carries_params_metrics_lineage_tags_and_artifacts(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    _, registry = stocked_registry
    run = registry.get_run(trained.run_id)

    assert run.params["model"] == "LinearRegression"
    assert run.params["chosen_model"] == "LinearRegression"
    assert run.params["test_size"] == "0.25"
    assert run.params["cv"] == "3"
    assert run.params["version"] == "0.1"
    assert run.params["calibration_method"] == "cross-conformal"
    assert run.params["description"] == "first"
    assert run.params["hp_fit_intercept"] == "True"
    assert run.metrics["mae"] == pytest.approx(trained.metrics["mae"])
    assert run.metrics["r2"] == pytest.approx(trained.metrics["r2"])
    structure_metrics = {k for k in run.metrics if k.startswith("mae_")}
    assert len(structure_metrics) == len(trained.per_structure)
    assert all(k.replace("mae_", "").replace("_", "").isalnum() for k in structure_metrics)
    assert any(k.startswith("cv_") for k in run.metrics)
    assert run.tags["version_label"] == "0.1"
    assert run.tags["feature_set_version"] == str(trained.feature_set_version)
    assert run.tags["data_hash"] == trained.data_hash
    assert run.tags["feature_store_uri"]
    artifacts = set(registry.list_artifacts(trained.run_id))
    assert artifacts >= EXPECTED_ARTIFACTS
    assert any(a.startswith("pca/feature_store/") for a in artifacts)  # the store's own copy


def test_the_registry_version_is_tagged_with_label_and_lineage(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    _, registry = stocked_registry
    version = registry.client.get_model_version("permeability", trained.registry_version)

    assert version.tags["version_label"] == "0.1"
    assert version.tags["feature_set_version"] == str(trained.feature_set_version)
    assert version.tags["run_id"] == trained.run_id
    assert version.run_id == trained.run_id


def test_the_model_store_keeps_the_mlflow_model_and_its_metadata(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    settings, _ = stocked_registry
    folder = settings.paths.models / "0.1"
    metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))

    assert Path(trained.model_path) == folder
    assert (folder / "MLmodel").is_file()
    assert metadata["version"] == "0.1"
    assert metadata["chosen_model"] == "LinearRegression"
    assert metadata["metrics"]["mae"] == pytest.approx(trained.metrics["mae"])
    assert metadata["lineage"]["run_id"] == trained.run_id
    assert metadata["lineage"]["registry_version"] == trained.registry_version
    assert metadata["lineage"]["feature_set_version"] == trained.feature_set_version
    assert metadata["lineage"]["data_hash"] == trained.data_hash
    assert metadata["created_at"].endswith("+00:00")
    assert {"numpy", "pandas", "scikit-learn", "scipy", "mlflow", "python"} <= set(
        metadata["libraries"]
    )
    assert metadata["n_train"] == trained.n_train
    assert metadata["n_test"] == trained.n_test
    assert sum(metadata["known_structures"].values()) == trained.n_train
    assert metadata["interval_level"] == pytest.approx(0.9)
    requirements = (folder / "requirements.txt").read_text(encoding="utf-8").split()
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "scikit-learn", "numpy"}
    assert all("==" in r for r in requirements)


def test_stored_and_registered_models_predict_like_the_trained_one(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    from permeability.io import pyfunc
    from permeability.io.feature_store import FeatureStore

    settings, _ = stocked_registry
    frame = FeatureStore(settings.resolved_feature_store_uri).read().frame.head(25)
    reference = pyfunc.load_permeability_model(settings.paths.models / "0.1")
    inputs = pyfunc.prepare_inputs(frame[list(pyfunc.model_signature().inputs.input_names())])

    from_store = pyfunc.load_pyfunc_model(settings.paths.models / "0.1").predict(inputs)
    from_registry = pyfunc.load_pyfunc_model(
        f"models:/permeability/{trained.registry_version}"
    ).predict(inputs)

    expected = reference.predict_frame(frame)
    np.testing.assert_allclose(from_store["prediction"], expected, rtol=1e-12)
    np.testing.assert_allclose(from_registry["prediction"], expected, rtol=1e-12)
    assert (from_store["lower"] <= from_store["prediction"]).all()
    assert (from_store["prediction"] <= from_store["upper"]).all()


def test_a_new_feature_set_version_changes_the_lineage(
    tmp_path: Path, stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    settings, _ = stocked_registry
    newer = fill_feature_store(settings, tmp_path, rows=80, seed=99)

    result = train(settings, TrainingSpec.parse(model="Ridge", version="0.2", test_size=0.3))

    assert result.feature_set_version == newer
    assert newer > trained.feature_set_version
    assert result.data_hash != trained.data_hash


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"model": "LinearRegression", "version": "0.1"}, ConflictError, "'0.1' already exists"),
        ({"model": "Ridge", "params": {"alpha": -1}}, InvalidInputError, "alpha"),
        ({"model": "Ridge", "params": {"bogus": 1}}, InvalidInputError, "bogus"),
        ({"model": "auto", "params": {"alpha": 1}}, InvalidInputError, "params"),
    ],
)
def test_refused_trainings_write_nothing(
    stocked_registry: tuple[Settings, Registry],
    trained: TrainingResult,
    fields: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    settings, registry = stocked_registry
    before = snapshot(settings, registry)
    spec = TrainingSpec.parse(**{"version": "refused", "test_size": 0.25, **fields})

    with pytest.raises(error, match=message):
        train(settings, spec)

    assert snapshot(settings, registry) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "Nope"}, "model 'Nope' is not in the catalogue; valid models: LinearRegression"),
        ({"version": "../x"}, "version: version label '../x' must not contain '/'"),
        ({"version": ""}, "version: version label must not be empty"),
        ({"test_size": 1.0}, "test_size: Input should be less than 1"),
        ({"test_size": 0.0}, "test_size: Input should be greater than 0"),
        ({"cv": 1}, "cv: Input should be greater than or equal to 2"),
        ({"description": "x" * 501}, "description: String should have at most 500"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_specs_name_the_field_and_the_problem(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"model": "LinearRegression", "version": "0.1", "test_size": 0.25}
    with pytest.raises(InvalidInputError) as caught:
        TrainingSpec.parse(**{**base, **fields})
    assert message in str(caught.value)


def test_an_empty_feature_store_is_refused_before_anything_is_written(settings: Settings) -> None:
    registry = Registry.from_settings(settings)

    with pytest.raises(EmptyFeatureStoreError):
        train(settings, TrainingSpec.parse(model="Ridge", version="0.1", test_size=0.25))

    assert snapshot(settings, registry) == {
        "folders": [],
        "hidden": [],
        "versions": [],
        "runs": 0,
    }
    assert not settings.paths.mlflow_db.exists()  # refused before MLflow was even set up


def test_a_failure_while_recording_is_rolled_back(
    monkeypatch: pytest.MonkeyPatch, stocked_registry: tuple[Settings, Registry]
) -> None:
    from permeability.io.model_store import Reservation

    settings, registry = stocked_registry
    before = snapshot(settings, registry)
    runs_before = {r.info.run_id for r in registry.client.search_runs([registry.experiment_id])}

    def broken_publish(self: Reservation, metadata: Any) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Reservation, "publish", broken_publish)
    spec = TrainingSpec.parse(model="Ridge", version="doomed", test_size=0.25)
    with pytest.raises(OSError, match="disk full"):
        train(settings, spec)
    monkeypatch.undo()

    after = snapshot(settings, registry)
    new_runs = [
        r
        for r in registry.client.search_runs([registry.experiment_id])
        if r.info.run_id not in runs_before
    ]
    assert [r.info.status for r in new_runs] == ["FAILED"]
    assert (after["folders"], after["hidden"], after["versions"]) == (
        before["folders"],
        before["hidden"],
        before["versions"],
    )
    retried = train(settings, spec)  # the label was released
    assert retried.version == "doomed"


def test_a_label_known_only_to_the_registry_is_a_conflict(
    tmp_path: Path, stocked_registry: tuple[Settings, Registry]
) -> None:
    settings, registry = stocked_registry
    run_id = registry.start_run(run_name="elsewhere", tags={}, start_time_ms=0)
    model_id, _ = registry.create_logged_model(run_id, tags={})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    registry.upload_logged_model(run_id, model_id, tmp_path / "m")
    registry.register(model_id=model_id, run_id=run_id, tags={"version_label": "remote-1"})
    before = snapshot(settings, registry)

    spec = TrainingSpec.parse(model="Ridge", version="remote-1", test_size=0.25)
    with pytest.raises(ConflictError, match="already registered"):
        train(settings, spec)

    assert snapshot(settings, registry) == before


def test_test_predictions_are_logged_as_a_table(
    stocked_registry: tuple[Settings, Registry], trained: TrainingResult
) -> None:
    _, registry = stocked_registry
    local = registry.client.download_artifacts(trained.run_id, "tables/test_predictions.csv")
    table = pd.read_csv(local)

    assert len(table) == trained.n_test
    assert {"Muestra", "Estructura", "measured", "predicted", "lower", "upper"} <= set(table)


def test_an_undo_that_fails_too_is_completed_by_the_next_attempt(
    monkeypatch: pytest.MonkeyPatch, stocked_registry: tuple[Settings, Registry]
) -> None:
    from permeability.io.model_store import Reservation
    from permeability.io.training_runs import TrainingJournal

    settings, registry = stocked_registry

    def broken_publish(self: Reservation, metadata: Any) -> Path:
        raise OSError("disk full")

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("tracking server gone")

    monkeypatch.setattr(Reservation, "publish", broken_publish)
    monkeypatch.setattr(Registry, "delete_version", unreachable)  # the undo's first write
    spec = TrainingSpec.parse(model="Ridge", version="undo-failed", test_size=0.25)
    with pytest.raises(OSError, match="disk full"):
        train(settings, spec)
    monkeypatch.undo()
    left = registry.find_label("undo-failed")
    assert left is not None  # before reconciliation existed, this burnt the label for good
    assert TrainingJournal(settings.paths.models).has("undo-failed")

    retried = train(settings, spec)

    assert retried.version == "undo-failed"
    assert registry.get_run(str(left.run_id)).status == "FAILED"
    found = registry.find_label("undo-failed")
    assert found is not None
    assert found.run_id == retried.run_id
    assert not TrainingJournal(settings.paths.models).has("undo-failed")


def test_a_failure_after_publication_keeps_the_version_for_reconciliation(
    monkeypatch: pytest.MonkeyPatch, stocked_registry: tuple[Settings, Registry]
) -> None:
    from permeability.io.training_runs import TrainingJournal
    from permeability.pipelines.training_recovery import reconcile_trainings

    settings, registry = stocked_registry

    def unreachable(self: Registry, run_id: str, *, failed: bool = False) -> None:
        raise ConnectionError("tracking server gone")

    monkeypatch.setattr(Registry, "finish_run", unreachable)
    spec = TrainingSpec.parse(model="Ridge", version="late-failure", test_size=0.25)
    with pytest.raises(ConnectionError):
        train(settings, spec)
    monkeypatch.undo()
    kept = registry.find_label("late-failure")
    assert kept is not None  # not undone: the published folder is a complete version
    assert ModelStore(settings.paths.models).inspect("late-failure").status == "available"
    assert registry.get_run(str(kept.run_id)).status == "RUNNING"

    (done,) = reconcile_trainings(settings, logging.getLogger("test"), registry=registry)

    assert (done.label, done.outcome) == ("late-failure", "finished")
    assert registry.get_run(str(kept.run_id)).status == "FINISHED"
    assert not TrainingJournal(settings.paths.models).has("late-failure")
