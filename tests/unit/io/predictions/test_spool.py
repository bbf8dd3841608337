"""The prediction spool (issue 13, item 6): what was answered survives a kill, exactly once.

The kills are real: a child Python process appends to a log with a spool and kills itself
with SIGKILL (no shutdown code runs), and this process replays what it left behind.
"""

from __future__ import annotations

import datetime
import errno
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.reader import read_predictions
from permeability.io.predictions.schema import predictions_uri
from permeability.io.predictions.spool import HEADER_BYTES, SpoolWriter, read_segment
from permeability.io.predictions.writer import HelperGoneError
from tests.unit.io.prediction_log_support import log_row
from tests.unit.io.process_support import descendants, survivors

REPO_ROOT = Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX: flock and SIGKILL")


def spooled_row(i: int) -> dict[str, Any]:
    """A served prediction with the record fields; rows 6 and 7 carry the awkward values."""
    row = {
        **log_row(i),
        "timestamp": 1_767_225_600.123456 + i,
        "prediction": 5.5 + i / 7,
        "CONSECUTIVO": f"C-{i}",
        "Referencia": "REF-1",
        "Fecha": datetime.date(2026, 3, 2) + datetime.timedelta(days=i),
    }
    if i == 6:
        row.update(p_exceed=math.nan, upper=math.inf)
    if i == 7:
        row.update(decision=None, spec_limit=None, Fecha=None, Estructura=None)
    return row


def batch_columns(first: int, count: int) -> dict[str, Any]:
    return {
        **spooled_row(first),
        "Muestra": np.arange(first, first + count),
        "request_id": f"batch-{first}",
        "endpoint": "batch",
    }


_PRELUDE = """
import os, signal, sys
from pathlib import Path
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.spool import SpoolWriter
from tests.unit.io.predictions.test_spool import batch_columns, spooled_row
uri, spool = sys.argv[1], Path(sys.argv[2])
"""


