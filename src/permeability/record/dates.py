"""The test date's rules: ``Fecha`` as one cell, or ``Año``/``Mes``/``Día`` as the real export
writes it (three whole numbers), with one wording for each problem.

Acquisition (:mod:`.cleaning`) and batch scoring (:mod:`.request_fields`) read the cells their
own way (text with the configured placeholders; JSON values or a spreadsheet's numbers) and
hand the numbers here. Where ``Fecha`` is given too, acquisition keeps ``Fecha`` and judges
the parts only where it is absent (``where``); batch scoring judges them everywhere and says
when the two disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.identity import dates_from_parts
from permeability.record.problems import Problems
from permeability.record.schema import ANIO, DATE_PARTS, DIA, MES

if TYPE_CHECKING:
    from permeability.record.problems import Values

#: How an unreadable ``Fecha`` is worded, after its name and value.
NOT_A_DATE: Final = "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)"
NOT_WHOLE: Final = "is not a whole number"


@dataclass(frozen=True)
class DatePart:
    """One of ``Año``/``Mes``/``Día`` read: its number (NaN where absent or unreadable), where
    a value was given (neither empty nor a placeholder), and the cells as sent (for messages)."""

    values: NDArray[np.float64]
    given: NDArray[np.bool_]
    sent: Values


def check_date_parts(
    parts: Mapping[str, DatePart], problems: Problems, where: NDArray[np.bool_] | None = None
) -> NDArray[np.datetime64]:
    """The date of each row from its three parts (datetime64[ns], NaT where none is made).

    Judged only on the ``where`` rows (all when None): a part given but no whole number, a date
    given in part only, and three whole numbers that make no calendar date (or a year outside
    :data:`~permeability.record.identity.TEST_YEARS`) are problems naming the columns.
    """
    n = len(parts[ANIO].values)
    judged = np.ones(n, dtype=bool) if where is None else where
    present: dict[str, NDArray[np.bool_]] = {}
    for name in DATE_PARTS:
        part = parts[name]
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(part.values) & (np.floor(part.values) == part.values)
        problems.value(part.given & ~whole & judged, name, part.sent, NOT_WHOLE)
        present[name] = part.given & whole
    given_any = np.logical_or.reduce([parts[p].given for p in DATE_PARTS])
    given_all = np.logical_and.reduce([parts[p].given for p in DATE_PARTS])
    complete = np.logical_and.reduce([present[p] for p in DATE_PARTS])
    absent = {p: ~parts[p].given for p in DATE_PARTS}
    problems.each(
        given_any & ~given_all & judged,
        lambda i: (
            f"{', '.join(p for p in DATE_PARTS if absent[p][i])} missing: "
            f"a date in {ANIO}/{MES}/{DIA} needs all three"
        ),
    )
    numbers = {p: np.where(complete & judged, parts[p].values, np.nan) for p in DATE_PARTS}
    built = dates_from_parts(*(numbers[p] for p in DATE_PARTS))
    problems.each(
        complete & judged & np.isnat(built),
        lambda i: (
            f"{ANIO}/{MES}/{DIA} {numbers[ANIO][i]:g}/{numbers[MES][i]:g}/"
            f"{numbers[DIA][i]:g} is not a calendar date"
        ),
    )
    return built
