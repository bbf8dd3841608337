"""Single-row prediction: scikit-learn vs ``trees.py`` vs treelite (GTIL) vs tl2cgen.

Per ensemble type, fitted on synthetic data of the project's shape (12 numeric features, 3,000
rows, a third on a 0.1 grid like lab readings): median µs of ONE row's prediction over
``--repeats`` calls, speed-up over scikit-learn, compile time, and max |Δ| against scikit-learn's
``predict`` on ``--rows`` held-out rows and on as many "edge" rows whose every feature sits
exactly on one of the model's split thresholds (where float32 vs float64 comparisons differ).

treelite and tl2cgen are imported lazily; without them their rows say "not installed".
tl2cgen writes C and builds it with gcc (-O3 unless ``--tl2cgen-opt``): a compiler is needed
where the model is built, not where the .so is loaded. Deep forests (≈ 380k nodes) take gcc
> 20 min at -O3 on 2 cores, so models above ``--tl2cgen-max-nodes`` are skipped.

    .venv/bin/python bench/tree_compilers.py
    PYTHONPATH=src /tmp/tl-venv/bin/python bench/tree_compilers.py --repeats 300
    PYTHONPATH=src /tmp/tl-venv/bin/python bench/tree_compilers.py --models RandomForest \
        --tl2cgen-max-nodes 1000000 --tl2cgen-opt=-O0
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)

from permeability.modelling.trees import compile_ensemble

N_FEATURES = 12
N_TRAIN = 3000
Predict = Callable[[np.ndarray], float]


def make_data(n_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lab-like numeric features (mixed scales, some rounded) and a nonlinear target."""
    scales = np.geomspace(0.01, 500.0, N_FEATURES)
    X = rng.normal(size=(n_rows, N_FEATURES)) * scales + scales
    X[:, ::3] = np.round(X[:, ::3], 1)  # instrument resolution: ties at thresholds
    z = X / scales
    y = np.sin(z[:, 0]) + z[:, 1] * z[:, 2] + np.abs(z[:, 3]) + 0.3 * rng.normal(size=n_rows)
    return X, y


def models(seed: int) -> dict[str, Any]:
    hgb = HistGradientBoostingRegressor(max_iter=300, early_stopping=False, random_state=seed)
    return {
        "RandomForest": RandomForestRegressor(n_estimators=100, random_state=seed),
        "ExtraTrees": ExtraTreesRegressor(n_estimators=100, random_state=seed),
        "GradientBoosting": GradientBoostingRegressor(n_estimators=300, random_state=seed),
        "HistGradientBoosting": hgb,
    }


def median_us(predict: Predict, rows: np.ndarray, repeats: int) -> float:
    for row in rows[:5]:  # warm-up
        predict(row)
    times = []
    for i in range(repeats):
        row = rows[i % len(rows)]
        start = time.perf_counter_ns()
        predict(row)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000.0


def edge_rows(compiled: Any, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows whose every feature equals one of the model's split thresholds on that feature."""
    features, thresholds = compiled.levels.features[::2], compiled.levels.thresholds[::2]
    split = compiled.levels.children[::2] != 2 * np.arange(len(features))
    X = np.zeros((n_rows, N_FEATURES))
    for j in range(N_FEATURES):
        candidates = thresholds[split & (features == j)]
        if len(candidates):
            X[:, j] = rng.choice(candidates, size=n_rows)
    return X


def max_diff(predict: Predict, X: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(np.array([predict(row) for row in X]) - reference)))


