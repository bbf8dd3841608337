"""Serving models: each version loaded once, the ``champion`` alias followed without a restart.

Loading reads what the training service stored inside the MLflow model folder
(``models/<label>/artifacts/``): the version's served file (its
:class:`~permeability.modelling.record_scorer.RecordScorer`, which single records need, read
without scikit-learn, SciPy or pandas) when it has one, and the full
:class:`~permeability.modelling.predictor.PermeabilityModel` (joblib) on first use by a frame,
or by the refresher's next pass; a version without a served file loads its full model at once.
No ``import mlflow`` (≈ 1 s) in the serving path. The MLflow
registry is consulted only to learn which label carries the ``champion`` alias, by
:meth:`ModelCache.refresh` (a background thread calls it every ``champion_ttl_s`` seconds),
so a promotion takes effect within that time and requests never wait for the registry.
That question is asked without MLflow too (:func:`registry_champion_resolver`): over the REST
API of a tracking server, or with one SQL query on the embedded SQLite store.

A replica pointed at a tracking server holds no state of its own: a champion missing from its
model store is fetched from the server (:mod:`permeability.io.registry_rest`) and then loaded
as any other version; the folder is a cache (deleted, it is fetched again). A new champion is
fetched and loaded *before* the cache switches to it, so requests keep the old one meanwhile.

A version whose files are missing or corrupt is *unavailable* with the reason; other versions
keep serving. A failed load is remembered together with the file's size and modification
time, so the broken file is not re-read on every request, and a repaired file is picked up.
The refresher also notices when a loaded version's file disappears or changes: the version
is evicted, and the next request reloads it or reports it unavailable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from permeability.errors import InvalidInputError, NotFoundError, PermeabilityError
from permeability.io.model_file import MODEL_FILE, SERVED_FILE, load_model_file, load_served_file
from permeability.io.model_store import ModelStore, validate_label
from permeability.io.registry_lookup import (
    ChampionResolver,
    VersionFetcher,
    registry_champion_resolver,
    registry_fetcher,
)
from permeability.io.version_state import Status, VersionState, state_of
from permeability.modelling.record_scorer import RecordScorer
from permeability.modelling.served import FullModel, LoadedModel
from permeability.settings import Settings

if TYPE_CHECKING:  # imports scikit-learn and pandas: read only when a frame needs the model
    from permeability.modelling.predictor import PermeabilityModel

logger = logging.getLogger("permeability.model_cache")

#: What identifies the files a version was loaded from (:func:`_signature`).
Signature = tuple[int, ...]


class VersionUnavailableError(PermeabilityError):
    """The version exists but cannot serve (missing or corrupt files); says why."""

    def __init__(self, version: str, reason: str) -> None:
        self.version = version
        self.reason = reason
        super().__init__(f"version '{version}' is unavailable: {reason}")


class UnknownVersionError(NotFoundError):
    """No such version in the model store; lists the ones that exist."""

    def __init__(self, version: str, available: list[str]) -> None:
        self.version = version
        self.available = available
        listed = ", ".join(available) if available else "none (train one first)"
        super().__init__(f"version '{version}' does not exist; available versions: {listed}")


class NoChampionError(NotFoundError):
    """No version carries the ``champion`` alias, and the request named none."""

    def __init__(self, available: list[str], problem: str | None = None) -> None:
        self.available = available
        listed = ", ".join(available) if available else "none (train one first)"
        why = f" ({problem})" if problem else ""
        super().__init__(
            f"no champion version is set{why}; give 'version' or promote one; "
            f"available versions: {listed}"
        )


class ModelCache:
    """Versions loaded once per process; the champion label refreshed in the background."""

    def __init__(
        self,
        store: ModelStore,
        resolve_champion: ChampionResolver,
        *,
        champion_ttl_s: float = 5.0,
        fetch: VersionFetcher | None = None,
    ) -> None:
        self.store = store
        self._resolve_champion = resolve_champion
        self._fetch = fetch
        self._fetch_failures: dict[str, tuple[float, str]] = {}
        self.champion_ttl_s = champion_ttl_s
        self._loaded: dict[str, LoadedModel] = {}
        self._failures: dict[str, tuple[Signature | None, str]] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._champion: str | None = None
        self._champion_checked = False
        self.champion_error: str | None = None
        self.load_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_load_error: Callable[[str, str], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, champion_ttl_s: float = 5.0) -> ModelCache:
        return cls(
            ModelStore(settings.paths.models),
            registry_champion_resolver(settings),
            champion_ttl_s=champion_ttl_s,
            fetch=registry_fetcher(settings),
        )

    # -- the request path: dictionary lookups only -----------------------------------------

    @property
    def champion(self) -> str | None:
        """The champion label as last resolved (never calls the registry)."""
        return self._champion

    def peek(self, version: str | None) -> LoadedModel | None:
        """The loaded model for ``version`` (``None``: the champion) if it is in memory."""
        label = self._champion if version is None else version
        return None if label is None else self._loaded.get(label)

    def get(self, version: str | None) -> LoadedModel:
        """Load on first use (blocking: call from a worker thread when not yet loaded)."""
        label = self._label_for(version)
        loaded = self._loaded.get(label)
        if loaded is not None:
            return loaded
        with self._load_lock(label):
            loaded = self._loaded.get(label)
            return loaded if loaded is not None else self._load(label)

    @property
    def loaded_versions(self) -> list[str]:
        return sorted(self._loaded)

    # -- loading ---------------------------------------------------------------------------

    def _label_for(self, version: str | None) -> str:
        if version is not None:
            try:
                return validate_label(version)
            except InvalidInputError:
                raise UnknownVersionError(version, self.store.labels()) from None
        if not self._champion_checked:
            self.refresh_champion()
        if self._champion is None:
            raise NoChampionError(self.store.labels(), self.champion_error)
        return self._champion

    def _load_lock(self, label: str) -> threading.Lock:
        with self._lock:
            return self._load_locks.setdefault(label, threading.Lock())

    def _load(self, label: str, *, fetch: bool = False) -> LoadedModel:
        """Read ``label`` from the store; a missing champion (or ``fetch``) is fetched first."""
        path = self.store.root / label
        if not path.is_dir() and self._fetch is not None and (fetch or label == self._champion):
            self._fetch_into_store(label)
        if not path.is_dir():
            raise UnknownVersionError(label, self.store.labels())
        signature = _signature(path)
        failed = self._failures.get(label)
        if failed is not None and failed[0] == signature:
            raise VersionUnavailableError(label, failed[1])
        try:
            loaded = self._read(label, path, signature)
        except VersionUnavailableError as exc:
            self._remember_failure(label, signature, exc.reason)
            raise
        self._failures.pop(label, None)
        self._loaded[label] = loaded
        logger.info("loaded version %s (%s)", label, loaded.model_name)
        return loaded

    def _read(self, label: str, path: Path, signature: Signature | None) -> LoadedModel:
        """The version from its served file when it has one (no scikit-learn, SciPy or pandas
        read: the full model follows on first use), else from its full model file."""
        stored = self.store.inspect(label)
        if stored.status != "available" or stored.metadata is None:
            raise VersionUnavailableError(label, stored.problem or "metadata is unreadable")
        if signature is None:
            raise VersionUnavailableError(label, f"model file {MODEL_FILE} is missing")
        scorer = self._read_served(label, path)
        if scorer is None:
            model = _read_full(label, path)
            return LoadedModel.of_model(
                label, model, stored.metadata, loaded_at=time.time(), signature=signature
            )
        return LoadedModel(
            version=label,
            scorer=scorer,
            metadata=stored.metadata,
            known_structures=frozenset(scorer.known_structures),
            loaded_at=time.time(),
            signature=signature,
            full=FullModel(load=lambda: self._read_full_later(label, path)),
        )

    def _read_served(self, label: str, path: Path) -> RecordScorer | None:
        """The served file's scorer; None when the version has none (trained before it existed,
        or a model whose single records need its estimator) or it cannot be read (then the
        full model serves, and the log says why)."""
        if not (path / SERVED_FILE).is_file():
            return None
        try:
            return load_served_file(path / SERVED_FILE)
        except Exception as exc:
            logger.warning(
                "version %s: served file %s cannot be read (%s: %s); loading the full model",
                label,
                SERVED_FILE,
                type(exc).__name__,
                exc,
            )
            return None

    def _read_full_later(self, label: str, path: Path) -> PermeabilityModel:
        """The full model of a version served from its scorer, read on first use; a failure is
        reported like a failed load (the version's singles keep serving)."""
        started = time.perf_counter()
        try:
            model = _read_full(label, path)
        except VersionUnavailableError as exc:
            self._note_failure(label, exc.reason)
            raise
        logger.info("version %s: full model read in %.2f s", label, time.perf_counter() - started)
        return model

    def _fetch_into_store(self, label: str) -> None:
        """Fetch ``label`` from the registry's storage; a failure is retried after
        ``champion_ttl_s`` (requests in between get its reason, not another download)."""
        assert self._fetch is not None  # noqa: S101 - checked by the caller
        failed = self._fetch_failures.get(label)
        if failed is not None and time.monotonic() - failed[0] < self.champion_ttl_s:
            raise VersionUnavailableError(label, failed[1])
        started = time.perf_counter()
        try:
            self._fetch(label, self.store)
        except Exception as exc:
            reason = f"cannot be fetched from the registry: {type(exc).__name__}: {exc}"
            self._fetch_failures[label] = (time.monotonic(), reason)
            self._note_failure(label, reason)
            raise VersionUnavailableError(label, reason) from exc
        self._fetch_failures.pop(label, None)
        logger.info("fetched version %s in %.2f s", label, time.perf_counter() - started)

    def _remember_failure(self, label: str, signature: Signature | None, reason: str) -> None:
        self._failures[label] = (signature, reason)
        self._note_failure(label, reason)

    def _note_failure(self, label: str, reason: str) -> None:
        self.load_errors += 1
        logger.error("version %s is unavailable: %s", label, reason)
        if self.on_load_error is not None:
            self.on_load_error(label, reason)

    # -- keeping up to date ----------------------------------------------------------------

    def refresh_champion(self) -> str | None:
        """Ask the registry which label is champion; keep the last answer if it fails."""
        asked, label = self._ask_registry()
        if asked:
            self._switch_to(label)
        return self._champion

    def _ask_registry(self) -> tuple[bool, str | None]:
        """(answered, label): a failed lookup is remembered as ``champion_error``."""
        self._champion_checked = True
        try:
            label = self._resolve_champion()
        except Exception as exc:
            self.champion_error = f"registry unreachable: {type(exc).__name__}: {exc}"
            logger.warning("champion lookup failed, keeping %s: %s", self._champion, exc)
            return False, None
        self.champion_error = None
        return True, label

    def _switch_to(self, label: str | None) -> None:
        if label != self._champion:
            logger.info("champion is now %s (was %s)", label, self._champion)
        self._champion = label

    def check_files(self) -> None:
        """Evict loaded versions whose model file vanished, or whose model or served file changed,
        since loading."""
        for label, loaded in list(self._loaded.items()):
            if _signature(self.store.root / label) != loaded.signature:
                self._loaded.pop(label, None)
                logger.warning("version %s changed on disk; evicted", label)

    def refresh(self) -> None:
        """One refresher pass: champion label, files of loaded versions, champion preloaded
        (from its served file when it has one: the full model is :meth:`read_champion_model`'s).

        A new champion is fetched (if need be) and loaded before the switch, so requests are
        answered by the old one until then; one that cannot load is switched to anyway (the
        registry decides), and says why it is unavailable."""
        asked, label = self._ask_registry()
        if asked:
            if label is not None and label != self._champion and label not in self._loaded:
                self._preload(label)
            self._switch_to(label)
        self.check_files()
        if self._champion is not None and self._champion not in self._loaded:
            try:
                self.get(self._champion)
            except PermeabilityError as exc:
                logger.error("champion %s cannot be loaded: %s", self._champion, exc)

    def read_champion_model(self) -> None:
        """Read the loaded champion's full model if it is not in memory yet, so the first
        batch does not wait for it. The service's refresher calls it after each
        :meth:`refresh`; the start does not (a replica is ready on the served file alone)."""
        loaded = self.peek(None)
        if loaded is None or loaded.full.loaded or loaded.full.failed:
            return
        try:
            loaded.full.get()
        except PermeabilityError as exc:
            logger.error("champion %s: full model cannot be read: %s", loaded.version, exc)

    def _preload(self, label: str) -> None:
        try:
            valid = validate_label(label)
        except InvalidInputError as exc:
            logger.error("the registry's champion %r is not a valid label: %s", label, exc)
            return
        try:
            with self._load_lock(valid):
                if valid not in self._loaded:
                    self._load(valid, fetch=True)
        except PermeabilityError as exc:
            logger.error("new champion %s cannot be loaded: %s", valid, exc)

    def start(self) -> None:
        """Refresh every ``champion_ttl_s`` seconds in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-cache-refresher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.champion_ttl_s):
            try:
                self.refresh()
                self.read_champion_model()
            except Exception:
                logger.exception("model cache refresh failed")

    # -- what can serve --------------------------------------------------------------------

    def states(self) -> list[VersionState]:
        """Every version in the store (and a champion missing from it), with its status."""
        states = [self._state(label) for label in self.store.labels()]
        known = {s.version for s in states}
        if self._champion is not None and self._champion not in known:
            states.append(
                VersionState(
                    version=self._champion,
                    status="unavailable",
                    loaded=False,
                    champion=True,
                    reason=self._missing_reason(self._champion),
                )
            )
        return states

    def _missing_reason(self, label: str) -> str:
        failed = self._fetch_failures.get(label)
        if failed is not None:
            return f"the registry's champion {failed[1]}"
        return "the registry's champion is not in this server's model store"

    def _state(self, label: str) -> VersionState:
        loaded = self._loaded.get(label)
        champion = label == self._champion
        if loaded is not None:
            return state_of(label, "available", True, champion, None, loaded.metadata)
        stored = self.store.inspect(label)
        reason = stored.problem
        if reason is None:
            signature = _signature(stored.path)
            failed = self._failures.get(label)
            if signature is None:
                reason = f"model file {MODEL_FILE} is missing"
            elif failed is not None and failed[0] == signature:
                reason = failed[1]
        status: Status = "unavailable" if reason else "available"
        return state_of(label, status, False, champion, reason, stored.metadata or {})


def _read_full(label: str, path: Path) -> PermeabilityModel:
    """The version's full model file, checked to hold a model."""
    from permeability.modelling.predictor import PermeabilityModel

    try:
        model = load_model_file(path / MODEL_FILE)
    except Exception as exc:
        raise VersionUnavailableError(
            label, f"model file {MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(model, PermeabilityModel):
        raise VersionUnavailableError(
            label, f"model file {MODEL_FILE} holds a {type(model).__name__}, not a model"
        )
    return model


def _signature(folder: Path) -> Signature | None:
    """Size and modification time (ns) of a version's model file and of its served file (-1, -1
    when it has none): cheap change detection. None when the model file is missing."""
    model = _stat(folder / MODEL_FILE)
    if model is None:
        return None
    served = _stat(folder / SERVED_FILE)
    return (*model, *(served if served is not None else (-1, -1)))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
