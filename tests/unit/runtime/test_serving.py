"""Starting a service: several workers are started by factory path, on the seed port."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from permeability.runtime import workers
from permeability.runtime.serving import DEFAULT_PORTS, Service, run_service


def test_several_workers_import_the_factory_themselves_on_the_seed_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(workers, "run_workers", lambda *a, **kw: started.append((a, kw)))
    for name in ("PROMETHEUS_MULTIPROC_DIR", "OMP_NUM_THREADS"):
        monkeypatch.setenv(name, "")  # so that what run_service sets is undone after the test
        monkeypatch.delenv(name)

    run_service(Service.training, host="127.0.0.1", port=None, workers=2, access_log=False)

    [(arguments, options)] = started
    assert arguments == (
        "permeability.services.training.app:create_training_app",
        2,
        "127.0.0.1",
        DEFAULT_PORTS[Service.training],
    )
    assert options == {"access_log": False}
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_dir()
    metrics_dir.rmdir()
    assert os.environ["OMP_NUM_THREADS"] == "1"
