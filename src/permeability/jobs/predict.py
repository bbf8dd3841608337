"""Batch scoring: a table of lab records -> the same rows with a guide value, interval and decision.

One code path for ``POST /inference/batch`` (JSON records or an uploaded CSV/xlsx) and for
``permeability predict --input in.csv --output out.csv``. It is vectorised end to end (no
Python work per valid row), because whole lab files and back-catalogues are scored this way.

Every input row comes out, in order, with its original values and the added columns
``prediction``, ``lower``, ``upper``, ``p_exceed``, ``decision``, ``error`` plus ``structure``
(canonical name), ``limit`` (the specification limit applied, if any) and ``decision_reason``.
A row that cannot be scored (missing or non-numeric field, out of physical range, caliper mean
inconsistent with the readings, a structure the version does not know) keeps empty outputs and
says every problem in ``error``; it never fails the rest of the batch. A file that lacks whole
columns is refused up front (that is a wrong file, not a bad row).
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel

from permeability.config import InferenceParams
from permeability.domain.cleaning import UNITS, parse_numbers
from permeability.domain.intervals import decide_many
from permeability.domain.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_MEAN_ABS_TOL_UM,
    CALIPER_MEAN_REL_TOL,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    MUESTRA,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
)
from permeability.domain.specs import (
    REASON_MATCHED,
    REASON_NO_LIMIT,
    REASON_THICKNESS,
    SpecificationSet,
)
from permeability.errors import InvalidInputError, PermeabilityError
from permeability.io.model_cache import LoadedModel, ModelCache
from permeability.io.prediction_log import PredictionLog, predictions_uri
from permeability.io.specs import load_configured_specs
from permeability.jobs.base import job_context
from permeability.settings import Settings

FloatArray = NDArray[np.float64]

#: Columns every input must have (the seed's request fields).
INPUT_FIELDS: Final = (MUESTRA, GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM)
NUMERIC_FIELDS: Final = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM)
#: Added to every row, in this order (the issue's six first).
OUTPUT_COLUMNS: Final = (
    "prediction",
    "lower",
    "upper",
    "p_exceed",
    "decision",
    "error",
    "structure",
    "limit",
    "decision_reason",
)
#: (low, high, low bound exclusive) per numeric field, from domain/schema.py.
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
_SUPPORTED_FILES: Final = (".csv", ".xlsx")
STAGE: Final = "predict"
PREDICT_CHUNK_ROWS: Final = 131_072


@dataclass(frozen=True)
class DecisionPolicy:
    """Interval level and the probability thresholds of the approve/retest/reject rule."""

    level: float
    approve_below: float
    reject_above: float

    @classmethod
    def from_params(cls, params: InferenceParams, level: float | None = None) -> DecisionPolicy:
        chosen = params.interval_level if level is None else level
        if not 0.0 < chosen < 1.0:
            raise InvalidInputError(f"level must be between 0 and 1 (exclusive), got {chosen}")
        return cls(chosen, params.approve_below, params.reject_above)


@dataclass(frozen=True)
class ScoredBatch:
    """The scored rows (inputs + outputs, input order) and what to put in the prediction log.

    The log's columns are assembled only when asked for (:meth:`log_columns`), so measuring
    the scoring does not measure the bookkeeping, and a caller without a log pays nothing.
    """

    frame: pd.DataFrame
    version: str
    level: float
    seconds: float
    _log: _LogSource

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def failed(self) -> int:
        return int((self.frame["error"] != "").sum())

    @property
    def predicted(self) -> int:
        return self.rows - self.failed

    def decision_counts(self) -> dict[str, int]:
        counts = self.frame["decision"].value_counts()
        return {str(k): int(v) for k, v in counts.items() if int(v) > 0}

    def log_columns(self) -> tuple[dict[str, Any], int]:
        """(columns, count) for :meth:`PredictionLog.append_columns`: scored rows only."""
        return self._log.columns(), len(self._log.rows)


# -- parsing and validation -------------------------------------------------------------------


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


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


@dataclass(frozen=True)
class _Numbers:
    values: FloatArray
    missing: NDArray[np.bool_]
    problem: NDArray[np.object_]  # None, or what is wrong with the value ("is not a number")


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


def _check_range(
    name: str, values: FloatArray, usable: NDArray[np.bool_], problems: _Problems
) -> None:
    low, high, exclusive = RANGES[name]
    with np.errstate(invalid="ignore"):
        below = values <= low if exclusive else values < low
        bad = usable & (below | (values > high) | ~np.isfinite(values))
    opening = "(" if exclusive else "["
    unit = UNITS_TEXT[name]
    problems.add(
        bad,
        lambda i: f"{name} must be in {opening}{low:g}, {high:g}] {unit}, got {values[i]:g}",
    )


def _report_unparsed(name: str, column: pd.Series, parsed: _Numbers, problems: _Problems) -> None:
    problems.add(parsed.missing, lambda i: f"{name} is missing")
    invalid = np.asarray(pd.notna(parsed.problem)) & ~parsed.missing
    if invalid.any():
        raw = column.to_numpy(dtype=object)
        problems.add(invalid, lambda i: f"{name} {_as_text(raw[i])} {parsed.problem[i]}")


def _check_muestra(column: pd.Series, problems: _Problems) -> FloatArray:
    parsed = _parse_numeric(column, MUESTRA)
    _report_unparsed(MUESTRA, column, parsed, problems)
    values = parsed.values
    usable = ~parsed.missing & np.asarray(pd.isna(parsed.problem))
    with np.errstate(invalid="ignore"):
        bad = usable & ~((values >= 0) & (values <= 2**53) & (np.floor(values) == values))
    problems.add(bad, lambda i: f"{MUESTRA} must be a whole number ≥ 0, got {values[i]:g}")
    return values


def _caliper_consistency(
    numbers: Mapping[str, FloatArray], usable: NDArray[np.bool_], problems: _Problems
) -> None:
    """Vectorised :func:`permeability.domain.schema.caliper_mean_consistent`."""
    readings = np.column_stack([numbers[c] for c in CALIBRES]).mean(axis=1)
    mean = numbers[CALIBRE_PROM]
    tolerance = np.maximum(CALIPER_MEAN_ABS_TOL_UM, CALIPER_MEAN_REL_TOL * np.abs(readings))
    with np.errstate(invalid="ignore"):
        bad = usable & ~(np.abs(mean - readings) <= tolerance)
    problems.add(
        bad,
        lambda i: (
            f"{CALIBRE_PROM} {mean[i]:g} is inconsistent with the mean of the readings "
            f"{readings[i]:.2f} (tolerance ± {tolerance[i]:.2f} µm)"
        ),
    )


@dataclass(frozen=True)
class _Structures:
    codes: NDArray[np.intp]  # into categories; -1 where missing
    categories: list[str]  # distinct canonical names


def _structures(column: pd.Series, loaded: LoadedModel, problems: _Problems) -> _Structures:
    """Canonical names (normalised once per distinct spelling); unknown ones are row errors."""
    raw_codes, uniques = pd.factorize(column, use_na_sentinel=True)
    canonical: list[str | None] = []
    for raw in uniques:
        if not isinstance(raw, str) or not raw.strip():
            canonical.append(None)
            continue
        canonical.append(loaded.model.features.canonical_structure(raw))
    categories = sorted({name for name in canonical if name is not None})
    position = {name: i for i, name in enumerate(categories)}
    remap = np.array([position.get(name, -1) if name else -1 for name in canonical] + [-1])
    codes = remap[raw_codes]  # raw code -1 (missing) picks the trailing -1
    problems.add(codes < 0, lambda i: f"{ESTRUCTURA} is missing or not text")
    known = loaded.known_structures
    unknown = np.array([name not in known for name in categories] + [False], dtype=bool)
    listed = ", ".join(sorted(known))
    problems.add(
        unknown[codes],
        lambda i: (
            f"{ESTRUCTURA} {_as_text(uniques[raw_codes[i]])} ({categories[codes[i]]}) is not "
            f"known to version {loaded.version}; known structures: {listed}"
        ),
    )
    return _Structures(np.asarray(codes, dtype=np.intp), categories)


@dataclass(frozen=True)
class _Validated:
    numbers: dict[str, FloatArray]
    muestra: FloatArray
    structure_codes: NDArray[np.intp]
    structure_categories: list[str]
    errors: NDArray[np.object_]
    valid: NDArray[np.bool_]


def _validate(frame: pd.DataFrame, loaded: LoadedModel) -> _Validated:
    n = len(frame)
    problems = _Problems(n)
    muestra = _check_muestra(frame[MUESTRA], problems)
    numbers: dict[str, FloatArray] = {}
    all_usable = np.ones(n, dtype=bool)
    for name in NUMERIC_FIELDS:
        parsed = _parse_numeric(frame[name], name)
        _report_unparsed(name, frame[name], parsed, problems)
        usable = ~parsed.missing & np.asarray(pd.isna(parsed.problem))
        _check_range(name, parsed.values, usable, problems)
        numbers[name] = parsed.values
        all_usable &= usable
    _caliper_consistency(numbers, all_usable, problems)
    structures = _structures(frame[ESTRUCTURA], loaded, problems)
    return _Validated(
        numbers, muestra, structures.codes, structures.categories, problems.texts(), ~problems.bad
    )


# -- scoring ----------------------------------------------------------------------------------


def _interval_factors(
    loaded: LoadedModel, names: NDArray[np.object_], codes: NDArray[np.intp], level: float
) -> tuple[FloatArray, FloatArray]:
    """Per-row multiplicative interval bounds: one conformal lookup per distinct structure."""
    low = np.empty(len(names))
    high = np.empty(len(names))
    for code, name in enumerate(names):
        low[code], high[code] = loaded.model.interval(1.0, str(name), level)
    return low[codes], high[codes]


def _exceedance(
    loaded: LoadedModel,
    prediction: FloatArray,
    names: NDArray[np.object_],
    codes: NDArray[np.intp],
    limits: FloatArray,
) -> FloatArray:
    """Conformal P(measured > limit) for rows with a limit (NaN elsewhere), grouped by structure.

    Same formula as :meth:`ConformalCalibration.p_exceed`, (1 + #{r > log L − log ŷ})/(n + 1),
    applied per structure group with one ``searchsorted`` (its own batch helper sorts the
    structure names of every row, which costs more than the scoring itself at 1M rows).
    """
    result = np.full(len(prediction), np.nan)
    has_limit = ~np.isnan(limits)
    if not has_limit.any():
        return result
    thresholds = np.log(limits, where=has_limit, out=np.zeros_like(limits)) - np.log(prediction)
    for code, name in enumerate(names):
        rows = np.flatnonzero(has_limit & (codes == code))
        if len(rows) == 0:
            continue
        residuals = loaded.model.calibration.residuals_for(str(name))
        above = len(residuals) - np.searchsorted(residuals, thresholds[rows], side="right")
        result[rows] = (1 + above) / (len(residuals) + 1)
    return result


def _categorical(codes: NDArray[np.integer[Any]], categories: Sequence[str]) -> pd.Categorical[str]:
    """Low-cardinality text columns as categoricals: no per-row Python string objects."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories)))


def _clean_frame(checked: _Validated, rows: NDArray[np.intp]) -> pd.DataFrame:
    data: dict[str, Any] = {name: checked.numbers[name][rows] for name in NUMERIC_FIELDS}
    data[ESTRUCTURA] = _categorical(checked.structure_codes[rows], checked.structure_categories)
    return pd.DataFrame(data)


def _reasons(
    specs: SpecificationSet,
    policy: DecisionPolicy,
    match_codes: NDArray[np.int8],
    limit_index: NDArray[np.int64],
    group_names: NDArray[np.object_],
    group_codes: NDArray[np.intp],
    decisions: NDArray[np.int8],
) -> tuple[NDArray[np.int64], list[str]]:
    """``decision_reason`` per row as (codes, distinct texts), worded once per distinct
    (structure, limit, reason, decision): the key is packed into one integer, so a million
    rows cost one integer factorisation."""
    n_limits = len(specs.limits) + 1
    key = (group_codes.astype(np.int64) * n_limits + (limit_index + 1)) * 4 + match_codes
    key = key * 4 + (decisions.astype(np.int64) + 1)
    codes, uniques = pd.factorize(key)
    texts: list[str] = []
    for packed in uniques:
        rest, decision_code = divmod(int(packed), 4)
        rest, match_code = divmod(rest, 4)
        structure_code, limit_slot = divmod(rest, n_limits)
        decision = DECISIONS[decision_code - 1] if decision_code else ""
        texts.append(
            _batch_reason(
                specs,
                policy,
                match_code,
                limit_slot - 1,
                str(group_names[structure_code]),
                decision,
            )
        )
    distinct, remap = np.unique(np.array(texts, dtype=object), return_inverse=True)
    return np.asarray(remap, dtype=np.int64)[codes], [str(t) for t in distinct]


def _batch_reason(
    specs: SpecificationSet,
    policy: DecisionPolicy,
    match_code: int,
    limit_index: int,
    structure: str,
    decision: str,
) -> str:
    if match_code == REASON_MATCHED:
        limit = specs.limits[limit_index].describe()
        rule = {
            "approve": f"P(WVTR > limit) < {policy.approve_below:g}",
            "reject": f"P(WVTR > limit) > {policy.reject_above:g}",
            "retest": (
                f"{policy.approve_below:g} ≤ P(WVTR > limit) ≤ {policy.reject_above:g}, "
                "too close to call: run the full test"
            ),
        }[decision]
        return f"{decision}: {rule} for limit {limit}"
    limits = specs.for_structure(structure)
    if match_code == REASON_NO_LIMIT or not limits:
        return f"no decision: no specification limit is defined for structure {structure}"
    if match_code == REASON_THICKNESS:
        bands = ", ".join(sorted({lim.band_text() for lim in limits}))
        return (
            f"no decision: mean caliper outside every thickness band with a limit for "
            f"{structure} ({bands})"
        )
    stated = "; ".join(sorted({lim.conditions_text() for lim in limits}))
    return (
        "no decision: the test conditions do not match the conditions the limits of "
        f"{structure} are stated at ({stated}), so the result cannot be judged against them"
    )


_SCORES: Final = ("prediction", "lower", "upper", "p_exceed", "limit")
DECISIONS: Final = ("approve", "retest", "reject")


def score_frame(
    frame: pd.DataFrame,
    loaded: LoadedModel,
    specs: SpecificationSet,
    policy: DecisionPolicy,
    *,
    endpoint: str = "batch",
    request_id: str | None = None,
    missing_columns: str = "refuse",
) -> ScoredBatch:
    """Score every row (see the module docstring). ``missing_columns="rows"`` turns absent
    columns into per-row errors (JSON records), ``"refuse"`` raises (files)."""
    started = time.perf_counter()
    frame = _with_required_columns(frame, missing_columns)
    n = len(frame)
    checked = _validate(frame, loaded)
    rows = np.flatnonzero(checked.valid)
    out = {name: np.full(n, np.nan) for name in _SCORES}
    decision = np.full(n, -1, dtype=np.int8)
    reason_codes = np.full(n, -1, dtype=np.int64)
    reason_texts: list[str] = []
    if len(rows):
        scored = _score_valid_rows(checked, rows, loaded, specs, policy)
        for name in _SCORES:
            out[name][rows] = scored[name]
        decision[rows] = scored["decision"]
        reason_codes[rows] = scored["reason_codes"]
        reason_texts = scored["reason_texts"]
    outputs = {
        "prediction": out["prediction"],
        "lower": out["lower"],
        "upper": out["upper"],
        "p_exceed": out["p_exceed"],
        "decision": _categorical(decision, list(DECISIONS)),
        "error": pd.Series(checked.errors, index=frame.index, dtype=object),
        "structure": _categorical(checked.structure_codes, checked.structure_categories),
        "limit": out["limit"],
        "decision_reason": _categorical(reason_codes, reason_texts),
    }
    kept = frame.drop(columns=[c for c in OUTPUT_COLUMNS if c in frame.columns])
    result = pd.concat([kept, pd.DataFrame(outputs, index=frame.index)], axis=1)
    seconds = time.perf_counter() - started
    source = _LogSource(
        checked,
        rows,
        out,
        decision,
        frame,
        loaded.version,
        policy.level,
        endpoint,
        request_id or uuid.uuid4().hex,
        seconds,
    )
    return ScoredBatch(result, loaded.version, policy.level, seconds, source)


def _score_valid_rows(
    checked: _Validated,
    rows: NDArray[np.intp],
    loaded: LoadedModel,
    specs: SpecificationSet,
    policy: DecisionPolicy,
) -> dict[str, Any]:
    """Prediction, interval, limit, P(exceed), decision and reason for the valid rows."""
    # In chunks: the model matrix of a million rows is ~600 MB; 128k rows fit in memory
    # bandwidth better and bound the peak.
    prediction = np.concatenate(
        [
            loaded.model.predict_frame(_clean_frame(checked, chunk), strict=True)
            for chunk in np.array_split(rows, max(1, math.ceil(len(rows) / PREDICT_CHUNK_ROWS)))
        ]
    )
    group_codes = checked.structure_codes[rows]
    group_names = np.asarray(checked.structure_categories, dtype=object)
    low, high = _interval_factors(loaded, group_names, group_codes, policy.level)
    matched = specs.match_coded(
        group_codes,
        [str(n) for n in group_names],
        checked.numbers[GRADOS_C][rows],
        checked.numbers[PORC_HUMEDAD][rows],
        checked.numbers[CALIBRE_PROM][rows],
    )
    limit_values = np.array([lim.max_permeability for lim in specs.limits] + [np.nan])
    limits = limit_values[matched.limit_index]  # index -1 picks the trailing NaN
    p_exceed = _exceedance(loaded, prediction, group_names, group_codes, limits)
    has_limit = ~np.isnan(limits)
    decision = np.full(len(rows), -1, dtype=np.int8)
    if has_limit.any():
        words = decide_many(p_exceed[has_limit], policy.approve_below, policy.reject_above)
        decision[has_limit] = np.select(
            [words == word for word in DECISIONS], list(range(len(DECISIONS))), -1
        )
    reason_codes, reason_texts = _reasons(
        specs, policy, matched.reason_code, matched.limit_index, group_names, group_codes, decision
    )
    return {
        "prediction": prediction,
        "lower": prediction * low,
        "upper": prediction * high,
        "p_exceed": p_exceed,
        "limit": limits,
        "decision": decision,
        "reason_codes": reason_codes,
        "reason_texts": reason_texts,
    }


def _with_required_columns(frame: pd.DataFrame, missing_columns: str) -> pd.DataFrame:
    absent = [c for c in INPUT_FIELDS if c not in frame.columns]
    if not absent:
        return frame
    if missing_columns == "refuse":
        raise InvalidInputError(
            f"input lacks column(s) {', '.join(absent)}; found: "
            f"{', '.join(map(str, frame.columns)) or 'none'}"
        )
    filled = frame.copy()
    for column in absent:
        filled[column] = None
    return filled


@dataclass(frozen=True)
class _LogSource:
    """References to what the prediction log needs; turned into columns only on demand."""

    checked: _Validated
    rows: NDArray[np.intp]
    out: Mapping[str, FloatArray]
    decision: NDArray[np.int8]
    frame: pd.DataFrame
    version: str
    level: float
    endpoint: str
    request_id: str
    seconds: float

    def columns(self) -> dict[str, Any]:
        rows = self.rows
        words = np.array([*DECISIONS, None], dtype=object)
        return {
            "timestamp": time.time(),
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "version": self.version,
            MUESTRA: self.checked.muestra[rows].astype(np.int64),
            ESTRUCTURA: self.frame[ESTRUCTURA].to_numpy(dtype=object)[rows],
            "structure": np.asarray(self.checked.structure_categories, dtype=object)[
                self.checked.structure_codes[rows]
            ],
            **{name: self.checked.numbers[name][rows] for name in NUMERIC_FIELDS},
            "prediction": self.out["prediction"][rows],
            "lower": self.out["lower"][rows],
            "upper": self.out["upper"][rows],
            "level": self.level,
            "spec_limit": self.out["limit"][rows],
            "p_exceed": self.out["p_exceed"][rows],
            "decision": words[self.decision[rows]],  # -1 picks the trailing None
            "latency_ms": self.seconds * 1000.0,
        }


# -- files ------------------------------------------------------------------------------------


def read_table(source: Path | bytes, name: str) -> pd.DataFrame:
    """A CSV (delimiter sniffed, UTF-8 or latin-1) or .xlsx file, every cell read as text."""
    suffix = Path(name).suffix.lower()
    if suffix not in _SUPPORTED_FILES:
        raise InvalidInputError(
            f"input file {name} must be one of {', '.join(_SUPPORTED_FILES)}, got '{suffix or 'no extension'}'"
        )
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data.strip():
        raise InvalidInputError(f"input file {name} is empty")
    if suffix == ".xlsx":
        return _read_xlsx(data, name)
    return _read_csv(data, name)


def _read_xlsx(data: bytes, name: str) -> pd.DataFrame:
    try:
        return pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InvalidInputError(
            f"input file {name} is not a readable .xlsx workbook: {exc}"
        ) from exc


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    text = _decode(data)
    header = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t", "|"), key=header.count)
    try:
        return pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, engine="c"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as exc:
        raise InvalidInputError(f"input file {name} is not a readable CSV: {exc}") from exc


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``.csv`` (UTF-8) or ``.xlsx``; atomically (temp file, then rename)."""
    suffix = path.suffix.lower()
    if suffix not in _SUPPORTED_FILES:
        raise InvalidInputError(f"output file {path} must end in {' or '.join(_SUPPORTED_FILES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial{suffix}")
    try:
        if suffix == ".csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_excel(partial, index=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def to_csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def jsonable_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts: NaN and infinities become null (JSON has neither)."""
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    ]
    for record in records:
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None
    return records


