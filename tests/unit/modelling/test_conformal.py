from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest

from permeability.errors import InvalidInputError
from permeability.modelling.conformal import (
    ConformalCalibration,
    conformal_ranks,
    effective_tests,
    exceedance,
    replicate_correlation,
)


def _calibration(
    residuals: list[float] | np.ndarray, structure: str = "BOPP", *, min_calibration: int = 30
) -> ConformalCalibration:
    return ConformalCalibration(
        residuals, [structure] * len(residuals), min_calibration=min_calibration
    )


@pytest.mark.parametrize(
    ("n", "level", "expected"),
    [
        (19, 0.9, (1, 19)),
        (99, 0.9, (5, 95)),
        (30, 0.9, (1, 30)),
        (5, 0.9, (0, 6)),
        (39, 0.95, (1, 39)),
    ],
)
def test_conformal_ranks_are_the_finite_sample_ones(
    n: int, level: float, expected: tuple[int, int]
) -> None:
    assert conformal_ranks(n, level) == expected


def test_interval_uses_the_ranked_residuals_on_each_side() -> None:
    residuals = np.log(np.arange(1, 100) / 50.0)  # 99 sorted values
    calibration = _calibration(np.random.default_rng(0).permutation(residuals), min_calibration=30)
    lower, upper = calibration.interval(10.0, "BOPP", 0.9)
    assert lower == pytest.approx(10.0 * 5 / 50.0)
    assert upper == pytest.approx(10.0 * 95 / 50.0)


def test_tiny_calibration_gives_an_unbounded_interval_rather_than_a_guess() -> None:
    calibration = _calibration([0.1, -0.2, 0.05, 0.0, 0.3], min_calibration=1)
    assert calibration.interval(2.0, "BOPP", 0.9) == (0.0, math.inf)


def test_intervals_cover_at_least_the_level_on_new_draws() -> None:
    rng = np.random.default_rng(3)
    coverages = []
    for _ in range(200):
        calibration = _calibration(rng.standard_t(3, 150) * 0.2, min_calibration=30)
        future = rng.standard_t(3, 2000) * 0.2
        lower, upper = calibration.interval(1.0, "BOPP", 0.8)
        measured = np.exp(future)
        coverages.append(np.mean((measured >= lower) & (measured <= upper)))
    mean_coverage = float(np.mean(coverages))
    assert 0.8 <= mean_coverage <= 0.8 + 2 / 151 + 0.005


def test_structures_with_enough_residuals_get_their_own_otherwise_pooled() -> None:
    rng = np.random.default_rng(1)
    wide = rng.normal(0.0, 1.0, 200)
    narrow = rng.normal(0.0, 0.01, 200)
    few = rng.normal(0.0, 0.01, 10)
    calibration = ConformalCalibration(
        np.concatenate([wide, narrow, few]),
        ["BOPA"] * 200 + ["BOPP MET"] * 200 + ["HDPE"] * 10,
        min_calibration=30,
    )
    assert calibration.source("BOPA") == "structure"
    assert calibration.source("HDPE") == "pooled"
    assert calibration.source("never seen") == "pooled"
    assert calibration.counts == {"BOPA": 200, "BOPP MET": 200, "HDPE": 10}
    wide_low, wide_high = calibration.interval(1.0, "BOPA", 0.9)
    narrow_low, narrow_high = calibration.interval(1.0, "BOPP MET", 0.9)
    assert wide_high / wide_low > 10.0 > 1.1 > narrow_high / narrow_low
    pooled = np.sort(np.concatenate([wide, narrow, few]))
    np.testing.assert_array_equal(calibration.residuals_for("HDPE"), pooled)


def test_p_exceed_is_the_conformal_tail_share() -> None:
    calibration = _calibration(np.log([0.5, 0.8, 1.0, 1.25, 2.0]), min_calibration=1)
    # limit 12 on a prediction of 10: residuals above log(1.2) are log(1.25) and log(2): 2 of 5
    assert calibration.p_exceed(10.0, "BOPP", 12.0) == pytest.approx(3 / 6)
    assert calibration.p_exceed(10.0, "BOPP", 100.0) == pytest.approx(1 / 6)
    assert calibration.p_exceed(10.0, "BOPP", 1.0) == pytest.approx(6 / 6)


