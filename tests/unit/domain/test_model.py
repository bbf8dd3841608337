from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from permeability.domain.features import UnknownStructureError
from permeability.domain.model import (
    MIN_TRAINING_ROWS,
    TrainingOutcome,
    stratified_split,
    train_model,
)
from permeability.domain.models import (
    AUTO,
    AUTO_CANDIDATES,
    SVR_MAX_ROWS,
    UnknownModelError,
    model_names,
)
from permeability.domain.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.domain.synthetic import PHYSICS_PERMEABILITY, MessSpec, generate_lab_data
from permeability.errors import EmptyFeatureStoreError, InvalidInputError
from tests.unit.domain.lab_frames import law, pca_of, physics_frame, random_records

NOISE = 0.05


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(2400, seed=11, noise=NOISE)


@pytest.fixture(scope="module")
def linear(frame: pd.DataFrame) -> TrainingOutcome:
    return train_model(frame, pca_of(frame), model="LinearRegression")


def _noise_floor(frame: pd.DataFrame, predictions: pd.DataFrame) -> float:
    rows = frame.set_index(MUESTRA).loc[predictions[MUESTRA]]
    exact = law(
        rows[ESTRUCTURA].to_numpy(),
        rows[GRADOS_C].to_numpy(),
        rows[PORC_HUMEDAD].to_numpy(),
        rows[CALIBRE_PROM].to_numpy(),
    )
    return float(np.mean(np.abs(predictions["measured"].to_numpy() - exact)))


def test_outcome_accounts_for_every_row(frame: pd.DataFrame, linear: TrainingOutcome) -> None:
    assert linear.n_train + linear.n_calibration + linear.n_test == len(frame)
    assert linear.n_test == round(0.25 * len(frame))
    assert linear.n_calibration == round(0.2 * (len(frame) - linear.n_test))
    assert linear.model_name == "LinearRegression"
    assert linear.model.n_train == linear.n_train
    assert linear.seconds > 0
    assert linear.cv_scores is None
    assert list(linear.test_predictions.columns) == [
        MUESTRA,
        ESTRUCTURA,
        "measured",
        "predicted",
        "lower",
        "upper",
    ]
    assert len(linear.test_predictions) == linear.n_test
    tested = set(linear.test_predictions[MUESTRA])
    assert len(tested) == linear.n_test
    assert tested <= set(frame[MUESTRA])
    assert set(linear.metrics) >= {"r2", "mae", "mse", "rmse", "mape", "coverage"}
    assert linear.per_structure["n"].sum() == linear.n_test


def test_linear_physics_model_reaches_the_noise_floor(
    frame: pd.DataFrame, linear: TrainingOutcome
) -> None:
    floor = _noise_floor(frame, linear.test_predictions)
    assert linear.metrics["mae"] <= 1.05 * floor
    assert linear.metrics["r2_log"] > 0.99


def test_linear_physics_model_beats_a_raw_feature_regression(
    frame: pd.DataFrame, linear: TrainingOutcome
) -> None:
    raw = pd.get_dummies(frame[[GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES]], dtype=float)
    tested = frame[MUESTRA].isin(linear.test_predictions[MUESTRA])
    baseline = LinearRegression().fit(raw[~tested], frame.loc[~tested, PERMEABILIDAD])
    baseline_mae = np.mean(np.abs(baseline.predict(raw[tested]) - frame.loc[tested, PERMEABILIDAD]))
    assert linear.metrics["mae"] < 0.25 * baseline_mae


def test_intervals_hold_their_level_on_held_out_rows(linear: TrainingOutcome) -> None:
    assert 0.86 <= linear.metrics["coverage"] <= 0.94
    predictions = linear.test_predictions
    assert (predictions["lower"] < predictions["predicted"]).all()
    assert (predictions["predicted"] < predictions["upper"]).all()
    assert set(linear.per_structure["interval_source"]) == {"structure"}


def test_training_is_deterministic_for_a_random_state(frame: pd.DataFrame) -> None:
    pca = pca_of(frame)
    first = train_model(frame, pca, model="HistGradientBoostingRegressor", params={"max_iter": 30})
    again = train_model(frame, pca, model="HistGradientBoostingRegressor", params={"max_iter": 30})
    other = train_model(
        frame, pca, model="HistGradientBoostingRegressor", params={"max_iter": 30}, random_state=1
    )
    pd.testing.assert_frame_equal(first.test_predictions, again.test_predictions)
    assert first.metrics == again.metrics
    assert set(first.test_predictions[MUESTRA]) != set(other.test_predictions[MUESTRA])


SMALL_MODELS = [name for name in model_names() if name != AUTO]


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
    expected_path = (
        "linear" if name in {"LinearRegression", "Ridge", "Lasso", "ElasticNet"} else "estimator"
    )
    assert outcome.model.fast_path == expected_path


def test_pickled_model_predicts_the_same(frame: pd.DataFrame, linear: TrainingOutcome) -> None:
    restored = pickle.loads(pickle.dumps(linear.model))  # noqa: S301 (own object round trip)
    sample = frame.head(50)
    np.testing.assert_array_equal(
        restored.predict_frame(sample), linear.model.predict_frame(sample)
    )
    record = random_records(sample)[0]
    assert restored.predict_record(record) == linear.model.predict_record(record)


