"""The feature store: a Delta Lake table of clean samples, versioned, queried with DuckDB.

Layout below the store URI (``settings.resolved_feature_store_uri``)::

    <store>/samples/           Delta table, one row per record_id (the clean lab record)
    <store>/pca/v<version>/    the caliper PCA of that version (io/feature_store_files.py)

Every load is one Delta commit, so every load is one table version: training records the
version it read (its data lineage) and can read it again later (time travel). The commit
carries, in its custom metadata (key ``permeability``), the run id, the counts and the caliper
PCA fitted on all samples of that version (``CaliperPCA.to_dict()``). Data and transform are
therefore committed atomically: no reader can see a version without its PCA. The PCA
coordinates (``pc_1..pc_k``) are computed on read from the stored readings, so an update
rewrites only the files holding the changed samples.

A load writes its Parquet files first and commits them in one transaction afterwards
(:mod:`permeability.io.feature_store_writes`, which says why by hand). Files of a load that
dies before its commit are never referenced: the table still reads exactly as before.

Storage on other machines
-------------------------
The store location is a URI, not a folder, so a team that outgrows one machine can point
``PERMEABILITY_FEATURE_STORE_URI`` at object storage: ``s3://bucket/permeability``,
``abfss://container@account.dfs.core.windows.net/permeability`` or ``gs://bucket/permeability``,
with credentials passed as deltalake ``storage_options`` (``FeatureStore(uri, storage_options=
{...})``; the usual ``AWS_*`` / ``AZURE_*`` / ``GOOGLE_*`` environment variables also work).
The table is plain Delta Lake (protocol reader 1 / writer 2, no partitions), so Spark
(``spark.read.format("delta").option("versionAsOf", v).load(".../samples")``), Trino's or
Databricks' Delta connectors read the same versions; the PCA of version ``v`` sits in that
commit's ``commitInfo.permeability`` and in ``pca/v<v>/pca.json``. Other engines should only
compact (OPTIMIZE) this table, not change its rows: the PCA of a version written by another
engine is taken from the latest version written here. Expired-log cleanup is off
(``delta.enableExpiredLogCleanup=false``) because the commit infos hold each version's PCA.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable

from permeability.errors import EmptyFeatureStoreError, InvalidInputError, NotFoundError
from permeability.features.pca import CaliperPCA
from permeability.io.feature_store_files import PcaFiles, join_uri
from permeability.io.feature_store_writes import create_table, replace_and_add
from permeability.record.rules import IMPUTED_COLUMN, INGESTED_AT
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    IS_PRODUCT,
    LAYERS,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_FIELDS,
    RECORD_ID,
    TEST_ID,
)

logger = logging.getLogger(__name__)

TABLE_NAME: Final = "samples"
METADATA_KEY: Final = "permeability"
TABLE_CONFIGURATION: Final[dict[str, str | None]] = {"delta.enableExpiredLogCleanup": "false"}

STORE_SCHEMA: Final = pa.schema(
    [
        pa.field(RECORD_ID, pa.string(), nullable=False),
        pa.field(MUESTRA, pa.int64(), nullable=False),
        pa.field(GRADOS_C, pa.float64()),
        pa.field(PORC_HUMEDAD, pa.float64()),
        pa.field(ESTRUCTURA, pa.string()),
        *[pa.field(c, pa.float64()) for c in (*CALIBRES, CALIBRE_PROM)],
        pa.field(PERMEABILIDAD, pa.float64()),
        pa.field(FECHA, pa.date32()),
        pa.field(IMPUTED_COLUMN, pa.int64()),
        pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC")),
        *[pa.field(c, pa.string()) for c in RECORD_FIELDS],
        pa.field(TEST_ID, pa.string()),
        pa.field(LAYERS, pa.string()),
        pa.field(IS_PRODUCT, pa.bool_()),
        pa.field(BELOW_DETECTION_LIMIT, pa.bool_()),
    ]
)
#: Columns a table written before records had an identity lacks, and what a read fills in:
#: the record id was the Muestra, every row a product measured above the detection limit.
_ADDED_LATER: Final = (
    RECORD_ID,
    *RECORD_FIELDS,
    TEST_ID,
    LAYERS,
    IS_PRODUCT,
    BELOW_DETECTION_LIMIT,
)


@dataclass(frozen=True)
class FeatureSet:
    """One version of the store: the samples with this version's PCA coordinates.

    ``frame``: one row per record, columns record_id (str), Muestra (int64, the replicate
    number), Grados_C, Porc_Humedad, Estructura (str), Calibre1..5, CalibreProm, Permeabilidad
    (float64), Fecha (datetime64[ns] or NaT), n_calibres_imputados (int64), ingested_at
    (datetime64[ns, UTC]), CONSECUTIVO, Referencia, Instrumentista (str or NA), test_id, layers
    (str), is_product, below_detection_limit (bool), pc_1..pc_k.
    ``data_hash`` is a sha256 of the stored content and the PCA, identical on every read.
    """

    frame: pd.DataFrame
    version: int
    pca: CaliperPCA
    data_hash: str


class FeatureStore:
    """The ``samples`` Delta table and the PCA files below one store URI."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self.storage_options = storage_options
        self.table_uri = join_uri(uri, TABLE_NAME)
        self.pca_files = PcaFiles(uri, storage_options)

    # ----------------------------------------------------------------- reading

    def exists(self) -> bool:
        return DeltaTable.is_deltatable(self.table_uri, storage_options=self.storage_options)

    def current_version(self) -> int | None:
        """The latest version, or None while nothing was ever loaded."""
        if not self.exists():
            return None
        return int(self._table().version())

    def _table(self, version: int | None = None) -> DeltaTable:
        if not self.exists():
            raise EmptyFeatureStoreError(
                f"the feature store at {self.uri} is empty; load lab data with `permeability acquire`"
            )
        table = DeltaTable(self.table_uri, storage_options=self.storage_options)
        if version is None:
            return table
        latest = int(table.version())
        if not 0 <= version <= latest:
            raise NotFoundError(
                f"feature-set version {version} does not exist; versions are 0..{latest}"
            )
        return DeltaTable(self.table_uri, version=version, storage_options=self.storage_options)

    def read_records(self, version: int | None = None) -> pd.DataFrame:
        """The stored samples (no PCA columns), sorted by record id; empty frame if no table yet."""
        if version is None and not self.exists():
            return _records_frame(STORE_SCHEMA.empty_table())
        return _records_frame(self._table(version).to_pyarrow_table())

    def read(self, version: int | None = None) -> FeatureSet:
        """A version (the latest by default) with its PCA applied, ready for training."""
        table = self._table(version)
        resolved = int(table.version())
        records = _records_frame(table.to_pyarrow_table())
        if records.empty:
            raise EmptyFeatureStoreError(f"feature-set version {resolved} holds no samples")
        pca = self.pca(resolved)
        frame = records.copy()
        coordinates = pca.transform(frame[list(CALIBRES)].to_numpy(dtype=np.float64))
        for i, name in enumerate(pca.output_columns):
            frame[name] = coordinates[:, i]
        return FeatureSet(frame, resolved, pca, _content_hash(records, pca))

    def pca(self, version: int) -> CaliperPCA:
        """The PCA committed with ``version`` (or with the latest earlier version written here)."""
        for commit in self._commits():
            recorded = _recorded_pca(commit)
            if commit["version"] <= version and recorded is not None:
                return recorded
        saved = self.pca_files.read_pca(version)
        if saved is not None:
            return saved
        raise NotFoundError(f"feature-set version {version} has no caliper PCA recorded")

    def _commits(self) -> list[dict[str, Any]]:
        """Commit infos, newest first."""
        return self._table().history()

    def history(self) -> list[dict[str, Any]]:
        """Every version, oldest first: when, which operation, and what our load recorded."""
        rows = []
        for commit in reversed(self._commits()):
            ours = commit.get(METADATA_KEY)
            ours = ours if isinstance(ours, dict) else {}
            pca = _recorded_pca(commit)
            rows.append(
                {
                    "version": int(commit["version"]),
                    "timestamp": datetime.fromtimestamp(
                        commit["timestamp"] / 1000, UTC
                    ).isoformat(),
                    "operation": commit.get("operation"),
                    "run_id": ours.get("run_id"),
                    "source": ours.get("source"),
                    "counts": ours.get("counts"),
                    "pca_components": pca.n_components if pca is not None else None,
                }
            )
        return rows

    def query(self, sql: str, version: int | None = None) -> pd.DataFrame:
        """Run DuckDB SQL over the table registered as ``samples`` (with pc_1..pc_k columns).

        DuckDB scans the Arrow dataset of that Delta version directly (no delta extension
        needed), and the connection has no file or network access.
        """
        import duckdb

        table = self._table(version)
        pca = self.pca(int(table.version()))
        connection = duckdb.connect(config={"enable_external_access": False})
        try:
            connection.register("samples_delta", table.to_pyarrow_dataset())
            projections = ", ".join(
                f"{_pc_expression(pca, i)} AS {name}" for i, name in enumerate(pca.output_columns)
            )
            connection.execute(
                f"CREATE TEMP VIEW {TABLE_NAME} AS SELECT *, {projections} FROM samples_delta"  # noqa: S608 (numbers we computed)
            )
            return connection.sql(sql).df()
        except duckdb.Error as exc:
            raise InvalidInputError(f"feature-store query failed: {exc}") from exc
        finally:
            connection.close()

    # ----------------------------------------------------------------- writing

    def commit(
        self,
        changes: pd.DataFrame,
        *,
        replaced: Collection[str],
        pca: CaliperPCA,
        metadata: Mapping[str, Any],
    ) -> int:
        """Insert ``changes`` and replace the stored rows of ``replaced`` record ids: one commit
        (:mod:`permeability.io.feature_store_writes`).

        ``changes`` has the stored columns; ``pca`` was fitted on every sample of the version
        this creates; ``metadata`` (JSON-able, with a ``run_id``) goes into the commit info.
        Returns the new version.
        """
        data = _to_arrow(changes)
        run_id = str(metadata["run_id"])
        # The PCA travels as a JSON *string*: delta-rs re-parses JSON numbers in commit info
        # and may move a float by one ulp; a string keeps the fitted transform bit for bit.
        properties = CommitProperties(
            custom_metadata={METADATA_KEY: {**metadata, "pca": json.dumps(pca.to_dict())}}
        )
        if not self.exists():
            create_table(
                self.table_uri,
                data,
                name=TABLE_NAME,
                configuration=TABLE_CONFIGURATION,
                storage_options=self.storage_options,
                properties=properties,
            )
        else:
            table = DeltaTable(self.table_uri, storage_options=self.storage_options)
            _require_current_layout(table, self.uri)
            replace_and_add(
                self.table_uri,
                table,
                data,
                replaced,
                storage_options=self.storage_options,
                properties=properties,
            )
        return self._version_of(run_id)

    def _version_of(self, run_id: str) -> int:
        for commit in self._table().history(limit=20):
            ours = commit.get(METADATA_KEY)
            if isinstance(ours, dict) and ours.get("run_id") == run_id:
                return int(commit["version"])
        raise NotFoundError(f"the commit of run {run_id} is not in the table history")


