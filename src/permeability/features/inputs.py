"""What the features refuse of a lab record or frame, with the field and the problem named.

The numeric inputs (:data:`NUMERIC_INPUTS`) must be finite numbers within their physical range
(:mod:`permeability.record.schema`): a frame column is checked in one vectorised pass
(:func:`numeric_column`), a record field by :func:`record_number`, which decides the common case
(a float already in range, as a validated request gives) in one comparison; both accept exactly
the same values. A structure never seen in training is refused with
:class:`UnknownStructureError` when a caller asks for ``strict`` (inference).

pandas is imported inside :func:`numeric_column` only: the record path never needs it, so a
replica serving single records never loads it (docs/deploy.md, "Replicas that start fast").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
)

if TYPE_CHECKING:
    import pandas as pd

FloatArray = NDArray[np.float64]

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


def numeric_column(frame: pd.DataFrame, column: str) -> FloatArray:
    """The frame's column as floats, or InvalidInputError naming the column and the problem."""
    import pandas as pd

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


#: Per column, the bounds of the common case checked in one comparison (see record_number).
_PLAIN_BOUNDS: Final = {column: _plain_bounds(column) for column in NUMERIC_INPUTS}


def record_number(record: Mapping[str, Any], column: str) -> float:
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
