"""Physics-informed features: a lab record (or a frame of them) -> one numpy row per sample.

:class:`FeatureBuilder` lays out the model matrix: the physics columns of the permeation law
(:mod:`permeability.features.physics_columns`), the caliper principal components, the structure
categories and the slopes of their own that the fitting rows support (the structure hierarchy,
:mod:`permeability.features.hierarchy`), and for the models that split the structure level
columns (:mod:`permeability.features.structure_levels`).

The builder is fitted once and then only does numpy arithmetic: no pandas per row and no
scikit-learn ColumnTransformer (≈ 3 ms per single-row call, against a few µs here). Both entry
points, :meth:`FeatureBuilder.transform_frame` and :meth:`FeatureBuilder.transform_record`,
evaluate the same scalar formulas in the same order, so a record gives the same numbers as its
row in a frame (what the model was trained on is exactly what inference computes); both refuse
the same inputs (:mod:`permeability.features.inputs`).

Canonical names come from :mod:`permeability.record.structures` (raw spellings are normalised
with the alias map). A structure never seen when fitting is routed to its family's category, or
``OTHER``, by ``strict=False`` (held-out metrics, evaluation) and raises
:class:`~permeability.features.inputs.UnknownStructureError` with ``strict=True`` (inference).

pandas is imported inside the methods that take a frame (fitting, :meth:`FeatureBuilder.
transform_frame`), never at module level: the record path is numpy only, so a replica that
unpickles the served form of a model (:mod:`permeability.modelling.record_scorer`) and serves
single records never loads pandas (docs/deploy.md, "Replicas that start fast").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.features.hierarchy import (
    DEFAULT_MIN_INTERACTION_SAMPLES,
    DEFAULT_MIN_INTERACTION_SPREAD,
    DEFAULT_MIN_STRUCTURE_SAMPLES,
    FAMILY_PREFIX,
    OTHER,
    check_hierarchy,
    family_log_ranges,
    interaction_slots,
    structure_categories,
)
from permeability.features.inputs import (
    NUMERIC_INPUTS,
    UnknownStructureError,
    numeric_column,
    record_number,
)
from permeability.features.pca import CaliperPCA
from permeability.features.physics_columns import (
    INTERACTED_FEATURES,
    INTERACTED_POSITIONS,
    PHYSICS_FEATURES,
    base_columns,
)
from permeability.features.structure_levels import LEVEL_FEATURES, StructureLevels
from permeability.record.schema import ESTRUCTURA, PERMEABILIDAD
from permeability.record.structures import (
    UNKNOWN_FAMILY,
    build_alias_map,
    normalise_structure,
    parse_structure,
    structure_family,
)

if TYPE_CHECKING:
    import pandas as pd

FloatArray = NDArray[np.float64]


class FeatureBuilder:
    """Fitted map from lab inputs to the model matrix; pure numpy after :meth:`fit`.

    Layout of a row: the physics columns, the caliper principal components, one indicator per
    structure category (the kept structures, sorted, the ``FAMILY:…`` pools, then ``OTHER``),
    and, when ``interactions`` is on (linear models), the interaction columns the fitting rows
    can support (category order, then :data:`~permeability.features.physics_columns.
    INTERACTED_FEATURES` order; :mod:`permeability.features.hierarchy` gives the rule). An
    interaction column is a deviation from the shared slope of its base
    column, so a category without one simply uses the shared slope. Tree models find
    interactions themselves and get no interaction columns. With ``levels`` on (the models
    that split: trees, neighbours), the :data:`~permeability.features.structure_levels.
    LEVEL_FEATURES` columns come last: the structure's and its family's level and its layer
    counts (:mod:`permeability.features.structure_levels`).
    """

    #: Class defaults for builders pickled before level columns existed.
    levels: bool = False
    _structure_levels: StructureLevels | None = None

    def __init__(
        self,
        pca: CaliperPCA,
        *,
        interactions: bool,
        levels: bool = False,
        min_structure_samples: int = DEFAULT_MIN_STRUCTURE_SAMPLES,
        min_interaction_samples: int = DEFAULT_MIN_INTERACTION_SAMPLES,
        min_interaction_spread: float = DEFAULT_MIN_INTERACTION_SPREAD,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        check_hierarchy(min_structure_samples, min_interaction_samples, min_interaction_spread)
        self.pca = pca
        self.interactions = interactions
        self.levels = levels
        self.min_structure_samples = min_structure_samples
        self.min_interaction_samples = min_interaction_samples
        self.min_interaction_spread = float(min_interaction_spread)
        self.aliases: dict[str, str] = build_alias_map(aliases)
        self._pca_mean = tuple(float(v) for v in pca.mean)
        self._pca_components = tuple(tuple(float(v) for v in row) for row in pca.components)
        self.structure_counts: dict[str, int] = {}
        self.categories: tuple[str, ...] = ()
        self._category_index: dict[str, int] = {}
        #: Family -> the category that serves a structure of that family never seen when
        #: fitting: the family's pooled category, else its most measured structure.
        self._family_index: dict[str, int] = {}
        #: Per category, the (min, max) log WVTR of its family in the fitting rows (or None).
        self.category_log_range: tuple[tuple[float, float] | None, ...] = ()
        # Interaction columns as (category, interacted feature) in matrix order, and per
        # category the matrix column of each interacted feature (-1: shared slope only).
        self._interaction_columns: tuple[tuple[int, int], ...] = ()
        self._interaction_slots: tuple[tuple[int, ...], ...] = ()
        self._slot_table: NDArray[np.intp] = np.empty((0, len(INTERACTED_FEATURES)), np.intp)
        self._structure_levels = None
        #: Canonical name -> its level columns, for every name seen when fitting.
        self._level_rows: dict[str, tuple[float, ...]] = {}
        self._fitted = False

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame) -> FeatureBuilder:
        """Learn the structure categories, and which of them earn their own slopes, from the
        rows the estimator will be fitted on."""
        import pandas as pd

        if len(frame) == 0:
            raise InvalidInputError("cannot fit features on an empty frame")
        names = self.canonical_structures(frame)
        counts = Counter(str(name) for name in names)
        self.structure_counts = dict(sorted(counts.items()))
        families = {name: self.family_of(name) for name in counts}
        self.categories, self._category_index, self._family_index = structure_categories(
            counts, families, self.min_structure_samples
        )
        codes, uniques = pd.factorize(names)
        lookup = np.array([self._category_index[str(u)] for u in uniques], dtype=np.intp)
        self._choose_interactions(frame, lookup[codes])
        self.category_log_range = self._family_log_ranges(frame, lookup[codes])
        if self.levels:
            self._fit_levels(frame, names)
        self._fitted = True
        return self

    def _fit_levels(self, frame: pd.DataFrame, names: NDArray[np.object_]) -> None:
        """The structure and family levels of the fitting rows (their target is required)."""
        import pandas as pd

        if PERMEABILIDAD not in frame.columns:
            raise InvalidInputError(
                f"level features are fitted on the target: frame is missing column {PERMEABILIDAD}"
            )
        target = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(target)
        families = [self.family_of(str(name)) for name in names]
        try:
            self._structure_levels = StructureLevels.fit(
                [str(name) for name in names], families, logs
            )
        except ValueError as exc:
            raise InvalidInputError(f"level features: {exc}") from exc
        self._level_rows = {name: self._computed_level_row(name) for name in self.structure_counts}

    def _level_row(self, name: str) -> tuple[float, ...]:
        """The level columns of one canonical name (seen when fitting or not)."""
        row = self._level_rows.get(name)
        return row if row is not None else self._computed_level_row(name)

    def _computed_level_row(self, name: str) -> tuple[float, ...]:
        if self._structure_levels is None:
            raise RuntimeError("level columns asked of a builder fitted without levels")
        layers = parse_structure(name, self.aliases).layers
        return self._structure_levels.row(name, structure_family(layers), layers)

    def category_family(self, index: int) -> str | None:
        """The family a category belongs to (None for ``OTHER``, which mixes families)."""
        name = self.categories[index]
        if name == OTHER:
            return None
        if name.startswith(FAMILY_PREFIX):
            return name.removeprefix(FAMILY_PREFIX)
        family = self.family_of(name)
        return None if family == UNKNOWN_FAMILY else family

    def _family_log_ranges(
        self, frame: pd.DataFrame, category: NDArray[np.intp]
    ) -> tuple[tuple[float, float] | None, ...]:
        """Per category, the (min, max) log WVTR its family showed in the fitting rows (None
        without a family or a target): what bounds the model's extrapolation."""
        import pandas as pd

        if PERMEABILIDAD not in frame.columns:
            return tuple(None for _ in self.categories)
        target = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(target)
        families = [self.category_family(i) for i in range(len(self.categories))]
        return family_log_ranges(families, category, logs)

    def _choose_interactions(self, frame: pd.DataFrame, category: NDArray[np.intp]) -> None:
        """Keep a category × variable slope only where the fitting rows identify it
        (:func:`~permeability.features.hierarchy.interaction_slots`): a slope of a variable
        that barely moves is noise, and extrapolating it to a test row at other conditions
        exploded predictions to 1e33 on a few hundred rows."""
        columns: tuple[tuple[int, int], ...] = ()
        slots = np.full((len(self.categories), len(INTERACTED_FEATURES)), -1, dtype=np.intp)
        if self.interactions:
            inputs = {column: numeric_column(frame, column) for column in NUMERIC_INPUTS}
            base = base_columns(inputs, self._pca_mean, self._pca_components)
            columns, slots = interaction_slots(
                np.vstack([base[i] for i in INTERACTED_POSITIONS]),
                category,
                len(self.categories),
                start=self.n_base + len(self.categories),
                min_samples=self.min_interaction_samples,
                min_spread=self.min_interaction_spread,
            )
        self._interaction_columns = columns
        self._slot_table = slots
        self._interaction_slots = tuple(tuple(int(c) for c in row) for row in slots)

    # -- introspection -----------------------------------------------------------------------

    @property
    def known_structures(self) -> list[str]:
        """Every structure seen when fitting (pooled ones included), sorted."""
        return sorted(self.structure_counts)

    @property
    def pooled_structures(self) -> list[str]:
        """Structures seen when fitting without a category of their own (too few rows): they
        share their family's (``FAMILY:…``, or its most measured structure) or ``OTHER``."""
        return sorted(
            n for n in self.structure_counts if self.categories[self._category_index[n]] != n
        )

    def category_name(self, name: str) -> str:
        """The category a seen structure is modelled (and calibrated) with."""
        return self.categories[self._category_index[name]]

    @property
    def own_slopes(self) -> dict[str, list[str]]:
        """Per category, the interacted variables it has its own slope for (others: shared)."""
        slopes: dict[str, list[str]] = {name: [] for name in self.categories}
        for index, offset in self._interaction_columns:
            slopes[self.categories[index]].append(INTERACTED_FEATURES[offset])
        return slopes

    @property
    def n_base(self) -> int:
        return len(PHYSICS_FEATURES) + self.pca.n_components

    @property
    def n_levels(self) -> int:
        return len(LEVEL_FEATURES) if self.levels else 0

    @property
    def _level_start(self) -> int:
        return self.n_base + len(self.categories) + len(self._interaction_columns)

    @property
    def n_features(self) -> int:
        return self._level_start + self.n_levels

    @property
    def feature_names(self) -> list[str]:
        names = [*PHYSICS_FEATURES, *self.pca.output_columns]
        names += [f"structure={c}" for c in self.categories]
        names += [
            f"structure={self.categories[index]}:{INTERACTED_FEATURES[offset]}"
            for index, offset in self._interaction_columns
        ]
        if self.levels:
            names += list(LEVEL_FEATURES)
        return names

    # -- structures --------------------------------------------------------------------------

    def canonical_structure(self, raw: Any) -> str:
        """The canonical name of one raw structure value (the alias map of this builder)."""
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidInputError(f"{ESTRUCTURA} must be a non-empty text, got {raw!r}")
        if raw in self._category_index:
            return raw
        return normalise_structure(raw, self.aliases)

    def canonical_structures(self, frame: pd.DataFrame) -> NDArray[np.object_]:
        """Canonical names for a frame's structure column (normalised once per distinct value)."""
        import pandas as pd

        if ESTRUCTURA not in frame.columns:
            raise InvalidInputError(f"frame is missing column {ESTRUCTURA}")
        codes, uniques = pd.factorize(frame[ESTRUCTURA], use_na_sentinel=True)
        if (codes < 0).any():
            first = int(np.flatnonzero(codes < 0)[0])
            raise InvalidInputError(
                f"column {ESTRUCTURA} has {int((codes < 0).sum())} missing value(s) "
                f"(first at position {first})"
            )
        names = np.array([self.canonical_structure(v) for v in uniques], dtype=object)
        return np.asarray(names[codes], dtype=object)

    def family_of(self, name: str) -> str:
        """The family of a canonical name (:func:`~permeability.record.structures.structure_family`)."""
        return structure_family(parse_structure(name, self.aliases).layers)

    def stand_in(self, name: str) -> str | None:
        """For a structure never seen when fitting: the category its family would be predicted
        with (``FAMILY:foil`` or the family's most measured structure), or None (no family:
        it is not a list of known layers, or no structure of its family was seen)."""
        index = getattr(self, "_family_index", {}).get(self.family_of(name))
        return None if index is None else self.categories[index]

    def _category_of(self, name: str, strict: bool) -> int:
        index = self._category_index.get(name)
        if index is not None:
            return index
        if strict:
            raise UnknownStructureError(name, self.known_structures)
        family_index = getattr(self, "_family_index", {}).get(self.family_of(name))
        if family_index is not None:
            return int(family_index)
        return len(self.categories) - 1

    # -- transforms --------------------------------------------------------------------------

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("FeatureBuilder.fit must be called before transforming")

    def transform_frame(self, frame: pd.DataFrame, *, strict: bool = False) -> FloatArray:
        """The (n, p) model matrix of a frame; unseen structures go to ``OTHER`` unless strict."""
        import pandas as pd

        self._require_fitted()
        missing = [c for c in (*NUMERIC_INPUTS, ESTRUCTURA) if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"frame is missing column(s) {', '.join(missing)}")
        names = self.canonical_structures(frame)
        name_codes, distinct = pd.factorize(names)
        category = self._categories_of(name_codes, distinct, strict)
        inputs = {column: numeric_column(frame, column) for column in NUMERIC_INPUTS}
        # A positive input so tiny that its ratio to the reference underflows logs to -inf
        # (as on the record path); that is expected, not worth a warning per batch.
        with np.errstate(divide="ignore"):
            base = base_columns(inputs, self._pca_mean, self._pca_components)
        n, width_total = len(frame), self.n_features
        matrix = np.zeros((n, width_total), dtype=np.float64)
        for j, column in enumerate(base):
            matrix[:, j] = column
        # Scattered cells through flat positions: cheaper than 2-D fancy indexing.
        flat = matrix.reshape(-1)
        row_start = np.arange(n, dtype=np.intp) * width_total
        flat[row_start + self.n_base + category] = 1.0
        if self._interaction_columns:
            slots = self._slot_table[category]
            for offset in range(slots.shape[1]):
                column = slots[:, offset]
                has = column >= 0
                flat[row_start[has] + column[has]] = base[INTERACTED_POSITIONS[offset]][has]
        if self.levels:
            table = np.array([self._level_row(str(name)) for name in distinct], dtype=np.float64)
            matrix[:, self._level_start :] = table.reshape(len(distinct), -1)[name_codes]
        return matrix

    def categories_of_frame(self, frame: pd.DataFrame, *, strict: bool = False) -> NDArray[np.intp]:
        """The category index of every row (unseen structures: their family's, or ``OTHER``)."""
        import pandas as pd

        codes, distinct = pd.factorize(self.canonical_structures(frame))
        return self._categories_of(codes, distinct, strict)

    def _categories_of(
        self, codes: NDArray[np.intp], distinct: Any, strict: bool
    ) -> NDArray[np.intp]:
        # One category lookup per distinct name, not per row (a million rows: ~0.3 s saved).
        lookup = np.array([self._category_of(str(u), strict) for u in distinct], dtype=np.intp)
        return np.asarray(lookup[codes], dtype=np.intp)

    def transform_record(self, record: Mapping[str, Any], *, strict: bool = True) -> FloatArray:
        """One (p,) row with the same numbers :meth:`transform_frame` gives for that record."""
        return self.transform_record_with_category(record, strict=strict)[0]

    def transform_record_with_category(
        self, record: Mapping[str, Any], *, strict: bool = True
    ) -> tuple[FloatArray, int]:
        """:meth:`transform_record` and the record's category index."""
        self._require_fitted()
        name = self.canonical_structure(record.get(ESTRUCTURA))
        category = self._category_of(name, strict)
        inputs = {column: record_number(record, column) for column in NUMERIC_INPUTS}
        base = base_columns(inputs, self._pca_mean, self._pca_components)
        row = np.zeros(self.n_features, dtype=np.float64)
        row[: self.n_base] = base
        row[self.n_base + category] = 1.0
        if self._interaction_columns:
            for offset, column in enumerate(self._interaction_slots[category]):
                if column >= 0:
                    row[column] = base[INTERACTED_POSITIONS[offset]]
        if self.levels:
            row[self._level_start :] = self._level_row(name)
        return row, category
