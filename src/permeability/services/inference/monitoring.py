"""``GET /monitoring``: the latest evaluation of the champion, as the lab page's monitoring view
shows it.

Each evaluation replaces one file, ``monitoring/latest.json`` under the storage root
(:mod:`permeability.io.monitoring_snapshot`); this route hands it to the page, so the page never
queries MLflow on a lab user's click. The page polls it while the view is open, and every
uvicorn worker answers it, so the file is read and validated once per change only: each request
costs one ``stat`` while the file stays the same (:class:`SnapshotCache`). A replaced file has a
new inode, modification time or size, and is read at the next request.

Open like the other GETs (no token): it says how well the champion did, never what a sample was.
No snapshot yet (or one that cannot be read) is a 404 with the project's error body, whose
sentence says what to run.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from permeability.io.monitoring_snapshot import NoSnapshotError, read_snapshot, snapshot_path
from permeability.monitoring.snapshot import MonitoringSnapshot
from permeability.services.common.errors import ErrorResponse
from permeability.settings import Settings, get_settings

MONITORING_PATH: Final = "/monitoring"

monitoring_router = APIRouter(tags=["monitoring"])

#: What identifies one version of the file: inode, modification time (ns) and size. An
#: evaluation writes a temporary file and renames it over the old one, so a new snapshot always
#: has a new inode, even within the file system's timestamp resolution.
FileStamp = tuple[int, int, int]


@dataclass(frozen=True)
class _Entry:
    stamp: FileStamp
    body: bytes | None
    error: NoSnapshotError | None


class SnapshotCache:
    """The snapshot file's answer (JSON bytes, or the error it gives), read once per change.

    Thread-safe: the route reads the file in the thread pool, and two requests that see the
    same change read it once.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reads = 0  # how many times the file was read (tests check the cache with it)
        self._entry: _Entry | None = None
        self._lock = threading.Lock()

    def stamp(self) -> FileStamp | None:
        """The file's current stamp; None when there is no file."""
        try:
            info = os.stat(snapshot_path(self.folder))
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def cached(self, stamp: FileStamp | None) -> bytes | None:
        """The body kept for ``stamp`` (raising its error if it had one); None when the file
        changed since, or there is none (then :meth:`load` must run)."""
        entry = self._entry
        if stamp is None or entry is None or entry.stamp != stamp:
            return None
        if entry.error is not None:
            raise entry.error
        return entry.body

    def load(self) -> bytes:
        """Read and validate the file now (blocking: call it off the event loop)."""
        with self._lock:
            stamp = self.stamp()
            kept = self.cached(stamp)
            if kept is not None:
                return kept
            self.reads += 1
            try:
                body = read_snapshot(self.folder).model_dump_json().encode()
            except NoSnapshotError as error:
                # A broken file is remembered too: polling must not re-parse it every time.
                # A missing one is not (there is nothing to remember; the stat is the check).
                if stamp is not None:
                    self._entry = _Entry(stamp, None, error)
                raise
            if stamp is not None:
                self._entry = _Entry(stamp, body, None)
            return body


def snapshot_cache(request: Request) -> SnapshotCache:
    """This app's cache, made on first use for the settings the app was created with."""
    state = request.app.state
    cache: SnapshotCache | None = getattr(state, "monitoring_snapshot", None)
    if cache is None:
        settings: Settings = getattr(state, "settings", None) or get_settings()
        cache = SnapshotCache(settings.paths.monitoring)
        state.monitoring_snapshot = cache
    return cache


@monitoring_router.get(
    MONITORING_PATH,
    response_model=MonitoringSnapshot,
    responses={
        404: {
            "model": ErrorResponse,
            "description": "No evaluation has written a snapshot yet (or it cannot be read); "
            "`detail` says what to run.",
        }
    },
    summary="The champion's latest evaluation: errors, coverage, decisions, drift, control chart",
)
async def monitoring(request: Request) -> Response:
    """The snapshot the last evaluation wrote, every figure with its window and sample size."""
    cache = snapshot_cache(request)
    body = cache.cached(cache.stamp())
    if body is None:
        body = await run_in_threadpool(cache.load)
    return Response(body, media_type="application/json")
