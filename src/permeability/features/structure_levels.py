"""Structure level and layer columns for the models that split rather than add (trees, neighbours).

Why: a tree ensemble sees a structure only through its one-hot indicator. A structure with a
handful of rows is rarely the best split, so the trees lump it with films 1000× apart; and a
structure never seen in training has no indicator at all. Three kinds of columns give the trees
what a hierarchical model would:

* ``structure_level``: the structure's mean log WVTR in the fitting rows, shrunk toward its
  family's by :data:`LEVEL_SHRINKAGE` pseudo-rows (a structure with one test leans half on its
  family); a structure never seen gets its family's level, a name of no known family the
  overall one. One split on this column separates barriers from non-barriers at once.
* ``family_level``: the family's mean log WVTR (families: :data:`~permeability.record.
  structures.FAMILIES`, by best barrier), shrunk toward the overall mean the same way.
* ``n_layers`` and one count per layer of :data:`~permeability.record.structures.LAYER_VOCABULARY`:
  structures that share layers share splits (partial pooling by layer), and an unseen laminate
  of known layers lands among the structures it is made of.

Measured on the seed lab's real data (942 product rows, replicate-grouped 5-fold CV, seeds
0–2, scikit-learn estimators with their own defaults, 2026-12-02, same run): ExtraTrees MAE
0.674 → 0.641 with the two level columns (0.642 with the layer counts too); RandomForest
(max_features 0.33) 0.614 with the levels, 0.617 with the layer counts too; k-NN 0.640 → 0.632
with the layer counts. Shrinkage 1 pseudo-row beat 3 and 10 (RandomForest, max_features 0.2:
0.606, 0.608, 0.615). Through ``bench/real_data.py`` (the project's models and ``auto``):
``auto`` 0.664 → 0.599. The levels are computed in-sample (a row's own value is in its
structure's mean): out-of-fold levels scored no better (ExtraTrees 0.645 against 0.641) and
would cost a refit per fold.

Pure: names, families and log targets in, plain floats out; the feature builder owns the matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.structures import LAYER_VOCABULARY, UNKNOWN_FAMILY

FloatArray = NDArray[np.float64]

#: Pseudo-rows of the parent level a structure's (or family's) mean is shrunk toward.
LEVEL_SHRINKAGE: Final = 1.0
#: Column names, in matrix order.
LEVEL_FEATURES: Final = (
    "structure_level",
    "family_level",
    "n_layers",
    *(f"layers_{layer}" for layer in LAYER_VOCABULARY),
)
_LAYER_POSITION: Final = {layer: i for i, layer in enumerate(LAYER_VOCABULARY)}


def _shrunk_means(
    keys: Sequence[str], values: FloatArray, prior: Mapping[str, float], shrinkage: float
) -> dict[str, float]:
    """Per key, (Σ values + shrinkage × prior[key]) / (n + shrinkage)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, value in zip(keys, values, strict=True):
        sums[key] = sums.get(key, 0.0) + float(value)
        counts[key] = counts.get(key, 0) + 1
    return {key: (sums[key] + shrinkage * prior[key]) / (counts[key] + shrinkage) for key in sums}


@dataclass(frozen=True)
class StructureLevels:
    """Fitted levels: overall, per family and per structure (log WVTR)."""

    overall: float
    family: Mapping[str, float]
    structure: Mapping[str, float]

    @classmethod
    def fit(
        cls,
        names: Sequence[str],
        families: Sequence[str],
        log_target: FloatArray,
        shrinkage: float = LEVEL_SHRINKAGE,
    ) -> StructureLevels:
        """Levels from the fitting rows; rows with a non-finite log target are left out."""
        if not (math.isfinite(shrinkage) and shrinkage >= 0.0):
            raise ValueError(f"shrinkage must be a finite number of at least 0, got {shrinkage!r}")
        finite = np.isfinite(log_target)
        if not finite.any():
            raise ValueError("structure levels need at least one finite target")
        values = np.asarray(log_target, dtype=np.float64)[finite]
        kept_names = [str(n) for n, ok in zip(names, finite, strict=True) if ok]
        kept_families = [str(f) for f, ok in zip(families, finite, strict=True) if ok]
        overall = float(values.mean())
        # A name of no known family is its own family of one: it shrinks toward the overall.
        family_keys = [
            f if f != UNKNOWN_FAMILY else f"{UNKNOWN_FAMILY}:{n}"
            for f, n in zip(kept_families, kept_names, strict=True)
        ]
        family = _shrunk_means(family_keys, values, {k: overall for k in family_keys}, shrinkage)
        parent = {n: family[k] for n, k in zip(kept_names, family_keys, strict=True)}
        structure = _shrunk_means(kept_names, values, parent, shrinkage)
        known_families = {k: v for k, v in family.items() if not k.startswith(UNKNOWN_FAMILY)}
        return cls(overall, known_families, structure)

    def family_level(self, family: str) -> float:
        """A family's level; the overall one for an unknown or unseen family."""
        return self.family.get(family, self.overall)

    def row(self, name: str, family: str, layers: Sequence[str]) -> tuple[float, ...]:
        """The :data:`LEVEL_FEATURES` values of one canonical name."""
        family_level = self.family_level(family)
        values = [self.structure.get(name, family_level), family_level, float(len(layers))]
        counts = [0.0] * len(LAYER_VOCABULARY)
        for layer in layers:
            position = _LAYER_POSITION.get(layer)
            if position is not None:
                counts[position] += 1.0
        return (*values, *counts)
