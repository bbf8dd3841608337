"""The feature store's commits: written by hand (io/feature_store_writes.py) against deltalake's
own operations (``write_deltalake``, ``DeltaTable.merge``), same data, same run.

    uv run python bench/feature_store_commit.py                  # 1,000,000 stored rows
    uv run python bench/feature_store_commit.py --rows 100000 --repeats 5

For each repeat, in alternating order, both ways build a store of ``--rows`` records (the
first version), then, each on a copy of it, commit the same changes: ``--changed`` updated
records plus as many new ones (an upsert: deltalake's merge on the record id), and the new
ones alone (an append). Every commit carries the same commit metadata. After each step the
two stores must read the same content (``FeatureSet.data_hash``, checked in the first repeat,
outside the timings), or the script stops.

Prints the median wall and CPU seconds of each step for both ways and their ratio
(library / by hand; above 1: the library is slower), then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from deltalake import CommitProperties, DeltaTable, write_deltalake

from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.io.feature_store import (
    METADATA_KEY,
    STORE_SCHEMA,
    TABLE_CONFIGURATION,
    TABLE_NAME,
    FeatureStore,
    _to_arrow,
)
from permeability.record.schema import CALIBRES, RECORD_ID

STEPS = ("create", "upsert", "append")


class LibraryStore(FeatureStore):
    """The same store, its loads committed with deltalake's own write operations."""

    def commit(
        self,
        changes: pd.DataFrame,
        *,
        replaced: Collection[str],
        pca: CaliperPCA,
        metadata: Mapping[str, Any],
    ) -> int:
        data = _to_arrow(changes).sort_by(RECORD_ID)
        properties = CommitProperties(
            custom_metadata={METADATA_KEY: {**metadata, "pca": json.dumps(pca.to_dict())}}
        )
        if not self.exists():
            write_deltalake(
                self.table_uri,
                data,
                mode="error",
                name=TABLE_NAME,
                configuration=TABLE_CONFIGURATION,
                commit_properties=properties,
            )
        elif replaced:
            merge = DeltaTable(self.table_uri).merge(
                data,
                predicate=f"stored.{RECORD_ID} = changed.{RECORD_ID}",
                source_alias="changed",
                target_alias="stored",
                commit_properties=properties,
            )
            merge.when_matched_update_all().when_not_matched_insert_all().execute()
        else:
            write_deltalake(
                DeltaTable(self.table_uri), data, mode="append", commit_properties=properties
            )
        return self._version_of(str(metadata["run_id"]))