def test_p_exceed_falls_as_the_limit_rises() -> None:
    calibration = _calibration(np.random.default_rng(2).normal(0, 0.3, 300))
    limits = np.linspace(1.0, 40.0, 50)
    values = [calibration.p_exceed(10.0, "BOPP", float(limit)) for limit in limits]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] > 0.95
    assert values[-1] < 0.05


def test_batch_versions_equal_the_single_ones() -> None:
    rng = np.random.default_rng(4)
    names = np.array(["A"] * 120 + ["B"] * 80 + ["C"] * 5, dtype=object)
    calibration = ConformalCalibration(rng.normal(0, 0.2, len(names)) * (1 + (names == "B")), names)
    predictions = rng.uniform(0.1, 50.0, 300)
    structures = rng.choice(np.array(["A", "B", "C", "D"], dtype=object), 300)
    limits = rng.uniform(0.1, 60.0, 300)
    lower, upper = calibration.intervals(predictions, structures, 0.85)
    p_values = calibration.p_exceed_many(predictions, structures, limits)
    for i in range(300):
        assert (lower[i], upper[i]) == calibration.interval(predictions[i], structures[i], 0.85)
        assert p_values[i] == calibration.p_exceed(predictions[i], structures[i], limits[i])
    single_limit = calibration.p_exceed_many(predictions, structures, 20.0)
    assert single_limit[0] == calibration.p_exceed(predictions[0], structures[0], 20.0)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_level_outside_zero_one_is_refused(level: float) -> None:
    with pytest.raises(InvalidInputError, match="level"):
        _calibration([0.0] * 40).interval(1.0, "BOPP", level)


def test_bad_calibration_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="one structure per residual"):
        ConformalCalibration([0.1, 0.2], ["A"])
    with pytest.raises(InvalidInputError, match="at least one"):
        ConformalCalibration([], [])
    with pytest.raises(InvalidInputError, match="finite"):
        ConformalCalibration([0.1, float("nan")], ["A", "A"])
    with pytest.raises(InvalidInputError, match="positive"):
        _calibration([0.0] * 40).p_exceed(1.0, "BOPP", 0.0)


def test_calibration_survives_pickling() -> None:
    calibration = _calibration(np.random.default_rng(5).normal(0, 0.3, 100))
    restored = pickle.loads(pickle.dumps(calibration))  # noqa: S301 (own object round trip)
    assert restored.interval(3.0, "BOPP", 0.9) == calibration.interval(3.0, "BOPP", 0.9)
    assert restored.describe() == calibration.describe()


def test_a_small_structure_calibrates_with_its_family_before_the_pool() -> None:
    """BOPP/PPC (5 residuals) borrows polypropylene's (BOPP, 40 tight residuals), not the pool
    that foil's wide residuals dominate; a name of no known family takes the pool."""
    rng = np.random.default_rng(4)
    names = ["BOPP"] * 40 + ["PET/AL/PE"] * 40 + ["BOPP/PPC"] * 5
    residuals = np.r_[rng.normal(0, 0.05, 40), rng.normal(0, 1.0, 40), rng.normal(0, 0.05, 5)]
    calibration = ConformalCalibration(residuals, names, min_calibration=30)
    assert calibration.source("BOPP/PPC") == "family"
    assert calibration.source("BOPP/BOPP/PPC") == "family"  # never seen: its family too
    assert calibration.source("NUEVO-FILM") == "pooled"
    family_low, family_high = calibration.interval(1.0, "BOPP/PPC", 0.9)
    pooled_low, pooled_high = calibration.interval(1.0, "NUEVO-FILM", 0.9)
    assert family_high - family_low < 0.5 * (pooled_high - pooled_low)
    np.testing.assert_array_equal(
        calibration.residuals_for("BOPP/PPC"), np.sort(np.r_[residuals[:40], residuals[80:]])
    )


# -- replicates: residuals of one test are not independent evidence --------------------------


def test_ranks_counted_in_tests_reduce_to_the_row_ranks_when_every_row_is_a_test() -> None:
    for n in (19, 30, 57, 99):
        assert conformal_ranks(n, 0.9, tests=n) == conformal_ranks(n, 0.9)


