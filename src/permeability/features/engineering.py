"""Physics-informed features: a lab record (or a frame of them) -> one numpy row per sample.

The law the features linearise (docs/data.md, features/physics.py):

    log WVTR = a_s − n_s·log L − (Ep_s/R)·(1/T) + log(RH·p_sat(T)) + h_s·f(RH)

so a linear model on these columns can represent it exactly, with per-structure slopes coming
from structure × (log L, 1/T, RH) interaction columns. log RH has no per-structure slope: its
exponent is the driving force's, 1 for every film (Δp = RH·p_sat), and within one structure's
few rows log RH and RH are nearly collinear, so a slope on each fitted opposite giant
coefficients that exploded at a test RH outside the fitted range. Every continuous feature is
centred on the tropical reference condition (38 °C, 90 % RH, 25 µm): the structure one-hot
coefficients of a linear model are then the log WVTR of each film at the data-sheet condition,
and the columns are well conditioned without a fitted scaler.

The builder is fitted once and then only does numpy arithmetic: no pandas per row and no
scikit-learn ColumnTransformer (≈ 3 ms per single-row call, against a few µs here). Both entry
points, :meth:`FeatureBuilder.transform_frame` and :meth:`FeatureBuilder.transform_record`,
evaluate the same scalar formulas in the same order, so a record gives the same numbers as its
row in a frame (what the model was trained on is exactly what inference computes).

Structures form a two-level hierarchy, because a lab may hold only a few hundred rows spread
over a dozen films whose WVTR differs by 1000×:

* Intercepts are cheap: every structure with at least ``min_structure_samples`` (default 3)
  fitting rows gets its own indicator column, i.e. its own level. Only structures below that,
  and the literal name ``OTHER``, pool into the ``OTHER`` category (pooling a metallized film
  with BOPA would miss both by orders of magnitude).
* Slopes need data: a structure × variable interaction column exists only when the category has
  at least ``min_interaction_samples`` (default 10) fitting rows AND the variable varies within
  it: within-category standard deviation ≥ ``min_interaction_spread`` (default 0.25) × the
  standard deviation over all fitting rows, and no single row carrying more than
  :data:`MAX_SLOPE_ROW_SHARE` (half) of the category's sum of squared deviations. Otherwise
  that category uses the shared slope of the base column. A slope fitted on a structure tested
  only at 38 °C / 90 % RH, or only at 12 µm, or set by its one sample at 43 °C, is
  unidentified, and a test row at other conditions extrapolated it into an absurd value (exp
  of a huge log: 1e33 g/m²·day on 400 generated rows before this rule).

  The defaults were measured on the project's generator (clean data, 40 seeds per size):
  LinearRegression's median held-out MAE / noise floor is 2.2, 1.8, 1.25, 1.08 and 1.04 at
  200, 300, 400, 600 and 1000 rows (before the hierarchy: 9.9, 9.0, 8.6 with one 4e33, 5.3 and
  1.05). Own slopes from 8–9 rows let a laminate's slope be set by one or two off-condition
  samples (|log error| up to 8 at corner conditions); from 50 rows most films kept the shared
  slopes at a few hundred rows (median MAE ≈ 2× the noise floor).

Canonical names come from :mod:`permeability.record.structures` (raw spellings are normalised
with the alias map). A structure never seen when fitting is routed to ``OTHER`` by
``strict=False`` (held-out metrics, evaluation) and raises :class:`UnknownStructureError` with
``strict=True`` (inference).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.features.pca import CaliperPCA
from permeability.features.physics import KELVIN_OFFSET, MAGNUS_B, MAGNUS_C_C
from permeability.features.structure_levels import LEVEL_FEATURES, StructureLevels
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
)
from permeability.record.structures import (
    UNKNOWN_FAMILY,
    build_alias_map,
    normalise_structure,
    parse_structure,
    structure_family,
)

FloatArray = NDArray[np.float64]

OTHER: Final = "OTHER"
#: Category of the rare structures of one family (``FAMILY:foil``): pooled by their best barrier.
FAMILY_PREFIX: Final = "FAMILY:"
#: Fitting rows a structure needs for its own indicator (intercept); fewer pool into OTHER.
DEFAULT_MIN_STRUCTURE_SAMPLES: Final = 3
#: Fitting rows a category needs before any structure × variable slope of its own.
DEFAULT_MIN_INTERACTION_SAMPLES: Final = 10
#: Within-category std of a variable, as a share of its overall std, needed for its own slope.
DEFAULT_MIN_INTERACTION_SPREAD: Final = 0.25
#: Largest share of a category's spread (sum of squared deviations) of a variable that one row
#: may carry for the category to get its own slope: a slope no single sample decides.
MAX_SLOPE_ROW_SHARE: Final = 0.5

REFERENCE_TEMPERATURE_C: Final = 38.0
REFERENCE_HUMIDITY_PCT: Final = 90.0
REFERENCE_THICKNESS_UM: Final = 25.0
_INVERSE_T_REF: Final = 1000.0 / (REFERENCE_TEMPERATURE_C + KELVIN_OFFSET)
_MAGNUS_EXPONENT_REF: Final = (
    MAGNUS_B * REFERENCE_TEMPERATURE_C / (MAGNUS_C_C + REFERENCE_TEMPERATURE_C)
)

#: Continuous physics columns, in matrix order. INTERACTED_FEATURES get structure interactions.
PHYSICS_FEATURES: Final = (
    "log_thickness",  # log(L / 25 µm): thickness exponent n_s
    "inverse_temperature",  # 1000/T − 1000/T_ref (1/kK): activation energy Ep_s / R
    "log_humidity",  # log(RH / 90 %): driving force RH (exponent 1 for every film: shared)
    "humidity",  # RH/100 − 0.9: swelling of hygroscopic films, h_s · f(RH)
    "log_saturation_pressure",  # log(p_sat(T) / p_sat(38 °C)): driving force p_sat(T)
)
INTERACTED_FEATURES: Final = ("log_thickness", "inverse_temperature", "humidity")
_INTERACTED_POSITIONS: Final = tuple(PHYSICS_FEATURES.index(f) for f in INTERACTED_FEATURES)
#: Numeric inputs a record must carry, with the physical range each must respect.
NUMERIC_INPUTS: Final = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM)
_LOWER_EXCLUSIVE: Final = frozenset({PORC_HUMEDAD, CALIBRE_PROM, *CALIBRES})


class UnknownStructureError(InvalidInputError):
    """A structure the model never saw in training, asked for with ``strict=True``."""

    def __init__(self, structure: str, known: Sequence[str]) -> None:
        self.structure = structure
        self.known = sorted(known)
        super().__init__(
            f"{ESTRUCTURA} {structure!r} was not seen in training; "
            f"known structures: {', '.join(self.known)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.structure, self.known))


def _range_of(column: str) -> tuple[float, float]:
    if column == GRADOS_C:
        return TEMPERATURE_RANGE_C
    if column == PORC_HUMEDAD:
        return HUMIDITY_RANGE_PCT
    return CALIPER_RANGE_UM


def _describe_range(column: str) -> str:
    low, high = _range_of(column)
    opening = "(" if column in _LOWER_EXCLUSIVE else "["
    return f"{opening}{low:g}, {high:g}]"


def _check_scalar(column: str, value: float) -> None:
    low, high = _range_of(column)
    below = value <= low if column in _LOWER_EXCLUSIVE else value < low
    if not math.isfinite(value) or below or value > high:
        raise InvalidInputError(
            f"{column} must be a finite number in {_describe_range(column)}, got {value!r}"
        )


def _check_column(column: str, values: FloatArray) -> None:
    low, high = _range_of(column)
    below = values <= low if column in _LOWER_EXCLUSIVE else values < low
    bad = ~np.isfinite(values) | below | (values > high)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"column {column} has {int(bad.sum())} value(s) missing or outside "
            f"{_describe_range(column)} (first at position {first}: {values[first]!r})"
        )


def _numeric_column(frame: pd.DataFrame, column: str) -> FloatArray:
    try:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"column {column} must hold numbers: {exc}") from exc
    _check_column(column, values)
    return values


def _plain_bounds(column: str) -> tuple[float, float]:
    """(low, high) such that a float with low < x <= high passes :func:`_check_scalar`
    (an inclusive lower bound is nudged one ulp down)."""
    low, high = _range_of(column)
    return (low if column in _LOWER_EXCLUSIVE else math.nextafter(low, -math.inf)), high


#: Per column, the bounds of the common case checked in one comparison (see _record_number).
_PLAIN_BOUNDS: Final = {column: _plain_bounds(column) for column in NUMERIC_INPUTS}


def _record_number(record: Mapping[str, Any], column: str) -> float:
    """The column's value as a float, or InvalidInputError naming the field and the problem.

    The common case (a float already in range, as a validated request gives) is decided by one
    type check and one chained comparison; everything else takes the full path below.
    """
    raw = record.get(column)
    if type(raw) is float:
        low, high = _PLAIN_BOUNDS[column]
        if low < raw <= high:
            return raw
    if column not in record:
        raise InvalidInputError(f"record is missing {column}")
    raw = record[column]
    if isinstance(raw, bool):
        raise InvalidInputError(f"{column} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{column} must be a number, got {raw!r}") from exc
    _check_scalar(column, value)
    return value


class FeatureBuilder:
    """Fitted map from lab inputs to the model matrix; pure numpy after :meth:`fit`.

    Layout of a row: the physics columns, the caliper principal components, one indicator per
    structure category (the kept structures, sorted, then ``OTHER``), and, when
    ``interactions`` is on (linear models), the interaction columns the fitting rows can
    support (category order, then :data:`INTERACTED_FEATURES` order; see the module docstring
    for the rule). An interaction column is a deviation from the shared slope of its base
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
        for name, value in (
            ("min_structure_samples", min_structure_samples),
            ("min_interaction_samples", min_interaction_samples),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an integer of at least 1, got {value!r}")
        if not (math.isfinite(min_interaction_spread) and min_interaction_spread >= 0.0):
            raise InvalidInputError(
                "min_interaction_spread must be a finite number of at least 0, "
                f"got {min_interaction_spread!r}"
            )
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
        if len(frame) == 0:
            raise InvalidInputError("cannot fit features on an empty frame")
        names = self.canonical_structures(frame)
        counts = Counter(str(name) for name in names)
        self.structure_counts = dict(sorted(counts.items()))
        kept = sorted(
            name
            for name, count in counts.items()
            if count >= self.min_structure_samples and name != OTHER
        )
        families = {name: self.family_of(name) for name in counts}
        pooled: Counter[str] = Counter()
        for name, count in counts.items():
            if name not in kept and families[name] != UNKNOWN_FAMILY:
                pooled[families[name]] += count
        family_categories = sorted(
            f for f, rows in pooled.items() if rows >= self.min_structure_samples
        )
        self.categories = (*kept, *(FAMILY_PREFIX + f for f in family_categories), OTHER)
        self._category_index = {name: i for i, name in enumerate(self.categories[:-1])}
        self._family_index = {f: len(kept) + i for i, f in enumerate(family_categories)}
        for name in sorted(kept, key=lambda n: (-counts[n], n)):  # most measured first
            if families[name] != UNKNOWN_FAMILY:
                self._family_index.setdefault(families[name], self._category_index[name])
        other = len(self.categories) - 1
        for name in counts:
            family_category = self._family_index.get(families[name], other)
            self._category_index.setdefault(name, family_category if name not in kept else other)
        for category in self.categories[len(kept) : -1]:
            self._category_index.pop(category, None)  # FAMILY:x is a category, not a name
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
        if PERMEABILIDAD not in frame.columns:
            return tuple(None for _ in self.categories)
        target = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(target)
        families = [self.category_family(i) for i in range(len(self.categories))]
        row_family = np.array([families[c] for c in category], dtype=object)
        ranges: dict[str, tuple[float, float]] = {}
        for family in {f for f in families if f is not None}:
            values = logs[(row_family == family) & np.isfinite(logs)]
            if values.size:
                ranges[family] = (float(values.min()), float(values.max()))
        return tuple(None if f is None else ranges.get(f) for f in families)

    def _choose_interactions(self, frame: pd.DataFrame, category: NDArray[np.intp]) -> None:
        """Keep a category × variable slope only where the fitting rows identify it.

        Needs ``min_interaction_samples`` rows in the category and a within-category standard
        deviation of the variable of at least ``min_interaction_spread`` × its overall one (and
        above zero), not concentrated in one row: a slope of a variable that barely moves is
        noise, and extrapolating it to a test row at other conditions exploded predictions to
        1e33 on a few hundred rows.
        """
        width = len(INTERACTED_FEATURES)
        slots = np.full((len(self.categories), width), -1, dtype=np.intp)
        columns: list[tuple[int, int]] = []
        if self.interactions:
            inputs = {column: _numeric_column(frame, column) for column in NUMERIC_INPUTS}
            base = self._base_columns(inputs)
            physics = np.vstack([base[i] for i in _INTERACTED_POSITIONS])
            overall = physics.std(axis=1)
            sizes = np.bincount(category, minlength=len(self.categories))
            start = self.n_base + len(self.categories)
            for index in range(len(self.categories)):
                if sizes[index] < self.min_interaction_samples:
                    continue
                members = physics[:, category == index]
                for offset in range(width):
                    if self._earns_slope(members[offset], float(overall[offset])):
                        slots[index, offset] = start + len(columns)
                        columns.append((index, offset))
        self._interaction_columns = tuple(columns)
        self._slot_table = slots
        self._interaction_slots = tuple(tuple(int(c) for c in row) for row in slots)

    def _earns_slope(self, values: FloatArray, overall: float) -> bool:
        """Whether one category's values of a variable identify a slope of its own."""
        deviations = values - values.mean()
        squares = deviations * deviations
        total = float(squares.sum())
        within = math.sqrt(total / len(values))
        if within <= 0.0 or within < self.min_interaction_spread * overall:
            return False
        return float(squares.max()) <= MAX_SLOPE_ROW_SHARE * total

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
        self._require_fitted()
        missing = [c for c in (*NUMERIC_INPUTS, ESTRUCTURA) if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"frame is missing column(s) {', '.join(missing)}")
        names = self.canonical_structures(frame)
        name_codes, distinct = pd.factorize(names)
        category = self._categories_of(name_codes, distinct, strict)
        inputs = {column: _numeric_column(frame, column) for column in NUMERIC_INPUTS}
        # A positive input so tiny that its ratio to the reference underflows logs to -inf
        # (as on the record path); that is expected, not worth a warning per batch.
        with np.errstate(divide="ignore"):
            base = self._base_columns(inputs)
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
                flat[row_start[has] + column[has]] = base[_INTERACTED_POSITIONS[offset]][has]
        if self.levels:
            table = np.array([self._level_row(str(name)) for name in distinct], dtype=np.float64)
            matrix[:, self._level_start :] = table.reshape(len(distinct), -1)[name_codes]
        return matrix

    def categories_of_frame(self, frame: pd.DataFrame, *, strict: bool = False) -> NDArray[np.intp]:
        """The category index of every row (unseen structures: their family's, or ``OTHER``)."""
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
        inputs = {column: _record_number(record, column) for column in NUMERIC_INPUTS}
        base = self._base_columns(inputs)
        row = np.zeros(self.n_features, dtype=np.float64)
        row[: self.n_base] = base
        row[self.n_base + category] = 1.0
        if self._interaction_columns:
            for offset, column in enumerate(self._interaction_slots[category]):
                if column >= 0:
                    row[column] = base[_INTERACTED_POSITIONS[offset]]
        if self.levels:
            row[self._level_start :] = self._level_row(name)
        return row, category

    def _base_columns(self, inputs: Mapping[str, Any]) -> list[Any]:
        """Physics columns then caliper components, for scalars or arrays alike.

        Written once with operations that numpy and Python evaluate identically (elementwise
        IEEE arithmetic, log), so the record path and the frame path cannot drift apart.
        """
        log = _log_scalar if isinstance(inputs[GRADOS_C], float) else np.log
        temperature = inputs[GRADOS_C]
        humidity = inputs[PORC_HUMEDAD]
        columns = [
            log(inputs[CALIBRE_PROM] / REFERENCE_THICKNESS_UM),
            1000.0 / (temperature + KELVIN_OFFSET) - _INVERSE_T_REF,
            log(humidity / REFERENCE_HUMIDITY_PCT),
            humidity / 100.0 - REFERENCE_HUMIDITY_PCT / 100.0,
            MAGNUS_B * temperature / (MAGNUS_C_C + temperature) - _MAGNUS_EXPONENT_REF,
        ]
        for component in self._pca_components:
            total = (inputs[CALIBRES[0]] - self._pca_mean[0]) * component[0]
            for i in range(1, len(CALIBRES)):
                total = total + (inputs[CALIBRES[i]] - self._pca_mean[i]) * component[i]
            columns.append(total)
        return columns


def _log_scalar(value: float) -> float:
    """``math.log`` that gives what ``np.log`` gives at 0 (-inf): a positive input so tiny that
    its ratio to the reference underflows must not raise where the frame path clips."""
    return math.log(value) if value > 0.0 else -math.inf
