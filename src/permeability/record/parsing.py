"""Lab cells as typed (text) to numbers and dates, column at a time.

Everything here works on whole columns, because a lab export can hold a million rows and a
Python loop per row costs seconds. The common case ("16.4", "16,4") is parsed with vectorised
string operations; only the rare odd value ("16.4 µm", "1.234,5", "n/a") takes a slower path,
and then once per distinct spelling, not once per row. Acquisition (:mod:`.cleaning`) and batch
scoring share these parsers, so a cell reads the same wherever it arrives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)

if TYPE_CHECKING:  # frames only: imported by the functions that use them
    import pandas as pd

#: What labs type for "no value" (Spanish-speaking labs: s.d./S/D "sin dato", N.D./n.d. "no
#: determinado", NR "no reportado"); such a cell counts as missing, not as unreadable.
MISSING_TOKENS: Final = frozenset(
    {
        "",
        "na",
        "n/a",
        "n.a.",
        "nan",
        "null",
        "none",
        "-",
        "--",
        "—",
        "–",
        "?",
        "s/d",
        "s.d.",
        "s.d",
        "sd",
        "sin dato",
        "sin datos",
        "n.d.",
        "n.d",
        "nd",
        "nr",
        "n.r.",
        "no reportado",
    }
)

Units = Mapping[str, tuple[float, float]]  # unit key -> (scale, offset): value * scale + offset


def unit_key(unit: str) -> str:
    """A unit spelling reduced to letters, digits, % and °: 'g/m²·día' -> 'gm2dia'."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", unit))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return re.sub(r"[\s/·*.()\[\]_-]+", "", text)


