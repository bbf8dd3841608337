"""Reconciling dead trainings: unpublished ones rolled back, published ones finished, live
ones and other stores' versions left alone, MLflow failures retried later."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from permeability.io.model_store import METADATA_FILE, ModelStore
from permeability.io.registry import Registry
from permeability.io.training_runs import ATTEMPT_TAG, TrainingAttempt, TrainingJournal
from permeability.pipelines.training_recovery import (
    OUTCOME_TAG,
    reconcile_all,
    reconcile_label,
    reconcile_trainings,
)
from permeability.settings import Settings

LOG = logging.getLogger("test.recovery")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Registry]:
    settings = Settings(home=tmp_path_factory.mktemp("recovery") / "storage")
    settings.paths.ensure()
    registry = Registry.from_settings(settings)
    registry.setup()
    return settings, registry


def _store(settings: Settings) -> ModelStore:
    return ModelStore(settings.paths.models)


def _dead_attempt(
    settings: Settings, registry: Registry, label: str, tmp_path: Path, *, upto: str
) -> tuple[TrainingAttempt, dict[str, str]]:
    """What a training killed after step ``upto`` leaves: a journal record and MLflow entries."""
    attempt = TrainingJournal(settings.paths.models).begin(label)
    created: dict[str, str] = {}
    if upto == "recorded":
        return attempt, created
    tags = {ATTEMPT_TAG: attempt.attempt_id, "version_label": label}
    created["run"] = registry.start_run(run_name=label, tags=tags, start_time_ms=0)
    created["model"], _ = registry.create_logged_model(created["run"], tags=tags)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    registry.upload_logged_model(created["run"], created["model"], folder)
    created["version"] = registry.register(
        model_id=created["model"], run_id=created["run"], tags=tags
    ).version
    staging = settings.paths.models / ".staging" / label
    staging.mkdir(parents=True)
    (staging / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    if upto == "published":
        metadata = {"version": label, "files": []}
        (staging / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")
        staging.rename(settings.paths.models / label)
    return attempt, created


def test_an_unpublished_attempt_is_rolled_back_and_its_label_freed(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    attempt, created = _dead_attempt(settings, registry, "unpub", tmp_path, upto="registered")

    done = reconcile_label(_store(settings), registry, "unpub", LOG)

    assert done is not None
    assert (done.outcome, done.owner) == ("rolled_back", attempt.owner)
    assert (done.runs, done.registry_versions_deleted) == ((created["run"],), (created["version"],))
    assert registry.find_label("unpub") is None
    run = registry.get_run(created["run"])
    assert run.status == "FAILED"
    assert run.tags[OUTCOME_TAG].startswith(f"failed: its process ({attempt.owner}) ended")
    assert str(registry.client.get_logged_model(created["model"]).status) == "FAILED"
    assert not (settings.paths.models / ".staging" / "unpub").exists()
    assert not TrainingJournal(settings.paths.models).has("unpub")


def test_a_published_attempt_is_finished_and_kept(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    _, created = _dead_attempt(settings, registry, "pub", tmp_path, upto="published")

    done = reconcile_label(_store(settings), registry, "pub", LOG)

    assert done is not None
    assert (done.outcome, done.runs, done.registry_versions_deleted) == (
        "finished",
        (created["run"],),
        (),
    )
    assert registry.get_run(created["run"]).status == "FINISHED"
    assert METADATA_FILE in registry.list_artifacts(created["run"])
    found = registry.find_label("pub")
    assert found is not None
    assert found.version == created["version"]
    assert _store(settings).exists("pub")


def test_an_attempt_killed_before_touching_mlflow_just_loses_its_record(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    _dead_attempt(settings, registry, "early", tmp_path, upto="recorded")

    done = reconcile_label(_store(settings), registry, "early", LOG)

    assert done is not None
    assert (done.outcome, done.runs, done.registry_versions_deleted) == ("rolled_back", (), ())
    assert not TrainingJournal(settings.paths.models).has("early")


def test_a_live_owner_is_left_alone(home: tuple[Settings, Registry], tmp_path: Path) -> None:
    settings, registry = home
    _, created = _dead_attempt(settings, registry, "alive", tmp_path, upto="registered")
    store = _store(settings)

    with store.lock_label("alive"):  # what the training process holds while it lives
        assert reconcile_label(store, registry, "alive", LOG) is None
        assert reconcile_all(store, registry, LOG) == []
        assert registry.get_run(created["run"]).status == "RUNNING"
        assert registry.find_label("alive") is not None

    done = reconcile_label(store, registry, "alive", LOG)  # the owner is gone now
    assert done is not None
    assert done.outcome == "rolled_back"


def test_versions_registered_by_another_store_are_never_touched(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    run = registry.start_run(run_name="elsewhere", tags={}, start_time_ms=0)
    model, _ = registry.create_logged_model(run, tags={})
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    registry.upload_logged_model(run, model, tmp_path / "m")
    registry.register(model_id=model, run_id=run, tags={"version_label": "remote"})

    assert reconcile_trainings(settings, LOG, registry=registry) == []
    assert reconcile_label(_store(settings), registry, "remote", LOG) is None
    assert registry.find_label("remote") is not None
    assert registry.get_run(run).status == "RUNNING"


class _Unreachable:
    """A registry whose tracking server is down."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("tracking server unreachable")

        return fail


def test_an_mlflow_failure_keeps_the_record_for_the_next_reconciliation(
    home: tuple[Settings, Registry], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, registry = home
    _dead_attempt(settings, registry, "retry", tmp_path, upto="registered")
    store = _store(settings)

    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert reconcile_all(store, _Unreachable(), LOG) == []

    assert "could not reconcile training retry" in caplog.text
    assert TrainingJournal(settings.paths.models).has("retry")
    assert registry.find_label("retry") is not None
    (done,) = reconcile_all(store, registry, LOG)
    assert (done.label, done.outcome) == ("retry", "rolled_back")


def test_nothing_on_record_means_mlflow_is_not_even_opened(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "fresh")

    assert reconcile_trainings(settings, LOG) == []
    assert not settings.paths.mlflow_db.exists()