# --------------------------------------------------------------------------- helpers


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Column by column (no per-row Python objects): a million dates convert in milliseconds."""
    arrays = []
    for field in STORE_SCHEMA:
        values = frame[field.name]
        if field.name == FECHA:
            days = values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
            arrays.append(pa.array(days, type=pa.date32(), from_pandas=True))
        elif field.name == INGESTED_AT:
            stamps = values.astype("datetime64[us, UTC]")
            arrays.append(pa.array(stamps, type=field.type, from_pandas=True))
        else:
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=STORE_SCHEMA)


def _records_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> the documented pandas dtypes (ns datetimes, str, int64, bool)."""
    table = _with_identity_columns(table)
    frame = (
        table.select(list(STORE_SCHEMA.names)).cast(STORE_SCHEMA).to_pandas(date_as_object=False)
    )
    frame[FECHA] = frame[FECHA].astype("datetime64[ns]")
    frame[INGESTED_AT] = frame[INGESTED_AT].astype("datetime64[ns, UTC]")
    for column in (RECORD_ID, ESTRUCTURA, *RECORD_FIELDS, TEST_ID, LAYERS):
        frame[column] = frame[column].astype("str")
    for column in (IS_PRODUCT, BELOW_DETECTION_LIMIT):
        frame[column] = frame[column].astype(bool)
    # Natural order for record numbers ("2" before "10"): by length, then text.
    order = np.lexsort((frame[RECORD_ID].to_numpy(dtype=object), frame[RECORD_ID].str.len()))
    return frame.iloc[order].reset_index(drop=True)


