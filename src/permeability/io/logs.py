"""Logging: configured once per process, routed to ``<home>/logs/<stage>.log`` by context.

Why context and not handlers per stage: a process runs stages inside each other (``up`` runs
acquisition, training and promotion; the scheduler runs jobs; the training service trains
in its request threads, several at once). Re-pointing the process-wide ``permeability``
logger at each stage's file made a nested stage's exit drop the outer stage's lines, and
concurrent requests could not each have their own. So the handlers are installed once
(:func:`setup_logging`: stderr, and one router to the files) and each stage only enters a
:func:`log_scope`, a :mod:`contextvars` frame holding its stage, run id and logs folder:

* every record is stamped with the innermost scope's stage and run id (one grep finds a run);
* it is written to the file of every scope it is logged under: ``up``'s log holds every
  step's lines, and ``acquire.log`` still holds the acquisition's;
* a long-running process (a service, the scheduler) also enters a *process scope*
  (:func:`process_scope`), which applies in every thread, so lines from background threads
  and from request handlers land in the service's own log as well.

Context does not follow a thread started with :mod:`threading` or a plain
``ThreadPoolExecutor.submit``; submit ``contextvars.copy_context().run`` when the thread logs.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Final, TextIO

_FORMAT: Final = "%(asctime)s %(levelname)s %(stage)s run=%(run_id)s %(name)s: %(message)s"
_ROOT: Final = "permeability"
#: Open log files kept at once (least recently used closed first): tests make many homes.
_MAX_OPEN_FILES: Final = 32
_MAX_BYTES: Final = 5_000_000
_BACKUPS: Final = 5


@dataclass(frozen=True)
class LogScope:
    """A stage's run: its name (the file ``<logs_dir>/<stage>.log``) and run id."""

    stage: str
    run_id: str
    logs_dir: Path


_scopes: ContextVar[tuple[LogScope, ...]] = ContextVar("permeability_log_scopes", default=())
_process_scopes: tuple[LogScope, ...] = ()


def current_scopes() -> tuple[LogScope, ...]:
    """The process scope(s), then this context's, outermost first."""
    return _process_scopes + _scopes.get()


class _OneLineFormatter(logging.Formatter):
    """Keeps each event on one line (tracebacks and multi-line messages included), so logs grep."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", " \\n ")


class _StampScope(logging.Filter):
    """Stamps every record with the innermost scope's stage and run id."""

    def filter(self, record: logging.LogRecord) -> bool:
        scopes = current_scopes()
        record.stage = scopes[-1].stage if scopes else "-"
        record.run_id = scopes[-1].run_id if scopes else "-"
        return True


class _ScopeFiles(logging.Handler):
    """Writes each record to the log file of every scope it was logged under (each once)."""

    def __init__(self) -> None:
        super().__init__()
        self._files: OrderedDict[Path, RotatingFileHandler] = OrderedDict()
        self._files_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        paths = dict.fromkeys(s.logs_dir / f"{s.stage}.log" for s in current_scopes())
        for path in paths:
            self._file(path).emit(record)

    def _file(self, path: Path) -> RotatingFileHandler:
        with self._files_lock:
            handler = self._files.get(path)
            if handler is not None:
                self._files.move_to_end(path)
                return handler
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(
                path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8"
            )
            handler.setFormatter(self.formatter)
            self._files[path] = handler
            while len(self._files) > _MAX_OPEN_FILES:
                _, oldest = self._files.popitem(last=False)
                oldest.close()
            return handler

    def close(self) -> None:
        with self._files_lock:
            for handler in self._files.values():
                handler.close()
            self._files.clear()
        super().close()


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr as it is when a line is written, not when the handler was made (a CLI runner or
    a test may have replaced ``sys.stderr`` since): the handler lives as long as the process."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


_setup_lock = threading.Lock()
_installed: list[logging.Handler] = []


def setup_logging(*, console: bool = True, level: int = logging.INFO) -> None:
    """Install the ``permeability`` logger's handlers once per process (later calls: no-op).

    ``console``: also write every line to stderr (the CLI, the services).
    """
    with _setup_lock:
        if _installed:
            return
        root = logging.getLogger(_ROOT)
        root.setLevel(level)
        root.propagate = False
        formatter = _OneLineFormatter(_FORMAT)
        handlers: list[logging.Handler] = [_ScopeFiles()]
        if console:
            handlers.append(_Stderr())
        for handler in handlers:
            handler.setFormatter(formatter)
            handler.addFilter(_StampScope())
            root.addHandler(handler)
            _installed.append(handler)


@contextmanager
def log_scope(stage: str, run_id: str, logs_dir: Path) -> Iterator[logging.Logger]:
    """Log as ``stage`` (run ``run_id``) into ``logs_dir`` until the block ends; nests."""
    setup_logging()
    token = _scopes.set((*_scopes.get(), LogScope(stage, run_id, logs_dir)))
    try:
        yield logging.getLogger(f"{_ROOT}.{stage}")
    finally:
        _scopes.reset(token)


@contextmanager
def process_scope(stage: str, run_id: str, logs_dir: Path) -> Iterator[logging.Logger]:
    """The scope of a long-running process (a service, the scheduler) for as long as the block
    runs: it applies in every thread, under every other scope. Two in one process (tests run
    both services together) both apply."""
    global _process_scopes
    setup_logging()
    scope = LogScope(stage, run_id, logs_dir)
    with _setup_lock:
        _process_scopes = (*_process_scopes, scope)
    try:
        yield logging.getLogger(f"{_ROOT}.{stage}")
    finally:
        with _setup_lock:
            _process_scopes = tuple(s for s in _process_scopes if s is not scope)
