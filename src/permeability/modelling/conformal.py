"""Conformal prediction intervals and exceedance probabilities, per structure (Mondrian).

The residuals come from rows the predicting model did not train on, because the coverage
guarantee rests on them being exchangeable with future ones (a model that has seen a row makes
its residual look too small). Two ways, chosen at training (``modelling/training.py``):

- split-conformal: the model is fitted on one part of the training split and calibrated on
  another part it never saw, and not refitted on it afterwards;
- cross-conformal: the model is fitted on the whole training split and each row's residual
  comes from one of K refits that did not see it (out of fold). Every training row gives a
  residual (five times the residuals of a 20 % split), so per-structure quantiles are far
  steadier on the few hundred samples a structure may have; the refits saw (K − 1)/K of the
  rows, so their residuals are if anything slightly larger than the served model's.

Residuals are signed and on the log scale, r = log y − log ŷ: a relative error, comparable
across films whose WVTR differs by orders of magnitude, and signed because the lot noise of
metallized films has a heavy upper tail, so the two sides of an interval need not be equal.
They are kept sorted per structure (Mondrian conformal: each film gets its own noise level)
when a structure has at least ``min_calibration`` of them; otherwise those of its **family**
(the structures sharing its best barrier layer, :func:`~permeability.record.structures.
structure_family`) when the family has that many, and only then the pooled residuals of every
structure. Pooling a small polypropylene film with foil laminates near the detection limit
(log residuals ten times larger) gave it intervals that covered every test. Residuals rather
than one quantile are stored so that the interval level can be chosen at inference.

For level 1 − α the interval is [ŷ·exp(r_(k_lo)), ŷ·exp(r_(k_hi))] with the finite-sample
ranks k_hi = ⌈(n + 1)(1 − α/2)⌉ and k_lo = n + 1 − k_hi of the n sorted residuals: each side
misses at most α/2 of future samples, so the interval covers at least 1 − α. Replicates of one
test agree closely, so n residuals from g tests are worth n_eff between g and n independent
ones (Kish's design effect, with the residuals' own within-test correlation); the rank is then
⌈n·(1 − α/2)·(n_eff + 1)/n_eff⌉ (:func:`conformal_ranks`), and "enough" residuals means
n_eff ≥ ``min_calibration``.
When there are too few for the level (k_hi > n), that side is unbounded (0 or +inf): an honest
answer, not a guess.

pandas is imported only where the residuals are grouped by test (building a calibration):
intervals and exceedance probabilities are numpy, so a replica serving single records never
loads pandas (docs/deploy.md, "Replicas that start fast").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permeability.errors import InvalidInputError
from permeability.record.structures import (
    UNKNOWN_FAMILY,
    build_alias_map,
    parse_structure,
    structure_family,
)

FloatArray = NDArray[np.float64]

DEFAULT_MIN_CALIBRATION: Final = 30
#: How the residuals were obtained (see :func:`permeability.modelling.training.train_model`).
SPLIT_CONFORMAL: Final = "split-conformal"
CROSS_CONFORMAL: Final = "cross-conformal"


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"interval level must be between 0 and 1 (exclusive), got {level}")


def conformal_ranks(n: int, level: float, tests: float | None = None) -> tuple[int, int]:
    """1-based ranks (k_lo, k_hi) of the sorted residuals bounding a two-sided interval.

    k_lo = 0 means no lower bound, k_hi = n + 1 means no upper bound. ``tests`` is how many
    independent pieces of evidence the n residuals are worth (default n; see
    :func:`effective_tests`): the rank is the (1 − α/2)·(tests + 1)/tests quantile of the n
    residuals, which is ⌈(n + 1)(1 − α/2)⌉ when every residual counts fully.
    """
    _check_level(level)
    evidence = float(n) if tests is None else float(tests)
    if not 1.0 <= evidence <= max(n, 1):
        raise InvalidInputError(f"tests must be from 1 to the {n} residuals, got {tests}")
    alpha = 1.0 - level
    # The tiny slack keeps float noise ((n+1)·0.95 = 28.000000000000004) from moving a rank.
    k_hi = min(math.ceil(n * (1.0 - alpha / 2.0) * (evidence + 1.0) / evidence - 1e-9), n + 1)
    return n + 1 - k_hi, k_hi


def replicate_correlation(residuals: FloatArray, tests: NDArray[Any]) -> float:
    """Intra-class correlation of residuals within tests (one-way ANOVA estimator, in [0, 1]).

    1: replicates of a test repeat its residual exactly (a test is one piece of evidence);
    0: they are as different as residuals of different tests. 0 when no test has two rows.
    """
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(tests, dtype=object))
    sizes = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    n, k = float(len(residuals)), float(len(uniques))
    if k < 2 or n - k < 1:
        return 0.0
    means = np.bincount(codes, weights=residuals, minlength=len(uniques)) / sizes
    within = float(((residuals - means[codes]) ** 2).sum()) / (n - k)
    between = float((sizes * (means - residuals.mean()) ** 2).sum()) / (k - 1.0)
    typical = (n - float((sizes**2).sum()) / n) / (k - 1.0)  # the ANOVA n0
    denominator = between + (typical - 1.0) * within
    if denominator <= 0.0:
        return 0.0
    return float(min(max((between - within) / denominator, 0.0), 1.0))


def effective_tests(n: int, tests: int, correlation: float) -> float:
    """What n residuals from ``tests`` tests are worth as independent ones (Kish's design
    effect n / (1 + (m − 1)·ρ), m = n / tests rows per test), between ``tests`` and n.

    On the seed lab's real data (bench/real_data.py, 2026-12-02, replicate-grouped 5-fold CV)
    counting every replicate as independent left 90 % intervals covering 83–86 % of new tests
    of four structures (0.895 overall), and counting each test once over-covered (0.921
    overall, 1.000 for one structure): replicates agree closely but not exactly.
    """
    if n == 0:
        return 0.0
    per_test = n / max(tests, 1)
    worth = n / (1.0 + (per_test - 1.0) * correlation)
    return float(min(max(worth, float(tests)), float(n)))


def _bounds(sorted_residuals: FloatArray, level: float, tests: float) -> tuple[float, float]:
    """Log-scale offsets (low, high) of the interval; -inf / +inf when unbounded."""
    n = len(sorted_residuals)
    k_lo, k_hi = conformal_ranks(n, level, tests)
    low = float(sorted_residuals[k_lo - 1]) if k_lo >= 1 else -math.inf
    high = float(sorted_residuals[k_hi - 1]) if k_hi <= n else math.inf
    return low, high


def exceedance(sorted_residuals: FloatArray, tests: float, thresholds: ArrayLike) -> FloatArray:
    """Conformal probability that a measurement exceeds ŷ·exp(threshold), per threshold.

    (1 + #{r_i > threshold}·tests/n) / (tests + 1): the share of residuals above, counted in
    tests (:func:`conformal_ranks`), and conservative (never below 1/(tests + 1)), so an
    approval needs the evidence of many calibration tests.
    """
    n = len(sorted_residuals)
    above = n - np.searchsorted(sorted_residuals, np.asarray(thresholds), side="right")
    return np.asarray((1.0 + above * (tests / n)) / (tests + 1.0), dtype=np.float64)


def _exp(offset: float) -> float:
    return 0.0 if offset == -math.inf else math.inf if offset == math.inf else math.exp(offset)


class ConformalCalibration:
    """Sorted calibration residuals per structure plus the pooled ones; immutable once built.

    ``method`` says where the residuals came from: a held-out calibration part
    (split-conformal) or out-of-fold predictions of refits (cross-conformal).
    """

    #: Calibrations pickled before ``method`` existed were all split-conformal.
    method: str = SPLIT_CONFORMAL
    #: What each residual set is worth in independent tests (:func:`effective_tests`);
    #: calibrations pickled before tests were counted count every residual fully.
    tests_by_set: Mapping[str, float] = {}
    #: Residual correlation within tests (:func:`replicate_correlation`).
    correlation: float = 0.0

    def __init__(
        self,
        residuals: ArrayLike,
        structures: Sequence[str] | NDArray[np.object_],
        *,
        min_calibration: int = DEFAULT_MIN_CALIBRATION,
        method: str = SPLIT_CONFORMAL,
        tests: ArrayLike | None = None,
    ) -> None:
        values = np.asarray(residuals, dtype=np.float64)
        names = np.asarray(structures, dtype=object)
        if values.ndim != 1 or len(values) != len(names):
            raise InvalidInputError(
                f"calibration needs one structure per residual, got {len(values)} residuals "
                f"and {len(names)} structures"
            )
        groups = np.arange(len(values)) if tests is None else np.asarray(tests, dtype=object)
        if len(groups) != len(values):
            raise InvalidInputError(
                f"calibration needs one test per residual, got {len(values)} residuals "
                f"and {len(groups)} tests"
            )
        if len(values) == 0:
            raise InvalidInputError("calibration needs at least one residual")
        if not np.isfinite(values).all():
            raise InvalidInputError("calibration residuals must be finite")
        if min_calibration < 1:
            raise InvalidInputError(f"min_calibration must be at least 1, got {min_calibration}")
        if method not in (SPLIT_CONFORMAL, CROSS_CONFORMAL):
            raise InvalidInputError(f"unknown conformal method {method!r}")
        self.method = method
        self.min_calibration = min_calibration
        self.pooled: FloatArray = np.sort(values)
        self.counts: dict[str, int] = {}
        self.by_structure: dict[str, FloatArray] = {}
        self.by_family: dict[str, FloatArray] = {}
        self.correlation = replicate_correlation(values, groups)

        def worth(members: NDArray[np.bool_]) -> float:
            count = int(members.sum())
            return effective_tests(count, _distinct(groups[members]), self.correlation)

        self.tests_by_set = {_POOLED: worth(np.ones(len(values), dtype=bool))}
        families = np.array([_family(str(n)) for n in names], dtype=object)
        # A set calibrates on its own once it is worth min_calibration independent residuals:
        # replicates of one test are less than two pieces of evidence (effective_tests).
        for name in sorted({str(n) for n in names}):
            members = names == name
            self.counts[name] = int(members.sum())
            evidence = worth(members)
            if evidence >= min_calibration:
                self.by_structure[name] = np.sort(values[members])
                self.tests_by_set[name] = evidence
        for family in sorted({str(f) for f in families} - {UNKNOWN_FAMILY}):
            members = families == family
            evidence = worth(members)
            if evidence >= min_calibration:
                self.by_family[family] = np.sort(values[members])
                self.tests_by_set[_FAMILY_KEY + family] = evidence

    def residuals_for(self, structure: str) -> FloatArray:
        """The structure's own sorted residuals when it has enough, else its family's, else
        the pooled ones (a name never seen calibrates with its family too)."""
        return self.residual_set(structure)[0]

    def residual_set(self, structure: str) -> tuple[FloatArray, float]:
        """:meth:`residuals_for` and what they are worth in independent tests."""
        own = self.by_structure.get(structure)
        if own is not None:
            return own, self.tests_by_set.get(structure, len(own))
        family = _family(structure)
        members = getattr(self, "by_family", {}).get(family)
        if members is not None:
            return members, self.tests_by_set.get(_FAMILY_KEY + family, len(members))
        return self.pooled, self.tests_by_set.get(_POOLED, len(self.pooled))

    def source(self, structure: str) -> str:
        """``"structure"``, ``"family"`` or ``"pooled"``: whose residuals calibrate it."""
        if structure in self.by_structure:
            return "structure"
        return "family" if _family(structure) in getattr(self, "by_family", {}) else "pooled"

    # -- one prediction ---------------------------------------------------------------------

    def interval(self, prediction: float, structure: str, level: float) -> tuple[float, float]:
        """(lower, upper) around a median prediction; may be (0, inf) for tiny calibration sets."""
        residuals, tests = self.residual_set(structure)
        low, high = _bounds(residuals, level, tests)
        return prediction * _exp(low), prediction * _exp(high)

    def p_exceed(self, prediction: float, structure: str, limit: float) -> float:
        """Conformal probability that the measured value will exceed ``limit``
        (:func:`exceedance` at log(limit) − log(prediction))."""
        if not limit > 0.0 or not prediction > 0.0:
            raise InvalidInputError(
                f"limit and prediction must be positive, got {limit!r} and {prediction!r}"
            )
        residuals, tests = self.residual_set(structure)
        return float(exceedance(residuals, tests, math.log(limit) - math.log(prediction)))

    # -- batches ----------------------------------------------------------------------------

    def intervals(
        self, predictions: ArrayLike, structures: Sequence[str] | NDArray[np.object_], level: float
    ) -> tuple[FloatArray, FloatArray]:
        """Vectorised :meth:`interval`: (lower, upper) arrays."""
        values, names = self._batch(predictions, structures)
        lower = np.empty_like(values)
        upper = np.empty_like(values)
        for name, rows in _groups(names).items():
            residuals, tests = self.residual_set(name)
            low, high = _bounds(residuals, level, tests)
            lower[rows] = values[rows] * _exp(low)
            upper[rows] = values[rows] * _exp(high)
        return lower, upper

    def p_exceed_many(
        self,
        predictions: ArrayLike,
        structures: Sequence[str] | NDArray[np.object_],
        limits: ArrayLike,
    ) -> FloatArray:
        """Vectorised :meth:`p_exceed`; ``limits`` is one value or one per prediction."""
        values, names = self._batch(predictions, structures)
        bounds = np.broadcast_to(np.asarray(limits, dtype=np.float64), values.shape)
        if not (np.all(bounds > 0.0) and np.all(values > 0.0)):
            raise InvalidInputError("limits and predictions must all be positive")
        thresholds = np.log(bounds) - np.log(values)
        result = np.empty_like(values)
        for name, rows in _groups(names).items():
            residuals, tests = self.residual_set(name)
            result[rows] = exceedance(residuals, tests, thresholds[rows])
        return result

    def _batch(
        self, predictions: ArrayLike, structures: Sequence[str] | NDArray[np.object_]
    ) -> tuple[FloatArray, NDArray[np.object_]]:
        values = np.asarray(predictions, dtype=np.float64)
        names = np.asarray(structures, dtype=object)
        if values.shape != names.shape or values.ndim != 1:
            raise InvalidInputError(
                f"need one structure per prediction, got {values.shape} and {names.shape}"
            )
        return values, names

    def describe(self) -> dict[str, object]:
        return {
            "method": self.method,
            "n": len(self.pooled),
            "min_calibration": self.min_calibration,
            "effective_tests": round(self.tests_by_set.get(_POOLED, len(self.pooled)), 1),
            "replicate_correlation": round(self.correlation, 3),
            "structures": {
                name: {"n": count, "source": self.source(name)}
                for name, count in self.counts.items()
            },
        }


#: Keys of :attr:`ConformalCalibration.tests_by_set` besides structure names.
_POOLED: Final = "*pooled*"
_FAMILY_KEY: Final = "*family*:"


def _distinct(groups: NDArray[Any]) -> int:
    import pandas as pd

    return len(pd.unique(groups)) if len(groups) else 0


@functools.lru_cache(maxsize=4096)
def _family(structure: str) -> str:
    """The family of a canonical structure name (parsed with the default alias map)."""
    return structure_family(parse_structure(structure, _ALIASES).layers)


_ALIASES: Final = build_alias_map()


def _groups(names: NDArray[np.object_]) -> Mapping[str, NDArray[np.intp]]:
    uniques, inverse = np.unique(names.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    splits = np.cumsum(np.bincount(inverse, minlength=len(uniques)))[:-1]
    return {str(u): rows for u, rows in zip(uniques, np.split(order, splits), strict=True)}


#: How much wider, in log terms, the interval of a less certain guide value is: a laminate
#: never seen, predicted from its family, or a value bounded at its family's range.
UNCERTAIN_WIDENING: Final = 2.0


def widen_interval(
    prediction: float, lower: float, upper: float, factor: float
) -> tuple[float, float]:
    """The interval with its log half-widths stretched by ``factor`` (1: unchanged)."""
    if factor == 1.0:
        return lower, upper
    low = prediction * (lower / prediction) ** factor if lower > 0 else 0.0
    high = prediction * (upper / prediction) ** factor if upper < math.inf else math.inf
    return low, high


def widened_limit(prediction: float, limit: float, factor: float) -> float:
    """The limit at which the unwidened residuals give the widened P(exceed): with log
    residuals scaled by ``factor``, P(y > L) = P(r > log(L/ŷ)/factor)."""
    if factor == 1.0:
        return limit
    return prediction * (limit / prediction) ** (1.0 / factor)
