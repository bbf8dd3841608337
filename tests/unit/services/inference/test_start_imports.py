"""What a replica imports to become ready: single samples need neither scikit-learn, SciPy,
pandas, pandera, joblib nor MLflow (docs/deploy.md, "Replicas that start fast").

Each case runs in a fresh interpreter (this one has imported everything already): the app is
created and started, ``/ready`` and one ``POST /inference`` answered, and ``sys.modules`` read.
The refresher's first pass, which reads the full model, comes ``REFRESH_SECONDS`` after the
start: the check is made before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.unit.services.inference_support import publish_version, tiny_model

#: The libraries the full model needs, and MLflow: none is needed to answer a single sample.
HEAVY = ("sklearn", "scipy", "pandas", "pandera", "joblib", "mlflow", "openpyxl", "matplotlib")

_SCRIPT = """
import json, sys
import permeability.io.model_cache as model_cache
model_cache.registry_champion_resolver = lambda settings: (lambda: "0.1")
from fastapi.testclient import TestClient
from permeability.services.inference.app import create_inference_app
app = create_inference_app()
with TestClient(app) as client:
    ready = client.get("/ready")
    answer = client.post("/inference", json={"version": None, "data_test": %(sample)s})
    before = sorted(m for m in %(heavy)r if m in sys.modules)
    batch = client.post("/inference/batch", json={"records": [%(sample)s]})
    print(json.dumps({
        "ready": ready.status_code,
        "answer": answer.status_code,
        "prediction": answer.json()["prediction"]["value"],
        "heavy": before,
        "batch": batch.status_code,
        "batch_prediction": batch.json()["records"][0]["prediction"],
    }))
"""


def _start(home: Path) -> dict[str, Any]:
    script = _SCRIPT % {"sample": json.dumps(SEED_SAMPLE), "heavy": HEAVY}
    env = {**os.environ, "PERMEABILITY_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("model_name", ["Ridge", "HistGradientBoostingRegressor"])
def test_a_replica_answers_single_samples_without_the_model_libraries(
    tmp_path: Path, model_name: str
) -> None:
    model = tiny_model(model_name)
    publish_version(Settings(home=tmp_path), "0.1", model)

    started = _start(tmp_path)

    assert (started["ready"], started["answer"]) == (200, 200)
    assert started["heavy"] == []
    assert started["prediction"] == pytest.approx(model.predict_record(SEED_SAMPLE))
    # A batch then reads the full model, and gives the same number.
    assert started["batch"] == 200
    assert started["batch_prediction"] == pytest.approx(started["prediction"], rel=1e-12)


def test_a_version_without_a_served_file_serves_from_its_full_model(tmp_path: Path) -> None:
    model = tiny_model("Ridge")
    publish_version(Settings(home=tmp_path), "0.1", model, served=False)

    started = _start(tmp_path)

    assert (started["ready"], started["answer"]) == (200, 200)
    assert {"sklearn", "pandas", "joblib"} <= set(started["heavy"])
    assert started["prediction"] == pytest.approx(model.predict_record(SEED_SAMPLE))
