"""The whole MLOps loop in a temporary root, as a lab would run it.

acquire -> train (training API) -> promote -> infer over HTTP (a real ``permeability serve
inference`` process) -> the lab results of those samples arrive -> acquire again -> evaluate
-> the evaluation run is in MLflow (and in the MLflow UI the project starts) with the expected
metrics, linked to the training run, and the served guide values are among what it judged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, Final

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from permeability.io.evaluation_runs import EVALUATION_EXPERIMENT
from permeability.io.exports import write_lab_export
from permeability.io.registry import Registry
from permeability.io.tracking import RegistryConfig
from permeability.record.identity import DEFAULT_NON_PRODUCT, is_non_product
from permeability.record.schema import (
    CALIBRE_PROM,
    CONSECUTIVO,
    ESTRUCTURA,
    INPUT_COLUMNS,
    MUESTRA,
)
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.settings import Settings
from permeability.synthetic.export import generate_lab_export
from tests.e2e.cli_json import cli_json
from tests.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN: Final = "loop-token"
FIRST_ROWS: Final = 1500
NEXT_ROWS: Final = 300
SINGLE_REQUESTS: Final = 25
STARTUP_TIMEOUT_S: Final = 120.0


_cli = cli_json


@contextmanager
def _process(args: list[str], environment: Mapping[str, str], ready_url: str) -> Iterator[None]:
    """A CLI subprocess serving on 127.0.0.1 in its own process group, stopped with SIGINT to
    that group (a clean shutdown: the inference service flushes its prediction log; ``ui``'s
    MLflow child stops too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "permeability", *args],
        env=dict(environment),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"{args[0]} exited early: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{args[0]} was not ready within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        yield
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A real-export row as the lab sends it before the result: its record number (so
    evaluation joins the guide value to the record's later result), replicate and inputs."""
    inputs = {c: row[c] for c in INPUT_COLUMNS if c != CALIBRE_PROM}
    return {
        CONSECUTIVO: int(row[CONSECUTIVO]),
        MUESTRA: int(row[MUESTRA]),
        CALIBRE_PROM: float(row["Calibre_Prom"]),
        **inputs,
    }


def _known(home: Path) -> set[str]:
    """Structures version 0.1 accepts, from its metadata in the model store."""
    metadata = json.loads((home / "models" / "0.1" / "metadata.json").read_text(encoding="utf-8"))
    return set(metadata["known_structures"])


def _servable(upcoming: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    """The products among ``upcoming`` whose structure the version knows (the long tail of
    rare laminates may hold one the first export did not)."""
    aliases = build_alias_map()
    names = [normalise_structure(str(s), aliases) for s in upcoming[ESTRUCTURA]]
    keep = [n in known and not is_non_product(n, DEFAULT_NON_PRODUCT) for n in names]
    return upcoming[keep]


def test_acquire_train_promote_infer_acquire_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "storage"
    monkeypatch.setenv("PERMEABILITY_HOME", str(home))
    monkeypatch.setenv("PERMEABILITY_API_TOKEN", TOKEN)
    settings = Settings(home=home, api_token=SecretStr(TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # 1. The lab's first export (as messy as a real one) lands in the feature store.
    first = tmp_path / "lab_2025.csv"
    _cli("generate-data", "--out", str(first), "--rows", str(FIRST_ROWS), "--seed", "7")
    acquired = _cli("acquire", "--source", str(first))
    assert acquired["feature_set_version"] == 0

    # 2. Train through the training service (the seed's body) and promote the version.
    with TestClient(create_training_app_for(settings)) as training:
        response = training.post(
            "/train",
            json={"model": "LinearRegression", "version": "0.1", "test_size": 0.25},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        trained = response.json()
        promoted = training.post("/versions/0.1/promote", headers=auth)
        assert promoted.status_code == 200, promoted.text

    # 3. New samples are sent to the inference service over HTTP before their results exist.
    upcoming = generate_lab_export(
        NEXT_ROWS, 8, start_id=FIRST_ROWS + 1, start_date=date(2026, 1, 5), messy=False
    )
    aliases = build_alias_map()
    products = sum(
        not is_non_product(normalise_structure(str(s), aliases), DEFAULT_NON_PRODUCT)
        for s in upcoming[ESTRUCTURA]
    )
    servable = _servable(upcoming, _known(home))
    records = [_record(row) for row in servable.to_dict(orient="records")]
    assert len(records) > NEXT_ROWS // 2
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    serve = ["serve", "inference", "--host", "127.0.0.1", "--port", str(port)]
    with _process(serve, environment, f"{url}/ready"):
        for record in records[:SINGLE_REQUESTS]:
            answer = httpx.post(f"{url}/inference", json={"data_test": record}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["version"] == "0.1"
        batch = httpx.post(
            f"{url}/inference/batch", json={"records": records[SINGLE_REQUESTS:]}, timeout=60
        )
        assert batch.status_code == 200, batch.text

    # 4. The lab finishes those tests; their results arrive and are acquired (v1).
    later = write_lab_export(upcoming, tmp_path / "lab_2026.csv")
    again = _cli("acquire", "--source", str(later))
    assert again["feature_set_version"] == 1
    assert again["rows_inserted"] == NEXT_ROWS

    # 5. Evaluate the champion from the CLI.
    report = _cli("evaluate")
    assert [e["version"] for e in report["evaluated"]] == ["0.1"]
    item = report["evaluated"][0]
    assert item["recent_rows"] == products  # calibration and reference films are left out
    assert item["served_rows"] == len(records)  # every guide value served got its lab result
    assert item["training_run_id"] == trained["run_id"]
    assert item["drift"]["tests"]

    # 6. The run is in MLflow with the expected metrics, linked to the training run.
    config = replace(RegistryConfig.from_settings(settings), experiment_name=EVALUATION_EXPERIMENT)
    registry = Registry(config)
    run = registry.get_run(item["run_id"])
    assert run.status == "FINISHED"
    expected = {
        "r2",
        "mae",
        "mse",
        "rmse",
        "mape",
        "coverage",
        "wrong_approvals",
        "wrong_rejections",
        "decisions_approve",
        "decisions_retest",
        "decisions_reject",
        "served_mae",
        "served_coverage",
        "served_wrong_approvals",
        "drift_flagged",
    }
    assert expected <= set(run.metrics)
    assert run.metrics["mae"] == pytest.approx(item["recent"]["metrics"]["mae"])
    assert run.metrics["served_n_rows"] == len(records)
    assert 0.0 < run.metrics["coverage"] <= 1.0
    assert any(name.startswith("coverage_") for name in run.metrics)
    assert run.tags["training_run_id"] == trained["run_id"]
    assert run.tags["version_label"] == "0.1"
    artifacts = set(registry.list_artifacts(item["run_id"]))
    assert {
        "plots/error_over_time.png",
        "plots/coverage_per_structure.png",
        "plots/residuals.png",
    } <= artifacts

    # 7. ... and the MLflow UI the project starts (`permeability ui`) shows it.
    ui_port = free_port()
    ui = ["ui", "--host", "127.0.0.1", "--port", str(ui_port)]
    with _process(ui, environment, f"http://127.0.0.1:{ui_port}/health"):
        api = f"http://127.0.0.1:{ui_port}/api/2.0/mlflow"
        experiment = httpx.get(
            f"{api}/experiments/get-by-name",
            params={"experiment_name": EVALUATION_EXPERIMENT},
            timeout=30,
        ).json()["experiment"]
        runs = httpx.post(
            f"{api}/runs/search",
            json={"experiment_ids": [experiment["experiment_id"]]},
            timeout=30,
        ).json()["runs"]
        assert item["run_id"] in {r["info"]["run_id"] for r in runs}


def create_training_app_for(settings: Settings) -> Any:
    from permeability.services.training.app import create_training_app

    return create_training_app(settings)