def _killed(code: str, uri: str, spool: Path) -> str:
    """Run ``code`` in a child Python that then kills itself with SIGKILL; its stdout."""
    script = _PRELUDE + textwrap.dedent(code) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    completed = subprocess.run(
        [sys.executable, "-c", script, uri, str(spool)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
    return completed.stdout


def _by_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["Muestra", "request_id"]).reset_index(drop=True)


def test_what_a_killed_process_answered_is_replayed_exactly_once(tmp_path: Path) -> None:
    uri, spool = predictions_uri(str(tmp_path / "store")), tmp_path / "spool"
    _killed(
        """
        log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
        for i in range(5):
            log.append(spooled_row(i))
        assert log.flush() == 5
        for i in range(5, 10):
            log.append(spooled_row(i))
        log.append_columns(batch_columns(10, 3), 3)
        """,
        uri,
        spool,
    )
    assert len(read_predictions(str(tmp_path / "store"))) == 5  # the rest died in memory
    survivor = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    assert survivor.replay_orphans() == 8
    assert survivor.replay_orphans() == 0  # replayed once, and the spool is gone
    assert survivor.rows_replayed == 8
    assert [p.name for p in spool.iterdir()] == [f"{survivor._spool.app_id}.lock"]  # type: ignore[union-attr]
    survivor.close()
    assert list(spool.iterdir()) == []

    # The same rows written by a log that was never killed: identical, value for value.
    reference = PredictionLog(predictions_uri(str(tmp_path / "reference")), flush_interval_s=3600)
    for i in range(10):
        reference.append(spooled_row(i))
    reference.append_columns(batch_columns(10, 3), 3)
    reference.flush()
    replayed = _by_row(read_predictions(str(tmp_path / "store")))
    expected = _by_row(read_predictions(str(tmp_path / "reference")))
    pd.testing.assert_frame_equal(replayed, expected)
    assert replayed["Muestra"].tolist() == list(range(13))
    stored, written = (DeltaTable(u).to_pyarrow_table() for u in (uri, reference.uri))
    nulls = {name: stored.column(name).null_count for name in stored.column_names}
    assert nulls == {name: written.column(name).null_count for name in written.column_names}
    assert nulls["p_exceed"] == 0  # row 6's NaN is still a NaN, not a null
    assert replayed["p_exceed"].isna().tolist() == [False] * 6 + [True] + [False] * 6
    assert replayed.loc[6, "upper"] == math.inf
    assert (
        replayed.loc[[7], ["decision", "spec_limit", "Fecha", "Estructura"]].isna().all(axis=None)
    )


def test_a_commit_that_landed_just_before_the_kill_is_not_written_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, spool = predictions_uri(str(tmp_path)), tmp_path / "spool"
    _killed(
        """
        SpoolWriter.discard = lambda self, paths: None  # killed between commit and deletion
        log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
        for i in range(5):
            log.append(spooled_row(i))
        assert log.flush() == 5
        for i in range(5, 9):
            log.append(spooled_row(i))
        """,
        uri,
        spool,
    )
    survivor = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    with caplog.at_level("WARNING", logger="permeability.prediction_log"):
        assert survivor.replay_orphans() == 4
    assert "5 of its 9 records were in the log already" in caplog.text
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == list(range(9))
    survivor.close()


def test_a_replay_cut_short_resumes_without_doubling_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store folder should be", encoding="utf-8")
    uri, spool = predictions_uri(str(store)), tmp_path / "spool"
    _killed(
        """
        log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
        for first in (0, 4):  # two flushes that fail: two segments, nothing committed
            for i in range(first, first + 4):
                log.append(spooled_row(i))
            assert log.flush() == 0
        """,
        uri,
        spool,
    )
    assert len(list(spool.glob("*.spool"))) == 2
    store.unlink()
    store.mkdir()
    survivor = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    commit = survivor._commits.write

    def crash_on_the_second_segment(table: Any, transaction: Any) -> None:
        if transaction[1] > 4:
            raise OSError("the replaying process died here")
        commit(table, transaction)

    monkeypatch.setattr(survivor._commits, "write", crash_on_the_second_segment)
    assert survivor.replay_orphans() == 4  # the first segment; the spool stays
    assert sorted(read_predictions(str(store))["Muestra"]) == [0, 1, 2, 3]
    monkeypatch.undo()
    assert survivor.replay_orphans() == 4  # only the second one now
    assert sorted(read_predictions(str(store))["Muestra"]) == list(range(8))
    survivor.close()
    assert list(spool.iterdir()) == []


def _only_segment(spool: Path) -> Path:
    (segment,) = spool.glob("*.spool")
    return segment


def test_a_torn_last_record_is_dropped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, spool = predictions_uri(str(tmp_path)), tmp_path / "spool"
    _killed(
        """
        log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
        for i in range(6):
            log.append(spooled_row(i))
        """,
        uri,
        spool,
    )
    segment = _only_segment(spool)
    with segment.open("r+b") as handle:  # the kill landed in the middle of the 6th write
        handle.truncate(segment.stat().st_size - 7)
    survivor = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    with caplog.at_level("WARNING"):
        assert survivor.replay_orphans() == 5
    assert "dropped a torn last record" in caplog.text
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == list(range(5))
    survivor.close()


def test_a_damaged_record_is_skipped_and_the_records_after_it_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, spool = predictions_uri(str(tmp_path)), tmp_path / "spool"
    _killed(
        """
        log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
        for i in range(6):
            log.append(spooled_row(i))
        """,
        uri,
        spool,
    )
    segment = _only_segment(spool)
    records = read_segment(segment)
    third = sum(HEADER_BYTES + len(r.payload) for r in records[:2])
    data = bytearray(segment.read_bytes())
    data[third + HEADER_BYTES + 10] ^= 0xFF  # a damaged byte in the third row
    segment.write_bytes(bytes(data))
    survivor = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    with caplog.at_level("WARNING"):
        assert survivor.replay_orphans() == 5
    assert "unreadable bytes" in caplog.text
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == [0, 1, 3, 4, 5]
    survivor.close()


def test_the_spool_of_a_live_process_is_left_to_it(tmp_path: Path) -> None:
    uri, spool = predictions_uri(str(tmp_path)), tmp_path / "spool"
    first = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    second = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    for i in range(3):
        first.append(spooled_row(i))
    assert second.replay_orphans() == 0
    assert read_predictions(str(tmp_path)).empty
    first.close()
    second.close()
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == [0, 1, 2]
    assert list(spool.iterdir()) == []


def test_rows_that_cannot_be_written_at_shutdown_wait_in_the_spool_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    store.write_text("a file where the store folder should be", encoding="utf-8")
    uri, spool = predictions_uri(str(store)), tmp_path / "spool"
    log = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    for i in range(3):
        log.append(spooled_row(i))
    with caplog.at_level("ERROR", logger="permeability.prediction_log"):
        log.close()
    assert "3 rows could not be written" in caplog.text
    store.unlink()
    store.mkdir()
    after = PredictionLog(uri, flush_interval_s=3600, spool_dir=spool)
    assert after.replay_orphans() == 3
    after.close()
    assert sorted(read_predictions(str(store))["Muestra"]) == [0, 1, 2]


def test_a_failed_write_that_committed_anyway_is_not_written_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600, spool_dir=tmp_path)
    for i in range(3):
        log.append(spooled_row(i))
    commit = log._commits.write

    def commit_then_fail(table: Any, transaction: Any) -> None:
        commit(table, transaction)
        raise HelperGoneError("the helper was killed after its commit")

    monkeypatch.setattr(log._commits, "write", commit_then_fail)
    assert log.flush() == 0
    assert log.pending_rows == 3  # as far as the log knows, nothing was written
    monkeypatch.undo()
    log.append(spooled_row(3))
    assert log.flush() == 1
    log.close()
    assert sorted(read_predictions(str(tmp_path))["Muestra"]) == [0, 1, 2, 3]


