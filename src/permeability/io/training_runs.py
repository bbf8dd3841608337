"""The journal of trainings in flight: ``models/.trainings/<label>.json``, one per label.

A training writes to two places that cannot share a transaction: MLflow (run, logged model,
registry version) and the model store (the published folder). A process killed between the
two used to leave a registry version without its folder, which burnt the label for good, and
a run ``RUNNING`` forever. So before its first MLflow write a training records an *attempt*
here: a random id (also written as the tag ``training_attempt`` on everything it creates in
MLflow, which is how its leftovers are found again), its owner (pid, host) and its start.
The record is deleted once the training is finished or fully undone; a record that outlives
its owner is what :mod:`permeability.pipelines.training_recovery` reconciles.

The owner is alive exactly while it holds the label's reservation lock in the model store
(the kernel drops it when the process dies); pid and host are kept for people reading logs.
Records are written atomically (temporary file, fsync, rename): a crash never leaves half a
record.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from permeability.errors import ConflictError, InvalidInputError
from permeability.io.durable import write_text_durably
from permeability.io.model_store import validate_label

JOURNAL_DIR = ".trainings"
#: Tag on the MLflow run, logged model and registry version an attempt creates.
ATTEMPT_TAG = "training_attempt"
#: Tag on the run: who trained it ("pid 123 on host").
OWNER_TAG = "training_owner"


@dataclass(frozen=True)
class TrainingAttempt:
    """One training of one label, as recorded before it touched MLflow."""

    label: str
    attempt_id: str
    pid: int
    host: str
    started_at: str

    @property
    def owner(self) -> str:
        return f"pid {self.pid} on {self.host}"


class TrainingJournal:
    """Records of attempts in flight under ``<models>/.trainings/``."""

    def __init__(self, models_root: Path) -> None:
        self.folder = models_root / JOURNAL_DIR

    def _path(self, label: str) -> Path:
        return self.folder / f"{validate_label(label)}.json"

    def begin(self, label: str) -> TrainingAttempt:
        """Record a new attempt (the caller holds the label's reservation).

        An earlier attempt's record still present means its leftovers were not reconciled
        yet: refuse rather than lose track of them.
        """
        path = self._path(label)
        if path.exists():
            earlier = self.read(label)
            owner = earlier.owner if earlier is not None else "an unknown process"
            raise ConflictError(
                f"version label '{label}': an earlier training ({owner}) left MLflow "
                "entries to reconcile; retry and they will be"
            )
        attempt = TrainingAttempt(
            label=label,
            attempt_id=uuid.uuid4().hex,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=datetime.now(UTC).isoformat(),
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_durably(path, json.dumps(asdict(attempt), indent=2) + "\n")
        return attempt

    def read(self, label: str) -> TrainingAttempt | None:
        path = self._path(label)
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            return TrainingAttempt(**fields)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"training journal {path} is unreadable ({type(exc).__name__}: {exc}); "
                "compare it with the MLflow runs tagged with its label, then delete it"
            ) from exc

    def has(self, label: str) -> bool:
        return self._path(label).exists()

    def labels(self) -> list[str]:
        """Labels with an attempt on record, oldest record first."""
        if not self.folder.is_dir():
            return []
        records = [p for p in self.folder.glob("*.json") if p.is_file()]
        return [p.stem for p in sorted(records, key=lambda p: (p.stat().st_mtime, p.name))]

    def end(self, label: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(label))
