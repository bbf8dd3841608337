"""Logging for stages: ``<home>/logs/<stage>.log`` (rotating) and the console, one event a line."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(stage)s run=%(run_id)s %(name)s: %(message)s"
_HANDLER_TAG = "_permeability_handler"


class _OneLineFormatter(logging.Formatter):
    """Keeps each event on one line (tracebacks and multi-line messages included), so logs grep."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", " \\n ")


class _RunContext(logging.Filter):
    """Stamps every record with the stage and the run id, so one grep finds a whole run."""

    def __init__(self, stage: str, run_id: str) -> None:
        super().__init__()
        self.stage = stage
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.stage = self.stage
        record.run_id = self.run_id
        return True


def configure_logging(
    logs_dir: Path, stage: str, run_id: str, *, console: bool = True, level: int = logging.INFO
) -> logging.Logger:
    """Route the ``permeability`` logger to this stage's file (and stderr); replaces earlier routes."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("permeability")
    close_logging()
    root.setLevel(level)
    root.propagate = False
    context = _RunContext(stage, run_id)
    formatter = _OneLineFormatter(_FORMAT)
    file_handler = RotatingFileHandler(
        logs_dir / f"{stage}.log", maxBytes=5_000_000, backupCount=5, encoding="utf-8"
    )
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)
    return logging.getLogger(f"permeability.{stage}")


def close_logging() -> None:
    """Detach and close the handlers :func:`configure_logging` added."""
    root = logging.getLogger("permeability")
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
