"""The declared rules a lab sample obeys (the pandera schema built from them:
:mod:`.sample_schema`).

One declaration, four users: acquisition (:mod:`permeability.record.cleaning`) rejects a raw
row naming why, batch scoring (:mod:`permeability.scoring.rows`) marks a row's ``error``, the
API's single sample (``services/inference/schemas.py``) takes its ``Field`` bounds and
descriptions from here, and :func:`sample_schema` is what every frame entering the feature
store must pass. A rule says what it checks and, once, how a broken value is worded (after
the column's name and the value as sent: :mod:`.problems` collects and words a row's problems).
The test date's rules are :mod:`.dates`'s, the text rules of record fields and structure names
(control characters, length) :mod:`.identity`'s, the caliper repair :mod:`.calipers`'s: each
also shared, not copied.

Where the users legitimately differ, the declaration says so instead of a second copy:

* ``RangeRule.measured``: the lab's measured result (``Permeabilidad``) is required and checked
  by acquisition only; a guide-value request (batch row or single sample) does not carry it
  (:data:`INPUT_RANGE_RULES`, :data:`REQUIRED_INPUTS`).
* Calipers: acquisition and batch scoring fill missing readings (:mod:`.calipers`, at least
  ``min_caliper_readings``); the single sample must send all five and ``CalibreProm``.
* Refusal: acquisition rejects the row, batch scoring marks it, the API refuses the whole
  request with pydantic's 422 (its range words are pydantic's, its bounds these).
* Structure text: acquisition checks the canonical name's shape (:func:`structure_names_ok`)
  and stores no other; batch scoring and the API refuse a structure the version does not know
  (batch scoring calls a name with nothing left of it, ``'///'``, no structure name), and the
  API bounds the text as sent (:data:`MAX_STRUCTURE_TEXT`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_MEAN_ABS_TOL_UM,
    CALIPER_MEAN_REL_TOL,
    CALIPER_RANGE_UM,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    PERMEABILIDAD,
    PERMEABILITY_RANGE,
    PORC_HUMEDAD,
    REQUIRED_COLUMNS,
    TEMPERATURE_RANGE_C,
    UNITS,
    caliper_mean_tolerance,
)

IMPUTED_COLUMN: Final = "n_calibres_imputados"
INGESTED_AT: Final = "ingested_at"
#: Longest structure name accepted: laminates of a few layers fit; pasted paragraphs do not.
MAX_STRUCTURE_LENGTH: Final = 80
#: Longest structure text the API takes as sent (before its canonical spelling, which
#: :data:`MAX_STRUCTURE_LENGTH` bounds); a name the version does not know is refused anyway.
MAX_STRUCTURE_TEXT: Final = 100
#: Ids are parsed as floats first (text may say "12,0"); beyond 2**53 floats skip integers.
MAX_SAMPLE_ID: Final = 2**53
#: How a broken ``Muestra`` is worded, after its name and value.
NOT_A_SAMPLE_NUMBER: Final = "is not a whole number ≥ 0"
#: How a structure name that is no film name is worded, after its name and value.
NOT_A_STRUCTURE_NAME: Final = (
    f"is not a structure name (needs a letter, at most {MAX_STRUCTURE_LENGTH} characters)"
)


@dataclass(frozen=True)
class RangeRule:
    """A physical range of one numeric column; which bounds are open is part of the physics.

    ``measured``: the column is the lab's result, which acquisition requires and a guide-value
    request does not carry.
    """

    column: str
    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True
    unit: str = ""
    measured: bool = False

    def outside(self, values: ArrayLike) -> NDArray[np.bool_]:
        """Where a present (non-NaN) value breaks the range; infinities always do."""
        data = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            too_low = data < self.low if self.low_inclusive else data <= self.low
            too_high = data > self.high if self.high_inclusive else data >= self.high
        return np.asarray((too_low | too_high) & ~np.isnan(data))

    def describe(self) -> str:
        """Interval notation, so a reason says exactly which bound was broken."""
        left = "[" if self.low_inclusive else "("
        right = "]" if self.high_inclusive else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"

    @property
    def problem(self) -> str:
        """How a value outside is worded, after the column's name and value."""
        return f"is outside {self.describe()} {self.unit}".rstrip()

    def bounds(self) -> tuple[float | None, float | None, float | None, float | None]:
        """``(ge, gt, le, lt)``: the bounds as pydantic ``Field`` constraints (None: unused)."""
        low, high = self.low, self.high
        return (
            low if self.low_inclusive else None,
            None if self.low_inclusive else low,
            high if self.high_inclusive else None,
            None if self.high_inclusive else high,
        )


