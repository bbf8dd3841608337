"""Raw lab rows (text, as typed) in; clean records and rejected rows with their reasons out.

Cells are parsed by :mod:`.parsing` (whole columns at a time: a lab export can hold a million
rows), the record's identity, test and flags come from :mod:`.identity`, structure names from
:mod:`.structures`, and repeats between rows are :mod:`.deduplication`'s job. The rules are the
declared ones (:mod:`.rules`, :mod:`.dates`), which batch scoring applies too.

A row is rejected, never repaired by guesswork, when a value is impossible or unreadable; the
reason lists every problem of the row (:mod:`.problems`), each naming the column and the value
as it was typed.
The only repairs are the documented ones: missing caliper readings are filled from the other
readings of the same sample (and counted), and a missing ``CalibreProm`` is computed.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.calipers import fill_calipers
from permeability.record.dates import NOT_A_DATE, DatePart, check_date_parts
from permeability.record.identity import (
    RecordRules,
    assign_test_ids,
    censor_below_limit,
    control_character_problem,
    field_text_problem,
    join_key,
    non_product_mask,
    resolve_record_key,
    whole_number_text,
)
from permeability.record.parsing import (
    UNITS,
    _as_text,
    _Parsed,
    _ParsedDates,
    _placeholders,
    missing_tokens,
    parse_dates,
    parse_numbers,
)
from permeability.record.problems import Problems
from permeability.record.rules import (
    IMPUTED_COLUMN,
    NOT_A_SAMPLE_NUMBER,
    NOT_A_STRUCTURE_NAME,
    RANGE_RULES,
    absent_required_columns,
    caliper_mean_problem,
    not_sample_numbers,
    structure_names_ok,
)
from permeability.record.schema import (
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
from permeability.record.structures import parse_structure

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
#: A result written as under a value ("<0.01", "< 0,005", "≤ 0.01").
_BELOW_SIGN: Final = r"^\s*[<≤]\s*"

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
    missing = absent_required_columns(present, min_caliper_readings, REQUIRED_COLUMNS)
    if missing:
        found = ", ".join(repr(h) for h in headers) or "none"
        raise InvalidInputError(
            f"source {source_label} lacks required column(s) {', '.join(missing)}; "
            f"columns found: {found}"
        )


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
    missing values. ``aliases`` comes from :func:`permeability.record.structures.build_alias_map`;
    ``rules`` are the record rules of :mod:`permeability.record.identity` (defaults when None).
    """
    rules = rules or RecordRules()
    tokens = missing_tokens(rules.missing_tokens)
    key = resolve_record_key(rules.record_key, list(raw.columns))
    n = len(raw)
    text = {c: _as_text(raw.get(c), n) for c in SOURCE_COLUMNS}
    problems = Problems(n)
    # "< 0,01": the lab's own way to write a result under what its instrument reads.
    stated_below = np.array(text[PERMEABILIDAD].str.match(_BELOW_SIGN).fillna(False), dtype=bool)
    wvtr_text = text[PERMEABILIDAD].str.replace(_BELOW_SIGN, "", regex=True)
    numbers = {
        c: parse_numbers(wvtr_text if c == PERMEABILIDAD else text[c], UNITS[c], tokens)
        for c in RECORD_COLUMNS
        if c in UNITS
    }
    for column, parsed in numbers.items():
        problems.value(parsed.invalid, column, text[column], parsed.problem)
    for column in REQUIRED_COLUMNS:
        if column in numbers:
            problems.missing(numbers[column].missing, column, text[column])
    _check_sample_ids(numbers[MUESTRA].values, text[MUESTRA], problems)
    wvtr, censored = censor_below_limit(numbers[PERMEABILIDAD].values, rules.detection_limit)
    with np.errstate(invalid="ignore"):
        stated_below &= wvtr > 0  # "< 0" or "< -1" stays an impossible value
    censored = censored | stated_below  # "< x": at most x, stored at x (or at the limit)
    numbers[PERMEABILIDAD] = dataclasses.replace(numbers[PERMEABILIDAD], values=wvtr)
    for column, rule in RANGE_RULES.items():
        outside = rule.outside(numbers[column].values)
        problems.value(outside, column, text[column], rule.problem)
    structures, layers = _normalise_structures(text[ESTRUCTURA], aliases, problems, tokens)
    dates = _test_dates(raw, text, problems, tokens)
    fields = {c: _record_field(c, text[c], problems, tokens) for c in RECORD_FIELDS}
    if key == (CONSECUTIVO,):
        problems.add(
            pd.isna(fields[CONSECUTIVO]) & ~np.asarray(numbers[MUESTRA].missing),
            lambda rows: [f"{CONSECUTIVO} is missing (it is the record key)"] * len(rows),
        )
    readings, imputed = _calipers(numbers, text, min_caliper_readings, problems)

    bad = problems.bad
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


