"""The training line: the cap holds, first come first served, bounded, visible."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from permeability.config import TrainingParams, load_config
from permeability.errors import InvalidInputError
from permeability.io.training_slots import SlotHolder, TrainingSlots
from permeability.pipelines.training_queue import TrainingQueue, TrainingQueueFullError


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _arrived(queue: TrainingQueue, *, queued: int) -> Callable[[], bool]:
    """One running and ``queued`` waiting: the last request has taken its place."""

    def check() -> bool:
        view = queue.view()
        return len(view.running) == 1 and len(view.queued) == queued

    return check


def _queue(tmp_path: Path, *, capacity: int = 1, max_queued: int = 8) -> TrainingQueue:
    return TrainingQueue(
        TrainingSlots(tmp_path, capacity), max_queued=max_queued, poll_seconds=0.05
    )


class Worker:
    """A thread taking its turn in ``queue`` and holding it until released."""

    def __init__(self, queue: TrainingQueue, label: str, log: list[tuple[str, str]]) -> None:
        self.release = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with queue.turn(label):
                    log.append(("start", label))
                    self.release.wait(10)
                    log.append(("end", label))
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()


def test_turns_are_taken_one_at_a_time_in_arrival_order(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    log: list[tuple[str, str]] = []
    workers = []
    for position, label in enumerate("abcd"):
        workers.append(Worker(queue, label, log))
        _wait_for(_arrived(queue, queued=position), f"{label} to arrive")

    view = queue.view()
    for worker in workers:
        worker.release.set()
    for worker in workers:
        worker.thread.join(10)

    assert [r.version for r in view.running] == ["a"]
    assert [(q.version, q.position) for q in view.queued] == [("b", 1), ("c", 2), ("d", 3)]
    assert log == [(kind, label) for label in "abcd" for kind in ("start", "end")]
    assert queue.view().running == []
    assert queue.view().queued == []


def test_two_slots_let_two_run_and_no_more(tmp_path: Path) -> None:
    queue = _queue(tmp_path, capacity=2)
    log: list[tuple[str, str]] = []
    workers = [Worker(queue, label, log) for label in "abc"]
    _wait_for(lambda: len(queue.view().running) == 2 and len(queue.view().queued) == 1, "2+1")

    assert sum(1 for kind, _ in log if kind == "start") == 2
    for worker in workers:
        worker.release.set()
    for worker in workers:
        worker.thread.join(10)
    assert sorted(label for kind, label in log if kind == "end") == ["a", "b", "c"]


def test_a_full_line_is_refused_with_a_retry_estimate(tmp_path: Path) -> None:
    queue = _queue(tmp_path, max_queued=1)
    log: list[tuple[str, str]] = []
    running = Worker(queue, "a", log)
    _wait_for(lambda: len(queue.view().running) == 1, "a to run")
    waiting = Worker(queue, "b", log)
    _wait_for(lambda: len(queue.view().queued) == 1, "b to queue")

    with pytest.raises(TrainingQueueFullError, match=r"training\.max_queued=1") as refused:
        queue.turn("c").__enter__()

    assert refused.value.retry_after == 60  # no training has finished yet in this process
    running.release.set()
    waiting.release.set()
    running.thread.join(10)
    waiting.thread.join(10)
    assert [label for kind, label in log if kind == "start"] == ["a", "b"]


def test_the_retry_estimate_follows_the_trainings_this_process_saw(tmp_path: Path) -> None:
    queue = _queue(tmp_path, max_queued=0)
    with queue.turn("quick"):
        pass  # a training of well under a second
    blocker = TrainingSlots(tmp_path, 1).try_acquire(SlotHolder.this_process("elsewhere"))
    assert blocker is not None

    with pytest.raises(TrainingQueueFullError) as refused:
        queue.turn("refused").__enter__()

    assert refused.value.retry_after == 1
    blocker.release()


def test_no_line_at_all_still_runs_a_request_that_finds_a_free_slot(tmp_path: Path) -> None:
    queue = _queue(tmp_path, max_queued=0)
    with queue.turn("alone"):
        assert [r.version for r in queue.view().running] == ["alone"]
        with pytest.raises(TrainingQueueFullError):
            queue.turn("second").__enter__()


def test_a_slot_freed_by_another_process_is_noticed_by_polling(tmp_path: Path) -> None:
    other = TrainingSlots(tmp_path, 1).try_acquire(SlotHolder.this_process("cli"))
    assert other is not None
    queue = _queue(tmp_path)
    messages: list[str] = []
    entered = threading.Event()

    def wait_in_line() -> None:
        with queue.turn("api", on_wait=messages.append):
            entered.set()

    thread = threading.Thread(target=wait_in_line)
    thread.start()
    _wait_for(lambda: bool(messages), "the wait to be announced")
    assert not entered.wait(0.3)
    other.release()  # no notification reaches this process: only polling sees it
    assert entered.wait(5)
    thread.join(5)
    assert messages == [
        "version api waits for a training slot (training.max_concurrent=1; running: cli; "
        "position 1 in this process's line)"
    ]


def test_a_waiter_that_gives_up_leaves_the_line(tmp_path: Path) -> None:
    queue = _queue(tmp_path)

    def interrupted(_: str) -> None:
        raise KeyboardInterrupt

    with queue.turn("a"), pytest.raises(KeyboardInterrupt):
        queue.turn("b", on_wait=interrupted).__enter__()
    assert queue.view().queued == []
    with queue.turn("c"):
        assert [r.version for r in queue.view().running] == ["c"]


def test_the_cap_is_a_validated_config_field_defaulting_to_one(tmp_path: Path) -> None:
    assert (TrainingParams().max_concurrent, TrainingParams().max_queued) == (1, 8)
    path = tmp_path / "c.yaml"
    for text, field in (
        ("training:\n  max_concurrent: 0\n", "training.max_concurrent"),
        ("training:\n  max_queued: -1\n", "training.max_queued"),
        ("training:\n  max_queued: 100\n", "training.max_queued"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInputError, match=field.replace(".", r"\.")):
            load_config(path)
    path.write_text("training:\n  max_concurrent: 2\n  max_queued: 0\n", encoding="utf-8")
    queue = TrainingQueue.for_models(tmp_path, load_config(path).training)
    assert (queue.slots.capacity, queue.max_queued) == (2, 0)
    assert queue.slots.folder == tmp_path / ".slots"
