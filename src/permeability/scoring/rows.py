"""Input rows of a batch -> the numbers, structures and per-row errors scoring needs.

Text is read exactly as acquisition reads it (decimal commas, units such as "16.4 µm",
placeholders such as "n/a" = missing), and missing caliper readings are repaired by the same
rule (:func:`permeability.record.calipers.fill_calipers`): a lab file acquisition accepts is
scored the same way. The optional record fields (``CONSECUTIVO``, ``Referencia``, ``Fecha`` or
``Año``/``Mes``/``Día``) are checked by :mod:`permeability.record.request_fields`, and a
structure the version refuses as a non-product is a row error saying so. Every check runs on whole columns; messages are worded only for the
rows that fail, and every problem of a row is said, each naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.modelling.served import LoadedModel
from permeability.record.calipers import CaliperFill, fill_calipers
from permeability.record.identity import control_character_problem
from permeability.record.parsing import UNITS, parse_numbers
from permeability.record.request_fields import (
    RecordFields,
    check_record_fields,
    non_product,
    non_product_message,
)
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    MUESTRA,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
    caliper_mean_tolerance,
)

FloatArray = NDArray[np.float64]

#: The seed's request fields: the columns scoring reads (files may lack the optional ones).
INPUT_FIELDS: Final = (MUESTRA, GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM)
NUMERIC_FIELDS: Final = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM)
#: Same default as acquisition, so both accept the same rows unless configured apart.
#: (low, high, low bound exclusive) per numeric field, from record/schema.py.
RANGES: Final[Mapping[str, tuple[float, float, bool]]] = {
    GRADOS_C: (*TEMPERATURE_RANGE_C, False),
    PORC_HUMEDAD: (*HUMIDITY_RANGE_PCT, True),
    **{c: (*CALIPER_RANGE_UM, True) for c in (*CALIBRES, CALIBRE_PROM)},
}
UNITS_TEXT: Final = {
    GRADOS_C: "°C",
    PORC_HUMEDAD: "% RH",
    **{c: "µm" for c in (*CALIBRES, CALIBRE_PROM)},
}
#: Fields that may be absent from a file: a caliper the fill rule can do without, the mean.
_CALIPER_FIELDS: Final = (*CALIBRES, CALIBRE_PROM)


class _Problems:
    """Per-row messages, collected check by check (work only for the rows that fail)."""

    def __init__(self, n: int) -> None:
        self.messages: list[list[str] | None] = [None] * n
        self.bad = np.zeros(n, dtype=bool)

    def add(self, mask: NDArray[np.bool_], message: Callable[[int], str]) -> None:
        if not mask.any():
            return
        for i in np.flatnonzero(mask):
            entry = self.messages[i]
            if entry is None:
                entry = self.messages[i] = []
            entry.append(message(int(i)))
        self.bad |= mask

    def texts(self) -> NDArray[np.object_]:
        texts = np.full(len(self.messages), "", dtype=object)
        for i in np.flatnonzero(self.bad):
            texts[i] = "; ".join(self.messages[i] or ())
        return texts


def as_text(value: Any) -> str:
    """A value as a message shows it: text as typed, anything else as its repr."""
    return value if isinstance(value, str) else repr(value)


# -- numbers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Numbers:
    values: FloatArray
    missing: NDArray[np.bool_]
    problem: NDArray[np.object_]  # None, or what is wrong with the value ("is not a number")

    @cached_property
    def unreadable(self) -> NDArray[np.bool_]:
        """Typed but not a number (asked by several checks; an object scan costs ms per 100k)."""
        return np.asarray(pd.notna(self.problem)) & ~self.missing

    @property
    def usable(self) -> NDArray[np.bool_]:
        return ~self.missing & ~self.unreadable


def _parse_numeric(column: pd.Series, name: str) -> _Numbers:
    """Numbers pass through; text is read exactly as acquisition reads it (decimal commas,
    units such as "16.4 µm", placeholders such as "n/a" = missing); booleans and other JSON
    values are not numbers."""
    n = len(column)
    if pd.api.types.is_bool_dtype(column.dtype):
        return _Numbers(
            np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, "is not a number", dtype=object)
        )
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return _Numbers(values, np.isnan(values), np.full(n, None, dtype=object))
    if pd.api.types.is_string_dtype(column.dtype) and not pd.api.types.is_object_dtype(
        column.dtype
    ):
        parsed = parse_numbers(column.reset_index(drop=True), UNITS[name])
        return _Numbers(parsed.values, parsed.missing, parsed.problem)
    return _parse_mixed(column, name)


def _parse_mixed(column: pd.Series, name: str) -> _Numbers:
    """JSON values of any type: numbers as they are, text through the acquisition parser."""
    raw = column.to_numpy(dtype=object)
    n = len(raw)
    kinds = np.array([_kind(v) for v in raw], dtype=np.int8)
    values = np.full(n, np.nan)
    missing = kinds == _MISSING
    problem = np.full(n, None, dtype=object)
    numbers = kinds == _NUMBER_KIND
    values[numbers] = [_to_float(v) for v in raw[numbers]]
    missing |= numbers & np.isnan(values)
    texts = np.flatnonzero(kinds == _TEXT)
    if len(texts):
        parsed = parse_numbers(pd.Series(raw[texts], dtype="str"), UNITS[name])
        values[texts] = parsed.values
        missing[texts] = parsed.missing
        problem[texts] = parsed.problem
    problem[kinds == _OTHER] = "is not a number"
    return _Numbers(values, missing, problem)


_MISSING, _NUMBER_KIND, _TEXT, _OTHER = 0, 1, 2, 3


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        return math.inf if value > 0 else -math.inf


def _kind(value: Any) -> int:
    if value is None:
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return _OTHER
    if isinstance(value, int | float | np.integer | np.floating):
        return _NUMBER_KIND
    if isinstance(value, str):
        return _TEXT
    return _OTHER


def _check_range(name: str, parsed: _Numbers, problems: _Problems) -> None:
    low, high, exclusive = RANGES[name]
    values = parsed.values
    with np.errstate(invalid="ignore"):
        below = values <= low if exclusive else values < low
        bad = parsed.usable & (below | (values > high) | ~np.isfinite(values))
    opening = "(" if exclusive else "["
    unit = UNITS_TEXT[name]
    problems.add(
        bad,
        lambda i: f"{name} must be in {opening}{low:g}, {high:g}] {unit}, got {values[i]:g}",
    )


def _report_missing(name: str, parsed: _Numbers, problems: _Problems) -> None:
    problems.add(parsed.missing, lambda i: f"{name} is missing")


def _report_unreadable(name: str, column: pd.Series, parsed: _Numbers, problems: _Problems) -> None:
    if parsed.unreadable.any():
        raw = column.to_numpy(dtype=object)
        problems.add(parsed.unreadable, lambda i: f"{name} {as_text(raw[i])} {parsed.problem[i]}")


def _check_muestra(column: pd.Series, problems: _Problems) -> FloatArray:
    parsed = _parse_numeric(column, MUESTRA)
    _report_missing(MUESTRA, parsed, problems)
    _report_unreadable(MUESTRA, column, parsed, problems)
    values = parsed.values
    with np.errstate(invalid="ignore"):
        whole = (values >= 0) & (values <= 2**53) & (np.floor(values) == values)
    problems.add(
        parsed.usable & ~whole,
        lambda i: f"{MUESTRA} must be a whole number ≥ 0, got {values[i]:g}",
    )
    return values


def _fill_calipers(
    parsed: dict[str, _Numbers], min_readings: int, problems: _Problems
) -> CaliperFill:
    """Acquisition's repair: gaps get the mean of the usable readings; too few is an error."""
    fill = fill_calipers(
        np.column_stack([parsed[c].values for c in CALIBRES]),
        np.column_stack([parsed[c].missing for c in CALIBRES]),
        parsed[CALIBRE_PROM].values,
        min_readings,
    )
    problems.add(fill.too_few, fill.shortfall)
    stated = parsed[CALIBRE_PROM].values
    means = fill.readings_mean
    problems.add(
        fill.inconsistent,
        lambda i: (
            f"{CALIBRE_PROM} {stated[i]:g} is inconsistent with the mean of the readings "
            f"{means[i]:.2f} (tolerance ± {caliper_mean_tolerance(means[i]):.2f} µm)"
        ),
    )
    return fill


