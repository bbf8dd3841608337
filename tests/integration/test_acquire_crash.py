"""A load killed midway leaves the feature store exactly as it was; a re-run then succeeds.

The acquisition runs in a subprocess that is SIGKILLed: either held after its data files are
written and before its commit (delta-rs's commit replaced by a pause in that subprocess), or at
an arbitrary moment of a larger load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from permeability.io.exports import write_lab_export
from permeability.io.feature_store import FeatureStore
from permeability.pipelines.acquisition import acquire
from permeability.settings import Settings
from permeability.synthetic.generator import generate_lab_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOOK_LINE = "data files written, commit pending"
#: ``permeability acquire`` with delta-rs's two commit calls replaced by a pause: the load stops
#: after writing its data files and before its commit, where the test kills it.
PAUSED_BEFORE_COMMIT = f"""
import logging, sys, time
import deltalake
import permeability.io.feature_store_writes as feature_store_writes
from permeability.cli.main import app

def pause(*_, **__):
    logging.getLogger("permeability.io.feature_store").warning("{HOOK_LINE}")
    time.sleep(3600)

feature_store_writes.create_table_with_add_actions = pause
deltalake.DeltaTable.create_write_transaction = pause
app(sys.argv[1:])
"""


def start_acquire(home: Path, source: Path, *, pause: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PERMEABILITY_HOME": str(home)}
    program = ["-c", PAUSED_BEFORE_COMMIT] if pause else ["-m", "permeability"]
    command = [sys.executable, *program, "acquire", "--source", str(source), "--json"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def wait_for_log(
    home: Path, text: str, process: subprocess.Popen[str], timeout: float = 180
) -> None:
    log = home / "logs" / "acquire.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(encoding="utf-8"):
            return
        if process.poll() is not None:
            pytest.fail(f"acquire exited ({process.returncode}) before logging {text!r}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"acquire did not log {text!r} within {timeout}s")


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def finish(home: Path, source: Path) -> dict[str, object]:
    process = start_acquire(home, source)
    stdout, _ = process.communicate(timeout=300)
    assert process.returncode == 0
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def store_of(home: Path) -> FeatureStore:
    return FeatureStore(Settings(home=home).resolved_feature_store_uri)


def content(store: FeatureStore) -> list[tuple[object, ...]]:
    frame = store.read().frame.drop(columns=["ingested_at"])
    return [tuple(row) for row in frame.itertuples(index=False)]


@pytest.fixture
def exports(tmp_path: Path) -> tuple[Path, Path]:
    """A first export and a later one that corrects 100 of its records and adds new ones."""
    original = generate_lab_data(1000, seed=1)
    first = write_lab_export(original, tmp_path / "first.csv")
    corrected = original.head(100).assign(Permeabilidad="1.234")
    new = generate_lab_data(300, seed=2, start_id=2001, start_date=date(2026, 6, 1))
    later = pd.concat([corrected, new], ignore_index=True)
    return first, write_lab_export(later, tmp_path / "later.csv")


def test_a_first_load_killed_before_its_commit_leaves_no_table(
    tmp_path: Path, exports: tuple[Path, Path]
) -> None:
    home = tmp_path / "home"
    process = start_acquire(home, exports[0], pause=True)
    wait_for_log(home, HOOK_LINE, process)
    kill(process)
    store = store_of(home)
    assert store.current_version() is None
    assert list(Path(store.table_uri).glob("*.parquet"))  # written, never committed
    report = finish(home, exports[0])
    assert report["feature_set_version"] == 0
    assert store.current_version() == 0


def test_an_update_killed_before_its_commit_keeps_the_previous_version(
    tmp_path: Path, exports: tuple[Path, Path]
) -> None:
    home = tmp_path / "home"
    acquire(Settings(home=home), str(exports[0]))
    store = store_of(home)
    before = store.read()
    process = start_acquire(home, exports[1], pause=True)
    wait_for_log(home, HOOK_LINE, process)
    kill(process)
    after = store.read()
    assert after.version == before.version == 0
    assert after.data_hash == before.data_hash
    assert len(store.history()) == 1
    report = finish(home, exports[1])
    assert report["feature_set_version"] == 1
    assert int(str(report["rows_updated"])) > 0
    assert int(str(report["rows_inserted"])) > 0
    assert store.read(0).data_hash == before.data_hash


def test_a_kill_at_any_moment_leaves_a_whole_version(
    tmp_path: Path, exports: tuple[Path, Path]
) -> None:
    reference = tmp_path / "reference"
    acquire(Settings(home=reference), str(exports[0]))
    acquire(Settings(home=reference), str(exports[1]))
    expected = content(store_of(reference))

    home = tmp_path / "home"
    acquire(Settings(home=home), str(exports[0]))
    store = store_of(home)
    before = store.read()
    process = start_acquire(home, exports[1])
    wait_for_log(home, "plan:", process)
    time.sleep(random.uniform(0.0, 0.6))  # a moment to die
    if process.poll() is None:
        kill(process)
    version = store.current_version()
    assert version in (0, 1)
    if version == 0:
        assert store.read().data_hash == before.data_hash
    else:
        assert content(store) == expected
    finish(home, exports[1])
    assert content(store) == expected
    assert store.current_version() == 1
