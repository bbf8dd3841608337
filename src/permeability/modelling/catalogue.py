"""The model catalogue: which estimators can be trained, their tunable parameters, validation.

Every model learns log WVTR from the physics features of :mod:`permeability.features.engineering`.
Linear models get structure × physics interaction columns (their slopes differ by film); tree
ensembles find interactions themselves. Scale-sensitive estimators (penalised linear models,
SVR, k-NN) sit behind a ``StandardScaler`` in a scikit-learn ``Pipeline``; the interaction and
indicator columns would otherwise be penalised or weighted by their arbitrary units.

Defaults differ from scikit-learn's where its defaults are wrong for this problem or too slow
on 2 cores: ``n_jobs=1``; small L1 penalties (the target is a log, so scikit-learn's
``alpha=1`` would zero every coefficient) solved on the precomputed Gram matrix (p ≈ 80 columns
against 10⁵ rows: 0.5 s instead of 35 s, so 50,000 iterations cost nothing and small
colinear sets still converge); forests of 60 trees on half the rows and features;
boosting with 150 trees on half-samples; neighbours weighted by distance. Measured at 100k
rows on 2 shared cores (fit + calibration + test): linear models ≈ 1 s, HistGradientBoosting
≈ 8 s, RandomForest ≈ 15 s, GradientBoosting ≈ 25 s, k-NN ≈ 30 s (brute-force neighbour search
over ~20 dimensions is what costs; prediction time grows with the training rows).

SVR costs O(n²) memory and time in the training rows, so it refuses more than
:data:`SVR_MAX_ROWS` fitting rows with a clear error instead of silently subsampling.

``auto`` is not an estimator: :func:`permeability.modelling.training.train_model` cross-validates
the :data:`AUTO_CANDIDATES` on the fitting rows and keeps the best (MAE on the original scale).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from sklearn.utils._param_validation import InvalidParameterError, make_constraint

from permeability.errors import InvalidInputError

AUTO: Final = "auto"
#: SVR's kernel matrix grows with the square of the rows: ≈ 14 s at 10k fitting rows and
#: ≈ 80 s at 20k on 2 shared cores, so it refuses more than this.
SVR_MAX_ROWS: Final = 10_000


class Regressor(Protocol):
    """What training and prediction need of an estimator (scikit-learn's duck type)."""

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict(self, X: Any) -> Any: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...


class UnknownModelError(InvalidInputError):
    """A model name that is not in the catalogue."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = list(valid)
        super().__init__(
            f"model {name!r} is not in the catalogue; valid models: {', '.join(valid)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.valid))


@dataclass(frozen=True)
class ParamInfo:
    """One tunable hyperparameter as GET /models shows it."""

    name: str
    default: Any
    type: str
    allowed: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "type": self.type,
            "allowed": self.allowed,
        }


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry: what it is, how it is fed, what can be tuned."""

    name: str
    description: str
    scaled: bool
    interactions: bool
    params: tuple[ParamInfo, ...]
    max_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "scaled": self.scaled,
            "interactions": self.interactions,
            "max_rows": self.max_rows,
            "params": [p.to_dict() for p in self.params],
        }


@dataclass(frozen=True)
class _Spec:
    estimator: type[BaseEstimator]
    description: str
    scaled: bool
    interactions: bool
    tunable: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False
    max_rows: int | None = None


