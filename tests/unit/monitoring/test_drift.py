"""Drift statistics against their definitions, and drift detection on generated lab data.

The scenarios use realistic sizes (a 3,000-row training set, 800 newer rows): an unshifted
batch must raise no alarm, a humidity shift, a structure's barrier change and a new structure
must each be found. The thresholds' false-alarm rate was measured on many more seeds (see
docs/evaluation.md); the seeds here are fixed so the test is deterministic.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.model import train_model
from permeability.monitoring import drift as d
from permeability.monitoring.evaluation import (
    calibration_reference,
    recent_residuals,
    score_labelled,
)
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.scoring.decisions import DecisionPolicy
from permeability.scoring.specs import SpecificationSet
from permeability.synthetic.generator import DriftSpec, MessSpec, generate_lab_data

TRAINING_ROWS = 3000
RECENT_ROWS = 800


def _recent(seed: int, drift: DriftSpec | None = None, rows: int = RECENT_ROWS) -> pd.DataFrame:
    return generate_lab_data(
        rows, seed, start_id=TRAINING_ROWS + 1, mess=MessSpec.none(), drift=drift
    )


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return generate_lab_data(TRAINING_ROWS, 11, mess=MessSpec.none())


# -- the statistics -------------------------------------------------------------------------


def _temperatures(values: np.ndarray) -> pd.DataFrame:
    """Lab rows tested at ``values`` °C, alike in everything else."""
    return pd.DataFrame(
        {
            GRADOS_C: values,
            PORC_HUMEDAD: 90.0,
            CALIBRE_PROM: 20.0,
            ESTRUCTURA: "BOPP",
            PERMEABILIDAD: 5.0,
        }
    )


def _ks(reference: np.ndarray, current: np.ndarray) -> d.DriftTest:
    found = d.detect_drift(_temperatures(reference), _temperatures(current)).test_for(GRADOS_C)
    assert found is not None
    assert found.test == "ks"
    return found


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
        found = _ks(ranks[first], ranks[~first])
        assert found.statistic == pytest.approx(k / (n * m), abs=1e-12)
        assert found.p_value == pytest.approx(probability, abs=1e-12)


def test_ks_p_value_of_large_samples_follows_kolmogorovs_limit_law() -> None:
    """Above 10,000 values a side the p-value is asymptotic: Kolmogorov's law at the effective
    size n·m/(n+m), P(K > x) = 2 Σ (-1)^(k-1) exp(-2 k² x²), to a few percent at 400 rows."""
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=20_000), rng.normal(0.2, 1.0, size=400)
    found = _ks(reference, current)
    x = math.sqrt(20_000 * 400 / 20_400) * found.statistic
    limit = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k**2 * x**2) for k in range(1, 101))
    assert 1e-4 < found.p_value < 1e-2
    assert found.p_value == pytest.approx(limit, rel=0.1)


def test_ks_compares_finite_values_only_and_skips_an_empty_side() -> None:
    reference = np.r_[np.linspace(20.0, 40.0, 50), np.nan, np.inf]
    current = np.r_[np.linspace(25.0, 45.0, 40), np.nan]
    found = _ks(reference, current)
    assert (found.n_reference, found.n_current) == (50, 40)
    report = d.detect_drift(_temperatures(reference), _temperatures(np.full(40, np.nan)))
    assert report.test_for(GRADOS_C) is None
    assert report.test_for(PORC_HUMEDAD) is not None


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
    statistic, p_value = d.chi2_two_sample(reference, current)
    assert statistic == pytest.approx(_pearson([[300, 200, 100], [80, 90, 30]]), rel=1e-12)
    assert p_value == pytest.approx(math.exp(-statistic / 2.0), rel=1e-12)


def test_chi2_of_two_categories_has_no_continuity_correction() -> None:
    """One degree of freedom: survival erfc(sqrt(x / 2)), of the plain statistic (no Yates)."""
    statistic, p_value = d.chi2_two_sample(["A"] * 60 + ["B"] * 40, ["A"] * 30 + ["B"] * 45)
    assert statistic == pytest.approx(_pearson([[60, 40], [30, 45]]), rel=1e-12)
    assert p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2.0)), rel=1e-12)


def test_chi2_pools_categories_too_rare_for_the_approximation() -> None:
    reference = ["A"] * 500 + ["B"] * 500 + ["R1"] * 2 + ["R2"] * 1
    current = ["A"] * 100 + ["B"] * 100 + ["R2"] * 1
    pooled = d.chi2_two_sample(reference, current)
    relabelled = d.chi2_two_sample(
        [x if x in ("A", "B") else "R" for x in reference],
        [x if x in ("A", "B") else "R" for x in current],
    )
    assert pooled == pytest.approx(relabelled, rel=1e-12)
    assert pooled[0] == pytest.approx(_pearson([[500, 500, 3], [100, 100, 1]]), rel=1e-12)
    assert d.chi2_two_sample(["A"] * 3 + ["B"], ["B"] * 2) == (0.0, 1.0)  # one pooled cell


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    assert d.population_stability_index(reference, rng.normal(size=5000)) < 0.01
    assert d.population_stability_index(reference, rng.normal(1.0, 1.0, size=5000)) > 0.5


def test_psi_gives_a_repeated_value_its_own_bin() -> None:
    """Most tests run at exactly 90 % RH: the deciles coincide, the bins must not."""
    reference = np.r_[np.full(900, 90.0), np.linspace(20, 80, 100)]
    moved = np.r_[np.full(900, 92.0), np.linspace(20, 80, 100)]
    assert d.population_stability_index(reference, reference.copy()) == pytest.approx(0.0)
    assert d.population_stability_index(reference, moved) > 1.0


def test_psi_of_a_small_sample_is_not_blown_up_by_empty_bins() -> None:
    """20 rows leave some of ten bins empty most of the time; flooring an empty bin's share at
    1e-4 (the usual recipe) would add ~0.7 per empty bin (a mean PSI above 1 here)."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=2000)
    values = [d.population_stability_index(reference, rng.normal(size=20)) for _ in range(200)]
    assert float(np.mean(values)) < 0.5


