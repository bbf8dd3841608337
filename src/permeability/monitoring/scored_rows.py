"""The table every evaluation is computed from: scored rows, and labelled rows scored into it.

One row per evaluated sample (:data:`SCORED_COLUMNS`): the measured value next to the guide
value, its interval, the limit that applied and the decision taken. Two kinds of evidence fill
it the same way:

* **recent labelled rows** - the version predicts samples that reached the feature store
  after its training (:func:`score_labelled`), with the intervals and decisions the inference
  service would have given;
* **served predictions** - what the inference service actually answered, matched with the
  lab's later result (:func:`permeability.monitoring.matching.served_scored`).

The residuals of scored rows (:func:`recent_residuals`) next to the version's calibration
residuals (:func:`calibration_reference`) are the drift report's conditional target comparison.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.modelling.predictor import PermeabilityModel
from permeability.monitoring.drift import RecentResiduals, ResidualReference
from permeability.monitoring.windows import labelled_when
from permeability.record.schema import (
    CALIBRE_PROM,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    TEST_ID,
)
from permeability.scoring.decisions import DecisionPolicy, decide_many
from permeability.scoring.specs import SpecificationSet

#: Optional column of scored rows: the test (``test_id``) a row is a replicate of.
TEST_COLUMN: Final = "test"

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


def require_scored(scored: pd.DataFrame) -> None:
    """Refuse a table that lacks a column of :data:`SCORED_COLUMNS`."""
    missing = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise InvalidInputError(f"scored rows lack column(s) {', '.join(missing)}")


def usable_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """Rows with a positive measured value and a positive prediction (others cannot be scored)."""
    require_scored(scored)
    measured = scored["measured"].to_numpy(dtype=np.float64)
    predicted = scored["predicted"].to_numpy(dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0) & np.isfinite(predicted) & (predicted > 0)
    return scored.loc[keep].reset_index(drop=True)


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
    scored = pd.DataFrame(
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
            "when": labelled_when(frame).to_numpy(),
        }
    )
    if TEST_ID in frame.columns:
        # Which test each row is a replicate of: figures say how many tests they rest on.
        scored[TEST_COLUMN] = frame[TEST_ID].astype(str).to_numpy(dtype=object)
    return scored


def calibration_reference(model: PermeabilityModel) -> ResidualReference:
    """The version's calibration residuals (what its intervals were built from)."""
    calibration = model.calibration
    return ResidualReference(pooled=calibration.pooled, by_structure=calibration.by_structure)


def recent_residuals(scored: pd.DataFrame) -> RecentResiduals:
    """Signed log residuals log(measured / predicted) of scored rows, for drift detection."""
    require_scored(scored)
    residuals = np.log(scored["measured"].to_numpy(dtype=np.float64)) - np.log(
        scored["predicted"].to_numpy(dtype=np.float64)
    )
    return RecentResiduals(residuals, scored["structure"].to_numpy(dtype=object))
