"""The lab page end to end: a real inference service on generated data, driven by Chromium.

One session-scoped service for every browser test: generated clean lab data -> acquisition
(feature store) -> training (MLflow, model store) -> promotion -> ``permeability serve
inference`` in a subprocess on a free 127.0.0.1 port. Its specification file is written here
so that each decision (approve / reject / retest / none) has a known sample, whatever the
model learnt: the limits are placed relative to the model's own prediction for that sample.

Chromium is Debian's package (``/usr/bin/chromium``), driven by Playwright for Python; it is
never downloaded. Without it the tests skip, except under ``PERMEABILITY_REQUIRE_SERVICES=1``
(CI), where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import yaml

from tests.ports import free_port

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
VERSION: Final = "0.1"
STARTUP_TIMEOUT_S: Final = 90.0

#: BOPP at the standard tropical conditions; only the thickness varies between samples, and
#: each thickness falls in its own band of the test's specification file.
_BOPP_AT_38_90: Final = {"Estructura": "BOPP", "Grados_C": 38.0, "Porc_Humedad": 90.0}
_THICKNESS_FOR: Final = {"approve": 16.0, "reject": 21.0, "retest": 30.0}


def require_browser() -> None:
    """Skip without Chromium, except under CI (``PERMEABILITY_REQUIRE_SERVICES=1``)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')"
    if os.environ.get("PERMEABILITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and PERMEABILITY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def artifacts_dir() -> Path:
    """Where screenshots go: ``PERMEABILITY_TEST_ARTIFACTS`` or ``test-artifacts/`` (gitignored)."""
    root = Path(os.environ.get("PERMEABILITY_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sample(thickness: float, muestra: int, **overrides: Any) -> dict[str, Any]:
    """A seed-shaped ``data_test`` whose five readings and mean are all ``thickness``."""
    record: dict[str, Any] = {"Muestra": muestra, **_BOPP_AT_38_90}
    record.update({f"Calibre{i}": thickness for i in range(1, 6)}, CalibreProm=thickness)
    record.update(overrides)
    return record


@dataclass(frozen=True)
class LabService:
    """The running service and what the tests need to know about it."""

    url: str
    home: Path
    version: str
    run_id: str
    n_train: int
    samples: Mapping[str, dict[str, Any]]

    def infer(self, data_test: Mapping[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/inference",
            json={"version": self.version, "data_test": dict(data_test)},
            timeout=30,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def _clean_environment(patch: pytest.MonkeyPatch, home: Path) -> None:
    """The same isolation as tests/conftest.py's autouse fixture, for the whole session."""
    kept = ("PERMEABILITY_TEST_", "PERMEABILITY_REQUIRE_SERVICES")
    for name in list(os.environ):
        if name.startswith("PERMEABILITY_") and not name.startswith(kept):
            patch.delenv(name)
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    patch.setenv("PERMEABILITY_HOME", str(home))


def _train_and_promote(work: Path) -> tuple[Any, Any]:
    from permeability.io.exports import write_lab_export
    from permeability.pipelines.acquisition import acquire
    from permeability.pipelines.promotion import promote
    from permeability.pipelines.training import train
    from permeability.pipelines.training_spec import TrainingSpec
    from permeability.settings import Settings
    from permeability.synthetic.generator import generate_lab_data
    from permeability.synthetic.mess import MessSpec

    settings = Settings(home=work / "storage")
    export = write_lab_export(
        generate_lab_data(600, seed=11, mess=MessSpec.none()), work / "lab_export.csv"
    )
    acquire(settings, str(export))
    spec = TrainingSpec.parse(model="LinearRegression", version=VERSION, test_size=0.25, cv=2)
    result = train(settings, spec)
    promote(settings, VERSION, reason="e2e page tests")
    return settings, result


def _write_specs(settings: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Limits around the model's own predictions, so each decision has a known sample.

    approve: limit 100× the prediction; reject: limit 1/100 of it; retest: the limit *is*
    the prediction (P(exceed) ≈ ½). LDPE gets no limit at all (no decision).
    """
    from permeability.io.model_cache import ModelCache

    model = ModelCache.from_settings(settings).get(VERSION).model
    samples = {d: sample(t, muestra=900 + i) for i, (d, t) in enumerate(_THICKNESS_FOR.items())}
    factor = {"approve": 100.0, "reject": 0.01, "retest": 1.0}
    limits = []
    for decision, record in samples.items():
        thickness = record["CalibreProm"]
        predicted = model.predict_record({**record, "Estructura": "BOPP"})
        limits.append(
            {
                "structure": "BOPP",
                "min_thickness_um": thickness - 1.0,
                "max_thickness_um": thickness + 1.0,
                "max_permeability": float(f"{predicted * factor[decision]:.6g}"),
                "temperature_c": 38,
                "humidity_pct": 90,
                "method": "ASTM F1249",
            }
        )
    path.write_text(yaml.safe_dump({"version": 1, "limits": limits}), encoding="utf-8")
    samples["none"] = sample(50.0, muestra=950, Estructura="LDPE")
    return samples


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the inference service exited early: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the inference service was not ready in {STARTUP_TIMEOUT_S:g} s")


@contextmanager
def running_inference_service(work: Path, env: Mapping[str, str]) -> Iterator[str]:
    """``permeability serve inference`` on a free port with ``env``; its URL once ready.

    Terminated (killed if it hangs) on exit; its output goes to ``work/server.log``.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    command = [sys.executable, "-m", "permeability", "serve", "inference"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "OMP_NUM_THREADS": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def lab_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabService]:
    require_browser()
    work = tmp_path_factory.mktemp("lab_page")
    with pytest.MonkeyPatch.context() as patch:
        _clean_environment(patch, work / "storage")
        settings, result = _train_and_promote(work)
        specs_file = work / "specs.yaml"
        samples = _write_specs(settings, specs_file)
        env = {**os.environ, "PERMEABILITY_SPECS_FILE": str(specs_file)}
        with running_inference_service(work, env) as url:
            yield LabService(
                url=url,
                home=work / "storage",
                version=VERSION,
                run_id=result.run_id,
                n_train=result.n_train,
                samples=samples,
            )


@pytest.fixture(scope="session")
def browser(lab_service: LabService) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    return artifacts_dir()
