"""The MLflow registry on an embedded SQLite store: registration by label, the alias."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from permeability.errors import ConflictError, NotFoundError
from permeability.io.registry import CHAMPION_ALIAS, LABEL_TAG, Registry
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
