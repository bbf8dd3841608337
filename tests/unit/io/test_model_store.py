"""The model store: safe labels, exclusive reservations, atomic publication, integrity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from permeability.errors import ConflictError, InvalidInputError, NotFoundError
from permeability.io.model_store import METADATA_FILE, ModelStore, validate_label


def _stage_model(staging: Path) -> None:
    """What an MLflow save leaves: an MLmodel file and the artifact it points to."""
    (staging / "artifacts").mkdir(parents=True)
    (staging / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    (staging / "artifacts" / "model.joblib").write_bytes(b"model bytes")


def _metadata(label: str) -> dict[str, object]:
    return {"version": label, "metrics": {"mae": 1.5}, "files": ["artifacts/model.joblib"]}


def _publish(store: ModelStore, label: str) -> Path:
    with store.reserve(label) as reservation:
        _stage_model(reservation.staging_path)
        return reservation.publish(_metadata(label))


def _visible(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.exists() else []


@pytest.mark.parametrize("label", ["0.1", "v2", "2024-06_rc.1", "A", "x" * 64])
def test_accepts_plain_labels(label: str) -> None:
    assert validate_label(label) == label


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("", "must not be empty"),
        ("../x", "'/'"),
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("x\u0000y", "control characters"),
        ("x\ny", "control characters"),
        ("x" * 65, "65 characters"),
        (".hidden", "must start with a letter or digit"),
        ("-rf", "must start with a letter or digit"),
        ("a b", "only letters, digits"),
        ("ä1", "only letters, digits"),
    ],
)
def test_refuses_labels_that_could_escape_or_confuse_the_store(label: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match="version label") as caught:
        validate_label(label)
    assert problem in str(caught.value)


def test_publish_moves_the_complete_folder_into_place(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    path = _publish(store, "0.1")

    assert path == tmp_path / "models" / "0.1"
    assert json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))["metrics"] == {"mae": 1.5}
    assert (path / "artifacts" / "model.joblib").read_bytes() == b"model bytes"
    assert store.labels() == ["0.1"]
    assert store.inspect("0.1").status == "available"
    assert list((tmp_path / "models" / ".staging").iterdir()) == []
    assert list((tmp_path / "models" / ".reservations").iterdir()) == []


def test_an_existing_label_is_a_conflict_and_stays_untouched(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    path = _publish(store, "0.1")
    before = (path / METADATA_FILE).read_bytes()

    with pytest.raises(ConflictError, match=r"'0\.1' already exists"):
        _publish(store, "0.1")
    assert (path / METADATA_FILE).read_bytes() == before


def test_a_held_label_is_a_conflict_for_a_second_writer(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with store.reserve("0.1"), pytest.raises(ConflictError, match="being trained"):  # noqa: SIM117
        with store.reserve("0.1"):
            pass
    with store.reserve("0.1") as again:  # released: free again (nothing was published)
        assert again.label == "0.1"


def test_threads_racing_for_one_label_get_exactly_one_reservation(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def writer() -> None:
        barrier.wait()
        try:
            _publish(store, "race")
            outcomes.append("published")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["conflict"] * 5 + ["published"]
    assert store.labels() == ["race"]


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from permeability.io.model_store import ModelStore
    with ModelStore(Path(sys.argv[1])).reserve("0.1"):
        print("held", flush=True)
        time.sleep(60)
    """
)


def test_a_reservation_in_another_process_blocks_and_dies_with_it(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(store.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConflictError, match="being trained"), store.reserve("0.1"):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)

    path = _publish(store, "0.1")  # the kernel dropped the dead writer's lock
    assert store.inspect("0.1").path == path


def test_a_failed_writer_leaves_nothing_behind(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")

    def failing_writer() -> None:
        with store.reserve("0.1") as reservation:
            _stage_model(reservation.staging_path)
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        failing_writer()

    assert store.labels() == []
    assert not store.exists("0.1")
    assert list((store.root / ".staging").iterdir()) == []
    assert list((store.root / ".reservations").iterdir()) == []


def test_leftovers_of_a_crashed_writer_are_cleared_on_the_next_reservation(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    crashed = store.root / ".staging" / "0.1"
    _stage_model(crashed)
    (crashed / "half-written").write_text("junk", encoding="utf-8")

    path = _publish(store, "0.1")

    assert not (path / "half-written").exists()
    assert not crashed.exists()


def test_publish_refuses_a_folder_without_a_saved_model(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with store.reserve("0.1") as reservation, pytest.raises(InvalidInputError, match="MLmodel"):
        reservation.publish(_metadata("0.1"))
    assert store.labels() == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: (p / METADATA_FILE).unlink(), "metadata.json is missing or unreadable"),
        (lambda p: (p / METADATA_FILE).write_text("{not json", "utf-8"), "unreadable"),
        (lambda p: (p / "MLmodel").unlink(), "MLmodel is missing"),
        (lambda p: (p / "artifacts" / "model.joblib").unlink(), "model.joblib is missing"),
        (
            lambda p: (p / METADATA_FILE).write_text(json.dumps({"version": "9"}), "utf-8"),
            "does not describe version '0.1'",
        ),
    ],
)
def test_damaged_versions_are_reported_unavailable_with_the_reason(
    tmp_path: Path, damage: object, problem: str
) -> None:
    store = ModelStore(tmp_path / "models")
    path = _publish(store, "0.1")
    _publish(store, "0.2")
    damage(path)  # type: ignore[operator]

    statuses = {v.label: (v.status, v.problem) for v in store.versions()}

    assert statuses["0.2"] == ("available", None)
    assert statuses["0.1"][0] == "unavailable"
    assert problem in str(statuses["0.1"][1])


def test_unknown_and_hostile_lookups_fail_cleanly(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(NotFoundError, match=r"'0\.9' is not in the model store"):
        store.inspect("0.9")
    with pytest.raises(InvalidInputError, match="'/'"):
        store.inspect("../etc")
    with pytest.raises(InvalidInputError, match="'/'"), store.reserve("../escape"):
        pass
    assert not (tmp_path / "escape").exists()
    assert _visible(store) == []


def test_labels_are_listed_oldest_first_and_hide_bookkeeping(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    _publish(store, "b")
    time.sleep(0.02)
    _publish(store, "a")

    assert store.labels() == ["b", "a"]
    assert {".staging", ".reservations"} <= set(_visible(store))


def test_the_label_lock_is_the_reservations_own_and_works_on_a_published_label(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path / "models")
    with store.reserve("0.1") as reservation:
        with pytest.raises(ConflictError, match="being trained by another request"):
            store.lock_label("0.1").__enter__()
        reservation.staging_path.mkdir(parents=True)
        (reservation.staging_path / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
        reservation.publish({"version": "0.1"})

    # A published label can still be locked (reconciliation finishes its run under it).
    with store.lock_label("0.1"), pytest.raises(ConflictError, match="being trained by another"):
        store.lock_label("0.1").__enter__()
    assert list((store.root / ".reservations").iterdir()) == []