def _units(spellings: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return {unit_key(k): v for k, v in spellings.items()}


_SAME: Final = (1.0, 0.0)
#: US data sheets give WVTR per 100 in² (1 in² = 6.4516e-4 m²).
_PER_100_SQ_IN: Final = (1.0 / 0.064516, 0.0)
UNITS: Final[Mapping[str, Units]] = {
    MUESTRA: {},
    GRADOS_C: _units(
        {
            "°C": _SAME,
            "ºC": _SAME,
            "C": _SAME,
            "°": _SAME,
            "degC": _SAME,
            "grados": _SAME,
            "celsius": _SAME,
            "°F": (5.0 / 9.0, -160.0 / 9.0),
            "F": (5.0 / 9.0, -160.0 / 9.0),
            "K": (1.0, -273.15),
        }
    ),
    PORC_HUMEDAD: _units({"%": _SAME, "% HR": _SAME, "% RH": _SAME, "HR": _SAME, "RH": _SAME}),
    PERMEABILIDAD: _units(
        {
            "g/m2·d": _SAME,
            "g/m2·día": _SAME,
            "g/m2·day": _SAME,
            "g/m2·24h": _SAME,
            "g/100in2·d": _PER_100_SQ_IN,
            "g/100in2·day": _PER_100_SQ_IN,
        }
    ),
    **{
        column: _units(
            {
                "µm": _SAME,
                "um": _SAME,
                "micras": _SAME,
                "micra": _SAME,
                "micron": _SAME,
                "microns": _SAME,
                "micrones": _SAME,
                "mm": (1000.0, 0.0),
            }
        )
        for column in (*CALIBRES, CALIBRE_PROM)
    },
}


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Parsed:
    """One column parsed: values (NaN when missing or unreadable) and why a value is unreadable."""

    values: NDArray[np.float64]
    missing: NDArray[np.bool_]
    problem: NDArray[np.object_]  # None, or e.g. "is not a number"

    @property
    def invalid(self) -> NDArray[np.bool_]:
        import pandas as pd

        return np.asarray(pd.notna(self.problem))


def _as_text(raw: pd.Series | None, n: int) -> pd.Series:
    import pandas as pd

    if raw is None:
        return pd.Series(np.full(n, np.nan, dtype=object), dtype="str")
    return raw.reset_index(drop=True).astype("str")


def _blank(stripped: pd.Series) -> NDArray[np.bool_]:
    return np.array(stripped.isna() | (stripped.str.len() == 0), dtype=bool)


def _placeholders(
    values: Sequence[object], tokens: frozenset[str] = MISSING_TOKENS
) -> NDArray[np.bool_]:
    """Which (few, distinct) values are a placeholder for "no value" such as 'n/a'."""
    return np.array([str(v).strip().casefold() in tokens for v in values], dtype=bool)


def missing_tokens(extra: Sequence[str] = ()) -> frozenset[str]:
    """The built-in "no value" tokens plus the configured ones (compared case-insensitively)."""
    return MISSING_TOKENS | {t.strip().casefold() for t in extra}


#: ASCII digits only: "²" or "٣" are not numbers a lab typed.
_NUMBER: Final = re.compile(
    r"([+-]?)\s*((?:[0-9][0-9.,]*|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)", flags=re.DOTALL
)
_GROUPED: Final = re.compile(r"[0-9]{1,3}(?:([.,])[0-9]{3})+")


def _decimal(number: str) -> float | None:
    """Read '16,4', '1.234,5', '1,234.5' or '1.234.567'; None when the separators make no sense."""
    mantissa, exponent = re.match(r"([^eE]*)(.*)", number).groups()  # type: ignore[union-attr]
    commas, dots = mantissa.count(","), mantissa.count(".")
    if commas and dots:
        decimal = "," if mantissa.rfind(",") > mantissa.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        integer, _, fraction = mantissa.rpartition(decimal)
        if mantissa.count(decimal) > 1 or not _GROUPED.fullmatch(integer):
            return None
        mantissa = integer.replace(thousands, "") + "." + fraction
    elif commas > 1 or dots > 1:
        if not _GROUPED.fullmatch(mantissa):
            return None
        mantissa = mantissa.replace(",", "").replace(".", "")
    else:
        mantissa = mantissa.replace(",", ".")
    try:
        return float(mantissa + exponent)
    except ValueError:
        return None


def parse_number_text(text: str, units: Units) -> tuple[float, str | None]:
    """One odd value: (number in the column's unit, None) or (NaN, what is wrong with it)."""
    match = _NUMBER.fullmatch(text.strip())
    value = _decimal(match.group(2)) if match else None
    if match is None or value is None:
        return float("nan"), "is not a number"
    sign, _, unit = match.groups()
    scale, offset = _SAME
    if unit:
        if not units:
            return float("nan"), "is not a number"
        found = units.get(unit_key(unit))
        if found is None:
            return float("nan"), f"has an unknown unit {unit!r}"
        scale, offset = found
    signed = -value if sign == "-" else value
    return signed * scale + offset, None


def _fast_floats(plain: pd.Series) -> NDArray[np.float64]:
    """Cast plain decimal strings; characters such as '²' pass isdigit but not the cast."""
    import pandas as pd

    try:
        cast = plain.astype("float64[pyarrow]")
        return np.asarray(cast.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (ValueError, TypeError):
        return np.asarray(pd.to_numeric(plain, errors="coerce"), dtype=np.float64)


def parse_numbers(
    text: pd.Series, units: Units, tokens: frozenset[str] = MISSING_TOKENS
) -> _Parsed:
    """Parse a text column to floats: decimal commas, stray spaces, units, thousands separators.

    Unsigned plain decimals ("16.4", "16,4") take the vectorised path; the rest (signs, units,
    placeholders, garbage) is parsed once per distinct spelling.
    """
    import pandas as pd

    n = len(text)
    stripped = text.str.strip()
    missing = _blank(stripped)
    dotted = stripped.str.replace(",", ".", regex=False)
    digits = dotted.str.replace(".", "", n=1, regex=False).str.isdigit()
    plain = np.asarray(digits.fillna(False), dtype=bool) & ~missing
    values = np.full(n, np.nan)
    problem = np.full(n, None, dtype=object)
    if plain.any():
        values[plain] = _fast_floats(dotted[plain])
        plain &= ~np.isnan(values)
    odd = np.flatnonzero(~missing & ~plain)
    if odd.size:
        codes, uniques = pd.factorize(stripped.iloc[odd])
        placeholder = _placeholders(list(uniques), tokens)
        parsed = [
            (float("nan"), None) if gone else parse_number_text(str(u), units)
            for u, gone in zip(uniques, placeholder, strict=True)
        ]
        values[odd] = np.array([p[0] for p in parsed], dtype=np.float64)[codes]
        problem[odd] = np.array([p[1] for p in parsed], dtype=object)[codes]
        missing[odd] = placeholder[codes]
    return _Parsed(values, missing, problem)


_DATE_FORMATS: Final = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M")


@dataclass(frozen=True)
class _ParsedDates:
    values: NDArray[np.datetime64]  # datetime64[ns], NaT when missing or unreadable
    missing: NDArray[np.bool_]
    invalid: NDArray[np.bool_]
    with_time: NDArray[np.bool_]


def parse_dates(text: pd.Series, tokens: frozenset[str] = MISSING_TOKENS) -> _ParsedDates:
    """ISO dates and timestamps, then day-first forms (DD/MM/YYYY), as Spanish labs write them.

    Parsed once per distinct spelling: a file spans a few hundred test days. Fecha is a test
    date, so a time of day is dropped (and flagged, so the job can say so).
    """
    import pandas as pd

    codes, uniques = pd.factorize(text.str.strip())
    spelled = pd.Series(uniques, dtype="str")
    placeholder = _placeholders(list(uniques), tokens) | (spelled.str.len() == 0).to_numpy(
        dtype=bool
    )
    iso = pd.to_datetime(spelled.where(~placeholder), format="ISO8601", errors="coerce", utc=True)
    found = iso.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    for fmt in _DATE_FORMATS:
        todo = ~placeholder & np.isnat(found)
        if not todo.any():
            break
        again = pd.to_datetime(spelled[todo], format=fmt, errors="coerce")
        found[todo] = again.to_numpy(dtype="datetime64[ns]")
    days = found.astype("datetime64[D]").astype("datetime64[ns]")
    unique_invalid = ~placeholder & np.isnat(found)
    unique_with_time = ~np.isnat(found) & (days != found)
    missing = (codes < 0) | np.r_[placeholder, True][codes]
    return _ParsedDates(
        values=np.r_[days, np.array(["NaT"], dtype="datetime64[ns]")][codes],
        missing=missing,
        invalid=np.r_[unique_invalid, False][codes],
        with_time=np.r_[unique_with_time, False][codes],
    )