def test_a_spool_that_cannot_be_written_does_not_stop_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(predictions_uri(str(tmp_path)), flush_interval_s=3600, spool_dir=tmp_path)

    def disk_full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SpoolWriter, "append", disk_full)
    with caplog.at_level("ERROR", logger="permeability.prediction_log"):
        log.append(spooled_row(0))
        log.append(spooled_row(1))
    assert log.spool_failures == 2
    assert caplog.text.count("prediction spool write failed") == 1  # not once per answer
    assert log.flush() == 2
    log.close()


def test_the_helper_process_exits_with_its_parent_and_nothing_else_is_left(
    tmp_path: Path,
) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads processes from /proc")
    out = _killed(
        """
        from tests.unit.io.process_support import descendants
        log = PredictionLog(uri, flush_interval_s=3600, write_in_subprocess=True, spool_dir=spool)
        log.start()
        log.append(spooled_row(0))
        assert log.flush() == 1  # the helper is up and has committed
        print(log._commits.helper.process.pid, *sorted(descendants(os.getpid())), flush=True)
        """,
        predictions_uri(str(tmp_path)),
        tmp_path / "spool",
    )
    helper, *started = (int(pid) for pid in out.split())
    assert started == [helper]  # no multiprocessing resource tracker, nothing else
    assert not survivors({helper}, within_s=10)


def test_the_helper_exits_when_its_parent_is_not_the_one_it_was_started_for() -> None:
    """The watchdog: even with its stdin still open (a copy of the pipe held elsewhere)."""
    helper = subprocess.Popen(  # started for process 1, which is not its parent
        [sys.executable, "-m", "permeability.io.predictions.writer", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert helper.wait(timeout=20) == 0
    finally:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
        for stream in (helper.stdin, helper.stdout):
            if stream is not None:
                stream.close()
    assert not descendants(helper.pid)