def _with_identity_columns(table: pa.Table) -> pa.Table:
    """A table written before records had an identity, with the columns it lacks filled in.

    Its rows were keyed by Muestra (then a sample id), so that is their record id; each row
    is its own test; every row was a product above the detection limit (zeros were refused).
    """
    if RECORD_ID in table.column_names:
        return table
    ids = pc.cast(table[MUESTRA], pa.string())
    fills: dict[str, pa.Array | pa.ChunkedArray] = {
        RECORD_ID: ids,
        TEST_ID: pc.binary_join_element_wise("T-", ids, ""),
        LAYERS: pa.array([""] * table.num_rows, pa.string()),
        IS_PRODUCT: pa.array([True] * table.num_rows, pa.bool_()),
        BELOW_DETECTION_LIMIT: pa.array([False] * table.num_rows, pa.bool_()),
        **{c: pa.nulls(table.num_rows, pa.string()) for c in RECORD_FIELDS},
    }
    for name in _ADDED_LATER:
        table = table.append_column(name, fills[name])
    return table


def _require_current_layout(table: DeltaTable, uri: str) -> None:
    """Refuse to add records to a table keyed by Muestra (written before record identity)."""
    names = set(table.schema().to_arrow().names)  # type: ignore[union-attr]
    if RECORD_ID not in names:
        raise InvalidInputError(
            f"the feature store at {uri} was written before records had an identity (its rows "
            "are keyed by Muestra, now the replicate number); its versions stay readable for "
            "the models trained on them, but new loads need a new store: set "
            "PERMEABILITY_FEATURE_STORE_URI to a new location and acquire the lab's export again"
        )


def _recorded_pca(commit: Mapping[str, Any]) -> CaliperPCA | None:
    ours = commit.get(METADATA_KEY)
    recorded = ours.get("pca") if isinstance(ours, dict) else None
    if isinstance(recorded, str):
        return CaliperPCA.from_dict(json.loads(recorded))
    return None


def _content_hash(records: pd.DataFrame, pca: CaliperPCA) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([f"{c}:{t}" for c, t in records.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(records, index=False).to_numpy().tobytes())
    digest.update(json.dumps(pca.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def _pc_expression(pca: CaliperPCA, component: int) -> str:
    terms = [
        f'("{column}" - {mean!r}) * {weight!r}'
        for column, mean, weight in zip(CALIBRES, pca.mean, pca.components[component], strict=True)
    ]
    return "(" + " + ".join(terms) + ")"
