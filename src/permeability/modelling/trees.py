"""Tree ensembles compiled into flat numpy arrays, so one record is predicted in microseconds.

Why: the inference API predicts one sample per request. Through scikit-learn, one row of a
HistGradientBoosting model costs ≈ 1–2 ms (input validation, one Cython call per tree, the
OpenMP thread limit) and one row of a random forest ≈ 9 ms (a joblib dispatch over the trees),
as much as a hundred rows. :func:`compile_ensemble` reads a fitted ensemble's trees once into
one node table (every tree's nodes, after a virtual one-leaf tree holding the baseline: the
boosting init, 0 for forests; leaves point to themselves) and gives a
:class:`~permeability.modelling.compiled_trees.CompiledEnsemble`, whose
:meth:`~permeability.modelling.compiled_trees.CompiledEnsemble.predict_row` walks all trees at
once with numpy. The compiled form and its two walks (``levels``, ``table``) live in
:mod:`permeability.modelling.compiled_trees`, which imports no scikit-learn, so a replica
serving the compiled trees never loads it; this module reads scikit-learn's trees and builds
the node table (``CompiledEnsemble`` is re-exported here for existing imports).

``auto`` picks ``table`` up to :data:`TABLE_NODES_PER_LEVEL` nodes per level of depth
(HistGradientBoosting 300 iterations: ≈ 10k nodes, depth 20). Rows with missing values always
take ``levels`` (the only walk that follows ``missing_go_to_left``).

Exactly scikit-learn's numbers:

- Decision-tree based models (forests, GradientBoosting) cast X to float32 and compare the
  float32 value with the float64 threshold (``x <= threshold`` goes left); the compiled walk
  compares ``float64(float32(x))``, which is that same comparison. HistGradientBoosting compares
  the float64 value with ``num_threshold``.
- Missing values (NaN) go where the node's ``missing_go_to_left`` sends them, for the models
  that accept them (forests, decision trees, HistGradientBoosting); GradientBoosting refuses
  them, as scikit-learn does; infinite values are refused where scikit-learn refuses them.
- Leaf values are added in scikit-learn's order (baseline, then tree by tree, a sequential
  running sum), GradientBoosting's scaled by the learning rate with the same float64 product,
  and a forest's sum is divided by its number of trees: bit for bit the estimator's
  ``predict`` in practice, and never further than summation-order rounding (1e-15).

Anything this module does not recognise exactly (other estimator types, subclasses,
categorical splits, losses with a non-identity link, custom init estimators, multi-output
trees) gives ``None`` from :func:`compile_ensemble`: the caller keeps using the estimator.
Memory: 57 bytes per node, 81 with the table walk (scikit-learn's own trees take ≈ 72);
compiling takes milliseconds (a 155k-node forest: ≈ 40 ms).

Why not treelite (issue 14, ``bench/tree_compilers.py``, one run, 12 features, 3,000 rows,
µs per single row, max |difference| from scikit-learn on 1,000 rows and on 1,000 rows sitting
exactly on split thresholds): RandomForest 127 here, 183 treelite 4.8 GTIL (0.12 and 0.94 off:
it compares float64 values where scikit-learn compares float32; 177 and exact when the caller
casts), 9,254 scikit-learn; ExtraTrees 175 / 233 / 9,373; GradientBoosting 22 / 92 (1.8 off
on the threshold rows), tl2cgen-compiled 54 (a 1.4 s gcc build) / 472; HistGradientBoosting
45 / 138, tl2cgen 91 (a 32 s build; forests did not build at -O3 in 20 min) / 2,700-12,000.
This module is 1.4-3x faster than GTIL, 2-2.5x faster than tl2cgen, exact where treelite is
off by 1e-14 even with the cast, needs no compiler, and also takes single trees (treelite
refuses them). What it reads of scikit-learn is public (``tree_`` and its arrays, ``estimators_``,
``init_.constant_``, ``loss``, ``is_categorical_``, ``get_tags``) except HistGradientBoosting's
``_predictors`` and ``_baseline_prediction``: scikit-learn exposes no public view of those
trees, and treelite reads the same two attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from permeability.modelling.compiled_trees import (
    BoolArray,
    CompiledEnsemble,
    FloatArray,
    IntArray,
    Walk,
    _LevelWalk,
    _TableWalk,
)

__all__ = ["TABLE_NODES_PER_LEVEL", "CompiledEnsemble", "Walk", "compile_ensemble"]

#: ``auto`` walks the node table when nodes ≤ this × depth: a level step costs ≈ 4 µs, a node
#: of the table ≈ 2.5 ns (measured crossover ≈ 1,800 on 2 shared cores; kept below it).
TABLE_NODES_PER_LEVEL: Final = 1500


@dataclass(frozen=True)
class _Tree:
    """One tree's nodes with tree-local child indices; leaves are marked by ``is_leaf``."""

    features: IntArray
    thresholds: FloatArray
    left: IntArray
    right: IntArray
    is_leaf: BoolArray
    missing_go_left: BoolArray
    values: FloatArray
    depth: int