_SPECS: Final[Mapping[str, _Spec]] = {
    "LinearRegression": _Spec(
        LinearRegression,
        "Ordinary least squares on log WVTR with structure × physics interactions.",
        scaled=False,
        interactions=True,
        tunable=("fit_intercept", "positive"),
    ),
    "Ridge": _Spec(
        Ridge,
        "L2-penalised linear model on standardised physics features with interactions.",
        scaled=True,
        interactions=True,
        tunable=("alpha", "fit_intercept", "solver", "tol"),
    ),
    "Lasso": _Spec(
        Lasso,
        "L1-penalised linear model (sparse interactions) on standardised features.",
        scaled=True,
        interactions=True,
        tunable=("alpha", "fit_intercept", "max_iter", "tol", "selection"),
        defaults={"alpha": 1e-4, "max_iter": 50_000, "precompute": True},
        seeded=True,
    ),
    "ElasticNet": _Spec(
        ElasticNet,
        "L1 + L2 penalised linear model on standardised features with interactions.",
        scaled=True,
        interactions=True,
        tunable=("alpha", "l1_ratio", "fit_intercept", "max_iter", "tol", "selection"),
        defaults={"alpha": 1e-4, "l1_ratio": 0.5, "max_iter": 50_000, "precompute": True},
        seeded=True,
    ),
    "RandomForestRegressor": _Spec(
        RandomForestRegressor,
        "Bagged regression trees; interactions found by the trees.",
        scaled=False,
        interactions=False,
        tunable=(
            "n_estimators",
            "max_depth",
            "min_samples_split",
            "min_samples_leaf",
            "max_features",
            "max_samples",
            "bootstrap",
            "ccp_alpha",
        ),
        defaults={
            "n_estimators": 60,
            "min_samples_leaf": 3,
            "max_features": 0.5,
            "max_samples": 0.5,
            "n_jobs": 1,
        },
        seeded=True,
    ),
    "ExtraTreesRegressor": _Spec(
        ExtraTreesRegressor,
        "Extremely randomised trees: random split points average out noise on small data.",
        scaled=False,
        interactions=False,
        tunable=(
            "n_estimators",
            "max_depth",
            "min_samples_split",
            "min_samples_leaf",
            "max_features",
            "bootstrap",
            "ccp_alpha",
        ),
        defaults={"n_estimators": 100, "min_samples_leaf": 2, "max_features": 0.7, "n_jobs": 1},
        seeded=True,
    ),
    "GradientBoostingRegressor": _Spec(
        GradientBoostingRegressor,
        "Boosted regression trees (exact splits); slower than the histogram version.",
        scaled=False,
        interactions=False,
        tunable=(
            "n_estimators",
            "learning_rate",
            "max_depth",
            "min_samples_leaf",
            "subsample",
            "max_features",
            "loss",
        ),
        defaults={"n_estimators": 150, "max_depth": 4, "subsample": 0.5},
        seeded=True,
    ),
    "HistGradientBoostingRegressor": _Spec(
        HistGradientBoostingRegressor,
        "Histogram gradient boosting: fast on large data; interactions found by the trees.",
        scaled=False,
        interactions=False,
        tunable=(
            "max_iter",
            "learning_rate",
            "max_leaf_nodes",
            "max_depth",
            "min_samples_leaf",
            "l2_regularization",
            "max_bins",
            "early_stopping",
            "loss",
        ),
        defaults={"max_iter": 300},
        seeded=True,
    ),
    "SVR": _Spec(
        SVR,
        f"Kernel support-vector regression on standardised features; O(n²): at most "
        f"{SVR_MAX_ROWS} fitting rows.",
        scaled=True,
        interactions=False,
        tunable=("kernel", "C", "epsilon", "gamma", "degree", "tol", "max_iter"),
        defaults={"epsilon": 0.05, "cache_size": 500},
        max_rows=SVR_MAX_ROWS,
    ),
    "KNeighborsRegressor": _Spec(
        KNeighborsRegressor,
        "Distance-weighted nearest neighbours on standardised features.",
        scaled=True,
        interactions=False,
        tunable=("n_neighbors", "weights", "p", "leaf_size", "algorithm"),
        defaults={"n_neighbors": 10, "weights": "distance", "n_jobs": 1},
    ),
}

#: What ``auto`` cross-validates, cheapest first (the time budget may stop the list early).
AUTO_CANDIDATES: Final[tuple[tuple[str, Mapping[str, Any]], ...]] = (
    # The physics-informed linear model: exact on data that follows the law.
    ("Ridge", {"alpha": 1e-3}),
    # Early stopping on 10 % of the rows also below 10k rows (scikit-learn's 'auto' threshold).
    ("HistGradientBoostingRegressor", {"max_iter": 500, "early_stopping": True}),
    # Tree ensembles for data that does not follow our physics (the seed lab's real data:
    # recorded conditions that may not be the test's set points); averaged trees never
    # extrapolate beyond the levels they saw.
    ("RandomForestRegressor", {"n_estimators": 100, "min_samples_leaf": 2}),
    ("ExtraTreesRegressor", {}),
    ("GradientBoostingRegressor", {}),
)
#: Seconds ``auto`` may spend cross-validating before it stops adding candidates.
AUTO_TIME_BUDGET_S: Final = 60.0


