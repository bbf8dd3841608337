"""The structure hierarchy: own levels, family pools and only the slopes the rows identify."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.hierarchy import (
    DEFAULT_MIN_INTERACTION_SAMPLES,
    DEFAULT_MIN_STRUCTURE_SAMPLES,
    OTHER,
)
from permeability.features.inputs import UnknownStructureError
from permeability.features.physics_columns import INTERACTED_FEATURES
from permeability.record.schema import ESTRUCTURA, GRADOS_C, PORC_HUMEDAD
from tests.lab_frames import pca_of, physics_frame, random_records


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(3000, seed=1)


def test_rare_structures_share_the_other_column(frame: pd.DataFrame) -> None:
    rare = frame.head(DEFAULT_MIN_STRUCTURE_SAMPLES - 1).assign(**{ESTRUCTURA: "EVOH"})
    builder = FeatureBuilder(pca_of(frame), interactions=False).fit(pd.concat([frame, rare]))
    assert "structure=EVOH" not in builder.feature_names
    assert builder.known_structures == ["BOPP", "BOPP/MET", "EVOH", "NY", "PET"]
    assert builder.pooled_structures == ["EVOH"]
    row = builder.transform_record(random_records(rare)[0])
    assert row[builder.feature_names.index(f"structure={OTHER}")] == 1.0
    assert row[builder.feature_names.index("structure=BOPP")] == 0.0


def test_min_structure_samples_decides_the_pooling(frame: pd.DataFrame) -> None:
    few = frame[frame[ESTRUCTURA] != "PET"]
    few = pd.concat([few, frame[frame[ESTRUCTURA] == "PET"].head(7)])
    strict_builder = FeatureBuilder(pca_of(frame), interactions=False, min_structure_samples=8)
    loose_builder = FeatureBuilder(pca_of(frame), interactions=False, min_structure_samples=7)
    assert "structure=PET" not in strict_builder.fit(few).feature_names
    assert "structure=PET" in loose_builder.fit(few).feature_names


def test_a_few_rows_earn_an_own_level_but_not_own_slopes(frame: pd.DataFrame) -> None:
    few = frame[frame[ESTRUCTURA] == "NY"].head(DEFAULT_MIN_STRUCTURE_SAMPLES)
    data = pd.concat([frame[frame[ESTRUCTURA] != "NY"], few])
    builder = FeatureBuilder(pca_of(frame), interactions=True).fit(data)
    assert "structure=NY" in builder.feature_names
    assert builder.pooled_structures == []
    assert builder.own_slopes["NY"] == []
    assert not [name for name in builder.feature_names if name.startswith("structure=NY:")]
    assert builder.own_slopes["BOPP"] == list(INTERACTED_FEATURES)


def _with_structure_rows(frame: pd.DataFrame, name: str, **columns: float) -> pd.DataFrame:
    """The frame with ``name``'s rows overwritten by the given column values."""
    changed = frame.copy()
    rows = changed[ESTRUCTURA] == name
    for column, value in columns.items():
        changed.loc[rows, column] = value
    return changed


def test_a_variable_that_does_not_vary_within_a_structure_gets_no_own_slope(
    frame: pd.DataFrame,
) -> None:
    tropical = _with_structure_rows(frame, "PET", **{GRADOS_C: 38.0, PORC_HUMEDAD: 90.0})
    builder = FeatureBuilder(pca_of(frame), interactions=True).fit(tropical)
    assert builder.own_slopes["PET"] == ["log_thickness"]
    assert builder.own_slopes["BOPP"] == list(INTERACTED_FEATURES)
    assert "structure=PET:inverse_temperature" not in builder.feature_names
    assert "structure=PET:log_thickness" in builder.feature_names


def test_a_slope_one_sample_would_decide_is_not_fitted(frame: pd.DataFrame) -> None:
    tropical = _with_structure_rows(frame, "PET", **{GRADOS_C: 38.0})
    one_cold = tropical.index[tropical[ESTRUCTURA] == "PET"][0]
    tropical.loc[one_cold, GRADOS_C] = 15.0  # a spread above the threshold, all from one row
    builder = FeatureBuilder(pca_of(frame), interactions=True, min_interaction_spread=0.0).fit(
        tropical
    )
    assert "inverse_temperature" not in builder.own_slopes["PET"]
    assert "humidity" in builder.own_slopes["PET"]


