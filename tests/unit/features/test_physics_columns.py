"""The physics columns linearise the law around the reference condition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from permeability.features.engineering import FeatureBuilder
from permeability.features.pca import fit_caliper_pca
from permeability.features.physics_columns import PHYSICS_FEATURES
from permeability.record.schema import CALIBRE_PROM, CALIBRES, ESTRUCTURA, GRADOS_C, PORC_HUMEDAD
from tests.lab_frames import law, pca_of, physics_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(3000, seed=1)


def _builder(frame: pd.DataFrame, *, interactions: bool, threshold: float = 0.99) -> FeatureBuilder:
    return FeatureBuilder(pca_of(frame, threshold), interactions=interactions).fit(frame)


def test_physics_columns_vanish_at_the_reference_condition(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=False)
    record = {GRADOS_C: 38.0, PORC_HUMEDAD: 90.0, ESTRUCTURA: "BOPP", CALIBRE_PROM: 25.0}
    record |= {c: 25.0 for c in CALIBRES}
    row = builder.transform_record(record)
    np.testing.assert_allclose(row[: len(PHYSICS_FEATURES)], 0.0, atol=1e-15)


def test_a_linear_model_on_the_features_reproduces_the_law_exactly(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    matrix = builder.transform_frame(frame)
    exact = np.log(
        law(
            frame[ESTRUCTURA].to_numpy(),
            frame[GRADOS_C].to_numpy(),
            frame[PORC_HUMEDAD].to_numpy(),
            frame[CALIBRE_PROM].to_numpy(),
        )
    )
    fitted = LinearRegression().fit(matrix, exact)
    assert np.max(np.abs(fitted.predict(matrix) - exact)) < 1e-8


def test_log_humidity_has_one_shared_slope(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    assert "log_humidity" in builder.feature_names
    assert not [name for name in builder.feature_names if name.endswith(":log_humidity")]


def test_two_components_carry_caliper_variation(frame: pd.DataFrame) -> None:
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 1.0)
    builder = FeatureBuilder(pca, interactions=False).fit(frame)
    assert [n for n in builder.feature_names if n.startswith("pc_")] == list(pca.output_columns)
    matrix = builder.transform_frame(frame)
    start = len(PHYSICS_FEATURES)
    expected = pca.transform(frame[list(CALIBRES)].to_numpy())
    np.testing.assert_allclose(matrix[:, start : start + pca.n_components], expected, atol=1e-9)
