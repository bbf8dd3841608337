from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from permeability.io.feature_store import FeatureStore
from permeability.io.feature_store_writes import STATS_COLUMNS
from tests.unit.io.test_feature_store import pca_of, samples


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(str(tmp_path / "store"))


@pytest.fixture
def loaded(store: FeatureStore) -> FeatureStore:
    first = samples(range(1, 21))
    store.commit(first, replaced=[], pca=pca_of(first), metadata={"run_id": "run-a", "n": 20})
    return store


def test_files_carry_min_max_of_the_numeric_columns_and_every_null_count(
    loaded: FeatureStore,
) -> None:
    log = Path(loaded.table_uri) / "_delta_log" / f"{0:020d}.json"
    (add,) = [entry["add"] for entry in map(json.loads, log.open()) if "add" in entry]
    stats = json.loads(add["stats"])
    assert stats["numRecords"] == 20
    assert set(stats["minValues"]) == set(STATS_COLUMNS)
    assert len(stats["nullCount"]) == len(loaded.read_records().columns)
    assert (stats["minValues"]["Muestra"], stats["maxValues"]["Muestra"]) == (1, 20)
    assert (stats["minValues"]["record_id"], stats["maxValues"]["record_id"]) == ("1", "9")


def test_an_update_rewrites_only_the_files_holding_a_replaced_record(
    loaded: FeatureStore,
) -> None:
    pca = loaded.pca(0)
    loaded.commit(samples([30, 31]), replaced=[], pca=pca, metadata={"run_id": "run-b"})
    files = set(DeltaTable(loaded.table_uri).file_uris())
    assert len(files) == 2
    loaded.commit(
        samples([31], permeability=2.0), replaced=["31"], pca=pca, metadata={"run_id": "c"}
    )
    after = set(DeltaTable(loaded.table_uri).file_uris())
    assert len(files & after) == 1  # the first load's file is untouched
    frame = loaded.read().frame.set_index("Muestra")
    assert frame.loc[31, "Permeabilidad"] == 2.0
    assert frame.loc[30, "Permeabilidad"] == 5.0
    assert len(frame) == 22


def _stopped_before_the_commit(*_: object, **__: object) -> None:
    """In place of delta-rs's commit: the data files are written, the commit never comes."""
    raise RuntimeError("load stopped after writing data files, before the commit")


def test_a_load_stopped_before_its_commit_leaves_the_store_as_it_was(
    loaded: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = loaded.read()
    monkeypatch.setattr(DeltaTable, "create_write_transaction", _stopped_before_the_commit)
    with pytest.raises(RuntimeError, match="before the commit"):
        loaded.commit(
            samples([3, 50], permeability=1.0),
            replaced=["3"],
            pca=before.pca,
            metadata={"run_id": "run-x"},
        )
    monkeypatch.undo()
    after = loaded.read()
    assert after.version == before.version
    assert after.data_hash == before.data_hash
    parquet_files = list(Path(loaded.table_uri).glob("*.parquet"))
    assert len(parquet_files) > len(DeltaTable(loaded.table_uri).file_uris())  # orphans exist
    assert loaded.commit(samples([50]), replaced=[], pca=before.pca, metadata={"run_id": "r"}) == 1


def test_a_first_load_stopped_before_its_commit_leaves_no_table(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "permeability.io.feature_store_writes.create_table_with_add_actions",
        _stopped_before_the_commit,
    )
    first = samples(range(1, 5))
    with pytest.raises(RuntimeError):
        store.commit(first, replaced=[], pca=pca_of(first), metadata={"run_id": "r"})
    assert store.current_version() is None
