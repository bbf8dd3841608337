"""What a version's scored rows show: errors, interval coverage and decision quality.

:func:`evaluate_scored` turns a table of scored rows (:data:`~permeability.monitoring.
scored_rows.SCORED_COLUMNS`) into R², MAE, MSE, RMSE, MAPE, per-structure errors, interval
coverage per structure and decision quality (approve / reject / retest counts, wrong
approvals, wrong rejections). :func:`score_version` scores one version on the rows it did not
train on (:mod:`permeability.monitoring.windows`): its recent labelled rows predicted now
(:func:`~permeability.monitoring.scored_rows.score_labelled`), its served predictions with the
lab's later results (:func:`~permeability.monitoring.matching.served_scored`), and drift
against its training data; :class:`VersionEvaluation` is the result a report shows. The
champion/challenger rule that judges compared versions lives in
:mod:`permeability.monitoring.comparison`.

Calibration and reference films and unreported materials (``is_product`` false) are no
product's guide value and are left out of every metric
(:func:`permeability.record.identity.product_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel

from permeability.errors import InvalidInputError
from permeability.modelling import metrics as m
from permeability.modelling.predictor import PermeabilityModel
from permeability.monitoring.decision_quality import decision_quality
from permeability.monitoring.drift import detect_drift
from permeability.monitoring.matching import served_scored
from permeability.monitoring.reports import (
    DriftReport,
    DriftThresholds,
    EvaluationMetrics,
    StructureScore,
)
from permeability.monitoring.scored_rows import (
    TEST_COLUMN,
    calibration_reference,
    recent_residuals,
    score_labelled,
    usable_rows,
)
from permeability.record.identity import product_rows
from permeability.scoring.decisions import DecisionPolicy
from permeability.scoring.specs import SpecificationSet

FloatArray = NDArray[np.float64]


def _products(frame: pd.DataFrame) -> pd.DataFrame:
    """The product rows (:func:`permeability.record.identity.product_rows`): calibration and
    reference films and unreported materials are real measurements, but no product model gives
    them a guide value, so they must not count in its metrics or drift."""
    return product_rows(frame).reset_index(drop=True)


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
        tests=int(rows[TEST_COLUMN].nunique()) if TEST_COLUMN in rows.columns else None,
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
    record key, :func:`~permeability.monitoring.matching.match_served`). Drift compares
    ``window`` with its ``training`` feature set (not assessed without one or without recent
    rows), residuals included. Non-product rows (:func:`_products`) are left out of all three.
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
