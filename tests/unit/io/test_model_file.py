"""The model file: written and read in one place, and models stored before the code moved
(``permeability.domain.*``, files written by 0.1 and kept in ``models_before_layout/``) still
load and give the same guide values."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from permeability.features.inputs import NUMERIC_INPUTS
from permeability.io.model_file import (
    MOVED_MODULES,
    SERVED_FILE,
    load_model_file,
    load_served_file,
    save_model_file,
    save_served_file,
)
from permeability.modelling.predictor import PermeabilityModel
from permeability.record.schema import ESTRUCTURA
from tests.unit.services.inference_support import tiny_model

BEFORE = Path(__file__).with_name("models_before_layout")


@pytest.mark.parametrize("name", ["LinearRegression", "RandomForestRegressor"])
def test_a_model_stored_before_the_layout_moved_loads_and_predicts_the_same(name: str) -> None:
    model = load_model_file(BEFORE / f"{name}.joblib")
    assert isinstance(model, PermeabilityModel)
    samples = pd.read_csv(BEFORE / "samples.csv")
    expected = json.loads((BEFORE / "expected.json").read_text())[name]
    guided = model.predict_interval_frame(samples, strict=False)
    for column, values in expected.items():
        np.testing.assert_allclose(guided[column].to_numpy(), values, rtol=1e-12)
    assert not any(old in sys.modules for old in MOVED_MODULES), "stand-ins outlive the load"


@pytest.mark.parametrize(
    ("name", "fast_path"), [("LinearRegression", "linear"), ("RandomForestRegressor", "tree")]
)
def test_a_model_stored_before_the_record_scorer_existed_serves_through_one(
    name: str, fast_path: str, tmp_path: Path
) -> None:
    """Its scorer is rebuilt on load: lean, so it also gets a served file, which answers the
    same guide values and intervals the model gave when it was stored."""
    model = load_model_file(BEFORE / f"{name}.joblib")
    scorer = model.record_scorer
    assert (scorer.fast_path, scorer.lean) == (fast_path, True)
    samples = pd.read_csv(BEFORE / "samples.csv")
    expected = json.loads((BEFORE / "expected.json").read_text())[name]
    rows = samples[[ESTRUCTURA, *NUMERIC_INPUTS]].to_dict(orient="records")
    records = [{str(k): v for k, v in row.items()} for row in rows]
    served = load_served_file(save_served_file(scorer, tmp_path / SERVED_FILE))
    for loaded in (scorer, served):
        predicted = [loaded.predict_record(r, strict=False) for r in records]
        np.testing.assert_allclose(predicted, expected["predicted"], rtol=1e-12)
        names = [loaded.features.canonical_structure(r[ESTRUCTURA]) for r in records]
        bounds = np.array([loaded.interval(p, n) for p, n in zip(predicted, names, strict=True)])
        np.testing.assert_allclose(bounds[:, 0], expected["lower"], rtol=1e-12)
        np.testing.assert_allclose(bounds[:, 1], expected["upper"], rtol=1e-12)


def test_a_model_saved_now_names_only_the_current_modules(tmp_path: Path) -> None:
    path = save_model_file(tiny_model(rows=300), tmp_path / "artifacts" / "model.joblib")
    assert b"permeability.domain" not in path.read_bytes()
    assert isinstance(load_model_file(path), PermeabilityModel)


def test_a_file_naming_a_module_that_never_existed_still_fails(tmp_path: Path) -> None:
    class Ghost:
        pass

    Ghost.__module__ = "permeability.nowhere"
    Ghost.__qualname__ = "Ghost"
    sys.modules["permeability.nowhere"] = type(sys)("permeability.nowhere")
    sys.modules["permeability.nowhere"].Ghost = Ghost  # type: ignore[attr-defined]
    path = tmp_path / "ghost.joblib"
    try:
        path.write_bytes(pickle.dumps(Ghost()))
    finally:
        del sys.modules["permeability.nowhere"]
    with pytest.raises(ModuleNotFoundError, match=r"permeability\.nowhere"):
        load_model_file(path)
