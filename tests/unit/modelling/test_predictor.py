"""The served model: its fast paths agree with the reference path, it pickles without its
derived state, describes itself, and serves rare and unseen structures."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from permeability.features.hierarchy import DEFAULT_MIN_STRUCTURE_SAMPLES
from permeability.features.inputs import UnknownStructureError
from permeability.modelling.catalogue import AUTO, model_names
from permeability.modelling.training import TrainingOutcome, train_model
from permeability.record.schema import ESTRUCTURA, MUESTRA
from tests.lab_frames import pca_of, physics_frame, random_records

NOISE = 0.05


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(2400, seed=11, noise=NOISE)


@pytest.fixture(scope="module")
def linear(frame: pd.DataFrame) -> TrainingOutcome:
    return train_model(frame, pca_of(frame), model="LinearRegression")


SMALL_MODELS = [name for name in model_names() if name != AUTO]


TREE_MODELS = (
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
)


FAST_PATHS = {
    **dict.fromkeys(("LinearRegression", "Ridge", "Lasso", "ElasticNet"), "linear"),
    **dict.fromkeys(TREE_MODELS, "tree"),
}


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_fast_paths_agree_with_the_reference_for_every_model(name: str) -> None:
    train = physics_frame(500, seed=21)
    outcome = train_model(train, pca_of(train), model=name)
    unseen = physics_frame(2000, seed=22)
    reference = outcome.model.predict_frame(unseen)
    records = random_records(unseen)
    batch = outcome.model.predict_records(records)
    single = np.array([outcome.model.predict_record(r) for r in records[:200]])
    np.testing.assert_allclose(batch, reference, rtol=1e-9, atol=0.0)
    np.testing.assert_allclose(single, reference[:200], rtol=1e-9, atol=0.0)
    assert np.all(reference > 0)
    assert outcome.model.fast_path == FAST_PATHS.get(name, "estimator")


def test_pickled_model_predicts_the_same(frame: pd.DataFrame, linear: TrainingOutcome) -> None:
    restored = pickle.loads(pickle.dumps(linear.model))  # noqa: S301 (own object round trip)
    sample = frame.head(50)
    np.testing.assert_array_equal(
        restored.predict_frame(sample), linear.model.predict_frame(sample)
    )
    record = random_records(sample)[0]
    assert restored.predict_record(record) == linear.model.predict_record(record)


@pytest.mark.parametrize("name", TREE_MODELS)
def test_pickled_tree_model_rebuilds_its_compiled_trees(name: str) -> None:
    """The pickle holds no compiled trees (older code can load it, and models pickled before
    the compiled trees existed look the same); loading rebuilds them."""
    train = physics_frame(400, seed=23)
    model = train_model(train, pca_of(train), model=name).model
    pickled = pickle.dumps(model)
    for derived in ("trees", "compiled_trees", "record_scorer"):
        assert f"permeability.modelling.{derived}".encode() not in pickled
    restored = pickle.loads(pickled)  # noqa: S301 (own object round trip)
    assert restored.fast_path == "tree"
    records = random_records(physics_frame(300, seed=24))
    np.testing.assert_array_equal(
        [restored.predict_record(r) for r in records], [model.predict_record(r) for r in records]
    )


def test_a_tree_model_that_cannot_be_compiled_still_loads_and_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A scikit-learn that renamed what the compiler reads must not make a version unloadable."""
    train = physics_frame(400, seed=23)
    model = train_model(train, pca_of(train), model="HistGradientBoostingRegressor").model
    pickled = pickle.dumps(model)

    def renamed(_estimator: object) -> None:
        raise AttributeError(
            "'HistGradientBoostingRegressor' object has no attribute '_predictors'"
        )

    monkeypatch.setattr("permeability.modelling.predictor.compile_ensemble", renamed)
    restored = pickle.loads(pickled)  # noqa: S301 (own object round trip)
    assert restored.fast_path == "estimator"
    assert "cannot be compiled" in caplog.text
    records = random_records(physics_frame(50, seed=24))
    np.testing.assert_allclose(
        [restored.predict_record(r) for r in records],
        [model.predict_record(r) for r in records],
        rtol=1e-9,
    )


def test_model_describes_itself_as_json(linear: TrainingOutcome) -> None:
    described = json.loads(json.dumps(linear.model.describe()))
    assert described["model_name"] == "LinearRegression"
    assert described["fast_path"] == "linear"
    assert set(described["structures"]) == {"NY", "BOPP", "BOPP/MET", "PET"}
    assert sum(s["n_train"] for s in described["structures"].values()) == linear.n_train
    assert described["n_features"] == len(linear.model.feature_names)
    assert described["interval_level"] == 0.9
    assert described["pca"]["n_components"] == linear.model.pca.n_components
    assert described["structures"]["NY"]["own_slopes"] == [
        "log_thickness",
        "inverse_temperature",
        "humidity",
    ]
    assert described["min_interaction_samples"] == linear.model.features.min_interaction_samples
    assert described["log_bounds"] == list(linear.model.log_bounds)


def test_rare_and_unseen_structures_do_not_break_training_or_inference() -> None:
    common = physics_frame(600, seed=31)
    rare = physics_frame(DEFAULT_MIN_STRUCTURE_SAMPLES - 1, seed=32, weights={"NY": 1.0})
    rare[ESTRUCTURA] = "EVOH"
    rare[MUESTRA] = np.arange(10_001, 10_001 + len(rare))
    data = pd.concat([common, rare], ignore_index=True)
    outcome = train_model(data, pca_of(data), model="Ridge")
    model = outcome.model
    assert "EVOH" in model.known_structures
    assert "structure=EVOH" not in model.feature_names
    unseen = physics_frame(20, seed=33).assign(**{ESTRUCTURA: "PLA"})
    assert np.all(np.isfinite(model.predict_frame(unseen)))
    with pytest.raises(UnknownStructureError) as caught:
        model.predict_record(random_records(unseen)[0])
    assert caught.value.known == model.known_structures
    evoh = random_records(rare)[0]
    assert model.predict_record(evoh) > 0
    lower, upper = model.interval(model.predict_record(evoh), "EVOH")
    assert 0 < lower < upper
    table = model.predict_interval_frame(unseen, level=0.8)
    assert list(table.columns) == [ESTRUCTURA, "predicted", "lower", "upper"]
    assert (table["lower"] < table["upper"]).all()