def test_categorical_psi_counts_a_new_category() -> None:
    reference = ["A"] * 500 + ["B"] * 500
    assert d.categorical_psi(reference, ["A"] * 50 + ["B"] * 50) == pytest.approx(0.0, abs=1e-9)
    assert d.categorical_psi(reference, ["A"] * 40 + ["B"] * 40 + ["NEW"] * 20) > 0.5


def test_statistics_refuse_an_empty_side() -> None:
    with pytest.raises(InvalidInputError):
        d.population_stability_index([1.0, 2.0], [np.nan])
    with pytest.raises(InvalidInputError):
        d.categorical_psi([], ["A"])
    with pytest.raises(InvalidInputError):
        d.chi2_two_sample(["A"], [])


# -- detection ----------------------------------------------------------------------------


def test_unshifted_recent_data_raises_no_alarm(training: pd.DataFrame) -> None:
    for seed in (101, 102, 103):
        report = d.detect_drift(training, _recent(seed))
        assert not report.drifted, report.summary()
        assert report.new_structures == {}
        assert report.summary().startswith("no drift")


def test_a_humidity_shift_is_detected_on_humidity(training: pd.DataFrame) -> None:
    report = d.detect_drift(training, _recent(101, DriftSpec(humidity_shift_pct=-5.0)))
    assert report.drifted
    overall = report.test_for("Porc_Humedad")
    assert overall is not None
    assert overall.drifted
    assert overall.p_value < report.corrected_alpha
    assert overall.psi >= report.thresholds.psi
    assert not any(t.drifted for t in report.tests if t.feature == "CalibreProm")


