"""The one caliper repair rule: a missing reading is the mean of the row's other readings.

Shared by acquisition (:mod:`.cleaning`) and batch scoring, so a lab file acquisition accepts is
scored the same way, with the same counts of what was filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.rules import RANGE_RULES, caliper_means_consistent
from permeability.record.schema import CALIBRES

#: Caliper readings a row needs by default (``acquisition.min_caliper_readings``); the
#: missing ones are filled from the others and counted.
MIN_CALIPER_READINGS: Final = 3


@dataclass(frozen=True)
class CaliperFill:
    """The caliper repair of :func:`fill_calipers`, per row (arrays of the input's length).

    ``readings`` (n × 5) and ``prom`` are what a sample is modelled with; ``filled`` (the
    readings left empty) and ``prom_computed`` (CalibreProm absent or unreadable) say which of
    them are the readings' mean instead of a typed value, so a caller can count or show it.
    """

    readings: NDArray[np.float64]
    prom: NDArray[np.float64]
    filled: NDArray[np.bool_]
    prom_computed: NDArray[np.bool_]
    readings_mean: NDArray[np.float64]
    too_few: NDArray[np.bool_]
    inconsistent: NDArray[np.bool_]
    min_readings: int

    @property
    def n_filled(self) -> NDArray[np.int64]:
        """Readings filled per row (CalibreProm is computed, not counted as a reading)."""
        return np.asarray(self.filled.sum(axis=1), dtype=np.int64)

    def shortfall(self, row: int) -> str:
        """Why ``row`` has too few readings, naming the missing ones."""
        absent = [c for c, gone in zip(CALIBRES, self.filled[row], strict=True) if gone]
        present = len(CALIBRES) - len(absent)
        return (
            f"only {present} of {len(CALIBRES)} caliper readings present "
            f"({', '.join(absent)} missing; at least {self.min_readings} needed)"
        )


def fill_calipers(
    readings: NDArray[np.float64],
    missing: NDArray[np.bool_],
    stated_prom: NDArray[np.float64],
    min_readings: int,
) -> CaliperFill:
    """The one caliper repair rule, shared by acquisition and batch scoring.

    ``readings`` is n × 5 (Calibre1..5; NaN where missing or unreadable), ``missing`` marks the
    readings left empty (unreadable ones are the caller's error, not a gap to fill) and
    ``stated_prom`` is CalibreProm as typed (NaN when absent). A missing reading becomes the
    mean of the row's usable readings, and so does a missing CalibreProm; a row with fewer
    than ``min_readings`` readings present is ``too_few``. The stated CalibreProm is checked
    against that mean only when every typed reading is usable and in range, so a row with a
    bad reading gets one reason for it, not a second one about the mean.
    """
    n_missing = missing.sum(axis=1)
    usable = ~np.isnan(readings)
    counts = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(usable, readings, 0.0).sum(axis=1) / counts
    in_range = ~np.column_stack(
        [RANGE_RULES[c].outside(readings[:, i]) for i, c in enumerate(CALIBRES)]
    )
    every_typed_usable = (counts == len(CALIBRES) - n_missing) & in_range.all(axis=1)
    prom_computed = np.isnan(stated_prom)
    checkable = every_typed_usable & (counts > 0) & ~prom_computed
    return CaliperFill(
        readings=np.where(missing, means[:, None], readings),
        prom=np.where(prom_computed, means, stated_prom),
        filled=missing,
        prom_computed=prom_computed,
        readings_mean=means,
        too_few=np.asarray(len(CALIBRES) - n_missing < min_readings),
        inconsistent=checkable & ~caliper_means_consistent(stated_prom, means),
        min_readings=min_readings,
    )
