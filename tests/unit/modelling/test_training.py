"""The training procedure: split, fit, calibrate and score, and what it refuses."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from permeability.errors import EmptyFeatureStoreError, InvalidInputError
from permeability.modelling.catalogue import AUTO, UnknownModelError
from permeability.modelling.training import MIN_TRAINING_ROWS, TrainingOutcome, train_model
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    TEST_ID,
)
from permeability.synthetic.catalogue import reference_wvtr, structure_catalogue
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.truth import PHYSICS_PERMEABILITY
from tests.lab_frames import law, pca_of, physics_frame, random_records

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
    """Small data: cross-conformal, the model fits every training row and each of them gives
    one out-of-fold calibration residual."""
    assert linear.model.calibration.method == "cross-conformal"
    assert linear.n_train + linear.n_test == len(frame)
    assert linear.n_calibration == linear.n_train
    assert linear.n_test == round(0.25 * len(frame))
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


def test_split_calibration_holds_a_part_of_the_training_split_aside(frame: pd.DataFrame) -> None:
    split = train_model(frame, pca_of(frame), model="LinearRegression", calibration="split")
    assert split.model.calibration.method == "split-conformal"
    assert split.n_train + split.n_calibration + split.n_test == len(frame)
    assert split.n_calibration == round(0.2 * (len(frame) - split.n_test))
    assert split.model.n_train == split.n_train


def test_auto_calibration_switches_to_split_on_large_training_splits(
    monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame
) -> None:
    monkeypatch.setattr("permeability.modelling.training.CROSS_CALIBRATION_MAX_ROWS", 1000)
    large = train_model(frame, pca_of(frame), model="LinearRegression")
    assert large.model.calibration.method == "split-conformal"
    forced = train_model(frame, pca_of(frame), model="LinearRegression", calibration="cross")
    assert forced.model.calibration.method == "cross-conformal"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("calibration", "bootstrap", "calibration must be one of auto, split, cross"),
        ("calibration_folds", 1, "calibration_folds must be from 2 to 20"),
    ],
)
def test_bad_calibration_options_are_refused(
    frame: pd.DataFrame, option: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        train_model(frame, pca_of(frame), model="LinearRegression", **{option: value})  # type: ignore[arg-type]


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


def test_project_generator_data_reaches_its_noise_floor() -> None:
    generated = generate_lab_data(3000, seed=5, mess=MessSpec.none(), with_truth=True)
    outcome = train_model(generated, pca_of(generated), model="LinearRegression")
    tested = generated.set_index(MUESTRA).loc[outcome.test_predictions[MUESTRA]]
    floor = float(np.mean(np.abs(tested[PERMEABILIDAD] - tested[PHYSICS_PERMEABILITY])))
    assert outcome.metrics["mae"] <= 1.10 * floor


# -- small data: a lab with a few hundred rows over a dozen films ----------------------------

#: (rows, seed, lowest R², highest MAE / noise floor). Before the structure hierarchy these
#: gave R² of −1e66 (400, 7: LinearRegression predicted 1e33), −0.01 (300, 1), 0.56 (600, 3)
#: and −0.09 (200, 5). At 200 rows BOPA (WVTR ≈ 150, 5 % of the mix) has about six fitting
#: rows: its own level, but the shared humidity slope of non-hygroscopic films, and its few
#: test rows dominate an original-scale MAE; hence the looser bounds there.
SMALL_CASES = [(400, 7, 0.95, 1.6), (300, 1, 0.93, 2.5), (600, 3, 0.98, 1.5), (200, 5, 0.75, 6.5)]


@functools.cache
def _small(rows: int, seed: int) -> pd.DataFrame:
    return generate_lab_data(rows, seed, mess=MessSpec.none(), with_truth=True)


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge", AUTO])
@pytest.mark.parametrize(("rows", "seed", "min_r2", "max_ratio"), SMALL_CASES)
def test_a_few_hundred_rows_train_a_sensible_model(
    name: str, rows: int, seed: int, min_r2: float, max_ratio: float
) -> None:
    data = _small(rows, seed)
    outcome = train_model(data, pca_of(data), model=name)
    tested = data.set_index(MUESTRA).loc[outcome.test_predictions[MUESTRA]]
    floor = float(np.mean(np.abs(tested[PERMEABILIDAD] - tested[PHYSICS_PERMEABILITY])))
    assert outcome.metrics["r2"] > min_r2
    assert outcome.metrics["mae"] <= max_ratio * floor
    assert outcome.metrics["r2_log"] > 0.95


def _corner_records(structures: list[str]) -> pd.DataFrame:
    """Each structure at the corners of the lab's conditions, at its thinnest and thickest gauge."""
    rows = []
    for structure in structures:
        gauges = structure_catalogue()[structure].gauges_um
        for temperature, humidity, gauge in itertools.product(
            (15.0, 45.0), (10.0, 95.0), (min(gauges), max(gauges))
        ):
            rows.append(
                {GRADOS_C: temperature, PORC_HUMEDAD: humidity, ESTRUCTURA: structure}
                | {c: gauge for c in (*CALIBRES, CALIBRE_PROM)}
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("rows", "seed"), [(400, 7), (300, 1), (200, 5)])
def test_small_data_predictions_at_unusual_conditions_stay_physical(rows: int, seed: int) -> None:
    data = _small(rows, seed)
    model = train_model(data, pca_of(data), model="LinearRegression").model
    corners = _corner_records(model.known_structures)
    predicted = model.predict_frame(corners)
    truth = reference_wvtr(
        corners[ESTRUCTURA].to_numpy(),
        corners[GRADOS_C].to_numpy(),
        corners[PORC_HUMEDAD].to_numpy(),
        corners[CALIBRE_PROM].to_numpy(),
    )
    # Within a factor 20 of the generating law at every corner (a missing BOPA humidity slope
    # costs up to e² ≈ 7 at 10 % RH); before the hierarchy: 1e33 at (400, 7).
    assert np.max(np.abs(np.log(predicted / truth))) < math.log(20.0)
    records = np.array([model.predict_record(r) for r in random_records(corners)])
    np.testing.assert_allclose(records, predicted, rtol=1e-9, atol=0.0)


def test_calibration_counts_replicates_of_a_test_as_one_piece_of_evidence(
    frame: pd.DataFrame,
) -> None:
    """Two replicates per test: the calibration knows its residuals come from half as many
    tests (correlated within a test), and an interval is bounded by what they are worth."""
    rows = frame.head(400).reset_index(drop=True)
    twins = rows.iloc[np.repeat(np.arange(200), 2)].reset_index(drop=True)
    twins[MUESTRA] = np.tile([1, 2], 200)
    twins[TEST_ID] = np.repeat([f"T-{i}" for i in range(200)], 2)
    outcome = train_model(twins, pca_of(twins), model="LinearRegression", test_size=0.2)
    calibration = outcome.model.calibration
    assert calibration.correlation > 0.9
    n = len(calibration.pooled)
    worth = calibration.residual_set("NO-SUCH-FILM")[1]  # the pooled set
    assert n / 2 <= worth < 0.6 * n
