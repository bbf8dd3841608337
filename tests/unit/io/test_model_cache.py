"""Serving models: loaded once, the champion followed without restart, broken versions isolated."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from permeability.io.model_cache import (
    MODEL_FILE,
    SERVED_FILE,
    ModelCache,
    NoChampionError,
    UnknownVersionError,
    VersionUnavailableError,
)
from permeability.io.model_store import ModelStore
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.unit.services.inference_support import Champion, publish_version, tiny_model


def _break_served_file(settings: Settings, label: str) -> None:
    """The version's served file made unreadable: it then loads (or fails) from its model file."""
    (settings.paths.models / label / SERVED_FILE).write_bytes(b"not a pickle either")


@pytest.fixture
def champion() -> Champion:
    return Champion()


@pytest.fixture
def cache(settings: Settings, champion: Champion) -> ModelCache:
    publish_version(settings, "0.1", tiny_model())
    publish_version(settings, "0.2", tiny_model("Ridge"))
    return ModelCache(ModelStore(settings.paths.models), champion.resolve, champion_ttl_s=0.05)


def test_a_version_is_loaded_once_and_then_served_from_memory(cache: ModelCache) -> None:
    assert cache.peek("0.1") is None
    first = cache.get("0.1")
    assert first.version == "0.1"
    assert first.model_name == "LinearRegression"
    assert "BOPP" in first.known_structures
    assert cache.get("0.1") is first
    assert cache.peek("0.1") is first
    assert cache.loaded_versions == ["0.1"]


def test_no_version_means_the_champion(cache: ModelCache, champion: Champion) -> None:
    champion.label = "0.2"
    assert cache.get(None).version == "0.2"
    assert cache.peek(None) is not None


def test_without_a_champion_the_error_lists_the_versions(cache: ModelCache) -> None:
    with pytest.raises(NoChampionError) as caught:
        cache.get(None)
    assert caught.value.available == ["0.1", "0.2"]
    assert "promote" in str(caught.value)


@pytest.mark.parametrize("label", ["9.9", "../0.1", "a/b", ""])
def test_unknown_or_hostile_version_is_not_found_with_the_list(
    cache: ModelCache, label: str
) -> None:
    with pytest.raises(UnknownVersionError) as caught:
        cache.get(label)
    assert caught.value.available == ["0.1", "0.2"]
    assert "0.1, 0.2" in str(caught.value)


def test_a_promotion_takes_effect_without_a_restart(cache: ModelCache, champion: Champion) -> None:
    champion.label = "0.1"
    cache.refresh()
    assert cache.get(None).version == "0.1"
    cache.start()
    try:
        champion.label = "0.2"
        deadline = time.monotonic() + 5
        while cache.champion != "0.2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.get(None).version == "0.2"
        deadline = time.monotonic() + 5
        while cache.peek(None) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.peek(None) is not None  # the refresher preloads the new champion
    finally:
        cache.stop()


def test_an_unreachable_registry_keeps_the_last_champion(
    cache: ModelCache, champion: Champion
) -> None:
    champion.label = "0.1"
    cache.refresh_champion()
    champion.fail = ConnectionError("tracking server down")
    assert cache.refresh_champion() == "0.1"
    assert cache.champion_error is not None
    assert "tracking server down" in cache.champion_error
    assert cache.get(None).version == "0.1"


def test_a_corrupt_model_file_makes_only_that_version_unavailable(
    settings: Settings, cache: ModelCache
) -> None:
    _break_served_file(settings, "0.2")
    model_file = settings.paths.models / "0.2" / MODEL_FILE
    model_file.write_bytes(b"this is not a pickle")
    with pytest.raises(VersionUnavailableError) as caught:
        cache.get("0.2")
    assert "cannot be loaded" in caught.value.reason
    assert cache.get("0.1").version == "0.1"
    with pytest.raises(VersionUnavailableError):
        cache.get("0.2")
    assert cache.load_errors == 1  # remembered, not re-read on every request
    states = {s.version: s for s in cache.states()}
    assert states["0.2"].status == "unavailable"
    assert states["0.2"].reason is not None
    assert "cannot be loaded" in states["0.2"].reason
    assert states["0.1"].status == "available"
    assert states["0.1"].loaded


def test_a_repaired_model_file_is_picked_up(settings: Settings, cache: ModelCache) -> None:
    _break_served_file(settings, "0.2")
    model_file = settings.paths.models / "0.2" / MODEL_FILE
    good = model_file.read_bytes()
    model_file.write_bytes(b"garbage")
    with pytest.raises(VersionUnavailableError):
        cache.get("0.2")
    model_file.write_bytes(good)
    assert cache.get("0.2").version == "0.2"


def test_a_missing_model_file_is_reported(settings: Settings, cache: ModelCache) -> None:
    (settings.paths.models / "0.2" / MODEL_FILE).unlink()
    states = {s.version: s for s in cache.states()}
    assert states["0.2"].status == "unavailable"
    with pytest.raises(VersionUnavailableError, match="missing"):
        cache.get("0.2")


