"""Raw lab rows (text, as typed) in; clean samples and rejected rows with their reasons out.

Everything here works on whole columns, because a lab export can hold a million rows and a
Python loop per row costs seconds. The common case ("16.4", "16,4") is parsed with vectorised
string operations; only the rare odd value ("16.4 µm", "1.234,5", "n/a") takes a slower path,
and then once per distinct spelling, not once per row.

A row is rejected, never repaired by guesswork, when a value is impossible or unreadable; the
reason lists every problem of the row, each naming the column and the value as it was typed.
The only repairs are the documented ones: missing caliper readings are filled from the other
readings of the same sample (and counted), and a missing ``CalibreProm`` is computed.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.domain.records import (
    RecordRules,
    assign_test_ids,
    censor_below_limit,
    join_key,
    non_product_mask,
    resolve_record_key,
)
from permeability.domain.schema import (
    BELOW_DETECTION_LIMIT,
    CALIBRE_PROM,
    CALIBRES,
    CONSECUTIVO,
    DATE_PARTS,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    IS_PRODUCT,
    LAYERS,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_COLUMNS,
    RECORD_FIELDS,
    RECORD_ID,
    REQUIRED_COLUMNS,
    TEST_ID,
)
from permeability.domain.structures import parse_structure
from permeability.domain.validation import (
    IMPUTED_COLUMN,
    MAX_SAMPLE_ID,
    MAX_STRUCTURE_LENGTH,
    RANGE_RULES,
    caliper_means_consistent,
    structure_names_ok,
)
from permeability.errors import InvalidInputError

SOURCE_ROW: Final = "source_row"
REASON: Final = "reason"
#: Columns of a clean sample frame, in order: the record, its fields, what is derived from it.
CLEAN_COLUMNS: Final = (
    RECORD_ID,
    *RECORD_COLUMNS,
    *RECORD_FIELDS,
    TEST_ID,
    LAYERS,
    IS_PRODUCT,
    BELOW_DETECTION_LIMIT,
    IMPUTED_COLUMN,
)
#: Every column a source may provide (matched by name, or through acquisition.column_map).
SOURCE_COLUMNS: Final = (*RECORD_COLUMNS, *RECORD_FIELDS, *DATE_PARTS)
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
#: Longest record number, reference or analyst name kept; longer is a paste error.
MAX_FIELD_LENGTH: Final = 120
_SHOWN_CHARS: Final = 60

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


# --------------------------------------------------------------------------- column names


def header_key(header: str) -> str:
    """A header reduced for matching: 'Grados C', 'GRADOS_C' and 'grados-c' are one column."""
    text = unicodedata.normalize("NFKD", str(header))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return re.sub(r"[\s_.-]+", "", text)


def resolve_columns(
    headers: Sequence[str],
    column_map: Mapping[str, str],
    *,
    min_caliper_readings: int,
    source_label: str,
) -> dict[str, str]:
    """Source header -> seed column, from ``column_map`` first, then by name.

    Matching ignores case, accents, spaces, ``_``, ``-`` and ``.``. Columns the project does
    not use are left out. Raises when a required column is missing (listing what was found),
    when two headers claim one column, or when the map names a column that does not exist.
    """
    seeds = {header_key(c): c for c in SOURCE_COLUMNS}
    mapped_keys: dict[str, str] = {}
    for source_header, seed in column_map.items():
        target = seeds.get(header_key(seed))
        if target is None:
            raise InvalidInputError(
                f"acquisition.column_map maps {source_header!r} to {seed!r}, which is not a "
                f"column of the lab record ({', '.join(SOURCE_COLUMNS)})"
            )
        mapped_keys[header_key(source_header)] = target
    resolved: dict[str, str] = {}
    claimed: dict[str, str] = {}
    for header in headers:
        key = header_key(header)
        target = mapped_keys.get(key) or seeds.get(key)
        if target is None:
            continue
        if target in claimed:
            raise InvalidInputError(
                f"source {source_label}: columns {claimed[target]!r} and {header!r} "
                f"both map to {target}; rename one or set acquisition.column_map"
            )
        claimed[target] = header
        resolved[header] = target
    _require_columns(set(resolved.values()), headers, min_caliper_readings, source_label)
    return resolved


def _require_columns(
    present: set[str], headers: Sequence[str], min_caliper_readings: int, source_label: str
) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    absent_calipers = [c for c in CALIBRES if c not in present]
    if len(CALIBRES) - len(absent_calipers) < min_caliper_readings:
        missing.extend(absent_calipers)
    if missing:
        found = ", ".join(repr(h) for h in headers) or "none"
        raise InvalidInputError(
            f"source {source_label} lacks required column(s) {', '.join(missing)}; "
            f"columns found: {found}"
        )


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Parsed:
    """One column parsed: values (NaN when missing or unreadable) and why a value is unreadable."""

    values: NDArray[np.float64]
    missing: NDArray[np.bool_]
    problem: NDArray[np.object_]  # None, or e.g. "is not a number"

    @property
    def invalid(self) -> NDArray[np.bool_]:
        return np.asarray(pd.notna(self.problem))


def _as_text(raw: pd.Series | None, n: int) -> pd.Series:
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


# --------------------------------------------------------------------------- reasons


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


Describe = Callable[[NDArray[np.intp]], list[str]]


@dataclass
class _Problems:
    """Every problem found, as a row mask and a way to word it; worded only for rejected rows."""

    n: int
    items: list[tuple[NDArray[np.bool_], Describe]] = field(default_factory=list)

    def add(self, mask: NDArray[np.bool_], describe: Describe) -> None:
        if mask.any():
            self.items.append((mask, describe))

    def value(
        self,
        mask: NDArray[np.bool_],
        column: str,
        text: pd.Series,
        detail: str | NDArray[np.object_] | Describe,
    ) -> None:
        """A problem with a value: "<column> '<value as typed>' <detail>"."""

        def describe(rows: NDArray[np.intp]) -> list[str]:
            if callable(detail):
                details: Sequence[object] = detail(rows)
            elif isinstance(detail, np.ndarray):
                details = detail[rows].tolist()
            else:
                details = [detail] * len(rows)
            raw = text.iloc[rows].tolist()
            return [f"{column} {_shown(v)} {d}" for v, d in zip(raw, details, strict=True)]

        self.add(mask, describe)

    def missing(self, mask: NDArray[np.bool_], column: str, text: pd.Series) -> None:
        """A required value is absent: empty, or a placeholder such as 'n/a' (then shown)."""

        def describe(rows: NDArray[np.intp]) -> list[str]:
            raw = text.iloc[rows].str.strip().fillna("").tolist()
            return [
                f"{column} {_shown(v)} is missing" if v else f"{column} is missing" for v in raw
            ]

        self.add(mask, describe)

    def any(self) -> NDArray[np.bool_]:
        bad = np.zeros(self.n, dtype=bool)
        for mask, _ in self.items:
            bad |= mask
        return bad

    def reasons(self, rows: NDArray[np.intp]) -> list[str]:
        collected: list[list[str]] = [[] for _ in rows]
        for mask, describe in self.items:
            hit = np.flatnonzero(mask[rows])
            for slot, message in zip(hit, describe(rows[hit]), strict=True):
                collected[slot].append(message)
        return ["; ".join(parts) for parts in collected]


# --------------------------------------------------------------------------- cleaning


@dataclass(frozen=True)
class CleanResult:
    """Clean samples (source order, with ``source_row``) and rejected rows as they were typed.

    ``record_key`` is the key the record ids were built from (resolved for this source).
    """

    clean: pd.DataFrame
    rejected: pd.DataFrame
    calipers_imputed: int
    dates_with_time: int
    record_key: tuple[str, ...] = (CONSECUTIVO,)


def clean_records(
    raw: pd.DataFrame,
    *,
    aliases: Mapping[str, str],
    min_caliper_readings: int,
    rules: RecordRules | None = None,
) -> CleanResult:
    """Normalise and validate raw rows whose columns already carry the seed's names.

    ``raw`` holds text (any other type is turned into text first) plus ``source_row``;
    absent optional columns (Fecha, CalibreProm, some readings, the record fields) count as
    missing values. ``aliases`` comes from :func:`permeability.domain.structures.build_alias_map`;
    ``rules`` are the record rules of :mod:`permeability.domain.records` (defaults when None).
    """
    rules = rules or RecordRules()
    tokens = missing_tokens(rules.missing_tokens)
    key = resolve_record_key(rules.record_key, list(raw.columns))
    n = len(raw)
    text = {c: _as_text(raw.get(c), n) for c in SOURCE_COLUMNS}
    problems = _Problems(n)
    numbers = {c: parse_numbers(text[c], UNITS[c], tokens) for c in RECORD_COLUMNS if c in UNITS}
    for column, parsed in numbers.items():
        problems.value(parsed.invalid, column, text[column], parsed.problem)
    for column in REQUIRED_COLUMNS:
        if column in numbers:
            problems.missing(numbers[column].missing, column, text[column])
    _check_sample_ids(numbers[MUESTRA].values, text[MUESTRA], problems)
    wvtr, censored = censor_below_limit(numbers[PERMEABILIDAD].values, rules.detection_limit)
    numbers[PERMEABILIDAD] = dataclasses.replace(numbers[PERMEABILIDAD], values=wvtr)
    for column, rule in RANGE_RULES.items():
        outside = rule.outside(numbers[column].values)
        problems.value(outside, column, text[column], f"is outside {rule.describe()}")
    structures, layers = _normalise_structures(text[ESTRUCTURA], aliases, problems, tokens)
    dates = _test_dates(raw, text, problems, tokens)
    fields = {c: _record_field(c, text[c], problems, tokens) for c in RECORD_FIELDS}
    if key == (CONSECUTIVO,):
        problems.add(
            pd.isna(fields[CONSECUTIVO]) & ~np.asarray(numbers[MUESTRA].missing),
            lambda rows: [f"{CONSECUTIVO} is missing (it is the record key)"] * len(rows),
        )
    readings, imputed = _calipers(numbers, text, min_caliper_readings, problems)

    bad = problems.any()
    keep = ~bad
    clean = pd.DataFrame(
        {
            MUESTRA: numbers[MUESTRA].values[keep].astype(np.int64),
            GRADOS_C: numbers[GRADOS_C].values[keep],
            PORC_HUMEDAD: numbers[PORC_HUMEDAD].values[keep],
            ESTRUCTURA: pd.Series(structures[keep], dtype="str"),
            **{c: readings[:, i][keep] for i, c in enumerate(CALIBRES)},
            CALIBRE_PROM: readings[:, len(CALIBRES)][keep],
            PERMEABILIDAD: numbers[PERMEABILIDAD].values[keep],
            FECHA: dates.values[keep],
            **{c: pd.Series(fields[c][keep], dtype="str") for c in RECORD_FIELDS},
            LAYERS: pd.Series(layers[keep], dtype="str"),
            IS_PRODUCT: ~non_product_mask(list(structures[keep]), rules.non_product),
            BELOW_DETECTION_LIMIT: censored[keep],
            IMPUTED_COLUMN: imputed[keep].astype(np.int64),
            SOURCE_ROW: np.asarray(raw[SOURCE_ROW], dtype=np.int64)[keep],
        }
    )
    clean.insert(0, RECORD_ID, join_key(clean, key))
    clean.insert(
        list(clean.columns).index(LAYERS), TEST_ID, assign_test_ids(clean, rules.test_group)
    )
    return CleanResult(
        clean=clean,
        rejected=_rejected_rows(raw, problems, np.flatnonzero(bad)),
        calipers_imputed=int(imputed[keep].sum()),
        dates_with_time=int(np.count_nonzero(keep & dates.with_time)),
        record_key=key,
    )


def _check_sample_ids(ids: NDArray[np.float64], text: pd.Series, problems: _Problems) -> None:
    with np.errstate(invalid="ignore"):
        not_whole = (np.mod(ids, 1.0) != 0) | (ids < 0) | (ids > MAX_SAMPLE_ID)
    problems.value(not_whole & ~np.isnan(ids), MUESTRA, text, "is not a whole number ≥ 0")


def _normalise_structures(
    text: pd.Series, aliases: Mapping[str, str], problems: _Problems, tokens: frozenset[str]
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    """Canonical names and their layers, computed once per distinct spelling."""
    codes, uniques = pd.factorize(text.str.strip())
    spellings = [str(u) for u in uniques]
    gone = _placeholders(spellings, tokens) | np.array([not u for u in spellings], dtype=bool)
    missing = (codes < 0) | np.r_[gone, True][codes]
    problems.missing(missing, ESTRUCTURA, text)
    parsed = [parse_structure(u, aliases) for u in spellings]
    canonical = [p.name for p in parsed]
    names = np.array([*canonical, None], dtype=object)[codes]  # code -1 picks the None
    layers = np.array([*(p.layers_text for p in parsed), None], dtype=object)[codes]
    unshaped = ~missing & ~np.r_[structure_names_ok(canonical), True][codes]
    problems.value(
        unshaped,
        ESTRUCTURA,
        text,
        f"is not a structure name (needs a letter, at most {MAX_STRUCTURE_LENGTH} characters)",
    )
    return np.asarray(names, dtype=object), np.asarray(layers, dtype=object)


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _record_field(
    column: str, text: pd.Series, problems: _Problems, tokens: frozenset[str]
) -> NDArray[np.object_]:
    """A free-text record field (record number, reference, analyst): trimmed, or None.

    '17.0' as a record number is 17 (spreadsheets turn whole numbers into floats).
    """
    codes, uniques = pd.factorize(text.str.strip())
    spellings = [str(u) for u in uniques]
    gone = _placeholders(spellings, tokens) | np.array([not u for u in spellings], dtype=bool)
    kept = [None if g else _whole_number_text(u) for u, g in zip(spellings, gone, strict=True)]
    values = np.array([*kept, None], dtype=object)[codes]
    control = np.array(
        [v is not None and _CONTROL.search(v) is not None for v in kept] + [False], dtype=bool
    )
    problems.value(control[codes], column, text, "contains a control character")
    long = np.array(
        [v is not None and len(v) > MAX_FIELD_LENGTH for v in kept] + [False], dtype=bool
    )
    problems.value(long[codes], column, text, f"is longer than {MAX_FIELD_LENGTH} characters")
    return np.asarray(values, dtype=object)


def _whole_number_text(value: str) -> str:
    return re.sub(r"^([+-]?\d+)\.0+$", r"\1", value)


def _test_dates(
    raw: pd.DataFrame, text: Mapping[str, pd.Series], problems: _Problems, tokens: frozenset[str]
) -> _ParsedDates:
    """Fecha as typed; where it is absent, the date from the Año, Mes and Día columns."""
    dates = parse_dates(text[FECHA], tokens)
    problems.value(
        dates.invalid, FECHA, text[FECHA], "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)"
    )
    if not any(part in raw.columns for part in DATE_PARTS):
        return dates
    parts = [parse_numbers(text[c], {}, tokens) for c in DATE_PARTS]
    given = ~np.logical_and.reduce([p.missing for p in parts])
    todo = dates.missing & given
    if not todo.any():
        return dates
    year, month, day = (p.values for p in parts)
    with np.errstate(invalid="ignore"):
        whole = np.logical_and.reduce([np.mod(v, 1.0) == 0 for v in (year, month, day)])
        plausible = whole & (year >= 1900) & (year <= 2200)
    built = pd.to_datetime(
        pd.DataFrame(
            {
                "year": np.where(todo & plausible, year, 2000),
                "month": np.where(todo & plausible, month, 1),
                "day": np.where(todo & plausible, day, 1),
            }
        ),
        errors="coerce",
    ).to_numpy(dtype="datetime64[ns]")
    impossible = todo & (~plausible | np.isnat(built))
    shown = text[DATE_PARTS[0]] + "/" + text[DATE_PARTS[1]] + "/" + text[DATE_PARTS[2]]
    problems.value(
        impossible,
        "/".join(DATE_PARTS),
        shown.str.replace("nan", "", regex=False),
        "is not a date (year/month/day as whole numbers)",
    )
    values = np.where(todo & ~impossible, built, dates.values)
    return dataclasses.replace(dates, values=values, missing=dates.missing & ~todo)


def _calipers(
    numbers: Mapping[str, _Parsed],
    text: Mapping[str, pd.Series],
    min_readings: int,
    problems: _Problems,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Readings with gaps filled by the mean of the others, CalibreProm last; and the fill count."""
    fill = fill_calipers(
        np.column_stack([numbers[c].values for c in CALIBRES]),
        np.column_stack([numbers[c].missing for c in CALIBRES]),
        numbers[CALIBRE_PROM].values,
        min_readings,
    )
    problems.add(fill.too_few, lambda rows: [fill.shortfall(r) for r in rows])
    means = fill.readings_mean
    problems.value(
        fill.inconsistent,
        CALIBRE_PROM,
        text[CALIBRE_PROM],
        lambda rows: [f"does not match the mean of the readings ({means[r]:.2f} µm)" for r in rows],
    )
    return np.column_stack([fill.readings, fill.prom]), fill.n_filled


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


def _rejected_rows(raw: pd.DataFrame, problems: _Problems, rows: NDArray[np.intp]) -> pd.DataFrame:
    """The rejected rows exactly as read, with where they were and everything wrong with them."""
    original = raw.iloc[rows].reset_index(drop=True)
    values = {c: original[c] for c in original.columns if c != SOURCE_ROW}
    return pd.DataFrame(
        {
            SOURCE_ROW: np.asarray(original[SOURCE_ROW], dtype=np.int64),
            REASON: pd.Series(problems.reasons(rows), dtype="str"),
            **values,
        }
    )
