"""Training writes the served form of a lean model beside the full model (the model store copy
and the MLflow logged model), and none for a model that predicts through its estimator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from permeability.features.inputs import NUMERIC_INPUTS
from permeability.io.model_file import MODEL_FILE, SERVED_FILE, load_served_file
from permeability.io.model_store import METADATA_FILE, ModelStore
from permeability.io.registry import Registry
from permeability.modelling.record_scorer import RecordScorer
from permeability.modelling.training import train_model
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingSpec
from permeability.record.schema import ESTRUCTURA
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec
from tests.builders import fill_feature_store
from tests.lab_frames import pca_of


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return generate_lab_data(300, 3, mess=MessSpec.none(), with_truth=True)


def _mlmodel_artifacts(folder: Path) -> dict[str, dict[str, str]]:
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    return dict(mlmodel["flavors"]["python_function"]["artifacts"])


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("LinearRegression", True),
        ("HistGradientBoostingRegressor", True),
        ("KNeighborsRegressor", False),
    ],
)
def test_save_pyfunc_model_writes_the_served_file_for_lean_models_only(
    name: str, served: bool, data: pd.DataFrame, tmp_path: Path
) -> None:
    from permeability.io import pyfunc

    model = train_model(data, pca_of(data), model=name).model
    folder = pyfunc.save_pyfunc_model(
        tmp_path / "model", model, pyfunc.input_example(data), workdir=tmp_path / "work"
    )

    assert (folder / MODEL_FILE).is_file()
    assert (folder / SERVED_FILE).is_file() is served
    artifacts = _mlmodel_artifacts(folder)
    assert (pyfunc.SERVED_ARTIFACT_KEY in artifacts) is served
    if served:
        assert artifacts[pyfunc.SERVED_ARTIFACT_KEY]["path"] == SERVED_FILE.as_posix()
        scorer = load_served_file(folder / SERVED_FILE)
        rows = data[[ESTRUCTURA, *NUMERIC_INPUTS]].head(20).to_dict(orient="records")
        records = [{str(k): v for k, v in row.items()} for row in rows]
        assert [scorer.predict_record_detail(r) for r in records] == [
            model.predict_record_detail(r) for r in records
        ]
    # The pyfunc still serves from the full model, whatever the served file.
    loaded = pyfunc.load_pyfunc_model(folder).predict(pyfunc.input_example(data, rows=5))
    np.testing.assert_allclose(loaded["prediction"], model.predict_frame(data.head(5)), rtol=1e-12)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Registry]:
    root = tmp_path_factory.mktemp("training-served")
    settings = Settings(home=root / "storage")
    fill_feature_store(settings, root / "exports", rows=400, seed=5)
    registry = Registry.from_settings(settings)
    registry.setup()
    return settings, registry


@pytest.mark.parametrize(
    ("label", "name", "served"),
    [("0.1", "LinearRegression", True), ("0.2", "KNeighborsRegressor", False)],
)
def test_training_lists_and_publishes_the_served_file_of_a_lean_model(
    label: str,
    name: str,
    served: bool,
    registry: tuple[Settings, Registry],
    tmp_path: Path,
) -> None:
    import mlflow.artifacts

    settings, _ = registry
    result = train(settings, TrainingSpec.parse(model=name, version=label, test_size=0.25))

    folder = settings.paths.models / label
    metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    files = ["MLmodel", MODEL_FILE.as_posix()] + ([SERVED_FILE.as_posix()] if served else [])
    assert metadata["files"] == files
    assert (folder / SERVED_FILE).is_file() is served
    assert ModelStore(settings.paths.models).inspect(label).status == "available"
    logged = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/permeability/{result.registry_version}",
            dst_path=str(tmp_path / "logged"),
        )
    )
    assert (logged / SERVED_FILE).is_file() is served
    if served:
        assert (logged / SERVED_FILE).read_bytes() == (folder / SERVED_FILE).read_bytes()
        assert isinstance(load_served_file(logged / SERVED_FILE), RecordScorer)
