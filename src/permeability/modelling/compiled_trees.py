"""A compiled tree ensemble: flat numpy node arrays, and the walks that predict one row.

:class:`CompiledEnsemble` is what :func:`permeability.modelling.trees.compile_ensemble` makes of
a fitted scikit-learn ensemble (how the trees are read, and why the numbers are exactly
scikit-learn's, is in :mod:`permeability.modelling.trees`). This module imports numpy and
:mod:`permeability.errors` only, never scikit-learn: a replica that unpickles the served form
of a tree model (:mod:`permeability.modelling.record_scorer`) predicts through it without
loading scikit-learn (docs/deploy.md, "Replicas that start fast").

One node table holds every tree's nodes, after a virtual one-leaf tree holding the baseline
(the boosting init, 0 for forests; leaves point to themselves), and
:meth:`CompiledEnsemble.predict_row` walks all trees at once with numpy, in one of two ways:

- ``levels``: one step per tree level, for every tree at the same time. A walk position is the
  *state* ``2 × node``; features and thresholds are stored twice per node so that the next
  state is ``children[state + goes_right]``: six numpy calls per level, whatever the number of
  trees (≈ 4 µs). Cost ∝ depth: the choice for big, deep forests.
- ``table``: first the next node of *every* split node for this row (split nodes are numbered
  first and grouped by split feature, so the row's value per node is one ``np.repeat``; a leaf's
  next node is itself), then ``depth`` pointer hops (≈ 0.4 µs each). Cost ∝ split nodes
  (≈ 1.5 ns each): the choice for boosting's many small trees.

Rows with missing values always take ``levels`` (the only walk that follows
``missing_go_to_left``). Decision-tree based models compare ``float64(float32(x))``
(``float32_inputs``), HistGradientBoosting the float64 value; leaf values are summed in
scikit-learn's order (baseline, then tree by tree) and divided by ``divisor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError

__all__ = ["BoolArray", "CompiledEnsemble", "FloatArray", "IntArray", "Walk"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]
Walk = Literal["levels", "table"]

#: Largest finite float32: above it, scikit-learn's cast to float32 overflows to inf.
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class _LevelWalk:
    """Arrays per state (``2 × node``, then ``+ 1`` for the right-hand copy)."""

    features: IntArray
    thresholds: FloatArray
    children: IntArray
    missing_go_right: BoolArray  # per node

    def leaves(self, x: FloatArray, roots: IntArray, depth: int) -> IntArray:
        """Every tree's leaf node for a row without missing values."""
        features, thresholds, children = self.features, self.thresholds, self.children
        states = 2 * roots
        for _ in range(depth):
            states = children[states + (x[features[states]] > thresholds[states])]
        return states // 2

    def leaves_with_missing(self, x: FloatArray, roots: IntArray, depth: int) -> IntArray:
        """Every tree's leaf node for a row with NaN: NaN follows ``missing_go_to_left``."""
        features, thresholds, children = self.features, self.thresholds, self.children
        states = 2 * roots
        for _ in range(depth):
            value = x[features[states]]
            goes_right = np.where(
                np.isnan(value), self.missing_go_right[states // 2], value > thresholds[states]
            )
            states = children[states + goes_right]
        return states // 2


@dataclass(frozen=True, eq=False)
class _TableWalk:
    """Arrays per split node; split nodes come first, grouped by split feature
    (``feature_counts`` nodes each), then the leaves (numbered from ``n_splits`` on)."""

    feature_counts: IntArray
    thresholds: FloatArray
    left: IntArray
    right_minus_left: IntArray
    leaves_loop: IntArray  # each leaf's own number: a leaf's next node is itself

    def leaves(self, x: FloatArray, roots: IntArray, depth: int) -> IntArray:
        """Every tree's leaf node for a row without missing values."""
        splits = len(self.left)
        goes_right = np.repeat(x, self.feature_counts) > self.thresholds
        following = np.empty(splits + len(self.leaves_loop), dtype=np.intp)
        np.add(self.left, goes_right * self.right_minus_left, out=following[:splits])
        following[splits:] = self.leaves_loop
        nodes = roots
        for _ in range(depth):
            nodes = following[nodes]
        return nodes


@dataclass(frozen=True, eq=False)
class CompiledEnsemble:
    """A fitted tree ensemble as flat arrays (see the module docstring for the walks).

    ``roots``: each tree's root node, the baseline leaf first. ``float32_inputs``: compare
    ``float64(float32(x))`` (decision-tree based models) rather than ``x``. ``divisor``: the
    forest's number of trees (the mean), 1 for boosting. Immutable and free of per-call
    buffers, so concurrent requests can share one instance.
    """

    estimator_name: str
    n_features: int
    n_trees: int
    depth: int
    roots: IntArray
    values: FloatArray
    levels: _LevelWalk
    table: _TableWalk | None
    divisor: float
    float32_inputs: bool
    accepts_missing: bool

    @property
    def n_nodes(self) -> int:
        """Nodes of every tree plus the baseline leaf."""
        return len(self.values)

    @property
    def walk(self) -> Walk:
        """How rows without missing values are walked: ``table`` or ``levels``."""
        return "levels" if self.table is None else "table"

    def predict_row(self, row: FloatArray) -> float:
        """The estimator's raw prediction (``estimator.predict``) for one 1-D float64 row."""
        if row.shape != (self.n_features,):
            raise InvalidInputError(
                f"{self.estimator_name} expects a row of {self.n_features} features, "
                f"got an array of shape {row.shape}"
            )
        largest = float(np.abs(row).max()) if self.n_features else 0.0
        limit = _FLOAT32_MAX if self.float32_inputs else np.inf
        if not largest <= limit:  # NaN, inf or beyond float32: rare, checked in detail
            return self._predict_unusual_row(row)
        comparable = row.astype(np.float32).astype(np.float64) if self.float32_inputs else row
        return self._aggregate(self._leaves(comparable))

    def _leaves(self, x: FloatArray) -> IntArray:
        if self.table is not None:
            return self.table.leaves(x, self.roots, self.depth)
        return self.levels.leaves(x, self.roots, self.depth)

    def _aggregate(self, leaves: IntArray) -> float:
        """Baseline plus leaf values in scikit-learn's order (a sequential running sum)."""
        return float(np.cumsum(self.values[leaves])[-1]) / self.divisor

    def _predict_unusual_row(self, row: FloatArray) -> float:
        """Rows with NaN, inf or values beyond float32: accepted or refused as sklearn does."""
        if self.float32_inputs:
            with np.errstate(over="ignore"):
                comparable = row.astype(np.float32).astype(np.float64)
            infinite = np.flatnonzero(np.isinf(comparable))
            if len(infinite):
                raise InvalidInputError(
                    f"feature {int(infinite[0])} of the row is {float(row[infinite[0]])!r}: infinite "
                    f"or too large for the float32 values {self.estimator_name} compares"
                )
        else:
            comparable = row
        missing = np.isnan(comparable)
        if not missing.any():
            return self._aggregate(self._leaves(comparable))
        if not self.accepts_missing:
            raise InvalidInputError(
                f"feature {int(np.flatnonzero(missing)[0])} of the row is missing (NaN); "
                f"{self.estimator_name} does not accept missing values"
            )
        return self._aggregate(self.levels.leaves_with_missing(comparable, self.roots, self.depth))