def compile_ensemble(
    estimator: object, *, walk: Walk | Literal["auto"] = "auto"
) -> CompiledEnsemble | None:
    """The compiled form of a fitted single-output tree-ensemble regressor, else None.

    Compiled: RandomForestRegressor, ExtraTreesRegressor, DecisionTreeRegressor,
    ExtraTreeRegressor, GradientBoostingRegressor and HistGradientBoostingRegressor (exact
    types: a subclass may predict differently) whose prediction is the raw sum of their trees.
    None for everything else, including pipelines: the caller predicts with the estimator.
    ``walk`` forces a walk (for measurements and tests; both give the same numbers).
    Raises scikit-learn's NotFittedError for an unfitted ensemble.
    """
    reader = _READERS.get(type(estimator))
    if reader is None:
        return None
    check_is_fitted(estimator)
    ensemble = reader(estimator)
    if ensemble is None:
        return None
    return _assemble(type(estimator).__name__, int(estimator.n_features_in_), ensemble, walk)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Ensemble:
    """What an estimator's ``predict`` computes, as trees and how their leaves combine."""

    trees: list[_Tree]
    baseline: float
    divisor: float
    float32_inputs: bool
    accepts_missing: bool


def _read_forest(estimator: Any) -> _Ensemble | None:
    """A forest: the mean of the trees' leaf values, compared in float32."""
    return _read_trees(estimator, list(estimator.estimators_))


def _read_single_tree(estimator: Any) -> _Ensemble | None:
    """One decision tree: a forest of one."""
    return _read_trees(estimator, [estimator])


def _read_trees(estimator: Any, trees: Sequence[Any]) -> _Ensemble | None:
    """Trees averaged (``predict`` sums them in order, then divides by their number)."""
    if estimator.n_outputs_ != 1:
        return None
    return _Ensemble(
        trees=[_decision_tree(tree) for tree in trees],
        baseline=0.0,
        divisor=float(len(trees)),
        float32_inputs=True,
        accepts_missing=bool(get_tags(estimator).input_tags.allow_nan),
    )


def _read_gradient_boosting(estimator: Any) -> _Ensemble | None:
    """GradientBoosting: init + Σ learning_rate × leaf value, for identity-link losses only."""
    stages = estimator.estimators_
    if stages.ndim != 2 or stages.shape[1] != 1 or not _identity_link(estimator):
        return None
    if _is_zero_init(estimator.init_):
        baseline = 0.0
    elif type(estimator.init_) is DummyRegressor:
        baseline = float(np.asarray(estimator.init_.constant_, dtype=np.float64).ravel()[0])
    else:
        return None  # a custom init estimator's prediction depends on the row
    scale = float(estimator.learning_rate)
    return _Ensemble(
        trees=[_decision_tree(tree, scale=scale) for tree in stages[:, 0]],
        baseline=baseline,
        divisor=1.0,
        float32_inputs=True,
        accepts_missing=False,
    )