def _rule(
    column: str, bounds: tuple[float, float], *, low_inclusive: bool = True, measured: bool = False
) -> RangeRule:
    return RangeRule(
        column, *bounds, low_inclusive=low_inclusive, unit=UNITS[column], measured=measured
    )


#: Every numeric column's range (bounds from :mod:`permeability.record.schema`).
RANGE_RULES: Final[dict[str, RangeRule]] = {
    GRADOS_C: _rule(GRADOS_C, TEMPERATURE_RANGE_C),
    PORC_HUMEDAD: _rule(PORC_HUMEDAD, HUMIDITY_RANGE_PCT, low_inclusive=False),
    **{c: _rule(c, CALIPER_RANGE_UM, low_inclusive=False) for c in (*CALIBRES, CALIBRE_PROM)},
    PERMEABILIDAD: _rule(PERMEABILIDAD, PERMEABILITY_RANGE, low_inclusive=False, measured=True),
}
#: The ranges of what a guide-value request carries (batch rows, the single sample).
INPUT_RANGE_RULES: Final[dict[str, RangeRule]] = {
    column: rule for column, rule in RANGE_RULES.items() if not rule.measured
}


#: The lab's measured result: acquisition requires and checks it; a request does not carry it.
MEASURED_COLUMNS: Final = frozenset(c for c, rule in RANGE_RULES.items() if rule.measured)
#: What a guide-value request cannot do without (acquisition's are ``REQUIRED_COLUMNS``);
#: caliper readings are the fill rule's business, in both.
REQUIRED_INPUTS: Final = tuple(c for c in REQUIRED_COLUMNS if c not in MEASURED_COLUMNS)


def absent_required_columns(
    present: Collection[str], min_readings: int, required: Sequence[str]
) -> list[str]:
    """The ``required`` columns a source or file lacks, and its absent readings when fewer
    than ``min_readings`` remain (``CalibreProm`` may be absent: it is computed)."""
    missing = [c for c in required if c not in present]
    absent_readings = [c for c in CALIBRES if c not in present]
    if len(CALIBRES) - len(absent_readings) < min_readings:
        missing.extend(absent_readings)
    return missing


def not_sample_numbers(values: ArrayLike) -> NDArray[np.bool_]:
    """Where a present ``Muestra`` is no whole number in [0, MAX_SAMPLE_ID] (NaN: absent)."""
    data = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        whole = (data >= 0) & (data <= MAX_SAMPLE_ID) & (np.floor(data) == data)
    return np.asarray(~whole & ~np.isnan(data))


def caliper_means_consistent(stated: ArrayLike, readings_mean: ArrayLike) -> NDArray[np.bool_]:
    """Vectorised :func:`permeability.record.schema.caliper_mean_consistent` (same tolerances)."""
    stated_arr = np.asarray(stated, dtype=np.float64)
    mean_arr = np.asarray(readings_mean, dtype=np.float64)
    tolerance = np.maximum(CALIPER_MEAN_ABS_TOL_UM, CALIPER_MEAN_REL_TOL * np.abs(mean_arr))
    return np.asarray(np.abs(stated_arr - mean_arr) <= tolerance)


def caliper_mean_problem(readings_mean: float) -> str:
    """How an inconsistent ``CalibreProm`` is worded, after its name and value."""
    return (
        f"does not match the mean of the readings ({readings_mean:.2f} µm, "
        f"tolerance ± {caliper_mean_tolerance(readings_mean):.2f} µm)"
    )


def structure_names_ok(names: Sequence[object]) -> NDArray[np.bool_]:
    """Whether each name looks like a film: it has a letter and at most MAX_STRUCTURE_LENGTH chars."""
    return np.array(
        [
            isinstance(name, str)
            and 0 < len(name) <= MAX_STRUCTURE_LENGTH
            and any(ch.isalpha() for ch in name)
            for name in names
        ],
        dtype=bool,
    )
