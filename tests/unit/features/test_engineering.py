from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.hierarchy import OTHER
from permeability.features.physics_columns import PHYSICS_FEATURES
from permeability.features.structure_levels import LEVEL_FEATURES
from permeability.record.schema import ESTRUCTURA, PERMEABILIDAD
from tests.lab_frames import pca_of, physics_frame, random_records


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(3000, seed=1)


def _builder(frame: pd.DataFrame, *, interactions: bool, threshold: float = 0.99) -> FeatureBuilder:
    return FeatureBuilder(pca_of(frame, threshold), interactions=interactions).fit(frame)


@pytest.mark.parametrize("interactions", [True, False])
@pytest.mark.parametrize("threshold", [0.99, 1.0])
def test_record_path_gives_the_frame_path_numbers(
    frame: pd.DataFrame, interactions: bool, threshold: float
) -> None:
    builder = _builder(frame, interactions=interactions, threshold=threshold)
    matrix = builder.transform_frame(frame)
    rows = np.vstack([builder.transform_record(r) for r in random_records(frame)])
    assert matrix.shape == (len(frame), builder.n_features)
    np.testing.assert_allclose(rows, matrix, rtol=1e-12, atol=0.0)


def test_feature_names_describe_every_column(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    names = builder.feature_names
    assert len(names) == builder.n_features == builder.transform_frame(frame.head(3)).shape[1]
    assert names[: len(PHYSICS_FEATURES)] == list(PHYSICS_FEATURES)
    assert "pc_1" in names
    assert "structure=NY" in names
    assert "structure=NY:log_thickness" in names
    assert f"structure={OTHER}" in names
    assert len(set(names)) == len(names)


def test_hand_typed_spellings_map_to_the_canonical_structure(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    record = random_records(frame[frame[ESTRUCTURA] == "BOPP/MET"].head(1))[0]
    expected = builder.transform_record(record)
    for spelling in ("bopp met", " Bopp metalizado ", "MET BOPP"):
        np.testing.assert_array_equal(
            builder.transform_record(record | {ESTRUCTURA: spelling}), expected
        )


def test_transform_needs_a_fit(frame: pd.DataFrame) -> None:
    builder = FeatureBuilder(pca_of(frame), interactions=False)
    with pytest.raises(RuntimeError, match="fit"):
        builder.transform_frame(frame)


def test_pickled_builder_gives_the_same_rows(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    restored = pickle.loads(pickle.dumps(builder))  # noqa: S301 (own object round trip)
    np.testing.assert_array_equal(restored.transform_frame(frame), builder.transform_frame(frame))
    assert restored.feature_names == builder.feature_names


# -- level columns (models that split) --------------------------------------------------------


def _level_builder(frame: pd.DataFrame) -> FeatureBuilder:
    return FeatureBuilder(pca_of(frame), interactions=False, levels=True).fit(frame)


def test_level_columns_come_last_and_match_between_record_and_frame(frame: pd.DataFrame) -> None:
    builder = _level_builder(frame)
    plain = FeatureBuilder(pca_of(frame), interactions=False).fit(frame)
    assert builder.feature_names == [*plain.feature_names, *LEVEL_FEATURES]
    matrix = builder.transform_frame(frame)
    assert matrix.shape == (len(frame), builder.n_features)
    np.testing.assert_array_equal(matrix[:, : plain.n_features], plain.transform_frame(frame))
    rows = np.vstack([builder.transform_record(r) for r in random_records(frame)])
    np.testing.assert_allclose(rows, matrix, rtol=1e-12, atol=0.0)


def test_the_structure_level_orders_the_films_by_their_measured_wvtr(frame: pd.DataFrame) -> None:
    builder = _level_builder(frame)
    matrix = builder.transform_frame(frame)
    level = matrix[:, builder.feature_names.index("structure_level")]
    by_name = pd.Series(level).groupby(frame[ESTRUCTURA].to_numpy()).first()
    measured = np.log(frame[PERMEABILIDAD]).groupby(frame[ESTRUCTURA]).mean()
    assert list(by_name.sort_values().index) == list(measured.sort_values().index)
    np.testing.assert_allclose(by_name[measured.index], measured, atol=0.05)
    assert matrix[0, builder.feature_names.index("n_layers")] >= 1.0


def test_an_unseen_laminate_of_known_layers_gets_its_family_level_and_its_layers(
    frame: pd.DataFrame,
) -> None:
    builder = _level_builder(frame)
    record = random_records(frame)[0] | {ESTRUCTURA: "BOPP/BOPP/MET"}
    row = builder.transform_record(record, strict=False)
    names = builder.feature_names
    metallized = builder.transform_record(random_records(frame)[0] | {ESTRUCTURA: "BOPP/MET"})
    # Its family (metallized) is only BOPP/MET here: the same family level.
    assert row[names.index("family_level")] == metallized[names.index("family_level")]
    assert row[names.index("structure_level")] == row[names.index("family_level")]
    assert row[names.index("layers_BOPP")] == 2.0
    assert row[names.index("layers_MET")] == 1.0
    assert row[names.index("n_layers")] == 3.0


def test_level_columns_need_the_target(frame: pd.DataFrame) -> None:
    builder = FeatureBuilder(pca_of(frame), interactions=False, levels=True)
    with pytest.raises(InvalidInputError, match=PERMEABILIDAD):
        builder.fit(frame.drop(columns=[PERMEABILIDAD]))


def test_a_builder_pickled_before_level_columns_still_transforms(frame: pd.DataFrame) -> None:
    builder = FeatureBuilder(pca_of(frame), interactions=False).fit(frame)
    old = dict(builder.__dict__)
    for attribute in ("levels", "_structure_levels", "_level_rows"):
        old.pop(attribute, None)
    restored = FeatureBuilder.__new__(FeatureBuilder)
    restored.__dict__.update(old)
    np.testing.assert_array_equal(restored.transform_frame(frame), builder.transform_frame(frame))
    assert restored.feature_names == builder.feature_names