# -- the filled note --------------------------------------------------------------------------


def _filled_notes(
    fill: CaliperFill, valid: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], list[str]]:
    """The ``filled`` note of each row as (codes, distinct texts); "" (code 0) when nothing was
    filled or the row was not scored. Worded once per pattern of gaps (at most 64)."""
    flags = np.column_stack([fill.filled, fill.prom_computed]) & valid[:, None]
    pattern = flags.astype(np.int64) @ (1 << np.arange(flags.shape[1], dtype=np.int64))
    codes, patterns = pd.factorize(np.r_[0, pattern])
    texts = [_filled_text(int(p)) for p in patterns]
    return np.asarray(codes[1:], dtype=np.int64), texts


def _filled_text(pattern: int) -> str:
    """E.g. 'Calibre3, CalibreProm filled with the mean of Calibre1, Calibre2, Calibre4, Calibre5'."""
    if pattern == 0:
        return ""
    fields = (*CALIBRES, CALIBRE_PROM)
    filled = [f for bit, f in enumerate(fields) if pattern >> bit & 1]
    typed = [c for bit, c in enumerate(CALIBRES) if not pattern >> bit & 1]
    return f"{', '.join(filled)} filled with the mean of {', '.join(typed)}"


# -- structures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Structures:
    codes: NDArray[np.intp]  # into categories; -1 where missing
    categories: list[str]  # distinct canonical names


