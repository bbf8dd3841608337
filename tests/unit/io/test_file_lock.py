"""One job of a kind at a time: the lock refuses a second holder at once, naming the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.errors import ConflictError
from permeability.io.file_lock import exclusive_lock


def test_a_held_lock_refuses_a_second_holder_naming_what_runs(tmp_path: Path) -> None:
    path = tmp_path / "data" / ".job.lock"
    with exclusive_lock(path, "another load is running"):
        assert path.exists()
        with (
            pytest.raises(ConflictError, match=r"another load is running \(lock .*\.job\.lock\)"),
            exclusive_lock(path, "another load is running"),
        ):
            pass  # pragma: no cover - never entered


def test_the_lock_is_free_again_after_the_block_even_when_it_raised(tmp_path: Path) -> None:
    path = tmp_path / ".job.lock"
    with pytest.raises(RuntimeError), exclusive_lock(path, "x"):
        raise RuntimeError("the job failed")
    ran = []
    with exclusive_lock(path, "x"):
        ran.append(True)
    assert ran == [True]
