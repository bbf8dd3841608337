"""The single-record fast path the inference API uses equals the reference frame path.

``PermeabilityModel.predict_record`` (a folded dot product for linear models, compiled trees
for tree ensembles, the estimator on one numpy row otherwise) must give what ``predict_frame``
(feature matrix, estimator, exp) gives, to 1e-9 relative, on thousands of random records
spread over the whole physical range (not only where the training data lies) and typed with
the spellings labs use.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.features.pca import fit_caliper_pca
from permeability.modelling.catalogue import AUTO, model_names
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.training import train_model
from permeability.record.schema import CALIBRES
from permeability.synthetic.generator import generate_lab_data

LINEAR = ("LinearRegression", "Ridge", "Lasso", "ElasticNet")
TREES = ("RandomForestRegressor", "GradientBoostingRegressor", "HistGradientBoostingRegressor")
#: Kernel and neighbour models predict one row in milliseconds, so fewer records.
RECORDS = {name: 3000 if name in LINEAR + TREES else 200 for name in model_names() if name != AUTO}
SPELLINGS = {"BOPP": ["BOPP", "bopp ", " Bopp"], "BOPP/MET": ["Bopp metalizado", "bopp met"]}


@cache
def _trained(name: str) -> PermeabilityModel:
    frame = generate_lab_data(600, 31, mess=None)
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 0.99)
    return train_model(frame, pca, model=name, random_state=3).model


def _random_records(model: PermeabilityModel, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    structures = model.known_structures
    records = []
    for i in range(n):
        structure = structures[i % len(structures)]
        thickness = float(rng.uniform(6.0, 150.0))
        readings = (thickness * (1 + rng.normal(0, 0.02, 5))).round(1)
        spelled = rng.choice(SPELLINGS.get(structure, [structure]))
        records.append(
            {
                "Muestra": i,
                "Grados_C": float(rng.uniform(0.0, 70.0)),
                "Porc_Humedad": float(rng.uniform(1.0, 100.0)),
                "Estructura": str(spelled),
                **{c: float(v) for c, v in zip(CALIBRES, readings, strict=True)},
                "CalibreProm": round(float(readings.mean()), 2),
            }
        )
    return records


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_record_path_equals_frame_path(name: str) -> None:
    model = _trained(name)
    records = _random_records(model, RECORDS[name], seed=len(name))
    reference = model.predict_frame(pd.DataFrame(records), strict=True)
    fast = np.array([model.predict_record(r) for r in records])
    assert np.all(np.isfinite(reference))
    np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_models_take_the_dot_product_path(name: str) -> None:
    assert _trained(name).fast_path == "linear"


@pytest.mark.parametrize("name", TREES)
def test_tree_models_take_the_compiled_tree_path(name: str) -> None:
    assert _trained(name).fast_path == "tree"