def _check_sample_ids(ids: NDArray[np.float64], text: pd.Series, problems: Problems) -> None:
    problems.value(not_sample_numbers(ids), MUESTRA, text, NOT_A_SAMPLE_NUMBER)


def _normalise_structures(
    text: pd.Series, aliases: Mapping[str, str], problems: Problems, tokens: frozenset[str]
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    """Canonical names and their layers, computed once per distinct spelling."""
    codes, uniques = pd.factorize(text.str.strip())
    spellings = [str(u) for u in uniques]
    gone = _placeholders(spellings, tokens) | np.array([not u for u in spellings], dtype=bool)
    missing = (codes < 0) | np.r_[gone, True][codes]
    problems.missing(missing, ESTRUCTURA, text)
    # The record text rule first: canonical spelling would turn a tab into a space and keep a NUL.
    found = np.array([*(control_character_problem(u) for u in spellings), None])[codes]
    controlled = pd.notna(found)
    problems.value(controlled, ESTRUCTURA, text, lambda rows: list(found[rows]))
    parsed = [parse_structure(u, aliases) for u in spellings]
    canonical = [p.name for p in parsed]
    names = np.array([*canonical, None], dtype=object)[codes]  # code -1 picks the None
    layers = np.array([*(p.layers_text for p in parsed), None], dtype=object)[codes]
    unshaped = ~missing & ~controlled & ~np.r_[structure_names_ok(canonical), True][codes]
    problems.value(unshaped, ESTRUCTURA, text, NOT_A_STRUCTURE_NAME)
    return np.asarray(names, dtype=object), np.asarray(layers, dtype=object)


def _record_field(
    column: str, text: pd.Series, problems: Problems, tokens: frozenset[str]
) -> NDArray[np.object_]:
    """A free-text record field (record number, reference, analyst): trimmed, or None.

    The rules (:func:`~permeability.record.identity.field_text_problem`, '17.0' is 17) are the
    ones the API and batch scoring apply to the same fields.
    """
    codes, uniques = pd.factorize(text.str.strip())
    spellings = [str(u) for u in uniques]
    gone = _placeholders(spellings, tokens) | np.array([not u for u in spellings], dtype=bool)
    kept = [None if g else whole_number_text(u) for u, g in zip(spellings, gone, strict=True)]
    values = np.array([*kept, None], dtype=object)[codes]
    found = np.array([None if v is None else field_text_problem(v) for v in kept] + [None])
    problems.value(pd.notna(found[codes]), column, text, lambda rows: list(found[codes[rows]]))
    return np.asarray(values, dtype=object)


def _test_dates(
    raw: pd.DataFrame, text: Mapping[str, pd.Series], problems: Problems, tokens: frozenset[str]
) -> _ParsedDates:
    """Fecha as typed; where it is absent, the date from the Año, Mes and Día columns."""
    dates = parse_dates(text[FECHA], tokens)
    problems.value(dates.invalid, FECHA, text[FECHA], NOT_A_DATE)
    if not any(part in raw.columns for part in DATE_PARTS):
        return dates
    parsed = {c: parse_numbers(text[c], {}, tokens) for c in DATE_PARTS}
    parts = {c: DatePart(p.values, ~p.missing, text[c]) for c, p in parsed.items()}
    if not (dates.missing & np.logical_or.reduce([p.given for p in parts.values()])).any():
        return dates
    built = check_date_parts(parts, problems, where=dates.missing)
    found = dates.missing & ~np.isnat(built)
    values = np.where(found, built, dates.values)
    return dataclasses.replace(dates, values=values, missing=dates.missing & ~found)


def _calipers(
    numbers: Mapping[str, _Parsed],
    text: Mapping[str, pd.Series],
    min_readings: int,
    problems: Problems,
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
        lambda rows: [caliper_mean_problem(means[r]) for r in rows],
    )
    return np.column_stack([fill.readings, fill.prom]), fill.n_filled


def _rejected_rows(raw: pd.DataFrame, problems: Problems, rows: NDArray[np.intp]) -> pd.DataFrame:
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
