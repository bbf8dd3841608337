"""How good a version's guide values are on data that arrived after its training.

Two kinds of evidence are scored the same way, from one table of scored rows
(:data:`SCORED_COLUMNS`: the measured value next to the guide value, its interval, the limit
that applied and the decision taken):

* **recent labelled rows** - the version predicts samples that reached the feature store
  after its training (:func:`score_labelled`), with the intervals and decisions the inference
  service would have given;
* **served predictions** - what the inference service actually answered, from the prediction
  log, joined with the lab's later result on the record key (:func:`served_scored`): the
  real-world quality of the guide value.

``Muestra`` is the replicate number of a test (1, 2, ... in every test), so it never identifies
a record on its own: the training-vs-current comparison uses the store's ``record_id``, and
served predictions are matched on ``CONSECUTIVO`` or on the record's identity (test date,
``Referencia``, structure, ``Muestra``, conditions). Calibration and reference films and
unreported materials (``is_product`` false) are no product's guide value and are left out of
every metric (:func:`permeability.record.identity.product_rows`).

:func:`evaluate_scored` turns such a table into R², MAE, MSE, RMSE, MAPE, per-structure
errors, interval coverage per structure and decision quality (approve / reject / retest counts,
wrong approvals, wrong rejections). :func:`score_version` does both for one version, with
drift against its training data; :class:`VersionEvaluation` is the result a report shows.
A version is scored on the rows it did not train on (:func:`unseen_rows`); compared versions
on the rows none of them trained on (:func:`shared_window`). The champion/challenger rule that
judges them lives in :mod:`permeability.monitoring.comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from permeability.errors import InvalidInputError
from permeability.modelling import metrics as m
from permeability.modelling.model import PermeabilityModel
from permeability.monitoring.decision_quality import decision_quality
from permeability.monitoring.drift import (
    DriftReport,
    DriftThresholds,
    RecentResiduals,
    ResidualReference,
    detect_drift,
)
from permeability.record.identity import DEFAULT_IDENTITY, join_key, key_text, product_rows
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CONSECUTIVO,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_ID,
    REFERENCIA,
)
from permeability.scoring.decisions import DecisionPolicy, decide_many
from permeability.scoring.specs import SpecificationSet

FloatArray = NDArray[np.float64]

#: One row per evaluated sample; ``structure`` is the canonical name, ``when`` a naive UTC
#: timestamp (test date for labelled rows, request time for served ones) for plots over time.
SCORED_COLUMNS: Final = (
    MUESTRA,
    "structure",
    "measured",
    "predicted",
    "lower",
    "upper",
    "level",
    "limit",
    "p_exceed",
    "decision",
    "when",
)


# -- which rows ---------------------------------------------------------------------------

#: What identifies a lab result: a sample whose inputs or measured value changed since a
#: version's training is new evidence for that version (a re-measurement, a corrected typo).
RECORD_FIELDS: Final = (
    GRADOS_C,
    PORC_HUMEDAD,
    ESTRUCTURA,
    *CALIBRES,
    CALIBRE_PROM,
    PERMEABILIDAD,
)


def _products(frame: pd.DataFrame) -> pd.DataFrame:
    """The product rows (:func:`permeability.record.identity.product_rows`): calibration and
    reference films and unreported materials are real measurements, but no product model gives
    them a guide value, so they must not count in its metrics or drift."""
    return product_rows(frame).reset_index(drop=True)


def record_key_column(current: pd.DataFrame, training: pd.DataFrame) -> str:
    """The column that identifies a record in both frames: the store's ``record_id``, or
    ``Muestra`` only for a frame written before record ids existed (an old store)."""
    if RECORD_ID in current.columns and RECORD_ID in training.columns:
        return RECORD_ID
    return MUESTRA


def new_since_training(current: pd.DataFrame, training: pd.DataFrame) -> NDArray[np.bool_]:
    """Rows of ``current`` the version never trained on: a record (``record_id``) absent from
    its training feature set, or present with different values (a re-measurement, a corrected
    typo). ``Muestra``, a replicate number repeated across tests, is the key only when a frame
    has no ``record_id`` (a store written before it existed)."""
    key = record_key_column(current, training)
    fields = [c for c in RECORD_FIELDS if c in current.columns and c in training.columns]
    before = training[[key, *fields]].drop_duplicates(key, keep="last")
    joined = current[[key, *fields]].merge(
        before, on=key, how="left", suffixes=("", "_before"), indicator=True
    )
    fresh = (joined["_merge"] == "left_only").to_numpy(dtype=bool, copy=True)
    for name in fields:
        now, then = joined[name], joined[f"{name}_before"]
        differs = (now != then) & ~(now.isna() & then.isna())
        fresh |= differs.fillna(True).to_numpy(dtype=bool)
    return np.asarray(fresh, dtype=bool)


def unseen_rows(
    current: pd.DataFrame, training: pd.DataFrame | None, created_at: object
) -> NDArray[np.bool_]:
    """Rows of ``current`` a version did not train on.

    With its training feature set, :func:`new_since_training`; a version without that lineage
    falls back on rows loaded (``ingested_at``) after it was created, and with neither date
    known nothing counts as unseen (scoring rows it may have trained on would flatter it).
    """
    if training is not None:
        return new_since_training(current, training)
    created = pd.to_datetime(str(created_at), errors="coerce", utc=True)
    if pd.isna(created) or "ingested_at" not in current.columns:
        return np.zeros(len(current), dtype=bool)
    loaded = pd.to_datetime(current["ingested_at"], errors="coerce", utc=True)
    return np.asarray((loaded > created).fillna(False).to_numpy(dtype=bool))


def shared_window(
    unseen: Mapping[str, NDArray[np.bool_]], champion: str | None
) -> tuple[dict[str, NDArray[np.bool_]], dict[str, str]]:
    """One set of rows for every compared version: those none of them trained on.

    The rows the champion has not seen are the candidates (every version's unseen rows when
    there is no champion); a challenger trained on all of them (e.g. on the latest feature
    set) has nothing to be compared on yet and is left out, with the reason. Returns the
    kept versions' (identical) masks and the reasons of those left out.
    """
    masks = list(unseen.values())
    has_champion = champion is not None and champion in unseen
    base = unseen[str(champion)] if has_champion else np.logical_or.reduce(masks)
    kept = {label: mask for label, mask in unseen.items() if (mask & base).any()}
    dropped = {
        label: "no labelled data arrived after its training"
        if not unseen[label].any()
        else "it trained on every labelled row the champion has not seen; nothing newer to "
        "compare it on yet"
        for label in unseen
        if label not in kept
    }
    if not kept:
        return {}, dropped
    shared = np.logical_and.reduce(list(kept.values()))
    return {label: shared for label in kept}, dropped


def window_text(since: datetime | None) -> str:
    """`` since <date>`` for messages about a time-limited evaluation, else nothing."""
    return f" since {since.isoformat()}" if since is not None else ""


def on_or_after(when: pd.Series, since: pd.Timestamp | None) -> NDArray[np.bool_]:
    """Rows dated at or after ``since`` (all rows when ``since`` is None; undated rows never)."""
    if since is None:
        return np.ones(len(when), dtype=bool)
    stamps = pd.to_datetime(when, errors="coerce")
    return np.asarray((stamps >= since).fillna(False).to_numpy(dtype=bool))


def labelled_when(frame: pd.DataFrame) -> pd.Series:
    """When a labelled row happened: its test date, else when it was loaded (naive UTC)."""
    return _when(frame)


def served_scored(
    predictions: pd.DataFrame,
    labelled: pd.DataFrame,
    version: str,
    structures: NDArray[np.object_] | None = None,
) -> pd.DataFrame:
    """The version's logged predictions next to the lab's later result, as they were served.

    ``predictions`` is the prediction log (timestamp, version, Muestra, structure, conditions,
    the record fields CONSECUTIVO, Referencia and Fecha when the request gave them,
    prediction, lower, upper, level, spec_limit, p_exceed, decision); ``labelled`` the rows
    with measured values to match (already restricted to what the version did not train on),
    and ``structures`` their canonical structure names as the version spells them (default:
    their ``Estructura`` as stored). Matching is by :func:`match_served`. A record predicted
    several times counts once, with its latest guide value.
    """
    if predictions.empty or labelled.empty:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    own = predictions.loc[
        (predictions["version"] == version) & predictions["structure"].notna()
    ].reset_index(drop=True)
    names = labelled[ESTRUCTURA].to_numpy(dtype=object) if structures is None else structures
    pairs = match_served(own, labelled.reset_index(drop=True), names)
    if pairs.empty:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    served = own.iloc[pairs["prediction_row"].to_numpy()].reset_index(drop=True)
    lab = labelled.reset_index(drop=True).iloc[pairs["lab_row"].to_numpy()].reset_index(drop=True)
    stamps = pd.to_datetime(served["timestamp"], errors="coerce", utc=True).dt.tz_convert(None)
    return pd.DataFrame(
        {
            MUESTRA: lab[MUESTRA].to_numpy(dtype=np.int64),
            "structure": served["structure"].astype(str).to_numpy(dtype=object),
            "measured": lab[PERMEABILIDAD].to_numpy(dtype=np.float64),
            "predicted": served["prediction"].to_numpy(dtype=np.float64),
            "lower": served["lower"].to_numpy(dtype=np.float64),
            "upper": served["upper"].to_numpy(dtype=np.float64),
            "level": served["level"].to_numpy(dtype=np.float64),
            "limit": served["spec_limit"].to_numpy(dtype=np.float64),
            "p_exceed": served["p_exceed"].to_numpy(dtype=np.float64),
            "decision": served["decision"].astype(object).where(served["decision"].notna(), ""),
            "when": stamps.to_numpy(),
        }
    )


def match_served(
    predictions: pd.DataFrame, labelled: pd.DataFrame, structures: NDArray[np.object_]
) -> pd.DataFrame:
    """Pairs (``prediction_row``, ``lab_row``) of positions: which logged prediction is which
    lab record. Never on ``Muestra`` alone (a replicate number, 1 or 2 in most records):

    1. a prediction that carries ``CONSECUTIVO`` meets the lab record with that number;
    2. otherwise the record's identity must agree: test date, ``Referencia``, canonical
       structure, ``Muestra`` and conditions (a field the request left out only meets a lab
       record that lacks it too). A prediction whose number no lab record has yet is matched
       this way only with lab records that have no number (a record numbered differently is
       another record).

    Each lab record keeps the latest prediction that met it; identities that several lab
    records share (duplicates) keep the last of them, as the store would.
    """
    n_lab = len(labelled)
    lab_numbers = _text_key(labelled, CONSECUTIVO)
    lab_identity = identity_keys(labelled, structures)
    pred_numbers = _text_key(predictions, CONSECUTIVO)
    pred_identity = identity_keys(predictions, predictions["structure"].to_numpy(dtype=object))
    lab_positions = pd.Series(np.arange(n_lab))
    by_number = pd.Series(lab_positions.to_numpy(), index=lab_numbers.to_numpy())
    by_number = by_number[by_number.index != ""]
    by_number = by_number[~by_number.index.duplicated(keep="last")]
    numbered = pred_numbers.to_numpy() != ""
    number_hit = numbered & pred_numbers.isin(by_number.index).to_numpy()
    lab_row = np.full(len(predictions), -1, dtype=np.int64)
    if number_hit.any():
        lab_row[number_hit] = by_number.loc[pred_numbers[number_hit]].to_numpy()
    # Identity: unnumbered predictions against every lab record; numbered ones that met no
    # number against the lab records without one.
    unnumbered_lab = (lab_numbers == "").to_numpy()
    for among, eligible in (
        (~numbered, np.ones(n_lab, dtype=bool)),
        (numbered & ~number_hit, unnumbered_lab),
    ):
        if not among.any() or not eligible.any():
            continue
        identity = pd.Series(lab_positions.to_numpy()[eligible], index=lab_identity[eligible])
        identity = identity[~identity.index.duplicated(keep="last")]
        hit = among & pred_identity.isin(identity.index).to_numpy()
        if hit.any():
            lab_row[hit] = identity.loc[pred_identity[hit]].to_numpy()
    matched = np.flatnonzero(lab_row >= 0)
    pairs = pd.DataFrame(
        {
            "prediction_row": matched,
            "lab_row": lab_row[matched],
            "timestamp": pd.to_datetime(
                predictions["timestamp"].to_numpy()[matched], errors="coerce", utc=True
            ),
        }
    )
    pairs = pairs.sort_values(["timestamp", "prediction_row"], kind="stable")
    pairs = pairs.drop_duplicates("lab_row", keep="last").sort_values("lab_row", kind="stable")
    return pairs[["prediction_row", "lab_row"]].reset_index(drop=True)


def identity_keys(frame: pd.DataFrame, structures: NDArray[np.object_]) -> pd.Series:
    """A record's identity as one text per row (:data:`~permeability.record.identity.
    DEFAULT_IDENTITY`, structure canonical): the same text for the same record whether it
    comes from the prediction log (a date object, no value where the request sent none) or
    the feature store (a timestamp, null where the export had none)."""
    n = len(frame)
    parts = pd.DataFrame(index=pd.RangeIndex(n))
    for name in DEFAULT_IDENTITY:
        if name == ESTRUCTURA:
            parts[name] = pd.Series(np.asarray(structures, dtype=object)).fillna("").astype(str)
        elif name not in frame.columns:
            parts[name] = pd.Series([""] * n, dtype="str")
        elif name == FECHA:
            parts[name] = pd.to_datetime(
                pd.Series(frame[name].to_numpy(dtype=object)), errors="coerce"
            ).astype("datetime64[ns]")
        elif name == REFERENCIA:
            parts[name] = _text_key(frame, name)
        else:
            parts[name] = pd.Series(frame[name].to_numpy())
    return join_key(parts, DEFAULT_IDENTITY)


def _text_key(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column as key text ('' where absent or null; '17.0' is '17')."""
    if column not in frame.columns:
        return pd.Series([""] * len(frame), dtype="str")
    values = pd.Series(frame[column].to_numpy(dtype=object))
    text = values.where(values.notna(), "").astype(str)
    return key_text(text).reset_index(drop=True)


# -- scoring ------------------------------------------------------------------------------


def _when(frame: pd.DataFrame) -> pd.Series:
    """The test date where the lab gave one, else when the row was loaded (naive UTC)."""
    index = frame.index
    fecha = (
        pd.to_datetime(frame[FECHA], errors="coerce")
        if FECHA in frame.columns
        else pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    )
    if "ingested_at" in frame.columns:
        loaded = pd.to_datetime(frame["ingested_at"], errors="coerce", utc=True)
        fecha = fecha.fillna(loaded.dt.tz_convert(None))
    return fecha.astype("datetime64[ns]")


def score_labelled(
    model: PermeabilityModel,
    frame: pd.DataFrame,
    specs: SpecificationSet,
    policy: DecisionPolicy,
) -> pd.DataFrame:
    """Guide values, intervals and decisions for labelled rows, as the service would give them.

    Structures the version never saw are routed to its pooled ``OTHER`` category and its
    pooled calibration residuals (``strict=False``): evaluation must score every recent row,
    and how badly a new film is served is exactly what it should show.
    """
    if frame.empty:
        raise InvalidInputError("there are no labelled rows to score")
    predicted = model.predict_frame(frame, strict=False)
    names = model.canonical_structures(frame)
    lower, upper = model.calibration.intervals(predicted, names, policy.level)
    matched = specs.match_many(
        names,
        frame[GRADOS_C].to_numpy(dtype=np.float64),
        frame[PORC_HUMEDAD].to_numpy(dtype=np.float64),
        frame[CALIBRE_PROM].to_numpy(dtype=np.float64),
    )
    limit_values = np.array([lim.max_permeability for lim in specs.limits] + [np.nan])
    limits = limit_values[matched.limit_index]  # -1 (no limit) picks the trailing NaN
    has_limit = np.isfinite(limits)
    p_exceed = np.full(len(frame), np.nan)
    decision = np.full(len(frame), "", dtype=object)
    if has_limit.any():
        p_exceed[has_limit] = model.calibration.p_exceed_many(
            predicted[has_limit], names[has_limit], limits[has_limit]
        )
        decision[has_limit] = decide_many(
            p_exceed[has_limit], policy.approve_below, policy.reject_above
        ).astype(object)
    return pd.DataFrame(
        {
            MUESTRA: frame[MUESTRA].to_numpy(dtype=np.int64),
            "structure": names,
            "measured": frame[PERMEABILIDAD].to_numpy(dtype=np.float64),
            "predicted": predicted,
            "lower": lower,
            "upper": upper,
            "level": np.full(len(frame), policy.level),
            "limit": limits,
            "p_exceed": p_exceed,
            "decision": decision,
            "when": _when(frame).to_numpy(),
        }
    )


def calibration_reference(model: PermeabilityModel) -> ResidualReference:
    """The version's calibration residuals (what its intervals were built from)."""
    calibration = model.calibration
    return ResidualReference(pooled=calibration.pooled, by_structure=calibration.by_structure)


def recent_residuals(scored: pd.DataFrame) -> RecentResiduals:
    """Signed log residuals log(measured / predicted) of scored rows, for drift detection."""
    _require_scored(scored)
    residuals = np.log(scored["measured"].to_numpy(dtype=np.float64)) - np.log(
        scored["predicted"].to_numpy(dtype=np.float64)
    )
    return RecentResiduals(residuals, scored["structure"].to_numpy(dtype=object))


# -- evaluation ---------------------------------------------------------------------------


class StructureScore(BaseModel):
    """Errors, coverage and decisions of one structure."""

    model_config = ConfigDict(frozen=True)

    structure: str
    n: int
    mae: float
    mape: float
    rmse: float
    bias_log: float
    coverage: float
    mean_width: float
    wrong_approvals: int
    wrong_rejections: int


class EvaluationMetrics(BaseModel):
    """Everything the evaluation of one version on one set of rows found."""

    model_config = ConfigDict(frozen=True)

    n: int
    level: float
    metrics: dict[str, float]
    per_structure: list[StructureScore]
    decisions: dict[str, int]
    first: str | None
    last: str | None

    def structure_table(self) -> pd.DataFrame:
        columns = list(StructureScore.model_fields)
        return pd.DataFrame([s.model_dump() for s in self.per_structure], columns=columns)


def _require_scored(scored: pd.DataFrame) -> None:
    missing = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise InvalidInputError(f"scored rows lack column(s) {', '.join(missing)}")


def usable_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """Rows with a positive measured value and a positive prediction (others cannot be scored)."""
    _require_scored(scored)
    measured = scored["measured"].to_numpy(dtype=np.float64)
    predicted = scored["predicted"].to_numpy(dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0) & np.isfinite(predicted) & (predicted > 0)
    return scored.loc[keep].reset_index(drop=True)


def _decisions(scored: pd.DataFrame) -> tuple[NDArray[np.object_], FloatArray]:
    """Decisions as text ('' where none) and limits (NaN where none or no decision was taken)."""
    decisions = scored["decision"].astype(object).where(scored["decision"].notna(), "")
    text = decisions.astype(str).to_numpy(dtype=object)
    limits = scored["limit"].to_numpy(dtype=np.float64).copy()
    limits[text == ""] = np.nan
    return text, limits


def _structure_scores(scored: pd.DataFrame) -> list[StructureScore]:
    decisions, limits = _decisions(scored)
    measured = scored["measured"].to_numpy(dtype=np.float64)
    predicted = scored["predicted"].to_numpy(dtype=np.float64)
    lower = scored["lower"].to_numpy(dtype=np.float64)
    upper = scored["upper"].to_numpy(dtype=np.float64)
    names = scored["structure"].astype(str).to_numpy(dtype=object)
    scores = []
    for name in sorted(set(names)):
        rows = names == name
        y, p = measured[rows], predicted[rows]
        quality = decision_quality(y, decisions[rows], limits[rows])
        scores.append(
            StructureScore(
                structure=str(name),
                n=int(rows.sum()),
                mae=m.mae(y, p),
                mape=m.mape(y, p),
                rmse=m.rmse(y, p),
                bias_log=float(np.mean(np.log(y) - np.log(p))),
                coverage=m.coverage(y, lower[rows], upper[rows]),
                mean_width=_finite_mean(upper[rows] - lower[rows]),
                wrong_approvals=quality["wrong_approvals"],
                wrong_rejections=quality["wrong_rejections"],
            )
        )
    return scores


def _finite_mean(values: FloatArray) -> float:
    """Mean of the finite widths (an interval of a tiny calibration set may be unbounded)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("inf")


def evaluate_scored(scored: pd.DataFrame) -> EvaluationMetrics:
    """Metrics of scored rows (see :data:`SCORED_COLUMNS`); unusable rows are left out."""
    rows = usable_rows(scored)
    if rows.empty:
        raise InvalidInputError("no scored row has a positive measured value and prediction")
    measured = rows["measured"].to_numpy(dtype=np.float64)
    predicted = rows["predicted"].to_numpy(dtype=np.float64)
    lower = rows["lower"].to_numpy(dtype=np.float64)
    upper = rows["upper"].to_numpy(dtype=np.float64)
    metrics = m.regression_metrics(measured, predicted)
    metrics["median_ape"] = float(np.median(np.abs(measured - predicted) / measured) * 100.0)
    metrics["coverage"] = m.coverage(measured, lower, upper)
    metrics["mean_width"] = _finite_mean(upper - lower)
    decisions, limits = _decisions(rows)
    quality = decision_quality(measured, decisions, limits)
    when = pd.to_datetime(rows["when"], errors="coerce").dropna()
    return EvaluationMetrics(
        n=len(rows),
        level=float(rows["level"].to_numpy(dtype=np.float64).mean()),
        metrics={k: float(v) for k, v in metrics.items()},
        per_structure=_structure_scores(rows),
        decisions={k: int(v) for k, v in quality.items()},
        first=when.min().isoformat() if len(when) else None,
        last=when.max().isoformat() if len(when) else None,
    )


@dataclass(frozen=True)
class VersionScores:
    """One version's scored rows and what they show: its recent labelled rows (predicted now),
    its served predictions (as logged), their metrics (None without rows) and the drift."""

    recent_scored: pd.DataFrame
    served_scored: pd.DataFrame
    recent: EvaluationMetrics | None
    served: EvaluationMetrics | None
    drift: DriftReport | None

    @property
    def empty(self) -> bool:
        return self.recent is None and self.served is None


def score_version(
    model: PermeabilityModel,
    label: str,
    *,
    training: pd.DataFrame | None,
    window: pd.DataFrame,
    served_window: pd.DataFrame,
    predictions: pd.DataFrame,
    specs: SpecificationSet,
    policy: DecisionPolicy,
    thresholds: DriftThresholds,
) -> VersionScores:
    """Score version ``label`` on the rows it did not train on.

    ``window`` is what it predicts now (its unseen rows within the time window);
    ``served_window`` the unseen rows its logged ``predictions`` are matched against (on the
    record key, :func:`match_served`). Drift compares ``window`` with its ``training`` feature
    set (not assessed without one or without recent rows), residuals included. Non-product
    rows (:func:`_products`) are left out of all three.
    """
    window = _products(window)
    served_window = _products(served_window)
    training = None if training is None else _products(training)
    recent_scored = (
        usable_rows(score_labelled(model, window, specs, policy)) if len(window) else pd.DataFrame()
    )
    names = model.canonical_structures(served_window) if len(served_window) else None
    served = usable_rows(served_scored(predictions, served_window, label, names))
    drift = None
    if len(recent_scored) and training is not None:
        drift = detect_drift(
            training,
            window,
            thresholds,
            residuals=(calibration_reference(model), recent_residuals(recent_scored)),
        )
    return VersionScores(
        recent_scored=recent_scored,
        served_scored=served,
        recent=evaluate_scored(recent_scored) if len(recent_scored) else None,
        served=evaluate_scored(served) if len(served) else None,
        drift=drift,
    )


class VersionEvaluation(BaseModel):
    """One version's evaluation: its scores on recent and served rows, drift, and the run.

    ``run_id`` is the tracking run that records it, once written.
    """

    version: str
    model_name: str
    is_champion: bool
    training_run_id: str | None
    registry_version: str | None
    training_feature_set_version: int | None
    recent_rows: int
    served_rows: int
    recent: EvaluationMetrics | None
    served: EvaluationMetrics | None
    drift: DriftReport | None
    run_id: str | None = None
