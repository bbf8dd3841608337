"""Benchmark the physics-informed models against the generator's noise floor.

For each size, generates a tidy lab frame with its truth columns (fixed seed), fits the caliper
PCA as acquisition would, and trains ``LinearRegression``, ``auto`` and a raw-feature baseline
(scikit-learn ``LinearRegression`` on raw Grados_C, Porc_Humedad, one-hot Estructura and the
calipers, predicting Permeabilidad directly) on the same split. The noise floor is the MAE of
the generating law applied to the recorded inputs (``_physics_permeability``) on the same test
rows: no model can beat it in expectation.

    uv run python bench/train.py                      # 10k and 100k rows
    uv run python bench/train.py --rows 5000 --json-only

Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from permeability.config import AcquisitionParams
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.training import TrainingOutcome, train_model
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import PHYSICS_PERMEABILITY

BASELINE = "raw LinearRegression"
LATENCY_RECORDS = 2000


def _raw_baseline(frame: pd.DataFrame, tested: pd.Series) -> tuple[np.ndarray, float]:
    """The seed-style model: raw inputs, no physics, no log scale; fitted on all non-test rows."""
    raw = pd.get_dummies(
        frame[[GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM]],
        columns=[ESTRUCTURA],
        dtype=float,
    )
    started = time.perf_counter()
    model = LinearRegression().fit(raw[~tested], frame.loc[~tested, PERMEABILIDAD])
    seconds = time.perf_counter() - started
    return np.asarray(model.predict(raw[tested])), seconds


def _record_latency_us(outcome: TrainingOutcome, frame: pd.DataFrame) -> float:
    """Median µs of PermeabilityModel.predict_record on single records (the API's path)."""
    columns = [GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM]
    records = [
        {str(key): value for key, value in row.items()}
        for row in frame[columns].head(LATENCY_RECORDS).to_dict(orient="records")
    ]
    timings = []
    for record in records:
        started = time.perf_counter()
        outcome.model.predict_record(record)
        timings.append(time.perf_counter() - started)
    return float(np.median(timings) * 1e6)


def _coverage_spread(outcome: TrainingOutcome, level: float) -> float:
    """Largest |coverage − level| over structures, in points."""
    return float(np.max(np.abs(outcome.per_structure["coverage"] - level)) * 100.0)


def run_size(rows: int, seed: int, models: list[str], level: float) -> list[dict[str, Any]]:
    frame = generate_lab_data(rows, seed, mess=MessSpec.none(), with_truth=True)
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), AcquisitionParams().variance_threshold)
    results: list[dict[str, Any]] = []
    test_ids: set[int] | None = None
    for name in models:
        outcome = train_model(frame, pca, model=name, interval_level=level)
        ids = set(outcome.test_predictions[MUESTRA].tolist())
        if test_ids is not None and ids != test_ids:
            raise RuntimeError("models were scored on different test rows")
        test_ids = ids
        tested_rows = frame.set_index(MUESTRA).loc[outcome.test_predictions[MUESTRA]]
        floor = float(
            np.mean(np.abs(tested_rows[PERMEABILIDAD] - tested_rows[PHYSICS_PERMEABILITY]))
        )
        results.append(
            {
                "rows": rows,
                "model": name,
                "chosen": outcome.model_name,
                "mae": outcome.metrics["mae"],
                "noise_floor_mae": floor,
                "ratio_to_floor": outcome.metrics["mae"] / floor,
                "r2": outcome.metrics["r2"],
                "mape": outcome.metrics["mape"],
                "coverage": outcome.metrics["coverage"],
                "worst_structure_coverage_gap_pts": _coverage_spread(outcome, level),
                "train_seconds": outcome.seconds,
                "record_latency_us": _record_latency_us(outcome, frame),
                "n_train": outcome.n_train,
                "n_calibration": outcome.n_calibration,
                "n_test": outcome.n_test,
            }
        )
    tested = frame[MUESTRA].isin(test_ids or set())
    predicted, seconds = _raw_baseline(frame, tested)
    measured = frame.loc[tested, PERMEABILIDAD].to_numpy()
    floor = float(np.mean(np.abs(measured - frame.loc[tested, PHYSICS_PERMEABILITY])))
    mae = float(np.mean(np.abs(measured - predicted)))
    results.append(
        {
            "rows": rows,
            "model": BASELINE,
            "chosen": BASELINE,
            "mae": mae,
            "noise_floor_mae": floor,
            "ratio_to_floor": mae / floor,
            "train_seconds": seconds,
            "n_test": int(tested.sum()),
        }
    )
    linear = next((r for r in results if r["model"] == "LinearRegression"), None)
    if linear is not None:
        linear["baseline_mae_over_model_mae"] = mae / linear["mae"]
    return results


def _table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'rows':>7} {'model':<22} {'chosen':<30} {'MAE':>8} {'floor':>8} {'ratio':>6} "
        f"{'cover':>6} {'gap':>5} {'train s':>8} {'rec µs':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        cover = f"{r['coverage']:.3f}" if "coverage" in r else "-"
        gap = f"{r['worst_structure_coverage_gap_pts']:.1f}" if "coverage" in r else "-"
        latency = f"{r['record_latency_us']:.0f}" if "record_latency_us" in r else "-"
        lines.append(
            f"{r['rows']:>7} {r['model']:<22} {r['chosen']:<30} {r['mae']:>8.4f} "
            f"{r['noise_floor_mae']:>8.4f} {r['ratio_to_floor']:>6.3f} {cover:>6} {gap:>5} "
            f"{r['train_seconds']:>8.2f} {latency:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--models", nargs="+", default=["LinearRegression", "auto"])
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        results.extend(run_size(rows, args.seed, list(args.models), args.level))
    if not args.json_only:
        print(_table(results))
        print(
            f"interval level {args.level}; gap = worst |coverage − level| over structures (points)"
        )
    print(json.dumps({"seed": args.seed, "level": args.level, "results": results}))


if __name__ == "__main__":
    main()