def test_ranks_counted_in_fewer_tests_reach_further_into_the_tails() -> None:
    # 56 residuals: as 56 tests the 55th is the upper bound; as 28 tests (duplicated pairs)
    # the (1 − 0.05)·29/28 = 98.4 % quantile, the 56th; 12 tests cannot bound 90 % at all.
    assert conformal_ranks(56, 0.9) == (2, 55)
    assert conformal_ranks(56, 0.9, tests=28) == (1, 56)
    assert conformal_ranks(24, 0.9, tests=12) == (0, 25)
    with pytest.raises(InvalidInputError, match="tests"):
        conformal_ranks(10, 0.9, tests=11)


def test_replicate_correlation_is_one_for_copies_and_near_zero_for_independent_rows() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, 200)
    copies = np.repeat(values, 2)
    tests = np.repeat(np.arange(200), 2).astype(object)
    assert replicate_correlation(copies, tests) == pytest.approx(1.0)
    independent = rng.normal(0, 1, 400)
    assert replicate_correlation(independent, tests) < 0.15
    # No test with two rows: nothing to measure, rows count fully.
    assert replicate_correlation(values, np.arange(200).astype(object)) == 0.0


def test_effective_tests_lie_between_the_tests_and_the_rows() -> None:
    assert effective_tests(56, 28, 1.0) == pytest.approx(28.0)
    assert effective_tests(56, 28, 0.0) == pytest.approx(56.0)
    assert 28.0 < effective_tests(56, 28, 0.5) < 56.0
    assert effective_tests(0, 0, 0.5) == 0.0


def test_duplicated_replicates_count_once_for_bounds_and_for_own_calibration() -> None:
    """40 tests of two identical replicates are 40 pieces of evidence, not 80: the interval
    is the one of the 40 distinct residuals, and a structure of 20 such tests is too small
    to calibrate alone at min_calibration 30 (its 40 rows would have passed)."""
    rng = np.random.default_rng(8)
    distinct = rng.normal(0, 0.3, 40)
    alone = ConformalCalibration(distinct, ["BOPP"] * 40, min_calibration=30)
    doubled = ConformalCalibration(
        np.repeat(distinct, 2),
        ["BOPP"] * 80,
        min_calibration=30,
        tests=np.repeat([f"T{i}" for i in range(40)], 2),
    )
    assert doubled.correlation == pytest.approx(1.0)
    assert doubled.interval(2.0, "BOPP", 0.9) == pytest.approx(alone.interval(2.0, "BOPP", 0.9))
    assert doubled.p_exceed(2.0, "BOPP", 2.5) == pytest.approx(alone.p_exceed(2.0, "BOPP", 2.5))
    assert doubled.describe()["effective_tests"] == pytest.approx(40.0)

    names = ["BOPP"] * 60 + ["PET"] * 40
    tests = [f"B{i // 2}" for i in range(60)] + [f"P{i // 2}" for i in range(40)]
    residuals = np.r_[np.repeat(rng.normal(0, 0.1, 30), 2), np.repeat(rng.normal(0, 1, 20), 2)]
    small = ConformalCalibration(residuals, names, min_calibration=30, tests=tests)
    assert small.source("BOPP") == "structure"
    assert small.source("PET") == "pooled"  # 40 rows, but 20 tests
    rows_only = ConformalCalibration(residuals, names, min_calibration=30)
    assert rows_only.source("PET") == "structure"


def test_exceedance_counts_in_tests_and_is_what_p_exceed_gives() -> None:
    residuals = np.sort(np.random.default_rng(9).normal(0, 0.4, 50))
    thresholds = np.array([-0.5, 0.0, 0.3, 2.0])
    as_rows = exceedance(residuals, 50, thresholds)
    above = 50 - np.searchsorted(residuals, thresholds, side="right")
    np.testing.assert_allclose(as_rows, (1 + above) / 51)
    np.testing.assert_allclose(exceedance(residuals, 25, thresholds), (1 + above / 2) / 26)
    calibration = _calibration(residuals)
    assert calibration.p_exceed(1.0, "BOPP", math.exp(0.3)) == pytest.approx(as_rows[2])
