"""Issue 13, item 6: ``kill -9`` of the inference service loses no answered prediction.

The attack as the review ran it: a client gets answers (single samples and batches), the
service is killed with SIGKILL (no shutdown code runs), and then:

* no process the service started may survive it (the review found the prediction log's
  helper and multiprocessing's resource tracker alive as orphans, ~200 MB, ignoring SIGTERM);
* once the service is started again, every prediction that was answered is in the Delta
  prediction log exactly once (the review lost the last ~5 s of answers: 21 %).

Each answered row is identified by its record number (``CONSECUTIVO``, logged with the row).
A client thread keeps sending while the kill lands, so the kill also hits requests in flight:
a row the client never got an answer for may or may not be logged, but no row twice.

Both ways the service runs: one process (killed: its spool is replayed by the next start),
and ``--workers 2`` (the supervisor killed: its workers must not serve on as orphans; they
stop as on SIGTERM and write their rows themselves).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from permeability.io.predictions.reader import read_predictions
from permeability.services.inference.schemas import SEED_SAMPLE
from permeability.settings import Settings
from tests.e2e.conftest import (
    VERSION,
    _clean_environment,
    _train_and_promote,
    _wait_until_ready,
)
from tests.ports import free_port
from tests.unit.io.process_support import alive, command_line, descendants, survivors

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc"),
]

SINGLES: Final = 200
BATCH_EVERY: Final = 20  # one batch request after every 20 single ones
BATCH_ROWS: Final = 30
#: How long processes the service started may take to notice it is gone.
ORPHAN_GRACE_S: Final = 15.0


def _single(number: str) -> dict[str, Any]:
    return {"version": VERSION, "data_test": {**SEED_SAMPLE, "CONSECUTIVO": number}}


def _batch(prefix: str) -> dict[str, Any]:
    records = [{**SEED_SAMPLE, "CONSECUTIVO": f"{prefix}-{k}"} for k in range(BATCH_ROWS)]
    return {"version": VERSION, "records": records}


class _Client:
    """Sends predictions and remembers the record numbers of those that were answered."""

    def __init__(self, url: str, tag: str) -> None:
        self.url = url
        self.tag = tag  # the record numbers' prefix: this test's rows in a shared log
        self.answered: set[str] = set()
        self.sent: set[str] = set()
        self._lock = threading.Lock()

    def single(self, client: httpx.Client, name: str) -> None:
        number = f"{self.tag}-{name}"
        with self._lock:
            self.sent.add(number)
        response = client.post(f"{self.url}/inference", json=_single(number), timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["CONSECUTIVO"] == number
        with self._lock:
            self.answered.add(number)

    def batch(self, client: httpx.Client, name: str) -> None:
        body = _batch(f"{self.tag}-{name}")
        numbers = {r["CONSECUTIVO"] for r in body["records"]}
        with self._lock:
            self.sent |= numbers
        response = client.post(f"{self.url}/inference/batch", json=body, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["predicted"] == BATCH_ROWS, answer
        with self._lock:
            self.answered |= numbers


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated data acquired, a version trained and promoted (shared by this module's tests;
    each test's rows carry its own record-number prefix)."""
    work = tmp_path_factory.mktemp("kill9")
    with pytest.MonkeyPatch.context() as patch:
        _clean_environment(patch, work / "storage")
        settings, _ = _train_and_promote(work)
    return Path(settings.home)


@contextmanager
def _service(
    home: Path, log: Path, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``permeability serve inference`` on a free port; its own session, so the test can
    reach whatever it left behind; stopped with SIGTERM if still running at the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "PERMEABILITY_HOME": str(home), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "permeability", "serve", "inference"]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", str(workers), "--no-access-log"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(url, process, log)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _keep_sending(client: _Client, stop: threading.Event) -> None:
    """Single predictions until the service is gone: the kill lands on requests in flight."""
    with httpx.Client() as connection:
        n = 0
        while not stop.is_set():
            try:
                client.single(connection, f"T-{n}")  # T: sent while the kill lands
            except httpx.HTTPError:
                return
            n += 1


def _answer_then_kill(
    url: str, process: subprocess.Popen[bytes], tag: str
) -> tuple[_Client, set[int]]:
    """Predictions answered (and more in flight), then ``kill -9`` of the process alone;
    returns the client and the processes that were running below it."""
    client = _Client(url, tag)
    stop = threading.Event()
    background = threading.Thread(target=_keep_sending, args=(client, stop))
    background.start()
    with httpx.Client() as connection:
        for i in range(SINGLES):
            client.single(connection, f"S{i}")
            if i % BATCH_EVERY == BATCH_EVERY - 1:
                client.batch(connection, f"B{i}")
    started = descendants(process.pid)
    os.kill(process.pid, signal.SIGKILL)  # the service alone, as `kill -9 <pid>`
    process.wait(timeout=10)
    stop.set()
    background.join(timeout=60)
    return client, started


def _assert_logged_exactly_once(home: Path, client: _Client) -> None:
    logged = read_predictions(Settings(home=home).resolved_feature_store_uri)
    numbers = logged["CONSECUTIVO"].dropna()
    numbers = numbers[numbers.str.startswith(f"{client.tag}-")]
    missing = client.answered - set(numbers)
    assert not missing, (
        f"{len(missing)} of {len(client.answered)} answered predictions are not in the log, "
        f"e.g. {sorted(missing)[:5]}"
    )
    counts = numbers.value_counts()
    doubled = counts[counts > 1]
    assert doubled.empty, f"logged more than once: {doubled.head().to_dict()}"
    assert set(numbers) <= client.sent, "rows in the log that nobody asked for"


def _assert_none_left(started: set[int]) -> None:
    left = survivors(started, ORPHAN_GRACE_S)
    found = "; ".join(f"{pid}: {command_line(pid)}" for pid in sorted(left))
    for pid in left:  # only what this test's service started and left behind
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the killed service: {found}"


def _spool_files(home: Path) -> list[str]:
    spool = home / "logs" / "prediction-spool"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def test_kill9_loses_no_answered_prediction_and_leaves_no_orphan(
    trained_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with _service(trained_home, log) as (url, process):
        client, started = _answer_then_kill(url, process, "one")
    assert started, "the service runs no helper process: nothing to check"
    _assert_none_left(started)

    # Started again on the same storage: what the killed one answered is replayed before
    # it reports ready.
    with _service(trained_home, log) as (_, again):
        _assert_logged_exactly_once(trained_home, client)
        again.send_signal(signal.SIGTERM)  # uvicorn re-raises it once shut down
        assert again.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "replayed" in log.read_text()
    assert _spool_files(trained_home) == []  # replayed, then shut down cleanly


def test_kill9_of_the_supervisor_stops_its_workers_and_loses_nothing(
    trained_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with _service(trained_home, log, workers=2) as (url, process):
        client, started = _answer_then_kill(url, process, "two")
    assert len(started) >= 4, started  # two workers, each with its log's helper
    _assert_none_left(started)
    # The workers stopped as on SIGTERM and wrote their rows themselves.
    assert log.read_text().count("supervisor process") == 2, log.read_text()[-3000:]
    _assert_logged_exactly_once(trained_home, client)
    assert _spool_files(trained_home) == []