def test_a_large_barrier_change_shows_in_that_structures_target(training: pd.DataFrame) -> None:
    report = d.detect_drift(training, _recent(101, DriftSpec(barrier_factor={"BOPP/MET": 2.0})))
    flagged = {(t.feature, t.structure) for t in report.flagged}
    assert (d.TARGET_FEATURE, "BOPP/MET") in flagged
    assert all(structure in ("BOPP/MET", d.ALL_STRUCTURES) for _, structure in flagged)


def test_new_structures_are_listed_and_change_the_mix(training: pd.DataFrame) -> None:
    report = d.detect_drift(training, _recent(101, DriftSpec(new_structures=("BOPP/PPC",))))
    assert report.drifted
    assert set(report.new_structures) == {"BOPP/PPC"}
    assert report.new_structures["BOPP/PPC"] > 50
    mix = report.test_for("Estructura")
    assert mix is not None
    assert mix.drifted
    assert mix.test == "chi2"
    assert "new structures BOPP/PPC" in report.summary()


@pytest.fixture(scope="module")
def trained(training: pd.DataFrame):  # type: ignore[no-untyped-def]
    pca = fit_caliper_pca(training[list(CALIBRES)].to_numpy(dtype=np.float64), 0.99)
    return train_model(training, pca, model="LinearRegression", test_size=0.25).model


def _residual_report(model, training: pd.DataFrame, recent: pd.DataFrame) -> d.DriftReport:  # type: ignore[no-untyped-def]
    scored = score_labelled(
        model, recent, SpecificationSet.from_limits([], "none"), DecisionPolicy(0.9, 0.05, 0.95)
    )
    reference = calibration_reference(model)
    return d.detect_drift(training, recent, residuals=(reference, recent_residuals(scored)))


def test_residuals_find_a_small_barrier_change_the_marginal_misses(  # type: ignore[no-untyped-def]
    training: pd.DataFrame, trained
) -> None:
    recent = _recent(102, DriftSpec(barrier_factor={"BOPP": 1.25}))
    marginal = d.detect_drift(training, recent)
    assert not any(t.feature == d.TARGET_FEATURE and t.drifted for t in marginal.tests)
    report = _residual_report(trained, training, recent)
    residual = report.test_for(d.RESIDUAL_FEATURE, "BOPP")
    assert residual is not None
    assert residual.drifted
    assert residual.kind == "target"
    assert all(t.structure in ("BOPP", d.ALL_STRUCTURES) for t in report.flagged)


def test_residuals_of_unshifted_data_raise_no_alarm(  # type: ignore[no-untyped-def]
    training: pd.DataFrame, trained
) -> None:
    for seed in (104, 105):
        report = _residual_report(trained, training, _recent(seed))
        assert report.test_for(d.RESIDUAL_FEATURE) is not None
        assert not report.drifted, report.summary()


def test_small_structures_get_no_comparison_of_their_own(training: pd.DataFrame) -> None:
    recent = _recent(101, rows=200)
    report = d.detect_drift(training, recent, d.DriftThresholds(min_rows=40))
    counts = recent["Estructura"].value_counts()
    compared = {t.structure for t in report.tests} - {d.ALL_STRUCTURES}
    assert compared == {name for name, n in counts.items() if n >= 40}
    assert report.corrected_alpha == pytest.approx(0.01 / len(report.tests))


def test_report_table_has_one_row_per_comparison(training: pd.DataFrame) -> None:
    report = d.detect_drift(training, _recent(101))
    table = report.table()
    assert len(table) == len(report.tests)
    assert {"feature", "structure", "psi", "p_value", "drifted"} <= set(table.columns)


def test_bad_frames_are_refused_with_the_column_named(training: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="Porc_Humedad"):
        d.detect_drift(training, _recent(101).drop(columns=["Porc_Humedad"]))
    with pytest.raises(InvalidInputError, match="no rows"):
        d.detect_drift(training, _recent(101).iloc[0:0])
