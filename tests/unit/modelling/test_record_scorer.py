"""The record scorer: the served form of a linear or compiled tree model loads in a fresh
interpreter without scikit-learn, SciPy, pandas or joblib and answers exactly as the full model
does; a scorer that needs its estimator is never stored."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.inputs import NUMERIC_INPUTS
from permeability.io.model_file import load_served_file, save_served_file
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.record_scorer import RecordScorer
from permeability.modelling.training import train_model
from permeability.record.schema import CALIBRE_PROM, CALIBRES, ESTRUCTURA, GRADOS_C, PORC_HUMEDAD
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from tests.lab_frames import pca_of

HEAVY = ("sklearn", "scipy", "pandas", "joblib")
LEAN_MODELS = {
    "LinearRegression": "linear",
    "RandomForestRegressor": "tree",
    "HistGradientBoostingRegressor": "tree",
}
#: Unseen laminates of known layers (served through their family's stand-in, strict=False)
#: and one of no known family (the pooled OTHER category).
UNSEEN = ("BOPP/PE", "NY/PE", "XYZ")
#: Far outside the training conditions: the clip to the family's range binds.
EXTREME = {GRADOS_C: 80.0, PORC_HUMEDAD: 100.0, ESTRUCTURA: "NY"} | {
    column: 0.5 for column in (*CALIBRES, CALIBRE_PROM)
}

#: Run in a fresh interpreter: load the served file, answer every case, list heavy modules.
FRESH = """
import json, sys
from pathlib import Path
from permeability.io.model_file import load_served_file

