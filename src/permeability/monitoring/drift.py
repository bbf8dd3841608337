"""Data drift: is the recent lab data still like the data a model version was trained on?

What is compared, and why:

* **Inputs** (test temperature, humidity, mean caliper) overall and per structure: a model is
  only as good as the region of inputs it was fitted on; a lab that moves to drier tests or
  thinner gauges takes it somewhere it has not been.
* **The structure mix** (categorical) and **new structures** (names never seen in training):
  a new structure gets the pooled interval of the ``OTHER`` category, not its own.
* **The target** (log WVTR) overall and per structure: a supplier or process change that
  shifts a film's barrier (``DriftSpec.barrier_factor`` in the generator) shows up here
  before anyone retrains. The marginal distribution of a film's WVTR is wide (test
  conditions and gauges vary), so a 20-30 % change hides in it; the **model's log residuals**
  log(measured / predicted) remove what the inputs explain, and comparing recent residuals
  with the version's calibration residuals (same model, data it never trained on) finds
  such a change with far fewer rows. That comparison is the conditional target drift.

Each numeric comparison reports two numbers: the **population stability index** (PSI) says
*how much* the distribution moved, the **two-sample Kolmogorov-Smirnov test** whether the move
is *more than sampling noise*; the structure mix uses PSI over categories and a **chi-square
test** (the statistics: :mod:`permeability.monitoring.drift_statistics`).

A comparison is flagged only when both agree: PSI ≥ ``psi`` *and* p < ``alpha / m``, with m
the number of comparisons in the report (Bonferroni). PSI alone is biased upwards on small
samples (≈ (bins − 1)·(1/n_ref + 1/n_cur) of pure noise, 0.2 for 50 rows), so a small
structure would raise false alarms; a p-value alone flags harmless shifts on large samples.
The correction keeps the chance of *any* false alarm in a report with dozens of comparisons
below ``alpha``. Per-structure comparisons need ``min_rows`` rows on each side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.monitoring.drift_statistics import (
    categorical_psi,
    chi2_two_sample,
    finite_values,
    ks_two_sample,
    population_stability_index,
)
from permeability.monitoring.reports import ALL_STRUCTURES, DriftReport, DriftTest, DriftThresholds
from permeability.record.schema import (
    CALIBRE_PROM,
    ESTRUCTURA,
    GRADOS_C,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)

FloatArray = NDArray[np.float64]

#: Inputs compared as distributions (the calipers are summarised by their mean: the five
#: readings move together, and the PCA components differ between feature-set versions).
NUMERIC_FEATURES: Final = (GRADOS_C, PORC_HUMEDAD, CALIBRE_PROM)
#: The target, compared on the log scale (WVTR spans orders of magnitude).
TARGET_FEATURE: Final = f"log_{PERMEABILIDAD}"
#: The target given the inputs: the model's signed log residual log(measured / predicted).
RESIDUAL_FEATURE: Final = "log_residual"


@dataclass(frozen=True)
class ResidualReference:
    """A version's calibration residuals: all of them, and per structure where it has its own."""

    pooled: FloatArray
    by_structure: Mapping[str, FloatArray]


@dataclass(frozen=True)
class RecentResiduals:
    """The same model's log residuals on recent rows, with each row's structure."""

    residuals: FloatArray
    structures: NDArray[np.object_]


# -- the report ----------------------------------------------------------------------------


def _log_target(frame: pd.DataFrame) -> FloatArray:
    values = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0.0, np.log(values), np.nan)


def _numeric_columns(frame: pd.DataFrame) -> dict[str, FloatArray]:
    columns = {
        name: pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        for name in NUMERIC_FEATURES
    }
    columns[TARGET_FEATURE] = _log_target(frame)
    return columns


def _numeric_test(
    feature: str,
    structure: str,
    reference: FloatArray,
    current: FloatArray,
    bins: int,
) -> DriftTest | None:
    ref, cur = finite_values(reference), finite_values(current)
    if len(ref) == 0 or len(cur) == 0:
        return None
    statistic, p_value = ks_two_sample(ref, cur)
    return DriftTest(
        feature=feature,
        structure=structure,
        kind="target" if feature in (TARGET_FEATURE, RESIDUAL_FEATURE) else "numeric",
        test="ks",
        n_reference=len(ref),
        n_current=len(cur),
        psi=population_stability_index(ref, cur, bins),
        statistic=statistic,
        p_value=p_value,
    )


