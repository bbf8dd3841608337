"""The drift report's statistics against their definitions: KS, chi-square and PSI."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.monitoring.drift_statistics import (
    categorical_psi,
    chi2_two_sample,
    ks_two_sample,
    population_stability_index,
)


def _enumerated_ks(n: int, m: int) -> dict[int, tuple[float, np.ndarray]]:
    """The two-sample KS null distribution by definition: with continuous data every split of
    the n + m ranks is equally likely. P(D >= k / (n m)) for every attainable k = D·n·m, with
    one split (True: the first sample) where D is k / (n m)."""
    counts: dict[int, int] = {}
    examples: dict[int, np.ndarray] = {}
    for chosen in itertools.combinations(range(n + m), n):
        first = np.zeros(n + m, dtype=bool)
        first[list(chosen)] = True
        k = int(np.max(np.abs(np.cumsum(np.where(first, m, -n)))))
        counts[k] = counts.get(k, 0) + 1
        examples.setdefault(k, first)
    total = math.comb(n + m, n)
    return {k: (sum(c for j, c in counts.items() if j >= k) / total, examples[k]) for k in counts}


def test_ks_p_value_of_small_samples_is_the_exact_permutation_probability() -> None:
    """Below 10,000 values a side SciPy computes the exact null distribution of D; checked
    here against its definition, for every D that 7 against 9 values can give."""
    n, m = 7, 9
    ranks = np.arange(n + m, dtype=np.float64) + 20.0
    for k, (probability, first) in _enumerated_ks(n, m).items():
        statistic, p_value = ks_two_sample(ranks[first], ranks[~first])
        assert statistic == pytest.approx(k / (n * m), abs=1e-12)
        assert p_value == pytest.approx(probability, abs=1e-12)


def test_ks_p_value_of_large_samples_follows_kolmogorovs_limit_law() -> None:
    """Above 10,000 values a side the p-value is asymptotic: Kolmogorov's law at the effective
    size n·m/(n+m), P(K > x) = 2 Σ (-1)^(k-1) exp(-2 k² x²), to a few percent at 400 rows."""
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=20_000), rng.normal(0.2, 1.0, size=400)
    statistic, p_value = ks_two_sample(reference, current)
    x = math.sqrt(20_000 * 400 / 20_400) * statistic
    limit = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k**2 * x**2) for k in range(1, 101))
    assert 1e-4 < p_value < 1e-2
    assert p_value == pytest.approx(limit, rel=0.1)


def _pearson(table: list[list[int]]) -> float:
    """Pearson's statistic, sum over cells of (observed - expected)² / expected."""
    rows, columns = [sum(r) for r in table], [sum(c) for c in zip(*table, strict=True)]
    total = sum(rows)
    return sum(
        (table[i][j] - rows[i] * columns[j] / total) ** 2 / (rows[i] * columns[j] / total)
        for i in range(len(rows))
        for j in range(len(columns))
    )


def test_chi2_is_pearsons_test_of_the_two_by_k_table() -> None:
    """Two degrees of freedom: the chi-square survival function is exp(-x / 2)."""
    reference = ["A"] * 300 + ["B"] * 200 + ["C"] * 100
    current = ["A"] * 80 + ["B"] * 90 + ["C"] * 30
    statistic, p_value = chi2_two_sample(reference, current)
    assert statistic == pytest.approx(_pearson([[300, 200, 100], [80, 90, 30]]), rel=1e-12)
    assert p_value == pytest.approx(math.exp(-statistic / 2.0), rel=1e-12)


def test_chi2_of_two_categories_has_no_continuity_correction() -> None:
    """One degree of freedom: survival erfc(sqrt(x / 2)), of the plain statistic (no Yates)."""
    statistic, p_value = chi2_two_sample(["A"] * 60 + ["B"] * 40, ["A"] * 30 + ["B"] * 45)
    assert statistic == pytest.approx(_pearson([[60, 40], [30, 45]]), rel=1e-12)
    assert p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2.0)), rel=1e-12)


def test_chi2_pools_categories_too_rare_for_the_approximation() -> None:
    reference = ["A"] * 500 + ["B"] * 500 + ["R1"] * 2 + ["R2"] * 1
    current = ["A"] * 100 + ["B"] * 100 + ["R2"] * 1
    pooled = chi2_two_sample(reference, current)
    relabelled = chi2_two_sample(
        [x if x in ("A", "B") else "R" for x in reference],
        [x if x in ("A", "B") else "R" for x in current],
    )
    assert pooled == pytest.approx(relabelled, rel=1e-12)
    assert pooled[0] == pytest.approx(_pearson([[500, 500, 3], [100, 100, 1]]), rel=1e-12)
    assert chi2_two_sample(["A"] * 3 + ["B"], ["B"] * 2) == (0.0, 1.0)  # one pooled cell


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    assert population_stability_index(reference, rng.normal(size=5000)) < 0.01
    assert population_stability_index(reference, rng.normal(1.0, 1.0, size=5000)) > 0.5


def test_psi_gives_a_repeated_value_its_own_bin() -> None:
    """Most tests run at exactly 90 % RH: the deciles coincide, the bins must not."""
    reference = np.r_[np.full(900, 90.0), np.linspace(20, 80, 100)]
    moved = np.r_[np.full(900, 92.0), np.linspace(20, 80, 100)]
    assert population_stability_index(reference, reference.copy()) == pytest.approx(0.0)
    assert population_stability_index(reference, moved) > 1.0


def test_psi_of_a_small_sample_is_not_blown_up_by_empty_bins() -> None:
    """20 rows leave some of ten bins empty most of the time; flooring an empty bin's share at
    1e-4 (the usual recipe) would add ~0.7 per empty bin (a mean PSI above 1 here)."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=2000)
    values = [population_stability_index(reference, rng.normal(size=20)) for _ in range(200)]
    assert float(np.mean(values)) < 0.5


def test_categorical_psi_counts_a_new_category() -> None:
    reference = ["A"] * 500 + ["B"] * 500
    assert categorical_psi(reference, ["A"] * 50 + ["B"] * 50) == pytest.approx(0.0, abs=1e-9)
    assert categorical_psi(reference, ["A"] * 40 + ["B"] * 40 + ["NEW"] * 20) > 0.5


def test_statistics_refuse_an_empty_side() -> None:
    with pytest.raises(InvalidInputError):
        population_stability_index([1.0, 2.0], [np.nan])
    with pytest.raises(InvalidInputError):
        categorical_psi([], ["A"])
    with pytest.raises(InvalidInputError):
        chi2_two_sample(["A"], [])
