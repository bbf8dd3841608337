"""Row problems, collected check by check and worded only for the rows that fail.

Acquisition (:mod:`permeability.record.cleaning`) and batch scoring
(:mod:`permeability.scoring.rows`) check whole columns: a check gives a row mask and a way to
word the problem, and the words are only built for the rows that fail (a million rows hold a
few hundred bad ones). Every problem of a row is said, in the order the checks ran, joined by
``"; "``, each starting with the field's name and, when it has one, the value as it was sent:
``Porc_Humedad '120' is outside (0, 100] % RH``. What follows the value (the detail) is the
rule's own wording (:mod:`permeability.record.rules`, :mod:`permeability.record.identity`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # frames only: imported where a Series is read
    import pandas as pd

    #: The values a message shows: a column as sent (Series or array), indexed by row number.
    Values: TypeAlias = pd.Series | NDArray[Any]

#: Longest part of a value a message repeats.
SHOWN_CHARS: Final = 60
#: How an absent value is worded, after the field's name (and the placeholder typed, if any).
IS_MISSING: Final = "is missing"

Describe = Callable[[NDArray[np.intp]], Sequence[str]]


def shown(value: object) -> str:
    """A value as a message shows it: text quoted as typed, anything else as its repr (a
    JSON ``true``, a list; a whole float as the integer it was sent as, since a column of JSON
    numbers with a gap is a float column), cut at :data:`SHOWN_CHARS` characters."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…")
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _picked(values: Values, rows: NDArray[np.intp]) -> list[Any]:
    import pandas as pd

    if isinstance(values, pd.Series):
        return list(values.iloc[rows].tolist())
    return list(np.asarray(values, dtype=object)[rows].tolist())


@dataclass
class Problems:
    """Every problem found, as a row mask and a way to word it; worded only for failing rows."""

    n: int
    items: list[tuple[NDArray[np.bool_], Describe]] = field(default_factory=list)

    def add(self, mask: NDArray[np.bool_], describe: Describe) -> None:
        """A problem of the ``mask`` rows; ``describe(rows)`` words it for the rows asked."""
        if mask.any():
            self.items.append((np.asarray(mask, dtype=bool), describe))

    def each(self, mask: NDArray[np.bool_], message: Callable[[int], str]) -> None:
        """A problem worded row by row (``message(row)``)."""
        self.add(mask, lambda rows: [message(int(i)) for i in rows])

    def value(
        self,
        mask: NDArray[np.bool_],
        column: str,
        values: Values,
        detail: str | NDArray[np.object_] | Describe,
    ) -> None:
        """A problem with a value: "<column> <value as sent> <detail>"; ``detail`` is one text,
        one per row (an array), or worded for the rows asked (a callable)."""

        def describe(rows: NDArray[np.intp]) -> list[str]:
            if callable(detail):
                details: Sequence[object] = detail(rows)
            elif isinstance(detail, np.ndarray):
                details = detail[rows].tolist()
            else:
                details = [detail] * len(rows)
            raw = _picked(values, rows)
            return [f"{column} {shown(v)} {d}" for v, d in zip(raw, details, strict=True)]

        self.add(mask, describe)

    def missing(self, mask: NDArray[np.bool_], column: str, values: Values) -> None:
        """A required value is absent: empty, or a placeholder such as 'n/a' (then shown)."""

        def describe(rows: NDArray[np.intp]) -> list[str]:
            return [
                f"{column} {shown(v.strip())} {IS_MISSING}"
                if isinstance(v, str) and v.strip()
                else f"{column} {IS_MISSING}"
                for v in _picked(values, rows)
            ]

        self.add(mask, describe)

    @property
    def bad(self) -> NDArray[np.bool_]:
        """The rows with at least one problem."""
        bad = np.zeros(self.n, dtype=bool)
        for mask, _ in self.items:
            bad |= mask
        return bad

    def messages(self, rows: NDArray[np.intp]) -> list[list[str]]:
        """Every problem of each of ``rows``, in the order the checks ran."""
        collected: list[list[str]] = [[] for _ in rows]
        for mask, describe in self.items:
            hit = np.flatnonzero(mask[rows])
            for slot, message in zip(hit, describe(rows[hit]), strict=True):
                collected[slot].append(message)
        return collected

    def reasons(self, rows: NDArray[np.intp]) -> list[str]:
        """Each of ``rows``'s problems joined by "; " ("" for a row without any)."""
        return ["; ".join(parts) for parts in self.messages(rows)]

    def texts(self) -> NDArray[np.object_]:
        """One text per row: its reasons, or "" when it has no problem."""
        texts = np.full(self.n, "", dtype=object)
        rows = np.flatnonzero(self.bad)
        if len(rows):
            texts[rows] = np.array(self.reasons(rows), dtype=object)
        return texts
