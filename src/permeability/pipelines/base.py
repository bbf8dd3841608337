"""The job context: settings, parameters, storage layout, a run id and a logger, set up on entry.

Logging is configured once per process (:mod:`permeability.io.logs`); a job only enters its
log scope, so jobs nest (``up`` runs acquisition) and run side by side (the training service's
requests) without touching each other's lines.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from permeability.config import ProjectConfig, load_config
from permeability.errors import PermeabilityError
from permeability.io.logs import log_scope
from permeability.settings import Settings, StoragePaths


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    config: ProjectConfig
    paths: StoragePaths
    run_id: str
    logger: logging.Logger


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@contextmanager
def job_context(
    stage: str, settings: Settings, *, config: ProjectConfig | None = None
) -> Iterator[JobContext]:
    """Create the storage layout, log into ``logs/<stage>.log`` (and every enclosing job's log)
    and log start and end."""
    paths = settings.paths.ensure()
    run_id = new_run_id()
    resolved = config if config is not None else load_config(settings.config_file)
    with log_scope(stage, run_id, paths.logs) as logger:
        started = time.perf_counter()
        logger.info("start home=%s", paths.root)
        try:
            yield JobContext(settings, resolved, paths, run_id, logger)
        except PermeabilityError as exc:
            # A refusal the user can act on: its one sentence is the whole story.
            logger.error("refused after %.2fs: %s", time.perf_counter() - started, exc)
            raise
        except Exception as exc:
            logger.exception("failed after %.2fs: %s", time.perf_counter() - started, exc)
            raise
        else:
            logger.info("done in %.2fs", time.perf_counter() - started)
