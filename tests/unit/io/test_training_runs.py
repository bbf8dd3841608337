"""The journal of trainings in flight: one atomic record per label, refused when one is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from permeability.errors import ConflictError, InvalidInputError
from permeability.io.training_runs import TrainingJournal


def test_an_attempt_is_recorded_read_back_listed_and_ended(tmp_path: Path) -> None:
    journal = TrainingJournal(tmp_path / "models")

    attempt = journal.begin("0.1")

    assert journal.has("0.1")
    assert journal.read("0.1") == attempt
    assert journal.labels() == ["0.1"]
    assert attempt.pid == os.getpid()
    assert len(attempt.attempt_id) == 32
    assert attempt.owner == f"pid {os.getpid()} on {attempt.host}"
    assert [p.name for p in journal.folder.iterdir()] == ["0.1.json"]  # no temporary left
    journal.end("0.1")
    journal.end("0.1")  # idempotent
    assert journal.labels() == []
    assert journal.read("0.1") is None


def test_each_attempt_gets_its_own_id(tmp_path: Path) -> None:
    journal = TrainingJournal(tmp_path)
    first = journal.begin("a")
    journal.end("a")
    assert journal.begin("a").attempt_id != first.attempt_id


def test_a_record_left_by_an_earlier_attempt_is_not_overwritten(tmp_path: Path) -> None:
    journal = TrainingJournal(tmp_path)
    earlier = journal.begin("0.1")

    with pytest.raises(ConflictError, match=r"earlier training \(pid \d+ on .*\) left MLflow"):
        journal.begin("0.1")

    assert journal.read("0.1") == earlier


def test_an_unreadable_record_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    journal = TrainingJournal(tmp_path)
    journal.folder.mkdir(parents=True)
    (journal.folder / "0.1.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(InvalidInputError, match=r"0\.1\.json is unreadable"):
        journal.read("0.1")


def test_labels_are_validated_before_they_become_file_names(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="must not contain '/'"):
        TrainingJournal(tmp_path).begin("../escape")