def _read_hist_gradient_boosting(estimator: Any) -> _Ensemble | None:
    """HistGradientBoosting: baseline + Σ leaf values, float64 comparisons, numeric splits."""
    if (
        estimator.n_trees_per_iteration_ != 1
        or estimator.is_categorical_ is not None
        or not _identity_link(estimator)
    ):
        return None
    predictors = [iteration[0] for iteration in estimator._predictors]
    if any(bool(p.nodes["is_categorical"].any()) for p in predictors):
        return None
    return _Ensemble(
        trees=[_hist_tree(p.nodes) for p in predictors],
        baseline=float(np.asarray(estimator._baseline_prediction).ravel()[0]),
        divisor=1.0,
        float32_inputs=False,
        accepts_missing=True,
    )


_READERS: Final[dict[type, Callable[[Any], _Ensemble | None]]] = {
    RandomForestRegressor: _read_forest,
    ExtraTreesRegressor: _read_forest,
    DecisionTreeRegressor: _read_single_tree,
    ExtraTreeRegressor: _read_single_tree,
    GradientBoostingRegressor: _read_gradient_boosting,
    HistGradientBoostingRegressor: _read_hist_gradient_boosting,
}


def _is_zero_init(init: object) -> bool:
    return isinstance(init, str) and init == "zero"


#: Losses whose ``predict`` is the raw sum of the trees (an identity link), by estimator type;
#: any other loss (poisson and gamma use a log link) or a loss object keeps the estimator.
_IDENTITY_LOSSES: Final[dict[type, frozenset[str]]] = {
    GradientBoostingRegressor: frozenset({"squared_error", "absolute_error", "huber", "quantile"}),
    HistGradientBoostingRegressor: frozenset({"squared_error", "absolute_error", "quantile"}),
}


def _identity_link(estimator: Any) -> bool:
    """Whether ``predict`` returns the raw sum, read from the public ``loss`` parameter."""
    loss = estimator.loss
    return isinstance(loss, str) and loss in _IDENTITY_LOSSES.get(type(estimator), frozenset())


def _decision_tree(tree: Any, scale: float = 1.0) -> _Tree:
    """A fitted sklearn tree's nodes; leaf values times ``scale`` (the boosting shrinkage)."""
    structure = tree.tree_
    left = np.asarray(structure.children_left, dtype=np.intp)
    values = np.asarray(structure.value, dtype=np.float64)[:, 0, 0]
    return _Tree(
        features=np.asarray(structure.feature, dtype=np.intp),
        thresholds=np.asarray(structure.threshold, dtype=np.float64),
        left=left,
        right=np.asarray(structure.children_right, dtype=np.intp),
        is_leaf=left < 0,
        missing_go_left=np.asarray(structure.missing_go_to_left, dtype=bool),
        values=scale * values if scale != 1.0 else values,
        depth=int(structure.max_depth),
    )


def _hist_tree(nodes: NDArray[Any]) -> _Tree:
    """A HistGradientBoosting predictor's node records as a :class:`_Tree`."""
    return _Tree(
        features=nodes["feature_idx"].astype(np.intp),
        thresholds=nodes["num_threshold"].astype(np.float64),
        left=nodes["left"].astype(np.intp),
        right=nodes["right"].astype(np.intp),
        is_leaf=nodes["is_leaf"].astype(bool),
        missing_go_left=nodes["missing_go_to_left"].astype(bool),
        values=nodes["value"].astype(np.float64),
        depth=int(nodes["depth"].max()),
    )


