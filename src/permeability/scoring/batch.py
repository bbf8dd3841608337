"""Batch scoring: checked rows in, the same rows with guide value, interval and decision out.

It is vectorised end to end (no Python work per valid row), because whole lab files and
back-catalogues are scored this way: the model matrix is built in chunks, intervals and
P(exceed) are looked up once per structure, and text columns are categoricals.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.modelling.conformal import UNCERTAIN_WIDENING, exceedance
from permeability.modelling.served import LoadedModel
from permeability.record.calipers import MIN_CALIPER_READINGS
from permeability.record.request_fields import record_field_columns
from permeability.record.schema import CALIBRE_PROM, ESTRUCTURA, GRADOS_C, MUESTRA, PORC_HUMEDAD
from permeability.scoring.batch_reasons import decision_reasons
from permeability.scoring.decisions import DECISIONS, DecisionPolicy, decision_codes
from permeability.scoring.rows import (
    NUMERIC_FIELDS,
    CheckedRows,
    FloatArray,
    check_min_readings,
    check_rows,
    with_required_columns,
)
from permeability.scoring.specs import SpecificationSet

#: Added to every row, in this order: the repair note next to the inputs, then the issue's six,
#: then what later issues added (last, so readers of the earlier columns by position still work).
OUTPUT_COLUMNS: Final = (
    "filled",
    "prediction",
    "lower",
    "upper",
    "p_exceed",
    "decision",
    "error",
    "structure",
    "limit",
    "decision_reason",
    "below_detection_limit",
    "basis",
    "extrapolated",
)
PREDICT_CHUNK_ROWS: Final = 131_072
#: What a guide value is based on: the structure itself, or its family (an unseen laminate).
BASES: Final = ("structure", "layers")


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

    @property
    def filled_rows(self) -> int:
        """Scored rows with a missing caliper reading or CalibreProm filled (see ``filled``)."""
        return int((self.frame["filled"] != "").sum())

    def decision_counts(self) -> dict[str, int]:
        counts = self.frame["decision"].value_counts()
        return {str(k): int(v) for k, v in counts.items() if int(v) > 0}

    def log_columns(self) -> tuple[dict[str, Any], int]:
        """(columns, count) for :meth:`PredictionLog.append_columns`: scored rows only."""
        return self._log.columns(), len(self._log.rows)


_SCORES: Final = ("prediction", "lower", "upper", "p_exceed", "limit")


def score_frame(
    frame: pd.DataFrame,
    loaded: LoadedModel,
    specs: SpecificationSet,
    policy: DecisionPolicy,
    *,
    endpoint: str = "batch",
    request_id: str | None = None,
    missing_columns: str = "refuse",
    min_caliper_readings: int = MIN_CALIPER_READINGS,
) -> ScoredBatch:
    """Score every row (see :mod:`permeability.pipelines.predict`). ``missing_columns="rows"`` turns
    absent columns into per-row errors (JSON records), ``"refuse"`` raises (files).
    ``min_caliper_readings`` is acquisition's parameter: fewer readings is a row error, more
    and the missing ones are filled with their mean (said in the ``filled`` column)."""
    started = time.perf_counter()
    min_readings = check_min_readings(min_caliper_readings)
    frame = with_required_columns(frame, missing_columns, min_readings)
    n = len(frame)
    checked = check_rows(frame, loaded, min_readings)
    rows = np.flatnonzero(checked.valid)
    out = {name: np.full(n, np.nan) for name in _SCORES}
    basis = np.full(n, -1, dtype=np.int8)
    extrapolated = np.zeros(n, dtype=bool)
    decision = np.full(n, -1, dtype=np.int8)
    reason_codes = np.full(n, -1, dtype=np.int64)
    reason_texts: list[str] = []
    if len(rows):
        scored = _score_valid_rows(checked, rows, loaded, specs, policy)
        for name in _SCORES:
            out[name][rows] = scored[name]
        decision[rows] = scored["decision"]
        basis[rows] = scored["basis"]
        extrapolated[rows] = scored["extrapolated"]
        reason_codes[rows] = scored["reason_codes"]
        reason_texts = scored["reason_texts"]
    outputs = {
        "filled": _categorical(checked.filled_codes, checked.filled_texts),
        "prediction": out["prediction"],
        "lower": out["lower"],
        "upper": out["upper"],
        "p_exceed": out["p_exceed"],
        "decision": _categorical(decision, list(DECISIONS)),
        "error": pd.Series(checked.errors, index=frame.index, dtype=object),
        "structure": _categorical(checked.structure_codes, checked.structure_categories),
        "limit": out["limit"],
        "decision_reason": _categorical(reason_codes, reason_texts),
        "below_detection_limit": _below_limit(out["prediction"], rows, loaded),
        "basis": _categorical(basis, list(BASES)),
        "extrapolated": pd.arrays.BooleanArray(extrapolated, basis < 0),
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
    checked: CheckedRows,
    rows: NDArray[np.intp],
    loaded: LoadedModel,
    specs: SpecificationSet,
    policy: DecisionPolicy,
) -> dict[str, Any]:
    """Prediction, interval, limit, P(exceed), decision and reason for the valid rows."""
    # In chunks: the model matrix of a million rows is ~600 MB; 128k rows fit in memory
    # bandwidth better and bound the peak.
    # strict=False: unseen laminates of known layers passed the checks (their family stands
    # in); every other unseen name is already a row error.
    detail = [
        loaded.model.predict_log_detail(_clean_frame(checked, chunk), strict=False)
        for chunk in np.array_split(rows, max(1, math.ceil(len(rows) / PREDICT_CHUNK_ROWS)))
    ]
    prediction = np.exp(np.concatenate([log for log, _ in detail]))
    extrapolated = np.concatenate([flags for _, flags in detail])
    group_codes = checked.structure_codes[rows]
    group_names = np.asarray(checked.structure_categories, dtype=object)
    known = loaded.known_structures
    from_layers = np.array([str(n) not in known for n in group_names], dtype=bool)[group_codes]
    widen = np.where(from_layers | extrapolated, UNCERTAIN_WIDENING, 1.0)
    low, high = _interval_factors(loaded, group_names, group_codes, policy.level)
    low, high = low**widen, high**widen  # intervals.widen_interval, for whole columns
    thickness = checked.numbers[CALIBRE_PROM][rows]
    matched = specs.match_coded(
        group_codes,
        [str(n) for n in group_names],
        checked.numbers[GRADOS_C][rows],
        checked.numbers[PORC_HUMEDAD][rows],
        thickness,
    )
    limit_values = np.array([lim.max_permeability for lim in specs.limits] + [np.nan])
    limits = limit_values[matched.limit_index]  # index -1 picks the trailing NaN
    p_exceed = _exceedance(loaded, prediction, group_names, group_codes, limits, widen)
    decision = decision_codes(p_exceed, ~np.isnan(limits), policy)
    reason_codes, reason_texts = decision_reasons(
        specs, policy, matched, group_names, group_codes, thickness, decision
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
        "basis": from_layers.astype(np.int8),  # codes into BASES
        "extrapolated": extrapolated,
    }


def _interval_factors(
    loaded: LoadedModel, names: NDArray[np.object_], codes: NDArray[np.intp], level: float
) -> tuple[FloatArray, FloatArray]:
    """Per-row multiplicative interval bounds: one conformal lookup per distinct structure."""
    low = np.empty(len(names))
    high = np.empty(len(names))
    for code, name in enumerate(names):
        low[code], high[code] = loaded.scorer.interval(1.0, str(name), level)
    return low[codes], high[codes]


def _exceedance(
    loaded: LoadedModel,
    prediction: FloatArray,
    names: NDArray[np.object_],
    codes: NDArray[np.intp],
    limits: FloatArray,
    widen: FloatArray,
) -> FloatArray:
    """Conformal P(measured > limit) for rows with a limit (NaN elsewhere), grouped by structure.

    :func:`~permeability.modelling.conformal.exceedance`, as :meth:`ConformalCalibration.p_exceed`,
    applied per structure group with one ``searchsorted`` (its own batch helper sorts the
    structure names of every row, which costs more than the scoring itself at 1M rows). A row
    whose residuals are widened by ``widen`` compares them with the threshold divided by it.
    """
    result = np.full(len(prediction), np.nan)
    has_limit = ~np.isnan(limits)
    if not has_limit.any():
        return result
    thresholds = np.log(limits, where=has_limit, out=np.zeros_like(limits)) - np.log(prediction)
    thresholds = thresholds / widen  # intervals.widened_limit, for whole columns
    for code, name in enumerate(names):
        rows = np.flatnonzero(has_limit & (codes == code))
        if len(rows) == 0:
            continue
        residuals, tests = loaded.scorer.calibration.residual_set(str(name))
        result[rows] = exceedance(residuals, tests, thresholds[rows])
    return result


def _below_limit(
    prediction: FloatArray, rows: NDArray[np.intp], loaded: LoadedModel
) -> pd.arrays.BooleanArray:
    """True where a scored row's guide value is under the version's detection limit, False
    for the other scored rows (and for every row of a version without one), null where the
    row failed: nullable booleans, written True / False / empty in CSV."""
    below = np.zeros(len(prediction), dtype=bool)
    limit = loaded.scorer.detection_limit
    if limit is not None:
        below[rows] = prediction[rows] < limit
    failed = np.ones(len(prediction), dtype=bool)
    failed[rows] = False
    return pd.arrays.BooleanArray(below, failed)


def _categorical(codes: NDArray[np.integer[Any]], categories: Sequence[str]) -> pd.Categorical[str]:
    """Low-cardinality text columns as categoricals: no per-row Python string objects."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories)))


def _clean_frame(checked: CheckedRows, rows: NDArray[np.intp]) -> pd.DataFrame:
    data: dict[str, Any] = {name: checked.numbers[name][rows] for name in NUMERIC_FIELDS}
    data[ESTRUCTURA] = _categorical(checked.structure_codes[rows], checked.structure_categories)
    return pd.DataFrame(data)


@dataclass(frozen=True)
class _LogSource:
    """References to what the prediction log needs; turned into columns only on demand."""

    checked: CheckedRows
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
            **record_field_columns(self.checked.record_fields, rows),
        }