def timed(build: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    built = build()
    return built, (time.perf_counter() - start) * 1000.0


def as_sklearn_compares(row: np.ndarray, float32_inputs: bool) -> np.ndarray:
    """The values scikit-learn's trees compare: float32 for the decision-tree based models."""
    row = row.reshape(1, -1)
    return row.astype(np.float32).astype(np.float64) if float32_inputs else row


def treelite_predictors(
    est: Any, workdir: Path, tl2cgen_skip: str, opt: str, float32_inputs: bool
) -> dict[str, tuple[Predict | None, float, str]]:
    """``{method: (predict, compile ms, note)}``; predict None when unavailable.

    ``gtil``: the row as given (float64); ``gtil·f32`` and ``tl2cgen·f32``: the row cast to
    float32 first for the models whose scikit-learn ``predict`` does (the caller's job)."""
    names = ["gtil", "gtil·f32", "tl2cgen·f32"]
    try:
        import treelite
        import treelite.sklearn
    except ImportError:
        return dict.fromkeys(names, (None, 0.0, "not installed"))
    try:
        model, import_ms = timed(lambda: treelite.sklearn.import_model(est))
    except Exception as error:  # an unsupported estimator type
        return dict.fromkeys(names, (None, 0.0, f"unsupported: {type(error).__name__}"))

    def gtil(cast: bool) -> Predict:
        def predict(row: np.ndarray) -> float:
            x = as_sklearn_compares(row, cast)
            return float(treelite.gtil.predict(model, x, nthread=1).ravel()[0])

        return predict

    out: dict[str, tuple[Predict | None, float, str]] = {
        "gtil": (gtil(False), import_ms, "import_model"),
        "gtil·f32": (gtil(float32_inputs), import_ms, "" if float32_inputs else "no cast"),
    }
    if tl2cgen_skip:
        return {**out, "tl2cgen·f32": (None, 0.0, tl2cgen_skip)}
    try:
        import tl2cgen
    except ImportError:
        return {**out, "tl2cgen·f32": (None, 0.0, "not installed")}
    libpath = workdir / f"{type(est).__name__}.so"
    try:
        _, build_ms = timed(
            lambda: tl2cgen.export_lib(
                model, "gcc", libpath, {"parallel_comp": 2}, nthread=2, options=[opt]
            )
        )
        predictor = tl2cgen.Predictor(libpath, nthread=1)
    except Exception as error:
        return {**out, "tl2cgen·f32": (None, 0.0, f"failed: {type(error).__name__}")}

    def compiled_c(row: np.ndarray) -> float:
        dmat = tl2cgen.DMatrix(as_sklearn_compares(row, float32_inputs), dtype="float64")
        return float(predictor.predict(dmat).ravel()[0])

    size_mb = libpath.stat().st_size / 1e6
    note = f"gcc {opt}, {size_mb:.1f} MB .so"
    return {**out, "tl2cgen·f32": (compiled_c, import_ms + build_ms, note)}


def version(name: str) -> str:
    try:
        return f"{name} {__import__(name).__version__}"
    except ImportError:
        return f"{name} not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows for exactness")
    parser.add_argument("--repeats", type=int, default=300, help="single-row calls timed")
    parser.add_argument("--models", nargs="*", default=None, help="e.g. RandomForest")
    parser.add_argument("--tl2cgen-max-nodes", type=int, default=50_000, help="0: no tl2cgen")
    parser.add_argument("--tl2cgen-opt", default="-O3", help="gcc optimisation flag")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    X_train, y_train = make_data(N_TRAIN, rng)
    X_test, _ = make_data(args.rows, rng)
    print(", ".join(version(name) for name in ("sklearn", "numpy", "treelite", "tl2cgen")))
    print(f"{'model':<21}{'method':<13}{'compile ms':>11}{'µs/row':>9}{'speed-up':>10}", end="")
    print(f"{'max|Δ| test':>13}{'max|Δ| edge':>13}  note")
    with tempfile.TemporaryDirectory() as tmp:
        for name, est in models(args.seed).items():
            if args.models and name not in args.models:
                continue
            est.fit(X_train, y_train)
            compiled, compile_ms = timed(partial(compile_ensemble, est))
            assert compiled is not None, name
            X_edge = edge_rows(compiled, args.rows, rng)
            too_big = compiled.n_nodes > args.tl2cgen_max_nodes
            skip = f"skipped: {compiled.n_nodes} nodes > --tl2cgen-max-nodes" * too_big
            ref_test, ref_edge = est.predict(X_test), est.predict(X_edge)

            def sklearn_predict(row: np.ndarray, est: Any = est) -> float:
                return float(est.predict(row.reshape(1, -1))[0])

            methods: dict[str, tuple[Predict | None, float, str]] = {
                "scikit-learn": (sklearn_predict, 0.0, ""),
                "trees.py": (compiled.predict_row, compile_ms, f"walk={compiled.walk}"),
                **treelite_predictors(
                    est, Path(tmp), skip, args.tl2cgen_opt, compiled.float32_inputs
                ),
            }
            base = 0.0
            for method, (predict, build_ms, note) in methods.items():
                if predict is None:
                    print(f"{name:<21}{method:<13}{'—':>11}{'—':>9}{'—':>10}{'—':>26}  {note}")
                    continue
                us = median_us(predict, X_test, args.repeats)
                base = base or us
                d_test = max_diff(predict, X_test, ref_test)
                d_edge = max_diff(predict, X_edge, ref_edge)
                print(
                    f"{name:<21}{method:<13}{build_ms:>11.1f}{us:>9.1f}{base / us:>9.1f}×"
                    f"{d_test:>13.2e}{d_edge:>13.2e}  {note}"
                )


if __name__ == "__main__":
    main()