scorer = load_served_file(Path(sys.argv[1]))
answers = []
for case in json.loads(Path(sys.argv[2]).read_text()):
    record = case["record"]
    prediction, extrapolated = scorer.predict_record_detail(record, strict=case["strict"])
    structure = scorer.features.canonical_structure(record["Estructura"])
    answers.append({
        "detail": [prediction, extrapolated],
        "record": scorer.predict_record(record, strict=case["strict"]),
        "interval": list(scorer.interval(prediction, structure)),
        "interval_50": list(scorer.interval(prediction, structure, 0.5)),
        "p_exceed": scorer.p_exceed(prediction, structure, case["limit"]),
        "source": scorer.calibration.source(structure),
    })
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[3].split(",")))
print(json.dumps({
    "answers": answers, "heavy": heavy, "fast_path": scorer.fast_path, "lean": scorer.lean,
    "model_name": scorer.model_name, "known": scorer.known_structures,
}))
"""


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return generate_lab_data(300, 1, mess=MessSpec.none(), with_truth=True)


@pytest.fixture(scope="module")
def models(data: pd.DataFrame) -> dict[str, PermeabilityModel]:
    names = [*LEAN_MODELS, "KNeighborsRegressor"]
    return {name: train_model(data, pca_of(data), model=name).model for name in names}


def _records(data: pd.DataFrame) -> list[tuple[dict[str, Any], bool]]:
    """(record, strict): seen structures, unseen ones through their stand-in, an extreme."""
    columns = [ESTRUCTURA, *NUMERIC_INPUTS]
    seen = [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in data[columns].head(12).to_dict(orient="records")
    ]
    unseen = [seen[0] | {ESTRUCTURA: name} for name in UNSEEN]
    return [
        *((record, True) for record in seen),
        *((record, False) for record in unseen),
        (EXTREME, True),
        (EXTREME, False),
    ]


def _expected(model: PermeabilityModel, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for case in cases:
        record = case["record"]
        prediction, extrapolated = model.predict_record_detail(record, strict=case["strict"])
        structure = model.features.canonical_structure(record[ESTRUCTURA])
        answers.append(
            {
                "detail": [prediction, extrapolated],
                "record": model.predict_record(record, strict=case["strict"]),
                "interval": list(model.interval(prediction, structure)),
                "interval_50": list(model.interval(prediction, structure, 0.5)),
                "p_exceed": model.p_exceed(prediction, structure, case["limit"]),
                "source": model.calibration.source(structure),
            }
        )
    return answers


@pytest.mark.parametrize("name", LEAN_MODELS)
def test_a_served_file_answers_like_the_full_model_without_the_heavy_libraries(
    name: str, models: dict[str, PermeabilityModel], data: pd.DataFrame, tmp_path: Path
) -> None:
    model = models[name]
    assert model.record_scorer.lean
    assert model.record_scorer.fast_path == LEAN_MODELS[name] == model.fast_path
    served = save_served_file(model.record_scorer, tmp_path / "artifacts" / "served.pkl")
    cases = [
        {"record": record, "strict": strict, "limit": 1.3 * model.predict_record(record, strict)}
        for record, strict in _records(data)
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(served), str(tmp_path / "cases.json"), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["heavy"] == [], f"loading the served file imported {answer['heavy']}"
    assert (answer["fast_path"], answer["lean"]) == (LEAN_MODELS[name], True)
    assert answer["model_name"] == name
    assert answer["known"] == model.known_structures
    expected = _expected(model, cases)
    assert answer["answers"] == expected  # exactly: same floats, same flags
    # The cases cover what they claim: stand-ins, the pooled OTHER, a clipped extrapolation.
    for unseen in UNSEEN:
        assert unseen not in model.known_structures
    assert {model.features.stand_in(n) is None for n in UNSEEN} == {True, False}
    if LEAN_MODELS[name] == "linear":  # trees never predict beyond their leaves' range
        assert expected[-1]["detail"][1] is expected[-2]["detail"][1] is True
    assert any(a["source"] != "pooled" for a in expected)


@pytest.mark.parametrize("name", LEAN_MODELS)
def test_the_full_models_single_record_methods_are_its_scorers(
    name: str, models: dict[str, PermeabilityModel], data: pd.DataFrame
) -> None:
    """One clip, one predict path: the model's record answers are its scorer's and agree with
    the frame path (the reference)."""
    model = models[name]
    records = [record for record, _ in _records(data)]
    frame = pd.DataFrame(records)
    reference, clipped = model.predict_log_detail(frame, strict=False)
    details = [model.record_scorer.predict_record_detail(r, strict=False) for r in records]
    np.testing.assert_allclose([d[0] for d in details], np.exp(reference), rtol=1e-9)
    assert [d[1] for d in details] == clipped.tolist()
    assert details == [model.predict_record_detail(r, strict=False) for r in records]


def test_a_scorer_that_needs_its_estimator_is_never_stored(
    models: dict[str, PermeabilityModel], tmp_path: Path
) -> None:
    model = models["KNeighborsRegressor"]
    scorer = model.record_scorer
    assert (scorer.lean, scorer.fast_path) == (False, "estimator")
    with pytest.raises(InvalidInputError, match="estimator"):
        save_served_file(scorer, tmp_path / "served.pkl")
    assert not (tmp_path / "served.pkl").exists()
    with pytest.raises(InvalidInputError, match="not pickled"):
        pickle.dumps(scorer)
    with pytest.raises(InvalidInputError, match="RecordScorer"):
        save_served_file(model, tmp_path / "served.pkl")  # type: ignore[arg-type]
    # In memory it serves through the estimator, like the frame path.
    record = {ESTRUCTURA: "BOPP", GRADOS_C: 38.0, PORC_HUMEDAD: 90.0} | {
        column: 20.0 for column in (*CALIBRES, CALIBRE_PROM)
    }
    np.testing.assert_allclose(
        scorer.predict_record(record), model.predict_frame(pd.DataFrame([record]))[0], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("content", "named"),
    [({"model": "nope"}, "builtins.dict"), ([1, 2], "builtins.list")],
)
def test_a_served_file_holding_something_else_is_refused(
    content: object, named: str, tmp_path: Path
) -> None:
    path = tmp_path / "permeability_served.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(InvalidInputError, match="not a RecordScorer") as caught:
        load_served_file(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_the_full_model_is_not_a_served_file(
    models: dict[str, PermeabilityModel], tmp_path: Path
) -> None:
    path = tmp_path / "permeability_served.pkl"
    path.write_bytes(pickle.dumps(models["LinearRegression"]))
    with pytest.raises(InvalidInputError, match="PermeabilityModel"):
        load_served_file(path)


def test_a_served_scorer_round_trips_in_process(
    models: dict[str, PermeabilityModel], tmp_path: Path
) -> None:
    scorer = models["RandomForestRegressor"].record_scorer
    loaded = load_served_file(save_served_file(scorer, tmp_path / "served.pkl"))
    assert isinstance(loaded, RecordScorer)
    np.testing.assert_array_equal(loaded.category_bounds, scorer.category_bounds)
    assert (loaded.log_bounds, loaded.interval_level) == (scorer.log_bounds, scorer.interval_level)
    assert (loaded.detection_limit, loaded.non_product) == (
        scorer.detection_limit,
        scorer.non_product,
    )


def test_setting_what_the_scorer_is_built_from_rebuilds_it(
    models: dict[str, PermeabilityModel],
) -> None:
    original = models["LinearRegression"]
    model = copy.copy(original)
    assert model.record_scorer is not original.record_scorer
    model.detection_limit = 3.5
    model.non_product = ("CALIBRACION*",)
    model.interval_level = 0.8
    assert model.record_scorer.detection_limit == 3.5
    assert model.record_scorer.non_product == ("CALIBRACION*",)
    assert model.record_scorer.interval_level == 0.8
    assert original.record_scorer.detection_limit == original.detection_limit
    assert original.record_scorer.interval_level == original.interval_level


def test_a_scorer_refuses_an_unknown_row_predictor(models: dict[str, PermeabilityModel]) -> None:
    model = models["LinearRegression"]
    with pytest.raises(InvalidInputError, match="row predictor"):
        RecordScorer(
            "x",
            model.features,
            model.calibration,
            42,  # type: ignore[arg-type]
            log_bounds=model.log_bounds,
        )
