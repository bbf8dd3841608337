"""Cross-validation of a candidate, and the ``auto`` choice among the catalogue's candidates.

Both run on the fitting rows only, so the calibration residuals stay untouched by model
selection. Folds are whole tests (:func:`permeability.modelling.fitting.out_of_fold`) and the
features are refitted inside every fold, so a score says what the lab will see on a new test.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.features.pca import CaliperPCA
from permeability.modelling import metrics as m
from permeability.modelling.catalogue import AUTO_CANDIDATES, AUTO_TIME_BUDGET_S, max_rows
from permeability.modelling.fitting import Hierarchy, measured_wvtr, out_of_fold
from permeability.modelling.splits import distinct_groups, row_groups

#: Folds for ``auto`` when ``cv`` is not given: fewer on large data to keep within the budget.
AUTO_FOLDS_SMALL: Final = 5
AUTO_FOLDS_LARGE: Final = 3
AUTO_LARGE_ROWS: Final = 20_000


def auto_folds(rows: int) -> int:
    """The folds ``auto`` cross-validates with on ``rows`` fitting rows when ``cv`` is not given."""
    return AUTO_FOLDS_SMALL if rows <= AUTO_LARGE_ROWS else AUTO_FOLDS_LARGE


def cross_validate(
    name: str,
    params: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: Hierarchy,
) -> dict[str, float]:
    """K-fold MAE and R² on the original scale; features are refitted inside every fold.

    Folds are whole tests, so a score says what the lab will see on a new test.
    """
    tests = distinct_groups(row_groups(frame))
    if folds > tests:
        raise InvalidInputError(
            f"cv={folds} folds need at least {folds} fitting tests, got {tests}"
        )
    maes: list[float] = []
    r2s: list[float] = []
    for valid_rows, predicted in out_of_fold(
        name, params, frame, pca, folds=folds, random_state=random_state, hierarchy=hierarchy
    ):
        measured = measured_wvtr(frame.iloc[valid_rows])
        maes.append(m.mae(measured, predicted))
        r2s.append(m.r2(measured, predicted))
    return {
        "folds": float(folds),
        "mae_mean": float(np.mean(maes)),
        "mae_std": float(np.std(maes)),
        "r2_mean": float(np.mean(r2s)),
        "r2_std": float(np.std(r2s)),
    }


def select_auto(
    frame: pd.DataFrame,
    pca: CaliperPCA,
    *,
    folds: int,
    random_state: int,
    hierarchy: Hierarchy,
) -> tuple[str, dict[str, Any], dict[str, float]]:
    """The candidate with the lowest cross-validated MAE, its params and the CV scores.

    Candidates run cheapest first; once the time budget is spent, the rest are skipped (at
    least one is always evaluated). SVR-like row limits also skip a candidate.
    """
    started = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for name, params in AUTO_CANDIDATES:
        limit = max_rows(name)
        if scores and time.perf_counter() - started > AUTO_TIME_BUDGET_S:
            break
        if limit is not None and len(frame) > limit:
            continue
        scores[name] = cross_validate(
            name,
            params,
            frame,
            pca,
            folds=folds,
            random_state=random_state,
            hierarchy=hierarchy,
        )
        chosen[name] = dict(params)
    best = min(scores, key=lambda n: scores[n]["mae_mean"])
    result = dict(scores[best])
    result.update({f"mae_mean_{name}": s["mae_mean"] for name, s in scores.items()})
    result["candidates_evaluated"] = float(len(scores))
    return best, chosen[best], result