def _structures(column: pd.Series, loaded: LoadedModel, problems: _Problems) -> _Structures:
    """Canonical names (normalised once per distinct spelling); unknown ones are row errors."""
    try:
        raw_codes, uniques = pd.factorize(column, use_na_sentinel=True)
    except TypeError:  # a list or an object in a JSON record: not text, like any other non-str
        raw_codes, uniques = pd.factorize(column.map(_hashable), use_na_sentinel=True)
    canonical: list[str | None] = []
    controls: list[str | None] = []  # acquisition's record text rule, same words
    for raw in uniques:
        control = control_character_problem(raw.strip()) if isinstance(raw, str) else None
        controls.append(control)
        if not isinstance(raw, str) or not raw.strip() or control is not None:
            canonical.append(None)
            continue
        canonical.append(loaded.model.features.canonical_structure(raw))
    categories = sorted({name for name in canonical if name is not None})
    position = {name: i for i, name in enumerate(categories)}
    remap = np.array([position.get(name, -1) if name else -1 for name in canonical] + [-1])
    codes = remap[raw_codes]  # raw code -1 (missing) picks the trailing -1
    controlled = np.array([c is not None for c in controls] + [False], dtype=bool)[raw_codes]
    problems.add(
        controlled,
        lambda i: f"{ESTRUCTURA} {uniques[raw_codes[i]]!r} {controls[raw_codes[i]]}",
    )
    problems.add((codes < 0) & ~controlled, lambda i: f"{ESTRUCTURA} is missing or not text")
    # Non-products first, and never also called unknown: "not a product" is the reason.
    patterns = loaded.model.non_product
    refused = np.array(
        [bool(patterns) and non_product(name, patterns) for name in categories] + [False],
        dtype=bool,
    )
    problems.add(
        refused[codes],
        lambda i: non_product_message(uniques[raw_codes[i]], categories[codes[i]]),
    )
    known = loaded.known_structures
    stand_in = getattr(loaded.model.features, "stand_in", None)
    unknown = np.array(
        [
            name not in known and not refused[i] and (stand_in is None or stand_in(name) is None)
            for i, name in enumerate(categories)
        ]
        + [False],
        dtype=bool,
    )
    listed = ", ".join(sorted(known))
    problems.add(
        unknown[codes],
        lambda i: (
            f"{ESTRUCTURA} {as_text(uniques[raw_codes[i]])} ({categories[codes[i]]}) is not "
            f"known to version {loaded.version} and is not a laminate of known layers whose "
            f"family the version learnt; known structures: {listed}"
        ),
    )
    return _Structures(np.asarray(codes, dtype=np.intp), categories)


