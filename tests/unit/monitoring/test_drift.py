"""Drift detection on generated lab data (the statistics: test_drift_statistics.py).

The scenarios use realistic sizes (a 3,000-row training set, 800 newer rows): an unshifted
batch must raise no alarm, a humidity shift, a structure's barrier change and a new structure
must each be found. The thresholds' false-alarm rate was measured on many more seeds (see
docs/evaluation.md); the seeds here are fixed so the test is deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.pca import fit_caliper_pca
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.training import train_model
from permeability.monitoring import drift as d
from permeability.monitoring.drift_statistics import ks_two_sample
from permeability.monitoring.scored_rows import (
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
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec

TRAINING_ROWS = 3000
RECENT_ROWS = 800


def _recent(seed: int, drift: DriftSpec | None = None, rows: int = RECENT_ROWS) -> pd.DataFrame:
    return generate_lab_data(
        rows, seed, start_id=TRAINING_ROWS + 1, mess=MessSpec.none(), drift=drift
    )


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return generate_lab_data(TRAINING_ROWS, 11, mess=MessSpec.none())


# -- the comparisons -----------------------------------------------------------------------


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


def test_ks_compares_finite_values_only_and_skips_an_empty_side() -> None:
    reference = np.r_[np.linspace(20.0, 40.0, 50), np.nan, np.inf]
    current = np.r_[np.linspace(25.0, 45.0, 40), np.nan]
    found = _ks(reference, current)
    assert (found.n_reference, found.n_current) == (50, 40)
    assert (found.statistic, found.p_value) == ks_two_sample(reference, current)
    report = d.detect_drift(_temperatures(reference), _temperatures(np.full(40, np.nan)))
    assert report.test_for(GRADOS_C) is None
    assert report.test_for(PORC_HUMEDAD) is not None


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
def trained(training: pd.DataFrame) -> PermeabilityModel:
    pca = fit_caliper_pca(training[list(CALIBRES)].to_numpy(dtype=np.float64), 0.99)
    return train_model(training, pca, model="LinearRegression", test_size=0.25).model


def _residual_report(
    model: PermeabilityModel, training: pd.DataFrame, recent: pd.DataFrame
) -> d.DriftReport:
    scored = score_labelled(
        model, recent, SpecificationSet.from_limits([], "none"), DecisionPolicy(0.9, 0.05, 0.95)
    )
    reference = calibration_reference(model)
    return d.detect_drift(training, recent, residuals=(reference, recent_residuals(scored)))


def test_residuals_find_a_small_barrier_change_the_marginal_misses(
    training: pd.DataFrame, trained: PermeabilityModel
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


def test_residuals_of_unshifted_data_raise_no_alarm(
    training: pd.DataFrame, trained: PermeabilityModel
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