def model_names() -> list[str]:
    """Catalogue names, ``auto`` last."""
    return [*_SPECS, AUTO]


def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise UnknownModelError(name, model_names())
    return _SPECS[name]


def uses_interactions(name: str) -> bool:
    """Whether the model is fed the structure × physics interaction columns."""
    return _spec(name).interactions


def uses_levels(name: str) -> bool:
    """Whether the model is fed the structure level and layer columns
    (:mod:`permeability.features.structure_levels`): every model that splits or measures
    distances rather than adds, i.e. every model without interaction columns (for an additive
    model a level column would only duplicate the structure indicators)."""
    return not _spec(name).interactions


def max_rows(name: str) -> int | None:
    """The most fitting rows the model accepts, or None for no limit."""
    return _spec(name).max_rows


def _type_name(constraints: list[Any]) -> tuple[str, str]:
    parsed = [make_constraint(c) for c in constraints]
    kinds: list[str] = []
    for constraint in parsed:
        kind = type(constraint).__name__
        if kind == "Interval":
            kinds.append("int" if constraint.type.__name__ == "Integral" else "float")
        elif kind == "StrOptions":
            kinds.append("str")
        elif kind == "_Booleans":
            kinds.append("bool")
        elif kind == "_NoneConstraint":
            kinds.append("null")
    type_text = " | ".join(dict.fromkeys(kinds)) or "any"
    return type_text, " or ".join(str(c) for c in parsed)


def _param_info(spec: _Spec, name: str) -> ParamInfo:
    default = spec.defaults.get(name, spec.estimator().get_params()[name])
    type_text, allowed = _type_name(list(spec.estimator._parameter_constraints[name]))  # type: ignore[attr-defined]
    return ParamInfo(name=name, default=default, type=type_text, allowed=allowed)


def catalogue() -> list[ModelInfo]:
    """Every trainable model with its tunable parameters (what GET /models lists)."""
    infos = [
        ModelInfo(
            name=name,
            description=spec.description,
            scaled=spec.scaled,
            interactions=spec.interactions,
            params=tuple(_param_info(spec, p) for p in spec.tunable),
            max_rows=spec.max_rows,
        )
        for name, spec in _SPECS.items()
    ]
    candidates = ", ".join(name for name, _ in AUTO_CANDIDATES)
    infos.append(
        ModelInfo(
            name=AUTO,
            description=f"Picks the best of {candidates} by K-fold cross-validated MAE "
            f"on the fitting rows (within {AUTO_TIME_BUDGET_S:g} s).",
            scaled=False,
            interactions=False,
            params=(),
        )
    )
    return infos


def resolve_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full set of tunable values the model will use: catalogue defaults, then ``params``.

    Raises InvalidInputError for a name that is not tunable (listing the valid ones) and for a
    value the estimator rejects (naming the parameter and the value).
    """
    spec = _spec(name)
    given = dict(params or {})
    unknown = sorted(set(given) - set(spec.tunable))
    if unknown:
        valid = ", ".join(spec.tunable) or "none"
        raise InvalidInputError(
            f"unknown parameter(s) {', '.join(unknown)} for {name}; valid parameters: {valid}"
        )
    estimator = _bare_estimator(spec, given, random_state=0)
    try:
        estimator._validate_params()  # type: ignore[attr-defined]
    except InvalidParameterError as exc:
        raise InvalidInputError(f"invalid parameter for {name}: {exc}") from exc
    current = estimator.get_params(deep=False)
    return {p: current[p] for p in spec.tunable}


def _bare_estimator(spec: _Spec, params: Mapping[str, Any], *, random_state: int) -> BaseEstimator:
    settings = {**spec.defaults, **params}
    if spec.seeded:
        settings["random_state"] = random_state
    estimator = spec.estimator()
    estimator.set_params(**settings)
    return estimator


def build_estimator(
    name: str, params: Mapping[str, Any] | None = None, *, random_state: int = 42
) -> Regressor:
    """An unfitted estimator (a scaler pipeline for scale-sensitive models), params validated."""
    spec = _spec(name)
    resolved = resolve_params(name, params)
    estimator = _bare_estimator(spec, resolved, random_state=random_state)
    if spec.scaled:
        return cast(Regressor, Pipeline([("scale", StandardScaler()), ("model", estimator)]))
    return cast(Regressor, estimator)