def test_a_file_removed_after_loading_evicts_the_version(
    settings: Settings, cache: ModelCache
) -> None:
    cache.get("0.2")
    (settings.paths.models / "0.2" / MODEL_FILE).unlink()
    cache.check_files()
    assert "0.2" not in cache.loaded_versions
    with pytest.raises(VersionUnavailableError):
        cache.get("0.2")
    assert cache.get("0.1").version == "0.1"


def test_a_file_that_is_not_a_model_is_refused(settings: Settings, cache: ModelCache) -> None:
    _break_served_file(settings, "0.2")
    import joblib

    joblib.dump({"not": "a model"}, settings.paths.models / "0.2" / MODEL_FILE)
    with pytest.raises(VersionUnavailableError, match="not a model"):
        cache.get("0.2")


def test_states_list_every_version_and_flag_the_champion(
    cache: ModelCache, champion: Champion
) -> None:
    champion.label = "0.2"
    cache.refresh_champion()
    states = {s.version: s for s in cache.states()}
    assert set(states) == {"0.1", "0.2"}
    assert states["0.2"].champion
    assert not states["0.1"].champion
    assert states["0.1"].model_name == "LinearRegression"
    assert states["0.1"].metrics == {"mae": 1.0}


def test_a_champion_missing_from_this_store_is_listed_as_unavailable(
    cache: ModelCache, champion: Champion
) -> None:
    champion.label = "7.0"
    cache.refresh_champion()
    states = {s.version: s for s in cache.states()}
    assert states["7.0"].status == "unavailable"
    assert states["7.0"].champion
    with pytest.raises(UnknownVersionError):
        cache.get(None)


@pytest.mark.slow
def test_the_registry_resolver_follows_mlflow_aliases(settings: Settings, tmp_path: Path) -> None:
    """The real resolver against an embedded MLflow registry (no model store needed)."""
    from permeability.io.model_cache import registry_champion_resolver
    from permeability.io.registry import CHAMPION_ALIAS, LABEL_TAG, Registry
    from permeability.io.tracking import REGISTERED_MODEL_NAME

    registry = Registry.from_settings(settings)
    registry.setup()
    client = registry.client
    versions = []
    for label in ("0.1", "0.2"):
        created = client.create_model_version(
            REGISTERED_MODEL_NAME, source=str(tmp_path), tags={LABEL_TAG: label}
        )
        versions.append(created.version)
    resolve = registry_champion_resolver(settings)
    assert resolve() is None
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, versions[0])
    assert resolve() == "0.1"
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, versions[1])
    assert resolve() == "0.2"


@pytest.mark.slow
def test_a_version_trained_and_promoted_by_the_training_service_is_served(
    settings: Settings, tmp_path: Path
) -> None:
    """The real chain: acquire -> train (MLflow + model store) -> promote -> served here."""
    import pandas as pd

    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec
    from permeability.synthetic.generator import generate_lab_data

    frame = generate_lab_data(400, 5, mess=None)
    acquire(settings, str(write_lab_export(frame, tmp_path / "lab.csv")))
    trained = train(settings, TrainingSpec.parse(model="Ridge", version="r1", test_size=0.25))
    cache = ModelCache.from_settings(settings, champion_ttl_s=60)
    with pytest.raises(NoChampionError):
        cache.get(None)
    promote(settings, "r1")
    cache.refresh()
    served = cache.get(None)
    assert served.version == "r1"
    assert served.model_name == trained.chosen_model
    assert served.metadata["version"] == "r1"
    states = {s.version: s for s in cache.states()}
    assert states["r1"].champion
    assert states["r1"].loaded
    from permeability.io.pyfunc import load_permeability_model

    stored = load_permeability_model(settings.paths.models / "r1")  # the training side's reader
    sample = pd.DataFrame(frame.head(50))
    np.testing.assert_array_equal(served.model.predict_frame(sample), stored.predict_frame(sample))


# -- a replica: champion fetched when missing here ------------------------------------------