def _structure_mix_test(reference: NDArray[np.object_], current: NDArray[np.object_]) -> DriftTest:
    statistic, p_value = chi2_two_sample(reference, current)
    return DriftTest(
        feature=ESTRUCTURA,
        structure=ALL_STRUCTURES,
        kind="categorical",
        test="chi2",
        n_reference=len(reference),
        n_current=len(current),
        psi=categorical_psi(reference, current),
        statistic=statistic,
        p_value=p_value,
    )


def _residual_tests(
    reference: ResidualReference, recent: RecentResiduals, limits: DriftThresholds
) -> list[DriftTest]:
    values = np.asarray(recent.residuals, dtype=np.float64)
    names = np.asarray(recent.structures, dtype=object).astype(str)
    if values.shape != names.shape:
        raise InvalidInputError(
            f"need one structure per residual, got {names.shape} and {values.shape}"
        )
    pairs: list[tuple[str, FloatArray, FloatArray]] = [
        (ALL_STRUCTURES, np.asarray(reference.pooled, dtype=np.float64), values)
    ]
    for name in sorted(set(reference.by_structure) & set(names)):
        own = np.asarray(reference.by_structure[name], dtype=np.float64)
        rows = values[names == name]
        if len(own) >= limits.min_rows and len(rows) >= limits.min_rows:
            pairs.append((name, own, rows))
    tests = []
    for structure, ref, cur in pairs:
        found = _numeric_test(RESIDUAL_FEATURE, structure, ref, cur, limits.bins)
        if found is not None:
            tests.append(found)
    return tests


def _required(frame: pd.DataFrame, side: str) -> None:
    missing = [c for c in (*NUMERIC_FEATURES, ESTRUCTURA, PERMEABILIDAD) if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"the {side} frame lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise InvalidInputError(f"the {side} frame has no rows to compare")


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    *,
    residuals: tuple[ResidualReference, RecentResiduals] | None = None,
) -> DriftReport:
    """Compare ``current`` (recent labelled rows) with ``reference`` (a version's training data).

    Both frames need the columns of a feature set: the numeric inputs, ``Estructura``
    (canonical names) and ``Permeabilidad``. ``residuals`` (the version's calibration
    residuals and its residuals on the recent rows) adds the conditional target comparison.
    """
    limits = thresholds or DriftThresholds()
    _required(reference, "reference")
    _required(current, "current")
    ref_names = reference[ESTRUCTURA].astype(str).to_numpy(dtype=object)
    cur_names = current[ESTRUCTURA].astype(str).to_numpy(dtype=object)
    ref_columns, cur_columns = _numeric_columns(reference), _numeric_columns(current)
    tests: list[DriftTest] = [_structure_mix_test(ref_names, cur_names)]
    groups: list[tuple[str, NDArray[np.bool_], NDArray[np.bool_]]] = [
        (ALL_STRUCTURES, np.ones(len(ref_names), bool), np.ones(len(cur_names), bool))
    ]
    for name in sorted(set(ref_names) & set(cur_names)):
        ref_rows, cur_rows = ref_names == name, cur_names == name
        if ref_rows.sum() >= limits.min_rows and cur_rows.sum() >= limits.min_rows:
            groups.append((name, ref_rows, cur_rows))
    for structure, ref_rows, cur_rows in groups:
        for feature in (*NUMERIC_FEATURES, TARGET_FEATURE):
            found = _numeric_test(
                feature,
                structure,
                ref_columns[feature][ref_rows],
                cur_columns[feature][cur_rows],
                limits.bins,
            )
            if found is not None:
                tests.append(found)
    if residuals is not None:
        tests.extend(_residual_tests(*residuals, limits))
    corrected = limits.alpha / len(tests)
    flagged = [
        t.model_copy(update={"drifted": t.p_value < corrected and t.psi >= limits.psi})
        for t in tests
    ]
    counts = pd.Series(cur_names, dtype=object).value_counts()
    known = set(ref_names)
    return DriftReport(
        thresholds=limits,
        n_reference=len(reference),
        n_current=len(current),
        tests=flagged,
        new_structures={str(k): int(v) for k, v in counts.items() if k not in known},
        missing_structures=sorted(known - set(cur_names)),
        corrected_alpha=corrected,
    )
