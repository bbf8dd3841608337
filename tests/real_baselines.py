"""The two models the real-data targets compare against, on the seed's own features.

The seed's ``LinearRegression`` (raw WVTR on ``Muestra``, conditions, one-hot ``Estructura``
with ``drop_first`` and the caliper components, as its authors trained it) and a default
``RandomForestRegressor`` on the same columns: what a user would otherwise pick. Shared by
``bench/real_data.py`` and the end-to-end real-data check, so both judge against one thing.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

SEED_LR: Final = "seed LinearRegression (raw)"
DEFAULT_RF: Final = "default RandomForest (raw)"
BASELINES: Final = (SEED_LR, DEFAULT_RF)


def pc_columns(frame: pd.DataFrame) -> list[str]:
    """The caliper principal-component columns of a feature-store frame."""
    return [c for c in frame.columns if c.startswith("pc_")]


def raw_features(train: pd.DataFrame, held: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed's columns: Muestra, conditions, one-hot structure (drop_first), caliper PCs."""
    numeric = ["Muestra", "Grados_C", "Porc_Humedad", *pc_columns(train)]
    train_hot = pd.get_dummies(
        train["Estructura"].astype(str), prefix="Estructura", drop_first=True, dtype=float
    )
    # A held-out structure never seen in training (or the dropped one) gets all zeros.
    held_hot = pd.get_dummies(
        held["Estructura"].astype(str), prefix="Estructura", dtype=float
    ).reindex(columns=train_hot.columns, fill_value=0.0)
    x_train = pd.concat([train[numeric].astype(float), train_hot], axis=1)
    x_held = pd.concat([held[numeric].astype(float), held_hot], axis=1)
    return x_train, x_held


def baseline_predictions(
    name: str, train: pd.DataFrame, held: pd.DataFrame, seed: int
) -> NDArray[np.float64]:
    """One baseline fitted on ``train`` (feature-store rows), predicting ``held``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    x_train, x_held = raw_features(train, held)
    target = train["Permeabilidad"].to_numpy(dtype=np.float64)
    estimator: LinearRegression | RandomForestRegressor = (
        LinearRegression() if name == SEED_LR else RandomForestRegressor(random_state=seed)
    )
    estimator.fit(x_train.to_numpy(), target)
    return np.asarray(estimator.predict(x_held.to_numpy()), dtype=np.float64)
