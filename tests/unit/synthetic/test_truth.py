"""The truth columns and the noise floor they give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.record.schema import ESTRUCTURA, PERMEABILIDAD
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import (
    PHYSICS_PERMEABILITY,
    TRUE_PERMEABILITY,
    noise_floor_log_sigma,
    noise_floor_mae,
)
from tests.unit.synthetic.generated_support import messy_frame, tidy_frame


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return messy_frame()


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    return tidy_frame()


def test_truth_columns_hold_the_noise_free_law(tidy: pd.DataFrame) -> None:
    assert (tidy[TRUE_PERMEABILITY] > 0).all()
    ratio = tidy[PHYSICS_PERMEABILITY] / tidy[TRUE_PERMEABILITY]
    assert float(np.median(np.abs(np.log(ratio)))) < 0.03  # only the caliper error differs
    by_structure = (tidy[PERMEABILIDAD] / tidy[TRUE_PERMEABILITY]).groupby(tidy[ESTRUCTURA])
    assert by_structure.median().between(0.93, 1.07).all()  # noise is median-centred


def test_noise_floor_is_reached_by_the_law_itself(tidy: pd.DataFrame) -> None:
    floor = noise_floor_mae(tidy)
    assert floor > 0
    perfect = tidy.assign(**{PERMEABILIDAD: tidy[PHYSICS_PERMEABILITY]})
    assert noise_floor_mae(perfect) == pytest.approx(0.0, abs=1e-12)
    assert 0.1 < noise_floor_log_sigma(tidy) < 0.3


def test_noise_floor_ignores_rows_a_quirk_touched(messy: pd.DataFrame, tidy: pd.DataFrame) -> None:
    assert noise_floor_mae(messy) == pytest.approx(noise_floor_mae(tidy), rel=0.25)


def test_noise_floor_needs_the_truth_columns() -> None:
    with pytest.raises(InvalidInputError, match=PHYSICS_PERMEABILITY):
        noise_floor_mae(generate_lab_data(50, 1, mess=MessSpec.none()))