def test_model_describes_itself_as_json(linear: TrainingOutcome) -> None:
    described = json.loads(json.dumps(linear.model.describe()))
    assert described["model_name"] == "LinearRegression"
    assert described["fast_path"] == "linear"
    assert set(described["structures"]) == {"BOPA", "BOPP", "BOPP MET", "PET"}
    assert sum(s["n_train"] for s in described["structures"].values()) == linear.n_train
    assert described["n_features"] == len(linear.model.feature_names)
    assert described["interval_level"] == 0.9
    assert described["pca"]["n_components"] == linear.model.pca.n_components


def test_rare_and_unseen_structures_do_not_break_training_or_inference() -> None:
    common = physics_frame(600, seed=31)
    rare = physics_frame(8, seed=32, weights={"BOPA": 1.0})
    rare[ESTRUCTURA] = "EVOH"
    rare[MUESTRA] = np.arange(10_001, 10_009)
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


def test_params_are_applied_and_reported(frame: pd.DataFrame) -> None:
    outcome = train_model(frame.head(400), pca_of(frame), model="Ridge", params={"alpha": 7.0})
    assert outcome.params["alpha"] == 7.0
    assert outcome.model.describe()["params"]["alpha"] == 7.0


@pytest.mark.parametrize("test_size", [0.0, 1.0, 1.5, -0.2])
def test_test_size_outside_zero_one_is_refused(frame: pd.DataFrame, test_size: float) -> None:
    with pytest.raises(InvalidInputError, match="test_size"):
        train_model(frame, pca_of(frame), model="Ridge", test_size=test_size)


def test_empty_and_tiny_frames_are_refused_with_counts(frame: pd.DataFrame) -> None:
    pca = pca_of(frame)
    with pytest.raises(EmptyFeatureStoreError):
        train_model(frame.head(0), pca, model="Ridge")
    with pytest.raises(InvalidInputError, match=rf"at least {MIN_TRAINING_ROWS} .*got 12"):
        train_model(frame.head(12), pca, model="Ridge")


def test_bad_arguments_are_refused_before_fitting(frame: pd.DataFrame) -> None:
    pca = pca_of(frame)
    with pytest.raises(UnknownModelError):
        train_model(frame, pca, model="DeepNet")
    with pytest.raises(InvalidInputError, match="depth"):
        train_model(frame, pca, model="Ridge", params={"depth": 2})
    with pytest.raises(InvalidInputError, match="auto"):
        train_model(frame, pca, model=AUTO, params={"alpha": 1.0})
    with pytest.raises(InvalidInputError, match="cv"):
        train_model(frame, pca, model="Ridge", cv=1)
    with pytest.raises(InvalidInputError, match="calibration_fraction"):
        train_model(frame, pca, model="Ridge", calibration_fraction=1.0)
    with pytest.raises(InvalidInputError, match="missing column"):
        train_model(frame.drop(columns=[CALIBRE_PROM]), pca, model="Ridge")


def test_bad_targets_are_refused_not_dropped(frame: pd.DataFrame) -> None:
    broken = frame.head(100).copy()
    broken.loc[broken.index[[3, 9]], PERMEABILIDAD] = [0.0, np.nan]
    with pytest.raises(InvalidInputError, match=r"Permeabilidad has 2 value"):
        train_model(broken, pca_of(frame), model="Ridge")


def test_svr_refuses_more_rows_than_it_can_fit() -> None:
    big = physics_frame(int(SVR_MAX_ROWS / 0.6) + 200, seed=41)
    with pytest.raises(InvalidInputError, match=rf"at most {SVR_MAX_ROWS} fitting rows"):
        train_model(big, pca_of(big), model="SVR")


def test_fit_time_errors_become_input_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="KNeighborsRegressor could not be fitted"):
        train_model(
            frame.head(40), pca_of(frame), model="KNeighborsRegressor", params={"n_neighbors": 500}
        )


def test_stratified_split_keeps_each_structures_share() -> None:
    labels = np.array(["A"] * 400 + ["B"] * 100 + ["C"] * 3 + ["D"] + ["E"], dtype=object)
    kept, held = stratified_split(labels, 0.25, np.random.default_rng(0))
    assert len(held) == round(0.25 * len(labels))
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))
    held_labels = labels[held].tolist()
    assert held_labels.count("A") == 100
    assert held_labels.count("B") == 25
    assert "C" in labels[kept].tolist()  # a stratum with two or more rows keeps one


def test_project_generator_data_reaches_its_noise_floor() -> None:
    generated = generate_lab_data(3000, seed=5, mess=MessSpec.none(), with_truth=True)
    outcome = train_model(generated, pca_of(generated), model="LinearRegression")
    tested = generated.set_index(MUESTRA).loc[outcome.test_predictions[MUESTRA]]
    floor = float(np.mean(np.abs(tested[PERMEABILIDAD] - tested[PHYSICS_PERMEABILITY])))
    assert outcome.metrics["mae"] <= 1.10 * floor