def records(first: int, count: int, seed: int, permeability: float | None = None) -> pd.DataFrame:
    """``count`` stored-layout records numbered from ``first``."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first, first + count)
    thickness = rng.uniform(15, 60, size=(count, 1))
    readings = np.round(thickness + rng.normal(0, 0.2, size=(count, 5)), 1)
    text = pd.Series(ids.astype(str), dtype="str")
    frame = pd.DataFrame(
        {
            "record_id": text,
            "Muestra": ids.astype(np.int64),
            "Grados_C": np.full(count, 38.0),
            "Porc_Humedad": np.full(count, 90.0),
            "Estructura": pd.Series(rng.choice(["BOPP", "PET", "BOPP/MET"], count), dtype="str"),
            **{c: readings[:, i] for i, c in enumerate(CALIBRES)},
            "CalibreProm": readings.mean(axis=1),
            "Permeabilidad": (
                np.full(count, permeability)
                if permeability is not None
                else np.round(rng.uniform(0.5, 20.0, count), 3)
            ),
            "Fecha": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids % 900, unit="D"),
            "n_calibres_imputados": np.zeros(count, dtype=np.int64),
            "ingested_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "CONSECUTIVO": text,
            "Referencia": pd.Series(["REF-" + t for t in text], dtype="str"),
            "Instrumentista": pd.Series(rng.choice(["AM", "JR"], count), dtype="str"),
            "test_id": pd.Series(["T-" + t for t in text], dtype="str"),
            "layers": pd.Series([""] * count, dtype="str"),
            "is_product": np.ones(count, dtype=bool),
            "below_detection_limit": np.zeros(count, dtype=bool),
        }
    )
    return frame[list(STORE_SCHEMA.names)]


def timed(
    store: FeatureStore,
    changes: pd.DataFrame,
    replaced: Collection[str],
    pca: CaliperPCA,
    run_id: str,
) -> tuple[float, float]:
    """Wall and CPU seconds (every thread of the process) of one commit."""
    wall, cpu = time.perf_counter(), time.process_time()
    store.commit(changes, replaced=replaced, pca=pca, metadata={"run_id": run_id})
    return time.perf_counter() - wall, time.process_time() - cpu


def one_way(
    store_type: type[FeatureStore],
    root: Path,
    loads: Mapping[str, Any],
    pca: CaliperPCA,
    *,
    check: bool,
) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Create, then upsert and append on copies: the seconds of each step and, with ``check``,
    the content hash of each resulting version."""
    stores = {"create": store_type(str(root / "create"))}
    seconds = {"create": timed(stores["create"], loads["first"], [], pca, "create")}
    for step, changes, replaced in (
        ("upsert", loads["changes"], loads["replaced"]),
        ("append", loads["new"], []),
    ):
        shutil.copytree(root / "create", root / step)
        stores[step] = store_type(str(root / step))
        seconds[step] = timed(stores[step], changes, replaced, pca, step)
    hashes = {step: store.read().data_hash for step, store in stores.items()} if check else {}
    return seconds, hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, help="records updated (default: a tenth)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    changed = args.changed or max(1, args.rows // 10)
    first = records(1, args.rows, seed=1)
    new = records(args.rows + 1, changed, seed=2)
    loads = {
        "first": first,
        "changes": pd.concat([records(1, changed, seed=3, permeability=7.0), new]),
        "replaced": [str(i) for i in range(1, changed + 1)],
        "new": new,
    }
    pca = fit_caliper_pca(first[list(CALIBRES)].head(10_000).to_numpy(), 0.99)
    ways: dict[str, type[FeatureStore]] = {"by_hand": FeatureStore, "library": LibraryStore}
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in ways}
    for repeat in range(args.repeats):
        order = list(ways) if repeat % 2 == 0 else list(reversed(ways))
        hashes = {}
        for name in order:
            with tempfile.TemporaryDirectory(prefix=f"bench-commit-{name}-") as scratch:
                seconds, hashes[name] = one_way(
                    ways[name], Path(scratch), loads, pca, check=repeat == 0
                )
            runs[name].append(seconds)
        if hashes["by_hand"] != hashes["library"]:
            raise SystemExit(f"the two ways stored different content: {hashes}")
    report(args.rows, changed, args.repeats, runs)


def report(
    rows: int, changed: int, repeats: int, runs: Mapping[str, list[dict[str, tuple[float, float]]]]
) -> None:
    figures: dict[str, Any] = {"rows": rows, "changed": changed, "repeats": repeats}
    print(f"{rows:,} stored records; upsert: {changed:,} updated + {changed:,} new; medians")
    print(f"{'step':<8}{'by hand s':>11}{'CPU s':>8}{'library s':>11}{'CPU s':>8}{'ratio':>8}")
    for step in STEPS:
        medians = {
            name: [statistics.median(run[step][i] for run in runs[name]) for i in (0, 1)]
            for name in runs
        }
        ratio = medians["library"][0] / medians["by_hand"][0]
        figures[step] = {
            **{f"{name}_seconds": round(medians[name][0], 3) for name in medians},
            **{f"{name}_cpu_seconds": round(medians[name][1], 3) for name in medians},
            "wall_ratio": round(ratio, 2),
            "cpu_ratio": round(medians["library"][1] / medians["by_hand"][1], 2),
        }
        print(
            f"{step:<8}{medians['by_hand'][0]:>11.3f}{medians['by_hand'][1]:>8.3f}"
            f"{medians['library'][0]:>11.3f}{medians['library'][1]:>8.3f}{ratio:>8.2f}"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
