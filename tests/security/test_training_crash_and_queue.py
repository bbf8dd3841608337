"""Issue 13, items 4 and 5, replayed.

4. ``permeability train`` killed between registering in MLflow and publishing the model folder
   burnt its label: ``versions`` said ``unavailable`` forever, every retry was "already
   registered", and the run stayed ``RUNNING``. Now the next attempt, the service's start-up
   and the ``versions`` listing reconcile it.
5. Five ``POST /train`` at once ran at once (15.9 GB on two cores). Now they take turns under
   a machine-wide cap (``training.max_concurrent``, default 1) that ``permeability train`` in
   another process respects too, in a bounded FIFO line shown by ``GET /trainings``.

The kill is real: a child process trains with one step replaced by ``os._exit(137)``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from permeability.cli.main import app as cli_app
from permeability.io.model_store import ModelStore
from permeability.io.registry import Registry
from permeability.io.training_runs import TrainingJournal
from permeability.pipelines.promotion import list_versions
from permeability.pipelines.training import train
from permeability.pipelines.training_spec import TrainingSpec
from permeability.services.training.app import create_training_app
from permeability.settings import Settings
from tests.builders import fill_feature_store

BODY = {"model": "LinearRegression", "test_size": 0.25}

#: A child that runs ``permeability train`` with one step replaced (argv: target, action, label).
#: action "die": os._exit(137), as a kill would; "hang": write <home>/hanging, then sleep.
CHILD = """
import os, sys, time
from pathlib import Path

target, action, label = sys.argv[1:4]

def replaced(*args, **kwargs):
    if action == "die":
        os._exit(137)
    Path(os.environ["PERMEABILITY_HOME"], "hanging").write_text(str(os.getpid()))
    time.sleep(600)

if target == "publish":
    from permeability.io.model_store import Reservation
    Reservation.publish = replaced
elif target == "finish_run":
    from permeability.io.registry import Registry
    Registry.finish_run = replaced
elif target == "train_reserved":
    import permeability.pipelines.training as training
    real = training._train_reserved
    def gated(*args, **kwargs):
        gate = Path(os.environ["PERMEABILITY_HOME"], "gate")
        Path(os.environ["PERMEABILITY_HOME"], "hanging").write_text(str(os.getpid()))
        while not gate.exists():
            time.sleep(0.05)
        return real(*args, **kwargs)
    training._train_reserved = gated
