"""The versioned model store: ``storage/models/<label>/`` = an MLflow model + ``metadata.json``.

A label is what people say ("0.1"); it becomes a folder name, so it is validated before it
touches the file system (nothing may escape the store). Labels are immutable.

Writers never expose a half-written version:

1. :meth:`ModelStore.reserve` takes an exclusive, non-blocking ``flock`` on
   ``.reservations/<label>.lock``. A second writer for the same label (thread or process)
   gets :class:`ConflictError` at once; the kernel drops the lock if the writer dies, so a
   crash never leaves the label blocked. The file is deleted on release.
2. The writer fills ``.staging/<label>/`` (same file system as the store).
3. :meth:`Reservation.publish` writes ``metadata.json`` last and renames the folder into
   place: readers see all of a version or none of it.

Folders whose names start with ``.`` are the store's own; no label can start with one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from permeability.errors import ConflictError, InvalidInputError, NotFoundError
from permeability.io.durable import fsync_dir, write_text_durably

METADATA_FILE = "metadata.json"
MLMODEL_FILE = "MLmodel"
MAX_LABEL_LENGTH = 64
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

VersionStatus = Literal["available", "unavailable"]


def validate_label(label: str) -> str:
    """Return ``label`` if it is a safe, portable folder name; otherwise say what is wrong."""
    if not isinstance(label, str) or label == "":
        raise InvalidInputError("version label must not be empty")
    if any(unicodedata.category(ch) == "Cc" for ch in label):
        raise InvalidInputError("version label must not contain control characters")
    if "/" in label or "\\" in label:
        raise InvalidInputError(f"version label {label!r} must not contain '/' or '\\'")
    if ".." in label:
        raise InvalidInputError(f"version label {label!r} must not contain '..'")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInputError(
            f"version label is {len(label)} characters long; at most {MAX_LABEL_LENGTH} allowed"
        )
    if LABEL_PATTERN.fullmatch(label) is None:
        raise InvalidInputError(
            f"version label {label!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-'"
        )
    return label


def validate_new_label(label: str) -> str:
    """A label a person chooses for a new version: :func:`validate_label`, and not in the
    ``retrain-`` namespace the retrain job generates its challengers' labels in (so the two
    never collide; :mod:`permeability.monitoring.retraining`). Existing ``retrain-`` versions
    are still read, evaluated and promoted by their label."""
    from permeability.monitoring.retraining import RETRAIN_LABEL_PREFIX, is_generated_label

    validate_label(label)
    if is_generated_label(label):
        raise InvalidInputError(
            f"version label {label!r} starts with '{RETRAIN_LABEL_PREFIX}', a prefix reserved "
            "for the labels the retrain job generates; choose another"
        )
    return label


@dataclass(frozen=True)
class StoredVersion:
    """A version folder as found on disk: its metadata (if readable) and whether it is intact."""

    label: str
    path: Path
    status: VersionStatus
    metadata: Mapping[str, Any] | None
    problem: str | None = None


class Reservation:
    """The exclusive right to write one label; call :meth:`publish` once the files are ready."""

    def __init__(self, store: ModelStore, label: str) -> None:
        self.store = store
        self.label = label
        self.staging_path = store.root / ".staging" / label
        self.published = False

    def publish(self, metadata: Mapping[str, Any]) -> Path:
        """Write ``metadata.json`` into the staged folder and move it into place atomically."""
        if not (self.staging_path / MLMODEL_FILE).is_file():
            raise InvalidInputError(
                f"staged version '{self.label}' has no {MLMODEL_FILE}; save the model first"
            )
        target = self.store.path_of(self.label)
        if target.exists():
            raise ConflictError(f"version label '{self.label}' already exists in the model store")
        write_text_durably(
            self.staging_path / METADATA_FILE,
            json.dumps(metadata, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n",
        )
        os.rename(self.staging_path, target)
        fsync_dir(target.parent)
        self.published = True
        return target

    def discard(self) -> None:
        shutil.rmtree(self.staging_path, ignore_errors=True)


class ModelStore:
    """Versions of the productive model, one folder per label under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, label: str) -> Path:
        return self.root / validate_label(label)

    def exists(self, label: str) -> bool:
        return self.path_of(label).exists()

    def ensure_available(self, label: str) -> None:
        """Raise :class:`ConflictError` when ``label`` is already taken (cheap early check)."""
        if self.exists(label):
            raise ConflictError(
                f"version label '{label}' already exists in the model store; labels are "
                "immutable, choose another"
            )

    @contextmanager
    def reserve(self, label: str) -> Iterator[Reservation]:
        """Hold ``label`` exclusively; on exit drop the lock and any unpublished staging files."""
        validate_label(label)
        self.ensure_available(label)
        (self.root / ".staging").mkdir(parents=True, exist_ok=True)
        with self.lock_label(label):
            reservation = Reservation(self, label)
            try:
                # Checked again under the lock: an earlier holder may have published meanwhile.
                self.ensure_available(label)
                reservation.discard()  # leftovers of a writer that crashed holding the label
                yield reservation
            finally:
                if not reservation.published:
                    reservation.discard()

    @contextmanager
    def lock_label(self, label: str) -> Iterator[None]:
        """Hold the label's reservation lock, published or not (:class:`ConflictError` if held).

        Every writer holds it for its whole life and the kernel drops it when the writer dies,
        so getting it also proves that no live process owns what an earlier writer of the label
        left behind (see :mod:`permeability.pipelines.training_recovery`).
        """
        validate_label(label)
        lock_dir = self.root / ".reservations"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_file = lock_dir / f"{label}.lock"
        handle = _lock_exclusively(lock_file, label)
        try:
            yield
        finally:
            _release(handle, lock_file)

    def labels(self) -> list[str]:
        """Published labels, oldest folder first (ties by name)."""
        if not self.root.is_dir():
            return []
        folders = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name))]

    def inspect(self, label: str) -> StoredVersion:
        """The folder's metadata and whether it looks servable (files present and readable)."""
        path = self.path_of(label)
        if not path.is_dir():
            raise NotFoundError(f"version '{label}' is not in the model store at {self.root}")
        try:
            metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            unreadable = f"{METADATA_FILE} is missing or unreadable ({type(exc).__name__})"
            return StoredVersion(label, path, "unavailable", None, unreadable)
        problem = _integrity_problem(path, label, metadata)
        status: VersionStatus = "unavailable" if problem else "available"
        return StoredVersion(label, path, status, metadata, problem)

    def read_metadata(self, label: str) -> Mapping[str, Any]:
        stored = self.inspect(label)
        if stored.metadata is None:
            raise NotFoundError(f"version '{label}' has no readable {METADATA_FILE}")
        return stored.metadata

    def versions(self) -> list[StoredVersion]:
        return [self.inspect(label) for label in self.labels()]


def _lock_exclusively(path: Path, label: str) -> Any:
    """Open and ``flock`` the reservation file without waiting; a held lock is a conflict.

    The holder deletes the file when done, so a waiter may have locked a file that no longer
    is the one at ``path``: then it tries again with the current one (the usual lock-file
    dance; without it two writers could each hold "the" lock).
    """
    while True:
        handle = open(path, "a+b")  # noqa: SIM115 - held for the reservation's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise ConflictError(
                f"version label '{label}' is being trained by another request; labels are "
                "immutable, choose another"
            ) from exc
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            return handle
        handle.close()


def _release(handle: Any, path: Path) -> None:
    """Delete the reservation file while still holding it, then let go."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _integrity_problem(path: Path, label: str, metadata: Mapping[str, Any]) -> str | None:
    if not isinstance(metadata, Mapping) or metadata.get("version") != label:
        return f"{METADATA_FILE} does not describe version '{label}'"
    if not (path / MLMODEL_FILE).is_file():
        return f"{MLMODEL_FILE} is missing"
    for relative in metadata.get("files", ()):
        if not (path / relative).is_file():
            return f"{relative} is missing"
    return None
