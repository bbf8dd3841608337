"""One job of a kind at a time on this machine: an exclusive, non-blocking file lock.

Used where two runs of the same job would race on a Delta table (two feature-store loads, two
compactions of the prediction log). The OS drops the lock when its process dies, so a crashed
run never blocks the next one. Without ``fcntl`` (Windows) there is no lock and the callers'
own after-the-fact checks (Delta's commit conflicts) are the only guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from permeability.errors import ConflictError


@contextmanager
def exclusive_lock(path: Path, doing: str) -> Iterator[None]:
    """Hold ``path`` locked for the block; refuse at once, with ``doing`` named, if another
    process holds it (``doing``: e.g. "an acquisition is loading the feature store")."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConflictError(f"{doing} (lock {path}); retry later") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
