from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from permeability.errors import EmptyFeatureStoreError, InvalidInputError, NotFoundError
from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.io.feature_store import FeatureStore
from permeability.record.schema import CALIBRES
from tests.record_columns import add_record_columns


def samples(ids: range | list[int], *, permeability: float = 5.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    thickness = rng.uniform(15, 60, size=(n, 1))
    readings = np.round(thickness + rng.normal(0, 0.2, size=(n, 5)), 1)
    dates = pd.Series(pd.date_range("2024-01-01", periods=n, freq="D")).astype("datetime64[ns]")
    frame = pd.DataFrame(
        {
            "Muestra": np.asarray(ids, dtype=np.int64),
            "Grados_C": np.full(n, 38.0),
            "Porc_Humedad": np.full(n, 90.0),
            "Estructura": pd.Series(["BOPP"] * n, dtype="str"),
            **{c: readings[:, i] for i, c in enumerate(CALIBRES)},
            "CalibreProm": readings.mean(axis=1),
            "Permeabilidad": np.full(n, permeability),
            "Fecha": dates,
            "n_calibres_imputados": np.zeros(n, dtype=np.int64),
            "ingested_at": pd.Series([pd.Timestamp("2026-01-01", tz="UTC")] * n).astype(
                "datetime64[ns, UTC]"
            ),
        }
    )
    return add_record_columns(frame)


def pca_of(frame: pd.DataFrame) -> CaliperPCA:
    return fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 0.99)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(str(tmp_path / "store"))


@pytest.fixture
def loaded(store: FeatureStore) -> FeatureStore:
    first = samples(range(1, 21))
    store.commit(first, replaced=[], pca=pca_of(first), metadata={"run_id": "run-a", "n": 20})
    return store


def test_an_empty_store_says_so(store: FeatureStore) -> None:
    assert store.current_version() is None
    assert store.read_records().empty
    with pytest.raises(EmptyFeatureStoreError, match="permeability acquire"):
        store.read()
    with pytest.raises(EmptyFeatureStoreError):
        store.query("SELECT 1")


def test_first_commit_is_version_zero_with_documented_dtypes(loaded: FeatureStore) -> None:
    features = loaded.read()
    frame = features.frame
    assert features.version == 0 == loaded.current_version()
    assert frame["Muestra"].tolist() == list(range(1, 21))
    expected = {
        "Muestra": "int64",
        "Grados_C": "float64",
        "Estructura": "str",
        "Fecha": "datetime64[ns]",
        "n_calibres_imputados": "int64",
        "ingested_at": "datetime64[ns, UTC]",
        "pc_1": "float64",
    }
    assert {c: str(frame[c].dtype) for c in expected} == expected
    assert frame["pc_1"].to_numpy() == pytest.approx(
        features.pca.transform(frame[list(CALIBRES)].to_numpy())[:, 0]
    )


def test_data_hash_is_stable_per_version_and_changes_with_content(loaded: FeatureStore) -> None:
    first = loaded.read()
    assert loaded.read(0).data_hash == first.data_hash
    changed = samples([5], permeability=9.0)
    loaded.commit(changed, replaced=["5"], pca=first.pca, metadata={"run_id": "run-b"})
    assert loaded.read().data_hash != first.data_hash
    assert loaded.read(0).data_hash == first.data_hash


def test_an_update_is_a_new_version_and_time_travel_keeps_the_old_value(
    loaded: FeatureStore,
) -> None:
    changes = pd.concat([samples([3], permeability=7.5), samples([21, 22], seed=4)])
    full = pd.concat([loaded.read_records().query("Muestra != 3"), changes])
    new_pca = pca_of(full)
    version = loaded.commit(changes, replaced=["3"], pca=new_pca, metadata={"run_id": "run-b"})
    assert version == 1
    now = loaded.read().frame.set_index("Muestra")
    before = loaded.read(0).frame.set_index("Muestra")
    assert now.loc[3, "Permeabilidad"] == 7.5
    assert before.loc[3, "Permeabilidad"] == 5.0
    assert now.index.is_unique
    assert len(now) == 22
    assert len(before) == 20
    assert loaded.read().pca == new_pca
    assert loaded.read(0).pca != new_pca


def test_history_lists_versions_with_run_ids(loaded: FeatureStore) -> None:
    loaded.commit(samples([30]), replaced=[], pca=loaded.pca(0), metadata={"run_id": "run-b"})
    history = loaded.history()
    assert [h["version"] for h in history] == [0, 1]
    assert [h["run_id"] for h in history] == ["run-a", "run-b"]
    assert history[0]["operation"] == "CREATE TABLE"
    assert history[0]["pca_components"] == 1


def test_unknown_versions_are_not_found(loaded: FeatureStore) -> None:
    for version in (-1, 1, 99):
        with pytest.raises(NotFoundError, match=r"versions are 0\.\.0"):
            loaded.read(version)


def test_duckdb_queries_see_pca_columns_and_old_versions(loaded: FeatureStore) -> None:
    loaded.commit(samples([99]), replaced=[], pca=loaded.pca(0), metadata={"run_id": "run-b"})
    counts = loaded.query("SELECT count(*) AS n FROM samples")
    assert counts["n"].tolist() == [21]
    assert loaded.query("SELECT count(*) AS n FROM samples", version=0)["n"].tolist() == [20]
    via_sql = loaded.query("SELECT Muestra, pc_1 FROM samples ORDER BY Muestra")
    via_read = loaded.read().frame[["Muestra", "pc_1"]]
    assert via_sql["pc_1"].to_numpy() == pytest.approx(via_read["pc_1"].to_numpy())


def test_duckdb_queries_cannot_touch_files(loaded: FeatureStore) -> None:
    with pytest.raises(InvalidInputError, match="query failed"):
        loaded.query("SELECT * FROM read_csv('/etc/hostname')")


def test_a_compaction_by_another_engine_keeps_the_pca_of_the_data(loaded: FeatureStore) -> None:
    loaded.commit(samples([40]), replaced=[], pca=loaded.pca(0), metadata={"run_id": "run-b"})
    before = loaded.read()
    DeltaTable(loaded.table_uri).optimize.compact()
    after = loaded.read()
    assert after.version == before.version + 1
    assert after.pca == before.pca
    assert after.frame.drop(columns="ingested_at").equals(before.frame.drop(columns="ingested_at"))


def test_a_store_written_before_record_ids_reads_and_refuses_new_loads(tmp_path: Path) -> None:
    """A table keyed by Muestra (the layout before issue 11) stays readable for the models
    trained on it (its rows read as their own records, tests and products) and refuses a load
    with a message that says what to do."""
    from deltalake import write_deltalake

    old_columns = [
        "Muestra",
        "Grados_C",
        "Porc_Humedad",
        "Estructura",
        *CALIBRES,
        "CalibreProm",
        "Permeabilidad",
        "Fecha",
        "n_calibres_imputados",
        "ingested_at",
    ]
    old = samples([7, 8])[old_columns]
    store = FeatureStore(str(tmp_path / "store"))
    write_deltalake(store.table_uri, old)
    records = store.read_records()
    assert records["record_id"].tolist() == ["7", "8"]
    assert records["test_id"].tolist() == ["T-7", "T-8"]
    assert records["is_product"].tolist() == [True, True]
    assert records["below_detection_limit"].tolist() == [False, False]
    assert records["CONSECUTIVO"].isna().all()
    with pytest.raises(InvalidInputError, match="written before records had an identity"):
        store.commit(samples([9]), replaced=[], pca=pca_of(old), metadata={"run_id": "r"})
