"""The drawn samples: standard conditions, the law's values, lot scatter, and drift on demand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRE_PROM,
    ESTRUCTURA,
    GRADOS_C,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.synthetic.catalogue import base_mix
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.sampling import DriftSpec
from permeability.synthetic.truth import PHYSICS_PERMEABILITY, TRUE_PERMEABILITY
from tests.unit.synthetic.generated_support import tidy_frame


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return tidy_frame()


def test_most_tests_run_at_standard_conditions(tidy: pd.DataFrame) -> None:
    tropical = tidy[GRADOS_C].between(37.5, 38.5) & tidy[PORC_HUMEDAD].between(89, 91)
    cool_dry = tidy[GRADOS_C].between(22.5, 23.5) & tidy[PORC_HUMEDAD].between(49, 51)
    assert 0.35 < tropical.mean() < 0.45
    assert 0.09 < cool_dry.mean() < 0.15
    assert (tidy[GRADOS_C] != 38.0).mean() > 0.6  # chamber jitter and arbitrary conditions


def test_generated_bopp_at_38_90_and_25_um_has_median_about_5(tidy: pd.DataFrame) -> None:
    rows = tidy[
        (tidy[ESTRUCTURA] == "BOPP")
        & tidy[GRADOS_C].between(37.6, 38.4)
        & tidy[PORC_HUMEDAD].between(89, 91)
        & tidy[CALIBRE_PROM].between(23.5, 26.5)
    ]
    assert len(rows) > 100
    assert 4.5 < rows[PERMEABILIDAD].median() < 5.5


def test_metallized_films_scatter_more_than_plain_ones(tidy: pd.DataFrame) -> None:
    log_error = pd.Series(np.log(tidy[PERMEABILIDAD] / tidy[PHYSICS_PERMEABILITY]))
    spread = log_error.groupby(tidy[ESTRUCTURA]).std()
    assert spread["BOPP/MET"] > 2 * spread["BOPP"]
    assert 0.06 < spread["BOPP"] < 0.15


def test_humidity_shift_moves_every_test_humidity() -> None:
    base = generate_lab_data(2_000, 9, mess=MessSpec.none())
    shifted = generate_lab_data(
        2_000, 9, mess=MessSpec.none(), drift=DriftSpec(humidity_shift_pct=-20.0)
    )
    expected = np.round(np.clip(base[PORC_HUMEDAD] - 20.0, 1.0, 100.0), 1)
    assert np.allclose(shifted[PORC_HUMEDAD], expected)
    assert shifted[PERMEABILIDAD].median() < base[PERMEABILIDAD].median()


def test_barrier_factor_multiplies_one_structure_only() -> None:
    base = generate_lab_data(3_000, 9, mess=MessSpec.none(), with_truth=True)
    drifted = generate_lab_data(
        3_000, 9, mess=MessSpec.none(), with_truth=True, drift=DriftSpec(barrier_factor={"BOPP": 2})
    )
    is_bopp = base[ESTRUCTURA] == "BOPP"
    ratio = drifted[TRUE_PERMEABILITY] / base[TRUE_PERMEABILITY]
    assert np.allclose(ratio[is_bopp], 2.0)
    assert np.allclose(ratio[~is_bopp], 1.0)


def test_new_structures_appear_at_their_share() -> None:
    drift = DriftSpec(new_structures=("PET/EVOH/LDPE", "CPP/LDPE"), new_structure_share=0.2)
    frame = generate_lab_data(10_000, 9, mess=MessSpec.none(), drift=drift)
    share = frame[ESTRUCTURA].isin(["PET/EVOH/LDPE", "PPC/LDPE"]).mean()
    assert share == pytest.approx(0.2, abs=0.015)
    assert (frame[PERMEABILIDAD] > 0).all()
    assert "PET/EVOH/LDPE" not in base_mix()


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (lambda: DriftSpec(new_structures=("BOPP",)), "already in the base mix"),
        (lambda: DriftSpec(new_structures=("KRYPTONITE",)), "KRYPTONITE"),
        (lambda: DriftSpec(barrier_factor={"PET/EVOH/LDPE": 2.0}), "not among"),
        (lambda: DriftSpec(barrier_factor={"BOPP": 0.0}), "positive"),
    ],
)
def test_bad_drift_specs_are_refused(drift: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        generate_lab_data(100, 1, drift=drift())  # type: ignore[operator]
