from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from permeability.errors import InvalidInputError
from permeability.features.pca import CaliperPCA, fit_caliper_pca


def readings(n: int = 300, seed: int = 0, noise: float = 0.2) -> np.ndarray:
    """One true thickness per sample, five noisy readings of it (as a caliper gives)."""
    rng = np.random.default_rng(seed)
    thickness = rng.uniform(12, 80, size=(n, 1))
    return thickness + rng.normal(0, noise, size=(n, 5))


def test_one_component_carries_correlated_readings() -> None:
    pca = fit_caliper_pca(readings(), 0.99)
    assert pca.n_components == 1
    assert pca.explained_variance_ratio[0] > 0.99
    assert pca.output_columns == ("pc_1",)
    assert len(pca.explained_variance_ratio) == 5
    assert pca.cumulative_explained_variance[-1] == pytest.approx(1.0)


def test_a_higher_threshold_keeps_more_components() -> None:
    data = readings(noise=3.0)
    low = fit_caliper_pca(data, 0.9)
    high = fit_caliper_pca(data, 0.999)
    assert low.n_components < high.n_components
    assert fit_caliper_pca(data, 1.0).n_components == 5


def test_matches_scikit_learn() -> None:
    data = readings(noise=2.0)
    ours = fit_caliper_pca(data, 1.0)
    theirs = PCA().fit(data)
    assert ours.explained_variance_ratio == pytest.approx(theirs.explained_variance_ratio_)
    projected = ours.transform(data)
    assert np.abs(projected) == pytest.approx(np.abs(theirs.transform(data)), abs=1e-9)


def test_first_component_grows_with_thickness_and_refits_agree() -> None:
    data = readings()
    first = fit_caliper_pca(data, 0.99)
    again = fit_caliper_pca(data.copy(), 0.99)
    assert first == again
    thin, thick = first.transform([[15.0] * 5, [60.0] * 5])[:, 0]
    assert thick > thin


def test_round_trip_through_a_dict_gives_the_same_transform() -> None:
    pca = fit_caliper_pca(readings(), 0.99)
    restored = CaliperPCA.from_dict(pca.to_dict())
    assert restored == pca
    probe = readings(5, seed=3)
    assert np.array_equal(restored.transform(probe), pca.transform(probe))


def test_variance_table_marks_kept_components() -> None:
    pca = fit_caliper_pca(readings(noise=3.0), 0.95)
    table = pca.variance_table()
    assert [row["component"] for row in table] == [1, 2, 3, 4, 5]
    assert [row["kept"] for row in table] == [i < pca.n_components for i in range(5)]
    assert table[-1]["cumulative"] == pytest.approx(1.0)


def test_identical_samples_give_a_single_full_component() -> None:
    pca = fit_caliper_pca(np.full((4, 5), 20.0), 0.99)
    assert pca.explained_variance_ratio[0] == 1.0
    assert pca.n_components == 1
    assert pca.transform([[20.0] * 5])[0, 0] == 0.0


@pytest.mark.parametrize(
    ("data", "threshold", "message"),
    [
        (readings(), 0.0, "variance_threshold"),
        (readings(), 1.5, "variance_threshold"),
        (np.ones((10, 4)), 0.99, "shape"),
        (np.ones((1, 5)), 0.99, "at least 2"),
        (np.r_[readings(3), [[np.nan] * 5]], 0.99, "missing"),
    ],
)
def test_bad_inputs_are_refused(data: np.ndarray, threshold: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fit_caliper_pca(data, threshold)


def test_transform_refuses_the_wrong_number_of_readings() -> None:
    pca = fit_caliper_pca(readings(), 0.99)
    with pytest.raises(InvalidInputError, match="5 readings"):
        pca.transform(np.ones((2, 4)))