def test_slopes_need_min_interaction_samples_rows(frame: pd.DataFrame) -> None:
    few = frame[frame[ESTRUCTURA] == "NY"].head(DEFAULT_MIN_INTERACTION_SAMPLES)
    data = pd.concat([frame[frame[ESTRUCTURA] != "NY"], few])
    enough = FeatureBuilder(pca_of(frame), interactions=True).fit(data)
    stricter = FeatureBuilder(
        pca_of(frame),
        interactions=True,
        min_interaction_samples=DEFAULT_MIN_INTERACTION_SAMPLES + 1,
    ).fit(data)
    assert enough.own_slopes["NY"] == list(INTERACTED_FEATURES)
    assert stricter.own_slopes["NY"] == []
    assert stricter.own_slopes["BOPP"] == list(INTERACTED_FEATURES)


def test_record_path_matches_the_frame_path_with_partial_slopes(frame: pd.DataFrame) -> None:
    mixed = _with_structure_rows(frame, "PET", **{GRADOS_C: 38.0, PORC_HUMEDAD: 90.0})
    few = mixed[mixed[ESTRUCTURA] == "NY"].head(6)
    mixed = pd.concat(
        [mixed[mixed[ESTRUCTURA] != "NY"], few, frame.head(2).assign(**{ESTRUCTURA: "EVOH"})]
    )
    builder = FeatureBuilder(pca_of(frame), interactions=True).fit(mixed)
    assert builder.own_slopes["PET"] == ["log_thickness"]
    assert builder.own_slopes["NY"] == []
    assert builder.pooled_structures == ["EVOH"]
    unseen = physics_frame(2000, seed=7)  # other conditions than the fitting rows of PET
    matrix = builder.transform_frame(unseen)
    rows = np.vstack([builder.transform_record(r) for r in random_records(unseen)])
    assert (
        matrix.shape
        == (len(unseen), builder.n_features)
        == (len(unseen), len(builder.feature_names))
    )
    np.testing.assert_allclose(rows, matrix, rtol=1e-12, atol=0.0)
    restored = pickle.loads(pickle.dumps(builder))  # noqa: S301 (own object round trip)
    np.testing.assert_array_equal(restored.transform_frame(unseen), matrix)
    pet = unseen[ESTRUCTURA].to_numpy() == "PET"
    own = builder.feature_names.index("structure=PET:log_thickness")
    np.testing.assert_array_equal(matrix[pet, own], matrix[pet, 0])
    assert (matrix[~pet, own] == 0.0).all()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("min_structure_samples", 0),
        ("min_interaction_samples", 0),
        ("min_interaction_samples", 2.5),
        ("min_interaction_spread", -0.1),
        ("min_interaction_spread", float("nan")),
    ],
)
def test_bad_hierarchy_options_are_refused_naming_the_option(
    frame: pd.DataFrame, option: str, value: object
) -> None:
    with pytest.raises(InvalidInputError, match=option):
        FeatureBuilder(pca_of(frame), interactions=True, **{option: value})  # type: ignore[arg-type]


def test_rare_structures_pool_with_their_family_not_with_every_other_film(
    frame: pd.DataFrame,
) -> None:
    """Two rare foil laminates (2 rows each) share a FAMILY:foil level: a foil laminate must
    not be averaged with paper or PE (1000× apart), which OTHER would do."""
    rare = pd.concat(
        [
            frame.head(2).assign(**{ESTRUCTURA: "PET/AL/PE"}),
            frame.iloc[2:4].assign(**{ESTRUCTURA: "PET/AL/PPC"}),
            frame.iloc[4:5].assign(**{ESTRUCTURA: "NUEVO-FILM"}),
        ]
    )
    builder = FeatureBuilder(pca_of(frame), interactions=False).fit(pd.concat([frame, rare]))
    assert "structure=FAMILY:foil" in builder.feature_names
    assert builder.category_name("PET/AL/PE") == "FAMILY:foil"
    assert builder.category_name("PET/AL/PPC") == "FAMILY:foil"
    assert builder.category_name("NUEVO-FILM") == OTHER  # not a list of known layers
    assert builder.pooled_structures == ["NUEVO-FILM", "PET/AL/PE", "PET/AL/PPC"]
    # A foil laminate never seen stands in with its family; one of unknown layers has none.
    assert builder.stand_in("PET/AL/NY/PE") == "FAMILY:foil"
    assert builder.stand_in("XYZ-FILM") is None
    record = {**random_records(rare)[0], ESTRUCTURA: "PET/AL/NY/PE"}
    row = builder.transform_record(record, strict=False)
    assert row[builder.feature_names.index("structure=FAMILY:foil")] == 1.0
    with pytest.raises(UnknownStructureError):
        builder.transform_record(record, strict=True)


def test_an_unseen_structure_stands_in_with_its_familys_most_measured_structure(
    frame: pd.DataFrame,
) -> None:
    builder = FeatureBuilder(pca_of(frame), interactions=False).fit(frame)
    assert builder.stand_in("BOPP/BOPP/MET") == "BOPP/MET"  # metallized: the family's own film
    assert builder.stand_in("PET/PET") == "PET"
