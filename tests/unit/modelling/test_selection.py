"""Cross-validation and the ``auto`` choice among the candidates, on the fitting rows."""

from __future__ import annotations

import pandas as pd
import pytest

from permeability.modelling.catalogue import AUTO, AUTO_CANDIDATES
from permeability.modelling.training import train_model
from tests.lab_frames import pca_of, physics_frame

NOISE = 0.05


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(2400, seed=11, noise=NOISE)


def test_auto_cross_validates_its_candidates_and_names_the_winner(frame: pd.DataFrame) -> None:
    outcome = train_model(frame.head(600), pca_of(frame), model=AUTO, cv=2)
    assert outcome.model_name in {name for name, _ in AUTO_CANDIDATES}
    assert outcome.model.model_name == outcome.model_name
    assert outcome.cv_scores is not None
    assert outcome.cv_scores["folds"] == 2
    candidate_scores = {name: outcome.cv_scores[f"mae_mean_{name}"] for name, _ in AUTO_CANDIDATES}
    assert outcome.model_name == min(candidate_scores, key=lambda n: candidate_scores[n])
    assert outcome.cv_scores["mae_mean"] == candidate_scores[outcome.model_name]


def test_cv_scores_are_reported_when_asked(frame: pd.DataFrame) -> None:
    outcome = train_model(frame.head(600), pca_of(frame), model="Ridge", cv=4)
    assert outcome.cv_scores is not None
    assert outcome.cv_scores["folds"] == 4
    assert 0 < outcome.cv_scores["mae_mean"] < 10 * outcome.metrics["mae"]
    assert outcome.cv_scores["r2_mean"] > 0.9
