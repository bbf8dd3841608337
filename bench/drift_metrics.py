"""Drift statistics and regression metrics: SciPy and scikit-learn against the hand-written numpy
they replaced (issue 14), exactness and speed in one run.

    .venv/bin/python bench/drift_metrics.py
    .venv/bin/python bench/drift_metrics.py --reference-rows 100000 --current-rows 1000 --repeats 9

The reference is the code before issue 14, copied below and labelled "hand-written, before
issue 14": the Kolmogorov-Smirnov test with the asymptotic law and Stephens' correction, the
chi-square survival function in closed form, and the numpy metrics. Every figure is the best
of ``--repeats`` runs; ``ratio`` is new / old (above 1: the library is slower).

- **metrics** on ``--metric-rows`` rows (lognormal WVTR, 30 % log error): each public metric
  of ``permeability.modelling.metrics`` against its hand-written twin, and the largest absolute
  difference of the values.
- **KS on generated lab data**: every comparison ``detect_drift`` makes (the numeric inputs and
  log WVTR, over all rows and per structure with 30 rows a side), for a training set of
  ``--reference-rows`` against ``--current-rows`` recent rows (humidity 2 points lower), and
  for 3,000 against 800 (the unit tests' sizes): total time, the largest differences of D and
  of p, and how many comparisons SciPy computes exactly (both samples up to 10,000 values; at
  100,000 against 1,000 the comparisons over all rows are asymptotic), then the whole report
  (``detect_drift``, new only) for scale.
- **KS worst case**: 10,000 against 7,000 rows half a standard deviation apart (the largest,
  slowest exact computation SciPy's ``auto`` makes).
- **KS p-values against the truth**: the exact p-value, found by enumerating every split of
  the pooled ranks, for 8 against 10 values (all distinct D), and SciPy's exact p (checked
  there) as the truth at 30 against 30, 30 against 200 and 100 against 800 for D whose p lies
  in 1e-5..1e-2 (the Bonferroni-corrected thresholds): the largest relative error of each.
- **chi-square**: the structure mix of the same lab data (``chi2_two_sample``), and the
  survival function on a grid of values and degrees of freedom (old closed form against
  ``scipy.stats.chi2.sf``).

Then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from permeability.modelling import metrics as m
from permeability.monitoring import drift as d
from permeability.monitoring.drift_statistics import chi2_two_sample
from permeability.record.schema import ESTRUCTURA
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec

FloatArray = NDArray[np.float64]

# -- hand-written, before issue 14 (src/permeability/monitoring/drift.py and metrics.py) ---------


def old_finite(values: ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def old_kolmogorov_survival(statistic: float) -> float:
    """P(K > statistic) for the Kolmogorov distribution (the KS test's large-sample law)."""
    if statistic < 0.18:  # the series has not converged there; the probability is 1 - 1e-7
        return 1.0
    terms = np.arange(1, 101, dtype=np.float64)
    signs = np.where(terms % 2 == 1, 1.0, -1.0)
    total = 2.0 * float(np.sum(signs * np.exp(-2.0 * terms**2 * statistic**2)))
    return min(max(total, 0.0), 1.0)


def old_ks_two_sample(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """(D, p-value) of the two-sample Kolmogorov-Smirnov test, asymptotic p with Stephens'
    correction (accurate for samples of a few dozen and more; conservative with ties)."""
    ref, cur = np.sort(old_finite(reference)), np.sort(old_finite(current))
    n, m_ = len(ref), len(cur)
    points = np.concatenate([ref, cur])
    ref_cdf = np.searchsorted(ref, points, side="right") / n
    cur_cdf = np.searchsorted(cur, points, side="right") / m_
    dist = float(np.max(np.abs(ref_cdf - cur_cdf)))
    effective = math.sqrt(n * m_ / (n + m_))
    return dist, old_kolmogorov_survival((effective + 0.12 + 0.11 / effective) * dist)


def old_chi2_survival(value: float, dof: int) -> float:
    """P(X > value) for X ~ chi-square(dof), in closed form for integer degrees of freedom."""
    if value <= 0.0:
        return 1.0
    half = value / 2.0
    log_half = math.log(half)
    if dof % 2 == 0:
        terms = (i * log_half - math.lgamma(i + 1) for i in range(dof // 2))
        total = sum(math.exp(t - half) for t in terms)
    else:
        terms = ((i - 0.5) * log_half - math.lgamma(i + 0.5) for i in range(1, (dof + 1) // 2))
        total = math.erfc(math.sqrt(half)) + sum(math.exp(t - half) for t in terms)
    return min(max(total, 0.0), 1.0)


def old_pool_rare_cells(table: FloatArray) -> FloatArray:
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    rare = (expected < 5.0).any(axis=0)
    if not rare.any():
        return table
    pooled = table[:, rare].sum(axis=1, keepdims=True)
    return np.hstack([table[:, ~rare], pooled]) if rare.sum() < table.shape[1] else pooled


def old_chi2_two_sample(reference: Iterable[str], current: Iterable[str]) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test that two samples share category shares."""
    ref = pd.Series(list(reference), dtype=object).value_counts()
    cur = pd.Series(list(current), dtype=object).value_counts()
    categories = sorted(set(ref.index) | set(cur.index), key=str)
    counts: FloatArray = np.vstack(
        [
            ref.reindex(categories, fill_value=0).to_numpy(dtype=np.float64),
            cur.reindex(categories, fill_value=0).to_numpy(dtype=np.float64),
        ]
    ).astype(np.float64)
    table = old_pool_rare_cells(counts)
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, old_chi2_survival(statistic, table.shape[1] - 1)


def old_mae(y: FloatArray, p: FloatArray) -> float:
    return float(np.mean(np.abs(y - p)))


def old_mse(y: FloatArray, p: FloatArray) -> float:
    return float(np.mean((y - p) ** 2))


def old_rmse(y: FloatArray, p: FloatArray) -> float:
    return float(np.sqrt(old_mse(y, p)))


def old_mape(y: FloatArray, p: FloatArray) -> float:
    return float(np.mean(np.abs(y - p) / y) * 100.0)


def old_r2(y: FloatArray, p: FloatArray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((y - p) ** 2)) / total


def old_regression_metrics(y: FloatArray, p: FloatArray) -> dict[str, float]:
    result = {"r2": old_r2(y, p), "mae": old_mae(y, p), "mse": old_mse(y, p)}
    result["rmse"] = old_rmse(y, p)
    result["mape"] = old_mape(y, p)
    if np.all(y > 0.0) and np.all(p > 0.0):
        result["r2_log"] = old_r2(np.log(y), np.log(p))
    return result


# -- measuring -------------------------------------------------------------------------------


def best_seconds(call: Callable[[], Any], repeats: int) -> float:
    """Best time of one call over ``repeats`` rounds (a round loops fast calls to ~20 ms)."""
    started = time.perf_counter()
    call()
    once = time.perf_counter() - started
    loops = max(1, min(10_000, int(0.02 / max(once, 1e-9))))
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def row(name: str, old_s: float, new_s: float, diff: float, note: str = "") -> dict[str, Any]:
    return {
        "case": name,
        "old_ms": old_s * 1e3,
        "new_ms": new_s * 1e3,
        "ratio": new_s / old_s,
        "max_abs_diff": diff,
        "note": note,
    }


def metric_rows(rows: int, repeats: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    y = np.exp(rng.normal(1.0, 1.5, rows))
    p = y * np.exp(rng.normal(0.0, 0.3, rows))
    pairs: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("mae", old_mae, m.mae),
        ("rmse", old_rmse, m.rmse),
        ("mape", old_mape, m.mape),
        ("r2", old_r2, m.r2),
    ]
    out = []
    for name, old, new in pairs:
        diff = abs(old(y, p) - new(y, p))
        out.append(
            row(
                f"{name} {rows:,} rows",
                best_seconds(functools.partial(old, y, p), repeats),
                best_seconds(functools.partial(new, y, p), repeats),
                diff,
            )
        )
    old_all, new_all = old_regression_metrics(y, p), m.regression_metrics(y, p)
    diff = max(abs(old_all[k] - new_all[k]) for k in old_all)
    out.append(
        row(
            f"regression_metrics {rows:,} rows",
            best_seconds(lambda: old_regression_metrics(y, p), repeats),
            best_seconds(lambda: m.regression_metrics(y, p), repeats),
            diff,
            "all six values",
        )
    )
    return out


def comparisons(
    reference: pd.DataFrame, current: pd.DataFrame
) -> list[tuple[FloatArray, FloatArray]]:
    """The (reference, current) samples of every KS comparison ``detect_drift`` makes."""
    least = d.DriftThresholds().min_rows
    ref_names = reference[ESTRUCTURA].astype(str).to_numpy()
    cur_names = current[ESTRUCTURA].astype(str).to_numpy()
    groups = [(np.ones(len(ref_names), bool), np.ones(len(cur_names), bool))]
    for name in sorted(set(ref_names) & set(cur_names)):
        r, c = ref_names == name, cur_names == name
        if r.sum() >= least and c.sum() >= least:
            groups.append((r, c))

    def column(frame: pd.DataFrame, name: str) -> FloatArray:
        if name == d.TARGET_FEATURE:
            return np.log(frame["Permeabilidad"].to_numpy(dtype=np.float64))
        return frame[name].to_numpy(dtype=np.float64)

    return [
        (old_finite(column(reference, feature)[r]), old_finite(column(current, feature)[c]))
        for r, c in groups
        for feature in (*d.NUMERIC_FEATURES, d.TARGET_FEATURE)
    ]


def ks_rows(label: str, pairs: list[tuple[FloatArray, FloatArray]], repeats: int) -> dict[str, Any]:
    exact = sum(max(len(a), len(b)) <= 10_000 for a, b in pairs)
    old = [old_ks_two_sample(a, b) for a, b in pairs]
    new = [stats.ks_2samp(a, b) for a, b in pairs]
    d_diff = max(abs(o[0] - float(n.statistic)) for o, n in zip(old, new, strict=True))
    p_diff = max(abs(o[1] - float(n.pvalue)) for o, n in zip(old, new, strict=True))
    corrected = d.DriftThresholds().alpha / len(pairs)  # Bonferroni over these comparisons
    flips = sum(
        bool(o[1] < corrected) != bool(n.pvalue < corrected) for o, n in zip(old, new, strict=True)
    )
    result = row(
        label,
        best_seconds(lambda: [old_ks_two_sample(a, b) for a, b in pairs], repeats),
        best_seconds(lambda: [stats.ks_2samp(a, b) for a, b in pairs], repeats),
        p_diff,
        f"{len(pairs)} comparisons, {exact} exact in SciPy; diff of p (of D: {d_diff:.1e}); "
        f"{flips} p on the other side of alpha/m",
    )
    result["max_abs_diff_statistic"] = d_diff
    result["flipped_at_corrected_alpha"] = flips
    return result


def lab_ks_and_chi2(
    reference_rows: int, current_rows: int, repeats: int, seed: int
) -> list[dict[str, Any]]:
    reference = generate_lab_data(reference_rows, seed, mess=MessSpec.none())
    current = generate_lab_data(
        current_rows,
        seed + 1,
        start_id=reference_rows + 1,
        mess=MessSpec.none(),
        drift=DriftSpec(humidity_shift_pct=-2.0),
    )
    pairs = comparisons(reference, current)
    out = [ks_rows(f"KS lab {reference_rows:,} vs {current_rows:,}", pairs, repeats)]
    ref_names = reference[ESTRUCTURA].astype(str).to_numpy(dtype=object)
    cur_names = current[ESTRUCTURA].astype(str).to_numpy(dtype=object)
    old, new = old_chi2_two_sample(ref_names, cur_names), chi2_two_sample(ref_names, cur_names)
    out.append(
        row(
            f"chi2 structure mix {reference_rows:,} vs {current_rows:,}",
            best_seconds(lambda: old_chi2_two_sample(ref_names, cur_names), repeats),
            best_seconds(lambda: chi2_two_sample(ref_names, cur_names), repeats),
            max(abs(old[0] - new[0]), abs(old[1] - new[1])),
            f"statistic {new[0]:.1f}, p {new[1]:.2e}",
        )
    )
    out.append(
        {
            "case": f"detect_drift {reference_rows:,} vs {current_rows:,} (new, whole report)",
            "new_ms": best_seconds(lambda: d.detect_drift(reference, current), repeats) * 1e3,
        }
    )
    return out


def worst_exact(repeats: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pairs = [(rng.normal(size=10_000), rng.normal(0.5, 1.0, size=7_000))]
    return ks_rows("KS 10,000 vs 7,000, shift 0.5 sd", pairs, min(repeats, 3))


def enumerated_p_values(n: int, m_: int) -> dict[int, tuple[float, NDArray[np.bool_]]]:
    """P(D >= k / (n m)) under the null, by enumerating every split of n + m distinct ranks,
    keyed by k = D·n·m, with one split (True: the first sample) where D is k / (n m)."""
    counts: dict[int, int] = {}
    examples: dict[int, NDArray[np.bool_]] = {}
    for chosen in itertools.combinations(range(n + m_), n):
        first = np.zeros(n + m_, dtype=bool)
        first[list(chosen)] = True
        steps = np.cumsum(np.where(first, m_, -n))  # n·m·(F1 - F2) along the ranks
        k = int(np.max(np.abs(steps)))
        counts[k] = counts.get(k, 0) + 1
        examples.setdefault(k, first)
    total = math.comb(n + m_, n)
    return {k: (sum(c for j, c in counts.items() if j >= k) / total, examples[k]) for k in counts}


def pvalue_truth(seed: int) -> list[dict[str, Any]]:
    out = []
    n, m_ = 8, 10
    ranks = np.arange(n + m_, dtype=np.float64)
    old_err = new_err = 0.0
    for p_true, first in enumerated_p_values(n, m_).values():
        a, b = ranks[first], ranks[~first]
        old_err = max(old_err, abs(old_ks_two_sample(a, b)[1] - p_true))
        new_err = max(new_err, abs(float(stats.ks_2samp(a, b).pvalue) - p_true))
    out.append(
        {
            "case": f"KS p vs enumeration, {n} vs {m_} (all D)",
            "old_max_abs_err": old_err,
            "new_max_abs_err": new_err,
        }
    )
    rng = np.random.default_rng(seed)
    for n, m_ in ((30, 30), (30, 200), (100, 800)):
        worst_old_rel = 0.0
        worst_asymp_rel = 0.0
        for shift in np.linspace(0.0, 1.5, 61):
            for _ in range(5):
                a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m_)
                exact = float(stats.ks_2samp(a, b, method="exact").pvalue)
                if not 1e-5 <= exact <= 1e-2:
                    continue
                old = old_ks_two_sample(a, b)[1]
                asymp = float(stats.ks_2samp(a, b, method="asymp").pvalue)
                worst_old_rel = max(worst_old_rel, abs(old / exact - 1.0))
                worst_asymp_rel = max(worst_asymp_rel, abs(asymp / exact - 1.0))
        out.append(
            {
                "case": f"KS p in 1e-5..1e-2 vs exact, {n} vs {m_}",
                "old_max_rel_err": worst_old_rel,
                "scipy_asymp_max_rel_err": worst_asymp_rel,
            }
        )
    return out


def chi2_survival_grid() -> dict[str, Any]:
    worst_abs = worst_rel = 0.0
    for dof in range(1, 41):
        for value in np.geomspace(0.01, 400.0, 200):
            old, new = old_chi2_survival(float(value), dof), float(stats.chi2.sf(value, dof))
            worst_abs = max(worst_abs, abs(old - new))
            if new > 1e-300:
                worst_rel = max(worst_rel, abs(old / new - 1.0))
    return {
        "case": "chi2 survival, dof 1..40, x 0.01..400",
        "max_abs_diff": worst_abs,
        "max_rel_diff": worst_rel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds; the best is kept")
    parser.add_argument("--metric-rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--current-rows", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()

    timed: list[dict[str, Any]] = []
    for rows in args.metric_rows:
        timed.extend(metric_rows(rows, args.repeats, args.seed))
    timed.extend(lab_ks_and_chi2(args.reference_rows, args.current_rows, args.repeats, args.seed))
    timed.extend(lab_ks_and_chi2(3_000, 800, args.repeats, args.seed))
    timed.append(worst_exact(args.repeats, args.seed))
    truth = [*pvalue_truth(args.seed), chi2_survival_grid()]

    print("old: hand-written, before issue 14; new: SciPy / scikit-learn; ratio = new / old")
    print(f"{'case':<44} {'old ms':>9} {'new ms':>9} {'ratio':>6} {'max |diff|':>10}  note")
    for r in timed:
        if "old_ms" not in r:
            print(f"{r['case']:<62} {r['new_ms']:>9.3f}")
            continue
        print(
            f"{r['case']:<44} {r['old_ms']:>9.3f} {r['new_ms']:>9.3f} {r['ratio']:>6.2f} "
            f"{r['max_abs_diff']:>10.1e}  {r['note']}"
        )
    slower = [r for r in timed if r.get("ratio", 0.0) > 3.0]
    if slower:
        print()
        print(
            "slower by more than 3x (none of these per request: metrics run in training and "
            "evaluation, drift in the evaluation job):"
        )
        for r in slower:
            extra = r["new_ms"] - r["old_ms"]
            print(f"  {r['case']}: {r['ratio']:.0f}x, {extra:+.2f} ms")
    print()
    print("exactness against the truth")
    for r in truth:
        figures = ", ".join(f"{k} {v:.1e}" for k, v in r.items() if k != "case")
        print(f"{r['case']:<44} {figures}")
    print(json.dumps({"bench": "drift_metrics", "timed": timed, "exactness": truth}))


if __name__ == "__main__":
    main()