def _hashable(value: Any) -> Any:
    """``value``, or a marker (not text) when it cannot be a dictionary key."""
    try:
        hash(value)
    except TypeError:
        return _NOT_TEXT
    return value


_NOT_TEXT = object()


# -- the whole check --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedRows:
    """What scoring needs from the input: numbers (calipers filled), structures, errors."""

    numbers: dict[str, FloatArray]
    muestra: FloatArray
    structure_codes: NDArray[np.intp]
    structure_categories: list[str]
    errors: NDArray[np.object_]
    valid: NDArray[np.bool_]
    filled_codes: NDArray[np.int64]  # into filled_texts; 0 ("") when nothing was filled
    filled_texts: list[str]
    record_fields: RecordFields


def check_rows(frame: pd.DataFrame, loaded: LoadedModel, min_readings: int) -> CheckedRows:
    """Parse and check every row of ``frame`` (which has every column of INPUT_FIELDS)."""
    n = len(frame)
    problems = _Problems(n)
    muestra = _check_muestra(frame[MUESTRA], problems)
    parsed = {name: _parse_numeric(frame[name], name) for name in NUMERIC_FIELDS}
    for name in NUMERIC_FIELDS:
        if name not in _CALIPER_FIELDS:  # missing readings are the fill rule's business
            _report_missing(name, parsed[name], problems)
        _report_unreadable(name, frame[name], parsed[name], problems)
        _check_range(name, parsed[name], problems)
    fill = _fill_calipers(parsed, min_readings, problems)
    structures = _structures(frame[ESTRUCTURA], loaded, problems)
    record_fields = check_record_fields(frame, problems)
    numbers = {
        GRADOS_C: parsed[GRADOS_C].values,
        PORC_HUMEDAD: parsed[PORC_HUMEDAD].values,
        **{c: fill.readings[:, i] for i, c in enumerate(CALIBRES)},
        CALIBRE_PROM: fill.prom,
    }
    valid = ~problems.bad
    filled_codes, filled_texts = _filled_notes(fill, valid)
    return CheckedRows(
        numbers,
        muestra,
        structures.codes,
        structures.categories,
        problems.texts(),
        valid,
        filled_codes,
        filled_texts,
        record_fields,
    )


def with_required_columns(
    frame: pd.DataFrame, missing_columns: str, min_readings: int
) -> pd.DataFrame:
    """``frame`` with every INPUT_FIELDS column; an absent one is empty in every row.

    ``"refuse"`` (files) raises when a column the rows cannot do without is absent, as
    acquisition does: the sample fields, or so many readings that fewer than ``min_readings``
    remain (CalibreProm may be absent: it is computed). ``"rows"`` (JSON records) lets each
    row report what it lacks.
    """
    absent = [c for c in INPUT_FIELDS if c not in frame.columns]
    if not absent:
        return frame
    if missing_columns == "refuse":
        _refuse_unscorable_file(frame, absent, min_readings)
    completed = frame.copy()
    for column in absent:
        completed[column] = None
    return completed


def _refuse_unscorable_file(frame: pd.DataFrame, absent: list[str], min_readings: int) -> None:
    absent_readings = [c for c in CALIBRES if c in absent]
    fatal = [c for c in absent if c not in _CALIPER_FIELDS]
    needed = ""
    if len(CALIBRES) - len(absent_readings) < min_readings:
        fatal.extend(absent_readings)
        needed = f" (at least {min_readings} of {', '.join(CALIBRES)} needed)"
    if fatal:
        raise InvalidInputError(
            f"input lacks column(s) {', '.join(fatal)}{needed}; found: "
            f"{', '.join(map(str, frame.columns)) or 'none'}"
        )


def check_min_readings(min_readings: int) -> int:
    """A reading count the fill rule can use (1..5), or a clear error."""
    if not 1 <= min_readings <= len(CALIBRES):
        raise InvalidInputError(
            f"min_caliper_readings must be between 1 and {len(CALIBRES)}, got {min_readings}"
        )
    return min_readings