@dataclass(frozen=True)
class _NodeTable:
    """Every node of the ensemble, numbered globally; leaves loop on themselves."""

    features: IntArray
    thresholds: FloatArray
    left: IntArray
    right: IntArray
    missing_go_right: BoolArray
    values: FloatArray
    roots: IntArray

    @classmethod
    def of(cls, trees: Sequence[_Tree], baseline: float) -> _NodeTable:
        """The baseline leaf (node 0), then every tree's nodes in order."""
        sizes = np.array([1, *(len(tree.values) for tree in trees)], dtype=np.intp)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        parts = [
            (
                np.zeros(1, dtype=np.intp),
                np.zeros(1),
                np.zeros(1, dtype=np.intp),
                np.zeros(1, dtype=np.intp),
                np.zeros(1, dtype=bool),
                np.array([baseline]),
            )
        ]
        for tree, offset in zip(trees, roots[1:], strict=True):
            own = np.arange(offset, offset + len(tree.values), dtype=np.intp)
            parts.append(
                (
                    np.where(tree.is_leaf, 0, tree.features),
                    np.where(tree.is_leaf, 0.0, tree.thresholds),
                    np.where(tree.is_leaf, own, tree.left + offset),
                    np.where(tree.is_leaf, own, tree.right + offset),
                    ~tree.missing_go_left,
                    tree.values,
                )
            )
        features, thresholds, left, right, missing_go_right, values = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        return cls(features, thresholds, left, right, missing_go_right, values, roots)

    @property
    def is_leaf(self) -> BoolArray:
        return self.left == np.arange(len(self.left))

    def grouped_by_feature(self) -> _NodeTable:
        """The same table renumbered for the table walk: split nodes first, those splitting
        on one feature contiguous (in feature order), then the leaves."""
        order = np.lexsort((self.features, self.is_leaf))
        renumbered = np.empty_like(order)
        renumbered[order] = np.arange(len(order), dtype=np.intp)
        return _NodeTable(
            features=self.features[order],
            thresholds=self.thresholds[order],
            left=renumbered[self.left[order]],
            right=renumbered[self.right[order]],
            missing_go_right=self.missing_go_right[order],
            values=self.values[order],
            roots=renumbered[self.roots],
        )


def _assemble(
    estimator_name: str, n_features: int, ensemble: _Ensemble, walk: Walk | Literal["auto"]
) -> CompiledEnsemble:
    """The node table and the walk(s) over it."""
    depth = max((tree.depth for tree in ensemble.trees), default=0)
    nodes = _NodeTable.of(ensemble.trees, ensemble.baseline).grouped_by_feature()
    if walk == "auto":
        walk = "table" if len(nodes.values) <= TABLE_NODES_PER_LEVEL * max(depth, 1) else "levels"
    children = np.empty(2 * len(nodes.values), dtype=np.intp)
    children[0::2] = 2 * nodes.left
    children[1::2] = 2 * nodes.right
    levels = _LevelWalk(
        features=np.repeat(nodes.features, 2),
        thresholds=np.repeat(nodes.thresholds, 2),
        children=children,
        missing_go_right=nodes.missing_go_right,
    )
    table = None
    if walk == "table":
        splits = int(np.count_nonzero(~nodes.is_leaf))
        table = _TableWalk(
            feature_counts=np.bincount(nodes.features[:splits], minlength=n_features).astype(
                np.intp
            ),
            thresholds=nodes.thresholds[:splits],
            left=nodes.left[:splits],
            right_minus_left=(nodes.right - nodes.left)[:splits],
            leaves_loop=np.arange(splits, len(nodes.values), dtype=np.intp),
        )
    return CompiledEnsemble(
        estimator_name=estimator_name,
        n_features=n_features,
        n_trees=len(ensemble.trees),
        depth=depth,
        roots=nodes.roots,
        values=nodes.values,
        levels=levels,
        table=table,
        divisor=ensemble.divisor,
        float32_inputs=ensemble.float32_inputs,
        accepts_missing=ensemble.accepts_missing,
    )
