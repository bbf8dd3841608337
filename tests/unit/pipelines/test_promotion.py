"""Promotion moves the champion alias; the version listing tells servable from broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from permeability.errors import ConflictError, InvalidInputError, NotFoundError
from permeability.io.notifications.history import History
from permeability.io.registry import Registry
from permeability.pipelines.promotion import list_versions, promote
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingSpec
from permeability.settings import Settings
from tests.builders import fill_feature_store


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Registry]:
    """Three versions: 'a' and 'b' intact, 'broken' with its model file deleted."""
    root = tmp_path_factory.mktemp("promotion")
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=300, seed=3)
    registry = Registry.from_settings(settings)
    registry.setup()
    for label in ("a", "b", "broken"):
        spec = TrainingSpec.parse(model="Ridge", version=label, test_size=0.25)
        train(settings, spec, registry=registry)
    (settings.paths.models / "broken" / "artifacts" / "permeability_model.joblib").unlink()
    return settings, registry


def _champion_label(registry: Registry) -> str:
    version = registry.client.get_model_version_by_alias("permeability", "champion")
    return str(version.tags["version_label"])


def test_promotion_moves_the_alias_and_records_who_when_why(
    trained_home: tuple[Settings, Registry],
) -> None:
    settings, registry = trained_home

    first = promote(settings, "a", reason="lowest mae", promoted_by="ana")
    assert _champion_label(registry) == "a"
    second = promote(settings, "b", reason="newer data")

    assert _champion_label(registry) == "b"
    assert first.previous_champion is None
    assert second.previous_champion == "a"
    assert second.alias == "champion"
    tags = registry.client.get_model_version("permeability", second.registry_version).tags
    assert tags["promotion_reason"] == "newer data"
    assert tags["previous_champion"] == "a"
    assert tags["promoted_by"] == second.promoted_by != ""
    assert tags["promoted_at"] == second.promoted_at
    first_tags = registry.client.get_model_version("permeability", first.registry_version).tags
    assert first_tags["promoted_by"] == "ana"


def test_a_new_champion_is_an_event_with_its_predecessor_and_reason(
    trained_home: tuple[Settings, Registry],
) -> None:
    settings, registry = trained_home
    promote(settings, "a", registry=registry)
    before = len(History(settings.paths.notifications).entries())
    promote(settings, "b", reason="wins on recent tests", promoted_by="ana", registry=registry)
    entries = History(settings.paths.notifications).entries()
    assert len(entries) == before + 1
    event = entries[-1].event
    assert (event.kind, event.severity, event.subject) == ("promoted", "info", "b")
    assert event.figures["previous"] == "a"
    assert event.figures["reason"] == "wins on recent tests"
    assert event.figures["promoted_by"] == "ana"
    assert event.run_id == list_versions(settings).versions[1].run_id  # b's training run


def test_a_refused_promotion_is_no_event(trained_home: tuple[Settings, Registry]) -> None:
    settings, registry = trained_home
    before = len(History(settings.paths.notifications).entries())
    with pytest.raises(ConflictError):
        promote(settings, "broken", registry=registry)
    assert len(History(settings.paths.notifications).entries()) == before


def test_the_listing_shows_status_metrics_and_lineage(
    trained_home: tuple[Settings, Registry],
) -> None:
    settings, registry = trained_home
    promote(settings, "b", registry=registry)

    report = list_versions(settings)
    by_label = {v.version: v for v in report.versions}

    assert [v.version for v in report.versions] == ["a", "b", "broken"]
    assert report.champion == "b"
    assert (by_label["b"].status, by_label["b"].is_champion) == ("champion", True)
    assert by_label["a"].status == "available"
    assert by_label["broken"].status == "unavailable"
    assert "permeability_model.joblib is missing" in str(by_label["broken"].problem)
    assert by_label["a"].metrics["mae"] > 0
    assert by_label["a"].lineage["feature_set_version"] is not None
    assert by_label["a"].lineage["data_hash"]
    assert by_label["a"].run_id is not None
    assert by_label["a"].created_at is not None
    assert report.registry_error is None


def test_a_broken_version_cannot_become_champion(trained_home: tuple[Settings, Registry]) -> None:
    settings, registry = trained_home
    promote(settings, "a", registry=registry)

    with pytest.raises(ConflictError, match="'broken' cannot be promoted"):
        promote(settings, "broken", registry=registry)
    assert _champion_label(registry) == "a"


@pytest.mark.parametrize(
    ("label", "error", "message"),
    [
        ("never-trained", NotFoundError, "'never-trained' is not in the model store"),
        ("../a", InvalidInputError, "must not contain '/'"),
        ("", InvalidInputError, "must not be empty"),
    ],
)
def test_unknown_and_hostile_labels_are_refused(
    trained_home: tuple[Settings, Registry], label: str, error: type[Exception], message: str
) -> None:
    settings, registry = trained_home
    before = _champion_label(registry) if registry.champion() else None

    with pytest.raises(error, match=message):
        promote(settings, label, registry=registry)

    assert (_champion_label(registry) if registry.champion() else None) == before


def test_a_version_only_the_registry_knows_is_listed_unavailable(
    trained_home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, _ = trained_home
    copy = Settings(home=tmp_path / "other-home")
    copy.paths.ensure()
    shutil.copy(settings.paths.mlflow_db, copy.paths.mlflow_db)  # same registry, empty store

    report = list_versions(copy)

    assert {v.version for v in report.versions} == {"a", "b", "broken"}
    assert {v.status for v in report.versions} == {"unavailable"}
    assert all("only the registry" in str(v.problem) for v in report.versions)


def test_an_unreachable_registry_degrades_the_listing(
    trained_home: tuple[Settings, Registry], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings, _ = trained_home
    broken_db = tmp_path / "not-a-db"
    broken_db.write_text("garbage", encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{broken_db}")
    offline = Settings(home=settings.home)

    report = list_versions(offline)

    assert report.registry_error is not None
    assert [v.version for v in report.versions] == ["a", "b", "broken"]
    assert {v.status for v in report.versions[:2]} == {"available"}


def test_an_empty_home_lists_nothing(settings: Settings) -> None:
    report = list_versions(settings)
    assert (report.versions, report.champion, report.registry_error) == ([], None, None)


def test_metadata_lineage_survives_in_the_listing(trained_home: tuple[Settings, Registry]) -> None:
    settings, _ = trained_home
    metadata = json.loads(
        (settings.paths.models / "a" / "metadata.json").read_text(encoding="utf-8")
    )
    listed = next(v for v in list_versions(settings).versions if v.version == "a")

    assert listed.lineage["registry_version"] == metadata["lineage"]["registry_version"]
    assert listed.registry_version == metadata["lineage"]["registry_version"]
