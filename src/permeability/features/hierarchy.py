"""The structure hierarchy: which categories and which own slopes the fitting rows support.

Structures form a two-level hierarchy, because a lab may hold only a few hundred rows spread
over a dozen films whose WVTR differs by 1000×:

* Intercepts are cheap: every structure with at least ``min_structure_samples`` (default 3)
  fitting rows gets its own indicator column, i.e. its own level. Only structures below that,
  and the literal name ``OTHER``, pool: with the other rare structures of their family (the
  structures sharing their best barrier layer) into ``FAMILY:<family>`` when those have enough
  rows together, else with their family's most measured structure; into ``OTHER`` only when
  neither exists or the name is of no known family (pooling a metallized film with BOPA would
  miss both by orders of magnitude).
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

Each family's range of measured log WVTR (:func:`family_log_ranges`) bounds how far a guide
value of that family may extrapolate (:mod:`permeability.modelling.bounds`). Pure functions of
names, counts and fitting-row values; :class:`~permeability.features.engineering.FeatureBuilder`
keeps what they decide.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.structures import UNKNOWN_FAMILY

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


def check_hierarchy(
    min_structure_samples: int, min_interaction_samples: int, min_interaction_spread: float
) -> None:
    """Refuse hierarchy options that cannot work, naming the option."""
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


def structure_categories(
    counts: Counter[str], families: Mapping[str, str], min_structure_samples: int
) -> tuple[tuple[str, ...], dict[str, int], dict[str, int]]:
    """The categories of the fitting rows' structures, given their row ``counts`` and families.

    Returns the categories (the kept structures sorted, then the ``FAMILY:…`` pools, then
    ``OTHER``), the category index of every structure seen, and per family the category that
    serves a structure of that family never seen when fitting: the family's pooled category,
    else its most measured structure.
    """
    kept = sorted(
        name for name, count in counts.items() if count >= min_structure_samples and name != OTHER
    )
    pooled: Counter[str] = Counter()
    for name, count in counts.items():
        if name not in kept and families[name] != UNKNOWN_FAMILY:
            pooled[families[name]] += count
    family_categories = sorted(f for f, rows in pooled.items() if rows >= min_structure_samples)
    categories = (*kept, *(FAMILY_PREFIX + f for f in family_categories), OTHER)
    category_index = {name: i for i, name in enumerate(categories[:-1])}
    family_index = {f: len(kept) + i for i, f in enumerate(family_categories)}
    for name in sorted(kept, key=lambda n: (-counts[n], n)):  # most measured first
        if families[name] != UNKNOWN_FAMILY:
            family_index.setdefault(families[name], category_index[name])
    other = len(categories) - 1
    for name in counts:
        family_category = family_index.get(families[name], other)
        category_index.setdefault(name, family_category if name not in kept else other)
    for category in categories[len(kept) : -1]:
        category_index.pop(category, None)  # FAMILY:x is a category, not a name
    return categories, category_index, family_index


def interaction_slots(
    physics: FloatArray,
    category: NDArray[np.intp],
    n_categories: int,
    *,
    start: int,
    min_samples: int,
    min_spread: float,
) -> tuple[tuple[tuple[int, int], ...], NDArray[np.intp]]:
    """The category × variable slopes the fitting rows identify.

    ``physics`` holds the interacted variables of the fitting rows (one row per variable) and
    ``category`` each fitting row's category. A category needs ``min_samples`` rows and, per
    variable, a slope it earns (:func:`earns_slope`). Returns the interaction columns as
    (category, variable) in matrix order, numbered from ``start``, and per category the matrix
    column of each variable (-1: the shared slope only).
    """
    width = physics.shape[0]
    slots = np.full((n_categories, width), -1, dtype=np.intp)
    columns: list[tuple[int, int]] = []
    overall = physics.std(axis=1)
    sizes = np.bincount(category, minlength=n_categories)
    for index in range(n_categories):
        if sizes[index] < min_samples:
            continue
        members = physics[:, category == index]
        for offset in range(width):
            if earns_slope(members[offset], float(overall[offset]), min_spread):
                slots[index, offset] = start + len(columns)
                columns.append((index, offset))
    return tuple(columns), slots


def earns_slope(values: FloatArray, overall: float, min_spread: float) -> bool:
    """Whether one category's values of a variable identify a slope of its own: a
    within-category standard deviation above zero and at least ``min_spread`` × the
    ``overall`` one, not concentrated in one row (:data:`MAX_SLOPE_ROW_SHARE`)."""
    deviations = values - values.mean()
    squares = deviations * deviations
    total = float(squares.sum())
    within = math.sqrt(total / len(values))
    if within <= 0.0 or within < min_spread * overall:
        return False
    return float(squares.max()) <= MAX_SLOPE_ROW_SHARE * total


def family_log_ranges(
    families: Sequence[str | None], category: NDArray[np.intp], logs: FloatArray
) -> tuple[tuple[float, float] | None, ...]:
    """Per category, the (min, max) log WVTR its family showed in the fitting rows.

    ``families`` holds each category's family (None: ``OTHER``, which mixes families),
    ``category`` and ``logs`` each fitting row's category and log WVTR (non-finite ones are
    skipped). None for a category without a family or without a finite value in its family.
    """
    row_family = np.array([families[c] for c in category], dtype=object)
    ranges: dict[str, tuple[float, float]] = {}
    for family in {f for f in families if f is not None}:
        values = logs[(row_family == family) & np.isfinite(logs)]
        if values.size:
            ranges[family] = (float(values.min()), float(values.max()))
    return tuple(None if f is None else ranges.get(f) for f in families)
