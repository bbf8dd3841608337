"""The MLflow ``pyfunc`` face of a trained :class:`PermeabilityModel`.

The trained model is stored with joblib as an artifact of the MLflow model (not with skops),
so tree models need no trusted-type lists; the wrapper itself holds nothing and is pickled by
reference, which means ``permeability`` must be importable wherever the model is loaded
(``mlflow.pyfunc.load_model``, or ``mlflow models serve --env-manager local`` from this venv).
A linear or compiled tree model also carries its served form (a second artifact,
``artifacts/permeability_served.pkl``, :func:`~permeability.io.model_file.save_served_file`),
which inference replicas load without scikit-learn or pandas; the pyfunc does not use it.

The signature lists the lab's input columns (the seed's names) as ``double``/``string`` and
the output columns ``prediction``, ``lower``, ``upper`` (WVTR, g/m²·day). In process, MLflow's
schema check refuses an int64 column where a double is declared, before ``predict`` runs:
build inputs with :func:`prepare_inputs`.

This module subclasses an MLflow class, so importing it imports MLflow: it is imported only
lazily by the jobs, and switches telemetry off first (:func:`~permeability.io.mlflow_setup.import_mlflow`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from permeability.io.mlflow_setup import import_mlflow
from permeability.io.model_file import (
    MODEL_ARTIFACT_FILE,
    MODEL_FILE,
    SERVED_ARTIFACT_FILE,
    load_model_file,
    save_model_file,
    save_served_file,
)
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PORC_HUMEDAD,
)

import_mlflow()  # telemetry off before MLflow's first import, whoever imports this module first

import mlflow.pyfunc  # noqa: E402
from mlflow.models import Model, ModelSignature  # noqa: E402
from mlflow.pyfunc import PythonModel  # noqa: E402
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema  # noqa: E402

MODEL_ARTIFACT_KEY = "permeability_model"
#: The served form (:func:`~permeability.io.model_file.save_served_file`), for lean models.
SERVED_ARTIFACT_KEY = "served"
PREDICTION_COLUMN = "prediction"
FLOAT_INPUTS = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM)
#: Libraries the saved model needs, pinned to what trained it (explicit: inferring costs seconds).
PINNED_LIBRARIES = ("mlflow", "scikit-learn", "numpy", "pandas", "scipy")


class PermeabilityPyfunc(PythonModel):  # type: ignore[misc]
    """Loads the joblib artifact once; ``predict`` returns the WVTR guide value per row
    (``prediction``, the median) and its conformal interval (``lower``, ``upper``) at the
    level the model was calibrated for.

    Param ``strict`` (default true) refuses structures the model never saw in training, as
    the inference API does; ``strict=false`` routes them to the pooled "OTHER" category.
    """

    def __init__(self) -> None:
        self._model: Any = None

    def load_context(self, context: Any) -> None:
        self._model = load_model_file(Path(context.artifacts[MODEL_ARTIFACT_KEY]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = prepare_inputs(pd.DataFrame(model_input))
        strict = bool((params or {}).get("strict", True))
        guided = self._model.predict_interval_frame(frame, strict=strict)
        return pd.DataFrame(
            {
                PREDICTION_COLUMN: guided["predicted"].to_numpy(),
                "lower": guided["lower"].to_numpy(),
                "upper": guided["upper"].to_numpy(),
            }
        )


def prepare_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast the float columns that arrived as integers, so ``23`` % RH is as good as ``23.0``."""
    prepared = frame.copy()
    for column in FLOAT_INPUTS:
        if column in prepared.columns:
            prepared[column] = pd.to_numeric(prepared[column], errors="raise").astype("float64")
    if ESTRUCTURA in prepared.columns:
        prepared[ESTRUCTURA] = prepared[ESTRUCTURA].astype(str)
    return prepared


def model_signature() -> ModelSignature:
    inputs = Schema(
        [
            ColSpec("long", MUESTRA, required=False),
            *(ColSpec("double", column) for column in (GRADOS_C, PORC_HUMEDAD)),
            ColSpec("string", ESTRUCTURA),
            *(ColSpec("double", column) for column in (*CALIBRES, CALIBRE_PROM)),
        ]
    )
    outputs = Schema([ColSpec("double", name) for name in (PREDICTION_COLUMN, "lower", "upper")])
    params = ParamSchema([ParamSpec("strict", "boolean", True)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pinned_requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in PINNED_LIBRARIES]


def input_example(frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few real records in the signature's column order and types."""
    columns = [GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM]
    return prepare_inputs(frame.loc[:, columns].head(rows).reset_index(drop=True))


def save_pyfunc_model(
    path: Path,
    model: Any,
    example: pd.DataFrame,
    *,
    workdir: Path,
    run_id: str | None = None,
    model_id: str | None = None,
    artifact_location: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` as an MLflow model directory at ``path`` (which must not exist yet).

    ``run_id``/``model_id``/``artifact_location`` link the MLmodel file to the MLflow logged
    model it is uploaded as, so the copy in the model store and the tracked copy are the same
    bytes. MLflow validates the input example by loading the saved model and predicting it,
    so a model that cannot be served fails here, before anything is registered.

    A model whose single records need no estimator (``model.record_scorer.lean``: linear or
    compiled trees) also gets its served form, ``artifacts/permeability_served.pkl``, which
    replicas load without scikit-learn or pandas; the pyfunc itself keeps using the full model.
    """
    artifact = save_model_file(model, workdir / MODEL_ARTIFACT_FILE)
    artifacts = {MODEL_ARTIFACT_KEY: str(artifact)}
    scorer = getattr(model, "record_scorer", None)
    if scorer is not None and scorer.lean:
        served = save_served_file(scorer, workdir / SERVED_ARTIFACT_FILE)
        artifacts[SERVED_ARTIFACT_KEY] = str(served)
    mlflow_model = None
    if model_id is not None:
        mlflow_model = Model(
            artifact_path=artifact_location,
            run_id=run_id,
            model_uuid=model_id,
            model_id=model_id,
        )
    mlflow.pyfunc.save_model(
        str(path),
        python_model=PermeabilityPyfunc(),
        artifacts=artifacts,
        signature=model_signature(),
        input_example=example,
        pip_requirements=pinned_requirements(),
        metadata=dict(metadata) if metadata else None,
        mlflow_model=mlflow_model,
    )
    return path


def load_pyfunc_model(uri: str | Path) -> Any:
    """An MLflow pyfunc model from a local folder or a ``models:/`` URI."""
    return mlflow.pyfunc.load_model(str(uri))


def load_permeability_model(path: Path) -> Any:
    """The raw :class:`PermeabilityModel` of a saved folder, without MLflow's wrapper."""
    return load_model_file(path / MODEL_FILE)
