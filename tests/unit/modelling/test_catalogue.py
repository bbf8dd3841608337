from __future__ import annotations

import json

import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from permeability.errors import InvalidInputError
from permeability.modelling.catalogue import (
    AUTO,
    AUTO_CANDIDATES,
    SVR_MAX_ROWS,
    UnknownModelError,
    build_estimator,
    catalogue,
    max_rows,
    model_names,
    resolve_params,
    uses_interactions,
)

REQUIRED = {
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "SVR",
    "KNeighborsRegressor",
    AUTO,
}
SCALED = {"Ridge", "Lasso", "ElasticNet", "SVR", "KNeighborsRegressor"}
LINEAR = {"LinearRegression", "Ridge", "Lasso", "ElasticNet"}


def test_catalogue_lists_every_required_model_with_its_parameters() -> None:
    entries = {info.name: info for info in catalogue()}
    assert set(entries) == REQUIRED == set(model_names())
    for name, info in entries.items():
        if name == AUTO:
            assert info.params == ()
            assert all(candidate in info.description for candidate, _ in AUTO_CANDIDATES)
            continue
        assert info.params, name
        assert info.scaled is (name in SCALED)
        assert info.interactions is (name in LINEAR)
        for param in info.params:
            assert param.type in {"int", "float", "str", "bool"} or "|" in param.type, param
            assert param.allowed
    json.dumps([info.to_dict() for info in catalogue()])


def test_catalogue_shows_the_projects_defaults() -> None:
    lasso = {p.name: p for p in next(i for i in catalogue() if i.name == "Lasso").params}
    assert lasso["alpha"].default == 1e-4
    assert lasso["alpha"].type == "float"
    hgb = {
        p.name: p
        for p in next(i for i in catalogue() if i.name == "HistGradientBoostingRegressor").params
    }
    assert hgb["max_depth"].type == "int | null"
    assert hgb["max_depth"].default is None


@pytest.mark.parametrize("name", sorted(REQUIRED - {AUTO}))
def test_build_estimator_scales_the_scale_sensitive_models(name: str) -> None:
    estimator = build_estimator(name)
    if name in SCALED:
        assert isinstance(estimator, Pipeline)
        assert isinstance(estimator.steps[0][1], StandardScaler)
    else:
        assert not isinstance(estimator, Pipeline)
    assert uses_interactions(name) is (name in LINEAR)


def test_parallel_models_run_on_one_job_and_are_seeded() -> None:
    forest = build_estimator("RandomForestRegressor", random_state=7)
    assert forest.get_params()["n_jobs"] == 1
    assert forest.get_params()["random_state"] == 7
    neighbours = build_estimator("KNeighborsRegressor")
    assert neighbours.get_params()["model__n_jobs"] == 1


def test_params_reach_the_estimator() -> None:
    estimator = build_estimator("Ridge", {"alpha": 3.5})
    assert estimator.get_params()["model__alpha"] == 3.5
    resolved = resolve_params("HistGradientBoostingRegressor", {"learning_rate": 0.05})
    assert resolved["learning_rate"] == 0.05
    assert resolved["max_iter"] == 300


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(
        InvalidInputError, match=r"unknown parameter\(s\) depth for Ridge"
    ) as caught:
        build_estimator("Ridge", {"depth": 3})
    assert "alpha, fit_intercept, solver, tol" in str(caught.value)


def test_random_state_is_not_a_user_parameter() -> None:
    with pytest.raises(InvalidInputError, match="random_state"):
        resolve_params("RandomForestRegressor", {"random_state": 1})


@pytest.mark.parametrize(
    ("name", "params", "names"),
    [
        ("Ridge", {"alpha": -1.0}, "alpha"),
        ("SVR", {"kernel": "banana"}, "banana"),
        ("HistGradientBoostingRegressor", {"max_iter": "many"}, "max_iter"),
        ("KNeighborsRegressor", {"n_neighbors": 0}, "n_neighbors"),
        ("RandomForestRegressor", {"max_features": "most"}, "max_features"),
    ],
)
def test_bad_parameter_value_names_the_parameter_and_value(
    name: str, params: dict[str, object], names: str
) -> None:
    with pytest.raises(InvalidInputError, match=names) as caught:
        build_estimator(name, params)
    value = next(iter(params.values()))
    assert str(value) in str(caught.value)


def test_unknown_model_lists_the_catalogue() -> None:
    with pytest.raises(UnknownModelError) as caught:
        build_estimator("XGBoost")
    assert isinstance(caught.value, InvalidInputError)
    assert caught.value.valid == model_names()
    assert "'XGBoost'" in str(caught.value)
    assert "HistGradientBoostingRegressor" in str(caught.value)


def test_auto_is_not_an_estimator() -> None:
    with pytest.raises(UnknownModelError):
        build_estimator(AUTO)


def test_svr_declares_its_row_limit() -> None:
    assert max_rows("SVR") == SVR_MAX_ROWS
    assert max_rows("Ridge") is None
    assert str(SVR_MAX_ROWS) in next(i for i in catalogue() if i.name == "SVR").description