from permeability.cli.main import app
app(["train", "--model", "LinearRegression", "--version", label, "--test-size", "0.25"])
"""


def _child(settings: Settings, target: str, action: str, label: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "PERMEABILITY_HOME": str(settings.home)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, target, action, label],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _killed_training(settings: Settings, target: str, label: str) -> None:
    child = _child(settings, target, "die", label)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 137, stderr


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _runs_of(registry: Registry, label: str) -> dict[str, str]:
    return {r.run_id: r.status for r in registry.runs_tagged("version_label", label)}


def _status_in_listing(settings: Settings, label: str) -> str | None:
    listed = {v.version: v.status for v in list_versions(settings).versions}
    return listed.get(label)


@pytest.fixture
def stocked_registry(settings: Settings, tmp_path: Path) -> tuple[Settings, Registry]:
    fill_feature_store(settings, tmp_path / "exports", rows=300, seed=13)
    registry = Registry.from_settings(settings)
    registry.setup()
    return settings, registry


def _assert_label_burnt(settings: Settings, registry: Registry, label: str) -> str:
    """The state the review found: registered, no folder, unavailable, run RUNNING."""
    assert registry.find_label(label) is not None
    assert not ModelStore(settings.paths.models).exists(label)
    assert _status_in_listing(settings, label) == "unavailable"
    (dead_run,) = _runs_of(registry, label).items()
    assert dead_run[1] == "RUNNING"
    return dead_run[0]


# -- item 4: a crash no longer burns a label -------------------------------------------------


def test_a_training_killed_before_publication_frees_its_label_at_the_next_attempt(
    stocked_registry: tuple[Settings, Registry],
) -> None:
    settings, registry = stocked_registry
    _killed_training(settings, "publish", "crashed")
    dead_run = _assert_label_burnt(settings, registry, "crashed")

    result = train(settings, TrainingSpec.parse(**BODY, version="crashed"))

    assert result.version == "crashed"
    assert registry.get_run(dead_run).status == "FAILED"
    assert "before publishing" in registry.get_run(dead_run).tags["training_outcome"]
    assert registry.get_run(result.run_id).status == "FINISHED"
    registered = registry.find_label("crashed")
    assert registered is not None
    assert registered.version == result.registry_version
    assert _status_in_listing(settings, "crashed") == "available"
    assert TrainingJournal(settings.paths.models).labels() == []


def test_the_versions_command_reconciles_and_then_the_label_trains(
    stocked_registry: tuple[Settings, Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, registry = stocked_registry
    monkeypatch.setenv("PERMEABILITY_HOME", str(settings.home))
    _killed_training(settings, "publish", "burnt")
    dead_run = _assert_label_burnt(settings, registry, "burnt")

    listed = CliRunner().invoke(cli_app, ["versions", "--json"])

    assert listed.exit_code == 0, listed.output
    statuses = {
        v["version"]: v["status"] for v in json.loads(listed.stdout.splitlines()[-1])["versions"]
    }
    assert "burnt" not in statuses  # rolled back: neither unavailable nor listed
    assert registry.get_run(dead_run).status == "FAILED"
    assert registry.find_label("burnt") is None
    retried = CliRunner().invoke(
        cli_app,
        ["train", "--model", "Ridge", "--version", "burnt", "--test-size", "0.25", "--json"],
    )
    assert retried.exit_code == 0, retried.output
    assert _status_in_listing(settings, "burnt") == "available"


def test_the_service_reconciles_dead_trainings_at_start_up(
    stocked_registry: tuple[Settings, Registry],
) -> None:
    settings, registry = stocked_registry
    _killed_training(settings, "publish", "at-boot")
    dead_run = _assert_label_burnt(settings, registry, "at-boot")

    with TestClient(create_training_app(settings)) as client:
        assert registry.get_run(dead_run).status == "FAILED"  # before any request
        assert registry.find_label("at-boot") is None
        response = client.post("/train", json={**BODY, "version": "at-boot"})
        assert response.status_code == 201, response.text
        listed = {v["version"]: v["status"] for v in client.get("/versions").json()["versions"]}
    assert listed["at-boot"] == "available"


def test_a_training_killed_after_publication_is_finished_not_undone(
    stocked_registry: tuple[Settings, Registry],
) -> None:
    settings, registry = stocked_registry
    _killed_training(settings, "finish_run", "published")
    ((run_id, status),) = _runs_of(registry, "published").items()
    assert status == "RUNNING"
    assert ModelStore(settings.paths.models).inspect("published").status == "available"

    with TestClient(create_training_app(settings)) as client:
        listed = {v["version"]: v for v in client.get("/versions").json()["versions"]}
        again = client.post("/train", json={**BODY, "version": "published"})

    run = registry.get_run(run_id)
    assert run.status == "FINISHED"
    assert "metadata.json" in registry.list_artifacts(run_id)
    assert listed["published"]["status"] == "available"
    assert listed["published"]["run_id"] == run_id
    assert again.status_code == 409  # the version is complete: the label is rightly taken
    assert TrainingJournal(settings.paths.models).labels() == []


def test_a_live_training_is_not_reconciled_until_its_process_dies(
    stocked_registry: tuple[Settings, Registry],
) -> None:
    from permeability.pipelines.training_recovery import reconcile_trainings

    settings, registry = stocked_registry
    child = _child(settings, "publish", "hang", "slow")
    try:
        _wait_for(lambda: (settings.home / "hanging").exists(), "the child to register")
        logger = logging.getLogger("test.reconcile")
        assert reconcile_trainings(settings, logger) == []  # its owner is alive
        assert registry.find_label("slow") is not None
        assert set(_runs_of(registry, "slow").values()) == {"RUNNING"}
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)

    done = reconcile_trainings(settings, logging.getLogger("test.reconcile"))

    assert [(d.label, d.outcome) for d in done] == [("slow", "rolled_back")]
    assert set(_runs_of(registry, "slow").values()) == {"FAILED"}
    assert registry.find_label("slow") is None


# -- item 5: trainings take turns ----------------------------------------------------------


class Probe:
    """Wraps the capped section of a training: records who runs when; holds them at a gate."""

    def __init__(self) -> None:
        import permeability.pipelines.training as training

        self.real = training._train_reserved
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.intervals: list[tuple[str, float, float]] = []

    def __call__(self, context: Any, spec: Any, *args: Any) -> Any:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        started = time.monotonic()
        try:
            assert self.gate.wait(timeout=300)
            return self.real(context, spec, *args)
        finally:
            with self.lock:
                self.active -= 1
                self.intervals.append((spec.version, started, time.monotonic()))


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Probe]:
    import permeability.pipelines.training as training

    probe = Probe()
    monkeypatch.setattr(training, "_train_reserved", probe)
    yield probe
    probe.gate.set()


def _post_in_thread(client: TestClient, label: str, answers: dict[str, Any]) -> threading.Thread:
    def post() -> None:
        answers[label] = client.post("/train", json={**BODY, "version": label})

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def _trainings(client: TestClient) -> dict[str, Any]:
    response = client.get("/trainings")
    assert response.status_code == 200
    view: dict[str, Any] = response.json()
    return view


def _arrived(client: TestClient, *, queued: int) -> Callable[[], bool]:
    """One training running and ``queued`` waiting: the last request has taken its place."""

    def check() -> bool:
        view = _trainings(client)
        return len(view["running"]) == 1 and len(view["queued"]) == queued

    return check


def test_five_parallel_trainings_take_turns_in_arrival_order(
    stocked_registry: tuple[Settings, Registry], probe: Probe
) -> None:
    settings, registry = stocked_registry
    labels = [f"q{i}" for i in range(5)]
    answers: dict[str, Any] = {}
    with TestClient(create_training_app(settings)) as client:
        threads = []
        for position, label in enumerate(labels):
            threads.append(_post_in_thread(client, label, answers))
            # Each one waits until the previous has arrived: the arrival order is known.
            _wait_for(_arrived(client, queued=position), f"{label} to arrive")
        view = _trainings(client)
        probe.gate.set()
        for thread in threads:
            thread.join(timeout=600)

    assert view["max_concurrent"] == 1
    assert [(r["version"], r["pid"]) for r in view["running"]] == [("q0", os.getpid())]
    assert view["running"][0]["started_at"]
    assert [(q["version"], q["position"]) for q in view["queued"]] == [
        ("q1", 1),
        ("q2", 2),
        ("q3", 3),
        ("q4", 4),
    ]
    assert all(q["queued_at"] for q in view["queued"])
    assert {label: answers[label].status_code for label in labels} == dict.fromkeys(labels, 201)
    assert [answers[label].json()["version"] for label in labels] == labels
    assert probe.peak == 1
    ordered = sorted(probe.intervals, key=lambda i: i[1])
    assert [label for label, _, _ in ordered] == labels  # first come, first served
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(ordered))
    assert {v.label for v in registry.list_versions()} >= set(labels)


def test_a_full_line_is_refused_at_once_with_retry_after_and_writes_nothing(
    stocked_registry: tuple[Settings, Registry], probe: Probe, tmp_path: Path
) -> None:
    settings, registry = stocked_registry
    config = tmp_path / "config.yaml"
    config.write_text("training:\n  max_concurrent: 1\n  max_queued: 1\n", encoding="utf-8")
    capped = Settings(home=settings.home, config_file=config)
    answers: dict[str, Any] = {}
    with TestClient(create_training_app(capped)) as client:
        first = _post_in_thread(client, "full-0", answers)
        _wait_for(lambda: len(_trainings(client)["running"]) == 1, "full-0 to run")
        second = _post_in_thread(client, "full-1", answers)
        _wait_for(lambda: len(_trainings(client)["queued"]) == 1, "full-1 to queue")

        refused = client.post("/train", json={**BODY, "version": "full-2"})

        probe.gate.set()
        first.join(timeout=600)
        second.join(timeout=600)

    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "TrainingQueueFullError"
    assert "training.max_queued=1" in refused.json()["detail"]
    assert (answers["full-0"].status_code, answers["full-1"].status_code) == (201, 201)
    assert registry.find_label("full-2") is None
    assert _runs_of(registry, "full-2") == {}


def test_the_cli_in_another_process_waits_for_the_services_training(
    stocked_registry: tuple[Settings, Registry], probe: Probe
) -> None:
    settings, registry = stocked_registry
    answers: dict[str, Any] = {}
    with TestClient(create_training_app(settings)) as client:
        served = _post_in_thread(client, "svc", answers)
        _wait_for(lambda: len(_trainings(client)["running"]) == 1, "the service to train")
        child = _child(settings, "none", "none", "cli")
        try:
            waiting: list[str] = []

            def says_it_waits() -> bool:
                assert child.stderr is not None
                waiting.append(child.stderr.readline())
                return "waits for a training slot" in waiting[-1]

            _wait_for(says_it_waits, "the CLI to wait")
            assert [r["version"] for r in _trainings(client)["running"]] == ["svc"]
            assert _runs_of(registry, "cli") == {}  # it has not started
        finally:
            probe.gate.set()
        served.join(timeout=600)
        _, stderr = child.communicate(timeout=600)

    assert child.returncode == 0, stderr
    assert answers["svc"].status_code == 201
    _assert_one_after_the_other(registry, answers["svc"].json()["run_id"], "cli")


def test_the_service_waits_while_a_cli_in_another_process_trains(
    stocked_registry: tuple[Settings, Registry],
) -> None:
    settings, registry = stocked_registry
    child = _child(settings, "train_reserved", "gate", "cli-first")
    answers: dict[str, Any] = {}
    try:
        _wait_for(lambda: (settings.home / "hanging").exists(), "the CLI to hold its slot")
        with TestClient(create_training_app(settings)) as client:
            served = _post_in_thread(client, "svc-second", answers)
            _wait_for(lambda: len(_trainings(client)["queued"]) == 1, "the request to queue")
            view = _trainings(client)
            assert _runs_of(registry, "svc-second") == {}
            (settings.home / "gate").write_text("go", encoding="utf-8")
            served.join(timeout=600)
    finally:
        (settings.home / "gate").write_text("go", encoding="utf-8")
        _, stderr = child.communicate(timeout=600)

    assert child.returncode == 0, stderr
    assert [(r["version"], r["pid"]) for r in view["running"]] == [("cli-first", child.pid)]
    assert [q["version"] for q in view["queued"]] == ["svc-second"]
    assert answers["svc-second"].status_code == 201
    first = registry.find_label("cli-first")
    assert first is not None
    _assert_one_after_the_other(registry, str(first.run_id), "svc-second")


def _assert_one_after_the_other(registry: Registry, first_run: str, second_label: str) -> None:
    """The second registered its version after the first's run had ended (a run's start is
    back-dated to when the request arrived, a registry version's creation is not)."""
    ended = registry.client.get_run(first_run).info.end_time
    second = registry.find_label(second_label)
    assert second is not None
    assert ended is not None
    assert second.created_at_ms is not None
    assert second.created_at_ms >= ended