def records_frame(records: Sequence[Any]) -> tuple[pd.DataFrame, NDArray[np.bool_]]:
    """JSON records as a frame (non-object items become empty rows, flagged in the mask)."""
    is_object = np.array([isinstance(r, Mapping) for r in records], dtype=bool)
    rows = [dict(r) if isinstance(r, Mapping) else {} for r in records]
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(INPUT_FIELDS))
    frame.index = pd.RangeIndex(len(rows))
    return frame.astype(object) if len(frame.columns) else frame, ~is_object


class PredictFileResult(BaseModel):
    """What ``permeability predict`` reports."""

    input: str
    output: str
    version: str
    level: float
    rows: int
    predicted: int
    failed: int
    decisions: dict[str, int]
    seconds: float
    rows_per_second: float


def predict_file(
    settings: Settings,
    *,
    input_path: Path,
    output_path: Path,
    version: str | None = None,
    level: float | None = None,
) -> PredictFileResult:
    """Score a whole lab file with one version (default: the champion) and log the predictions."""
    with job_context(STAGE, settings) as ctx:
        policy = DecisionPolicy.from_params(ctx.config.inference, level)
        if input_path.resolve() == output_path.resolve():
            raise InvalidInputError(f"--output {output_path} would overwrite the input file")
        if output_path.suffix.lower() not in _SUPPORTED_FILES:
            raise InvalidInputError(f"output file {output_path} must end in .csv or .xlsx")
        if not input_path.is_file():
            raise InvalidInputError(f"input file {input_path} does not exist")
        loaded = ModelCache.from_settings(settings).get(version)
        specs = load_configured_specs(settings, ctx.config)
        frame = read_table(input_path, input_path.name)
        ctx.logger.info(
            "scoring %d rows of %s with version %s", len(frame), input_path, loaded.version
        )
        scored = score_frame(frame, loaded, specs, policy, endpoint="cli", request_id=ctx.run_id)
        write_table(scored.frame, output_path)
        _log_predictions(settings, scored)
        result = PredictFileResult(
            input=str(input_path),
            output=str(output_path),
            version=loaded.version,
            level=policy.level,
            rows=scored.rows,
            predicted=scored.predicted,
            failed=scored.failed,
            decisions=scored.decision_counts(),
            seconds=round(scored.seconds, 4),
            rows_per_second=round(scored.rows / scored.seconds, 1) if scored.seconds > 0 else 0.0,
        )
        ctx.logger.info(
            "scored %d rows (%d failed) in %.3fs -> %s",
            result.rows,
            result.failed,
            result.seconds,
            output_path,
        )
        return result


def _log_predictions(settings: Settings, scored: ScoredBatch) -> None:
    """One Delta commit for the whole file; a failure is an error (every prediction is logged)."""
    log = PredictionLog(predictions_uri(settings.resolved_feature_store_uri))
    columns, count = scored.log_columns()
    log.append_columns(columns, count)
    log.flush()
    if log.pending_rows:
        raise PermeabilityError(
            f"the output was written but the prediction log at {log.uri} could not be: "
            f"{log.last_error}"
        )
