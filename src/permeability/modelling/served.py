"""A version ready to serve: the trained model plus what requests need to know about it.

Plain data, so that scoring (pure) can take one without knowing how it was loaded; the model
cache (:mod:`permeability.io.model_cache`) builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from permeability.modelling.predictor import PermeabilityModel


@dataclass(frozen=True)
class LoadedModel:
    """A version ready to serve: the model plus what requests need to know about it."""

    version: str
    model: PermeabilityModel
    metadata: Mapping[str, Any]
    known_structures: frozenset[str]
    loaded_at: float
    signature: tuple[int, int]

    @property
    def model_name(self) -> str:
        return str(self.model.model_name)
