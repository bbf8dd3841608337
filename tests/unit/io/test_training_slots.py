"""Training slots: never more holders than slots, in any process; a dead holder frees its slot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from permeability.io.training_slots import SlotHolder, TrainingSlots


def test_no_more_holders_than_slots_and_a_release_frees_one(tmp_path: Path) -> None:
    slots = TrainingSlots(tmp_path / ".slots", capacity=2)

    first = slots.try_acquire(SlotHolder.this_process("a"))
    second = slots.try_acquire(SlotHolder.this_process("b"))
    third = slots.try_acquire(SlotHolder.this_process("c"))

    assert first is not None
    assert second is not None
    assert third is None
    assert [h.label for h in slots.running()] == ["a", "b"]
    first.release()
    first.release()  # idempotent
    again = slots.try_acquire(SlotHolder.this_process("c"))
    assert again is not None
    assert sorted(h.label for h in slots.running()) == ["b", "c"]
    second.release()
    again.release()
    assert slots.running() == []


def test_holders_say_who_and_since_when(tmp_path: Path) -> None:
    slots = TrainingSlots(tmp_path / ".slots", capacity=1)
    slot = slots.try_acquire(SlotHolder.this_process("0.1"))
    assert slot is not None

    (holder,) = slots.running()

    assert (holder.label, holder.pid) == ("0.1", os.getpid())
    assert holder.host
    assert holder.started_at.endswith("+00:00")
    slot.release()


def test_a_smaller_cap_elsewhere_uses_fewer_of_the_same_files(tmp_path: Path) -> None:
    wide = TrainingSlots(tmp_path, capacity=3)
    narrow = TrainingSlots(tmp_path, capacity=1)
    held = wide.try_acquire(SlotHolder.this_process("wide"))
    assert held is not None

    assert narrow.try_acquire(SlotHolder.this_process("narrow")) is None
    second = wide.try_acquire(SlotHolder.this_process("wide-2"))
    assert second is not None
    held.release()
    second.release()


def test_a_killed_holder_frees_its_slot_and_its_stale_record_is_not_listed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / ".slots"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from permeability.io.training_slots import SlotHolder, TrainingSlots\n"
        "slot = TrainingSlots(Path(sys.argv[1]), 1).try_acquire(SlotHolder.this_process('dead'))\n"
        "assert slot is not None\n"
        "os._exit(137)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, check=False
    )
    assert child.returncode == 137, child.stderr
    assert "dead" in (folder / "slot-0.lock").read_text(encoding="utf-8")  # the stale record

    slots = TrainingSlots(folder, capacity=1)
    assert slots.running() == []
    slot = slots.try_acquire(SlotHolder.this_process("alive"))
    assert slot is not None
    assert [h.label for h in slots.running()] == ["alive"]
    slot.release()


def test_a_cap_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        TrainingSlots(tmp_path, capacity=0)