class Elsewhere:
    """Where the registry keeps versions (another host's model store), and the fetches made."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.fetched: list[str] = []
        self.fail: Exception | None = None
        self.during: list[str | None] = []  # the replica's champion while each fetch ran
        self.replica: ModelCache | None = None

    def fetch(self, label: str, store: ModelStore) -> None:
        self.fetched.append(label)
        self.during.append(None if self.replica is None else self.replica.champion)
        if self.fail is not None:
            raise self.fail
        shutil.copytree(self.store.root / label, store.root / label)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Elsewhere:
    remote = Settings(home=tmp_path / "train-host")
    publish_version(remote, "0.1", tiny_model())
    publish_version(remote, "0.2", tiny_model("Ridge"))
    return Elsewhere(ModelStore(remote.paths.models))


@pytest.fixture
def replica(settings: Settings, champion: Champion, elsewhere: Elsewhere) -> ModelCache:
    cache = ModelCache(
        ModelStore(settings.paths.models),
        champion.resolve,
        champion_ttl_s=0.2,
        fetch=elsewhere.fetch,
    )
    elsewhere.replica = cache
    return cache


def test_a_champion_missing_here_is_fetched_and_served(
    replica: ModelCache, champion: Champion, elsewhere: Elsewhere, settings: Settings
) -> None:
    champion.label = "0.1"
    replica.refresh()
    assert elsewhere.fetched == ["0.1"]
    assert replica.peek(None) is not None
    assert replica.get(None).version == "0.1"
    assert (settings.paths.models / "0.1" / MODEL_FILE).is_file()
    with pytest.raises(UnknownVersionError):
        replica.get("0.2")  # only the champion is fetched: a request cannot make it download
    assert elsewhere.fetched == ["0.1"]


def test_a_new_champion_is_fetched_and_loaded_before_the_switch(
    replica: ModelCache, champion: Champion, elsewhere: Elsewhere
) -> None:
    champion.label = "0.1"
    replica.refresh()
    champion.label = "0.2"
    replica.refresh()
    assert elsewhere.during == [None, "0.1"]  # requests kept 0.1 while 0.2 arrived
    assert replica.champion == "0.2"
    assert replica.peek(None) is not None
    assert replica.peek(None).version == "0.2"  # type: ignore[union-attr]


def test_a_deleted_cache_folder_is_fetched_again(
    replica: ModelCache, champion: Champion, elsewhere: Elsewhere, settings: Settings
) -> None:
    champion.label = "0.1"
    replica.refresh()
    shutil.rmtree(settings.paths.models / "0.1")
    replica.refresh()
    assert elsewhere.fetched == ["0.1", "0.1"]
    assert replica.get(None).version == "0.1"


def test_a_failed_fetch_is_retried_after_the_interval_not_per_request(
    replica: ModelCache, champion: Champion, elsewhere: Elsewhere
) -> None:
    champion.label = "0.1"
    elsewhere.fail = ConnectionError("artifact store down")
    replica.refresh()
    for _ in range(3):
        with pytest.raises(VersionUnavailableError, match="artifact store down"):
            replica.get(None)
    assert elsewhere.fetched == ["0.1"]
    states = {s.version: s for s in replica.states()}
    assert "artifact store down" in (states["0.1"].reason or "")
    elsewhere.fail = None
    time.sleep(replica.champion_ttl_s)
    replica.refresh()
    assert replica.get(None).version == "0.1"
    assert elsewhere.fetched == ["0.1", "0.1"]


# -- the served file: single records without the full model ------------------------------------


def test_a_version_serves_from_its_served_file_and_reads_its_full_model_on_first_use(
    cache: ModelCache,
) -> None:
    loaded = cache.get("0.2")
    assert not loaded.full.loaded
    assert loaded.model_name == "Ridge"
    full = tiny_model("Ridge")
    record = {**SEED_SAMPLE, "Estructura": "BOPP"}
    assert loaded.scorer.predict_record(record) == full.predict_record(record)
    assert loaded.model.predict_record(record) == full.predict_record(record)
    assert loaded.full.loaded


def test_an_unreadable_served_file_falls_back_to_the_full_model(
    settings: Settings, cache: ModelCache
) -> None:
    _break_served_file(settings, "0.2")
    loaded = cache.get("0.2")
    assert loaded.full.loaded
    assert loaded.model_name == "Ridge"
    assert cache.load_errors == 0


def test_a_corrupt_full_model_leaves_single_records_serving(
    settings: Settings, cache: ModelCache
) -> None:
    (settings.paths.models / "0.2" / MODEL_FILE).write_bytes(b"this is not a pickle")
    loaded = cache.get("0.2")
    assert loaded.scorer.predict_record({**SEED_SAMPLE, "Estructura": "BOPP"}) > 0
    with pytest.raises(VersionUnavailableError, match="cannot be loaded"):
        loaded.model  # noqa: B018 - reading it is the act under test
    assert cache.load_errors == 1


def test_the_refresher_reads_the_champions_full_model_after_loading_it(
    cache: ModelCache, champion: Champion
) -> None:
    champion.label = "0.2"
    cache.refresh()
    loaded = cache.peek(None)
    assert loaded is not None
    assert not loaded.full.loaded  # the start: ready on the served file alone
    cache.read_champion_model()
    assert loaded.full.loaded


def test_a_changed_served_file_evicts_the_version(settings: Settings, cache: ModelCache) -> None:
    cache.get("0.2")
    _break_served_file(settings, "0.2")
    cache.check_files()
    assert "0.2" not in cache.loaded_versions


def test_a_corrupt_full_model_is_read_once_until_its_file_changes(
    settings: Settings, cache: ModelCache, champion: Champion
) -> None:
    model_file = settings.paths.models / "0.2" / MODEL_FILE
    good = model_file.read_bytes()
    model_file.write_bytes(b"this is not a pickle")
    champion.label = "0.2"
    cache.refresh()
    for _ in range(3):  # refresher passes and batches: one read, one error counted
        cache.read_champion_model()
        with pytest.raises(VersionUnavailableError, match="cannot be loaded"):
            cache.get("0.2").model  # noqa: B018 - reading it is the act under test
    assert cache.load_errors == 1
    model_file.write_bytes(good)  # repaired: a new file, so the version is loaded anew
    cache.check_files()
    cache.refresh()
    cache.read_champion_model()
    assert cache.get("0.2").full.loaded
