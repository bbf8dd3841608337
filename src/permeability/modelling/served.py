"""A version ready to serve: what single records need now, the full model when a frame needs it.

Plain data, so that scoring (pure) can take one without knowing how it was loaded; the model
cache (:mod:`permeability.io.model_cache`) builds them.

Why two parts: a single record needs only the :class:`~permeability.modelling.record_scorer.
RecordScorer` (numpy: the feature row, the fast path, the clip, the calibration), which a version
stores on its own (the served file) and which loads without scikit-learn, SciPy or pandas.
Frames (batches, evaluation) need the full :class:`~permeability.modelling.predictor.
PermeabilityModel`, whose pickle imports all three (≈ 70 % of a replica's start). So a replica
is ready as soon as the scorer is in memory, and the full model is read on first use (the model
cache also reads it in the background shortly after start, so a batch rarely waits for it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from permeability.modelling.record_scorer import RecordScorer

if TYPE_CHECKING:  # the full model's module imports scikit-learn and pandas: not at start
    from permeability.modelling.predictor import PermeabilityModel


class FullModel:
    """The full model of a version, read once, on first use; thread-safe.

    Either already in memory (``model``) or read by ``load`` the first time :meth:`get` is
    called. A failed read is remembered and raised again to every later caller, so a broken
    file is not re-read on every batch: a repaired file changes the version's files, which
    makes the model cache evict the version and load it anew (with a new holder).
    """

    def __init__(
        self,
        *,
        model: PermeabilityModel | None = None,
        load: Callable[[], PermeabilityModel] | None = None,
    ) -> None:
        if model is None and load is None:
            raise ValueError("FullModel needs the model or a way to load it")
        self._model = model
        self._load = load
        self._error: Exception | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (reading it is then a field access)."""
        return self._model is not None

    @property
    def failed(self) -> bool:
        """Whether reading it failed (:meth:`get` raises that error again)."""
        return self._error is not None

    def get(self) -> PermeabilityModel:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                if self._error is not None:
                    raise self._error
                assert self._load is not None  # noqa: S101 - the constructor checked it
                try:
                    self._model = self._load()
                except Exception as exc:
                    self._error = exc
                    raise
            return self._model


@dataclass(frozen=True)
class LoadedModel:
    """A version ready to serve: its record scorer, its full model (maybe not yet read), and
    what requests need to know about it."""

    version: str
    scorer: RecordScorer
    metadata: Mapping[str, Any]
    known_structures: frozenset[str]
    loaded_at: float
    signature: tuple[int, ...]
    full: FullModel = field(repr=False, compare=False)

    @classmethod
    def of_model(
        cls,
        version: str,
        model: PermeabilityModel,
        metadata: Mapping[str, Any],
        *,
        loaded_at: float = 0.0,
        signature: tuple[int, ...] = (0, 0),
    ) -> LoadedModel:
        """A version whose full model is already in memory (its scorer is the model's own)."""
        scorer = model.record_scorer
        return cls(
            version=version,
            scorer=scorer,
            metadata=metadata,
            known_structures=frozenset(scorer.known_structures),
            loaded_at=loaded_at,
            signature=signature,
            full=FullModel(model=model),
        )

    @property
    def model(self) -> PermeabilityModel:
        """The full model (frames, batches, evaluation): read now if it was not yet
        (blocking: call it off the event loop)."""
        return self.full.get()

    @property
    def model_name(self) -> str:
        return str(self.scorer.model_name)
