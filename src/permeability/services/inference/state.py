"""What the inference service holds while it runs, and how it is set up and kept current.

The lifespan builds one :class:`InferenceState` (config, model cache, specification limits,
prediction log, metrics, decision policy); requests only read it. One background thread
re-reads the champion alias, changed model files and the specs file, so the request path never
touches the registry or the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from permeability.config import ProjectConfig, load_config
from permeability.io.model_cache import ModelCache
from permeability.io.predictions.log import PredictionLog
from permeability.io.predictions.schema import predictions_uri
from permeability.io.predictions.spool import SPOOL_FOLDER
from permeability.io.specs import SpecsWatcher
from permeability.modelling.served import LoadedModel
from permeability.scoring.decisions import DecisionPolicy
from permeability.services.inference.metrics import InferenceMetrics
from permeability.settings import Settings

logger = logging.getLogger("permeability.inference")


@dataclass
class InferenceState:
    """What the lifespan set up; requests only read it."""

    settings: Settings
    config: ProjectConfig
    cache: ModelCache
    specs: SpecsWatcher
    log: PredictionLog
    metrics: InferenceMetrics
    policy: DecisionPolicy
    request_ids: Callable[[], str]


def request_id_source() -> Callable[[], str]:
    """Unique ids across workers and restarts at the cost of a counter increment."""
    prefix = uuid.uuid4().hex[:10]
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


def state_of(request: Request) -> InferenceState:
    state: InferenceState | None = getattr(request.app.state, "inference", None)
    if state is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the inference service has not started (its start-up did not run or failed; "
            "see logs/inference-api.log)",
        )
    return state


class Maintenance:
    """One background thread: champion alias, changed model files, changed specs file, and the
    champion's full model read once it serves from its served file."""

    def __init__(self, cache: ModelCache, specs: SpecsWatcher, every_s: float) -> None:
        self.cache = cache
        self.specs = specs
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.cache.refresh()
                self.specs.refresh()
                # After the start's rush: the first batch then finds the full model read.
                self.cache.read_champion_model()
            except Exception:
                logger.exception("inference refresh failed")


def exit_with_supervisor() -> None:
    """A uvicorn worker (``serve --workers N``) stops when its supervisor process dies.

    Why: a supervisor killed with ``kill -9`` runs no shutdown code, and its workers kept
    serving as orphans (measured: still answering on the port), holding multiprocessing's
    resource tracker alive with them. A worker is a ``multiprocessing`` child, whose parent's
    sentinel becomes ready when the parent is gone, however it died; the worker then stops as
    on SIGTERM: its prediction log is flushed and its helper process stopped. A one-process
    service has no such parent, and nothing is watched.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        logger.error("the supervisor process %s is gone: this worker stops", parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def limit_threads() -> Any:
    """One BLAS/OpenMP thread per worker (HGB with default threads collapses under load)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


async def model_for(state: InferenceState, version: str | None) -> LoadedModel:
    """The version's model; a version not yet in memory is loaded off the event loop."""
    loaded = state.cache.peek(version)
    if loaded is None:
        loaded = await run_in_threadpool(state.cache.get, version)
    return loaded


async def start_inference(
    settings: Settings, metrics: InferenceMetrics, *, refresh_s: float
) -> tuple[InferenceState, Maintenance]:
    """Config, limits, the champion loaded (off the event loop; fetched from the tracking
    server first when this host does not have it), log and refresher started; the champion
    alias and the specs file are re-read every ``refresh_s`` seconds. A registry that cannot
    be reached does not stop the start: the service runs, not ready, and asks again."""
    config = load_config(settings.config_file)
    watcher = SpecsWatcher.from_settings(settings, config)
    cache = ModelCache.from_settings(settings, champion_ttl_s=refresh_s)
    cache.on_load_error = lambda version, _reason: metrics.load_errors.labels(version).inc()
    await asyncio.to_thread(cache.refresh)
    # The Delta writes run in a helper process: in this one they showed up as p99 latency.
    # Every answer is spooled before it is sent, so a kill -9 loses none (docs/inference.md).
    spool = settings.paths.logs / SPOOL_FOLDER if config.inference.prediction_spool else None
    log = PredictionLog(
        predictions_uri(settings.resolved_feature_store_uri),
        write_in_subprocess=True,
        spool_dir=spool,
    )
    log.start()
    # What a process killed before writing it answered: in the log before this one is ready.
    await asyncio.to_thread(log.replay_orphans)
    maintenance = Maintenance(cache, watcher, refresh_s)
    maintenance.start()
    exit_with_supervisor()
    state = InferenceState(
        settings=settings,
        config=config,
        cache=cache,
        specs=watcher,
        log=log,
        metrics=metrics,
        policy=config.inference.decision_policy(),
        request_ids=request_id_source(),
    )
    return state, maintenance
