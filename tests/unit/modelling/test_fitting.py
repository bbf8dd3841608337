"""One candidate's fit (row limits, fit-time errors, level columns) and its out-of-fold refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.structure_levels import LEVEL_FEATURES
from permeability.modelling.catalogue import SVR_MAX_ROWS, uses_levels
from permeability.modelling.training import TrainingOutcome, train_model
from tests.lab_frames import pca_of, physics_frame

NOISE = 0.05


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(2400, seed=11, noise=NOISE)


@pytest.fixture(scope="module")
def linear(frame: pd.DataFrame) -> TrainingOutcome:
    return train_model(frame, pca_of(frame), model="LinearRegression")


def test_cross_conformal_residuals_come_from_refits_that_did_not_see_the_row(
    frame: pd.DataFrame,
) -> None:
    """In-sample residuals of a model fitted on every row would be too small; out-of-fold
    ones are as large as the test rows' errors (the interval keeps its coverage)."""
    outcome = train_model(frame, pca_of(frame), model="KNeighborsRegressor")
    calibration = outcome.model.calibration
    in_sample = np.abs(
        np.log(frame["Permeabilidad"].to_numpy()) - np.log(outcome.model.predict_frame(frame))
    )
    assert np.median(np.abs(calibration.pooled)) > 2 * np.median(in_sample)
    assert abs(outcome.metrics["coverage"] - 0.9) < 0.05


def test_svr_refuses_more_rows_than_it_can_fit() -> None:
    big = physics_frame(int(SVR_MAX_ROWS / 0.6) + 200, seed=41)
    with pytest.raises(InvalidInputError, match=rf"at most {SVR_MAX_ROWS} fitting rows"):
        train_model(big, pca_of(big), model="SVR")


def test_fit_time_errors_become_input_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="KNeighborsRegressor could not be fitted"):
        train_model(
            frame.head(40), pca_of(frame), model="KNeighborsRegressor", params={"n_neighbors": 500}
        )


def test_models_that_split_get_the_level_columns_and_additive_ones_do_not(
    frame: pd.DataFrame, linear: TrainingOutcome
) -> None:
    train = frame.head(600)
    forest = train_model(
        train, pca_of(train), model="RandomForestRegressor", params={"n_estimators": 10}
    ).model
    assert forest.feature_names[-len(LEVEL_FEATURES) :] == list(LEVEL_FEATURES)
    assert not set(LEVEL_FEATURES) & set(linear.model.feature_names)
    assert uses_levels("ExtraTreesRegressor")
    assert not uses_levels("Ridge")
