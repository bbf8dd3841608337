"""Input rows of a batch -> the numbers, structures and per-row errors scoring needs.

Text is read exactly as acquisition reads it (decimal commas, units such as "16.4 µm",
placeholders such as "n/a" = missing), the rules are acquisition's declared ones
(:mod:`permeability.record.rules`: ranges, required fields, ``Muestra``, the caliper mean)
without the measured result, and missing caliper readings are repaired by the same rule
(:func:`permeability.record.calipers.fill_calipers`): a lab file acquisition accepts is scored
the same way. The optional record fields (``CONSECUTIVO``, ``Referencia``, ``Fecha`` or
``Año``/``Mes``/``Día``) are checked by :mod:`permeability.record.request_fields`, and a
structure the version does not know, or refuses as a non-product, is a row error saying so.
Every check runs on whole columns, and problems are collected and worded as acquisition words
them (:class:`permeability.record.problems.Problems`): only for the rows that fail, every
problem of a row, each naming the field and the value as sent.
"""

from __future__ import annotations

import math
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
from permeability.record.problems import Problems, shown
from permeability.record.request_fields import (
    RecordFields,
    check_record_fields,
    non_product,
    non_product_message,
)
from permeability.record.rules import (
    INPUT_RANGE_RULES,
    NOT_A_SAMPLE_NUMBER,
    NOT_A_STRUCTURE_NAME,
    REQUIRED_INPUTS,
    absent_required_columns,
    caliper_mean_problem,
    not_sample_numbers,
)
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    INPUT_COLUMNS,
    MUESTRA,
    PORC_HUMEDAD,
)

FloatArray = NDArray[np.float64]

#: The seed's request fields: the columns scoring reads (files may lack the optional ones).
INPUT_FIELDS: Final = (MUESTRA, *INPUT_COLUMNS)
#: The numeric ones, each with its declared range.
NUMERIC_FIELDS: Final = tuple(INPUT_RANGE_RULES)
_IS_NOT_TEXT: Final = "is not text"
_NOT_A_NUMBER: Final = "is not a number"


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
            np.full(n, np.nan), np.zeros(n, dtype=bool), np.full(n, _NOT_A_NUMBER, dtype=object)
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
    problem[kinds == _OTHER] = _NOT_A_NUMBER
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


def _check_values(frame: pd.DataFrame, problems: Problems) -> dict[str, _Numbers]:
    """Muestra and the numeric fields parsed, checked in acquisition's order (so one file gets
    the same reasons from both): values that are no number, required values absent (missing
    readings are the fill rule's business), Muestra no whole number, numbers out of range."""
    parsed = {name: _parse_numeric(frame[name], name) for name in (MUESTRA, *NUMERIC_FIELDS)}
    for name, numbers in parsed.items():
        if numbers.unreadable.any():
            problems.value(numbers.unreadable, name, frame[name], numbers.problem)
    for name in REQUIRED_INPUTS:
        if name in parsed:
            problems.missing(parsed[name].missing, name, frame[name])
    muestra = parsed[MUESTRA]
    problems.value(
        muestra.usable & not_sample_numbers(muestra.values),
        MUESTRA,
        frame[MUESTRA],
        NOT_A_SAMPLE_NUMBER,
    )
    for name, rule in INPUT_RANGE_RULES.items():
        numbers = parsed[name]
        problems.value(
            numbers.usable & rule.outside(numbers.values), name, frame[name], rule.problem
        )
    return parsed


def _fill_calipers(
    parsed: dict[str, _Numbers], stated: pd.Series, min_readings: int, problems: Problems
) -> CaliperFill:
    """Acquisition's repair: gaps get the mean of the usable readings; too few is an error."""
    fill = fill_calipers(
        np.column_stack([parsed[c].values for c in CALIBRES]),
        np.column_stack([parsed[c].missing for c in CALIBRES]),
        parsed[CALIBRE_PROM].values,
        min_readings,
    )
    problems.each(fill.too_few, fill.shortfall)
    means = fill.readings_mean
    problems.value(
        fill.inconsistent,
        CALIBRE_PROM,
        stated,
        lambda rows: [caliper_mean_problem(means[r]) for r in rows],
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


def _structures(column: pd.Series, loaded: LoadedModel, problems: Problems) -> _Structures:
    """Canonical names (normalised once per distinct spelling); unknown ones are row errors."""
    try:
        raw_codes, uniques = pd.factorize(column, use_na_sentinel=True)
    except TypeError:  # a list or an object in a JSON record: not text, like any other non-str
        raw_codes, uniques = pd.factorize(column.map(_hashable), use_na_sentinel=True)
    canonical: list[str | None] = []
    blank: list[bool] = []
    details: list[str | None] = []  # what is wrong with the value, in acquisition's words
    for raw in uniques:
        text = raw.strip() if isinstance(raw, str) else None
        name = None
        if text is None:
            detail: str | None = _IS_NOT_TEXT
        else:
            detail = control_character_problem(text) if text else None
            if text and detail is None:
                name = loaded.scorer.features.canonical_structure(raw)
                detail = None if name else NOT_A_STRUCTURE_NAME  # no layer, no letter: '///'
        canonical.append(name or None)
        blank.append(text == "")
        details.append(detail)
    problems.missing(np.array([*blank, True])[raw_codes], ESTRUCTURA, column)
    detail_of = np.array([*details, None], dtype=object)[raw_codes]
    problems.value(np.asarray(pd.notna(detail_of)), ESTRUCTURA, column, detail_of)
    categories = sorted({name for name in canonical if name is not None})
    position = {name: i for i, name in enumerate(categories)}
    remap = np.array([position.get(name, -1) if name else -1 for name in canonical] + [-1])
    codes = remap[raw_codes]  # raw code -1 (missing) picks the trailing -1
    # Non-products first, and never also called unknown: "not a product" is the reason.
    patterns = loaded.scorer.non_product
    refused = np.array(
        [bool(patterns) and non_product(name, patterns) for name in categories] + [False],
        dtype=bool,
    )
    problems.each(
        refused[codes],
        lambda i: non_product_message(uniques[raw_codes[i]], categories[codes[i]]),
    )
    known = loaded.known_structures
    stand_in = getattr(loaded.scorer.features, "stand_in", None)
    unknown = np.array(
        [
            name not in known and not refused[i] and (stand_in is None or stand_in(name) is None)
            for i, name in enumerate(categories)
        ]
        + [False],
        dtype=bool,
    )
    listed = ", ".join(sorted(known))
    problems.each(
        unknown[codes],
        lambda i: (
            f"{ESTRUCTURA} {shown(uniques[raw_codes[i]])} ({categories[codes[i]]}) is not "
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
    problems = Problems(n)
    parsed = _check_values(frame, problems)
    structures = _structures(frame[ESTRUCTURA], loaded, problems)
    record_fields = check_record_fields(frame, problems)
    fill = _fill_calipers(parsed, frame[CALIBRE_PROM], min_readings, problems)
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
        parsed[MUESTRA].values,
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
        _refuse_unscorable_file(frame, min_readings)
    completed = frame.copy()
    for column in absent:
        completed[column] = None
    return completed


def _refuse_unscorable_file(frame: pd.DataFrame, min_readings: int) -> None:
    fatal = absent_required_columns(set(frame.columns), min_readings, REQUIRED_INPUTS)
    if fatal:
        needed = (
            f" (at least {min_readings} of {', '.join(CALIBRES)} needed)"
            if any(c in CALIBRES for c in fatal)
            else ""
        )
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
