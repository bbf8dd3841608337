from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from permeability.errors import InvalidInputError
from permeability.features.engineering import (
    DEFAULT_MIN_INTERACTION_SAMPLES,
    DEFAULT_MIN_STRUCTURE_SAMPLES,
    INTERACTED_FEATURES,
    OTHER,
    PHYSICS_FEATURES,
    FeatureBuilder,
    UnknownStructureError,
)
from permeability.features.pca import fit_caliper_pca
from permeability.features.structure_levels import LEVEL_FEATURES
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
)
from tests.lab_frames import law, pca_of, physics_frame, random_records


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


def test_physics_columns_vanish_at_the_reference_condition(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=False)
    record = {GRADOS_C: 38.0, PORC_HUMEDAD: 90.0, ESTRUCTURA: "BOPP", CALIBRE_PROM: 25.0}
    record |= {c: 25.0 for c in CALIBRES}
    row = builder.transform_record(record)
    np.testing.assert_allclose(row[: len(PHYSICS_FEATURES)], 0.0, atol=1e-15)


def test_a_linear_model_on_the_features_reproduces_the_law_exactly(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    matrix = builder.transform_frame(frame)
    exact = np.log(
        law(
            frame[ESTRUCTURA].to_numpy(),
            frame[GRADOS_C].to_numpy(),
            frame[PORC_HUMEDAD].to_numpy(),
            frame[CALIBRE_PROM].to_numpy(),
        )
    )
    fitted = LinearRegression().fit(matrix, exact)
    assert np.max(np.abs(fitted.predict(matrix) - exact)) < 1e-8


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


def test_log_humidity_has_one_shared_slope(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    assert "log_humidity" in builder.feature_names
    assert not [name for name in builder.feature_names if name.endswith(":log_humidity")]


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


def test_unseen_structure_is_refused_when_strict_and_pooled_otherwise(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    record = random_records(frame.head(1))[0] | {ESTRUCTURA: "PLA"}
    with pytest.raises(UnknownStructureError) as caught:
        builder.transform_record(record, strict=True)
    assert isinstance(caught.value, InvalidInputError)
    assert caught.value.structure == "PLA"
    assert caught.value.known == ["BOPP", "BOPP/MET", "NY", "PET"]
    assert "'PLA'" in str(caught.value)
    assert "BOPP/MET" in str(caught.value)
    row = builder.transform_record(record, strict=False)
    assert row[builder.feature_names.index(f"structure={OTHER}")] == 1.0
    unseen = frame.head(4).assign(**{ESTRUCTURA: "PLA"})
    with pytest.raises(UnknownStructureError):
        builder.transform_frame(unseen, strict=True)
    other_column = builder.transform_frame(unseen)[
        :, builder.feature_names.index("structure=OTHER")
    ]
    assert other_column.tolist() == [1.0] * 4


def test_hand_typed_spellings_map_to_the_canonical_structure(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    record = random_records(frame[frame[ESTRUCTURA] == "BOPP/MET"].head(1))[0]
    expected = builder.transform_record(record)
    for spelling in ("bopp met", " Bopp metalizado ", "MET BOPP"):
        np.testing.assert_array_equal(
            builder.transform_record(record | {ESTRUCTURA: spelling}), expected
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (PORC_HUMEDAD, 0.0),
        (PORC_HUMEDAD, 120.0),
        (CALIBRE_PROM, -3.0),
        ("Calibre3", 0.0),
        (GRADOS_C, float("nan")),
        (GRADOS_C, "warm"),
        (CALIBRE_PROM, None),
        (GRADOS_C, True),
    ],
)
def test_bad_record_values_are_refused_naming_the_column(
    frame: pd.DataFrame, column: str, value: object
) -> None:
    builder = _builder(frame, interactions=False)
    record = random_records(frame.head(1))[0] | {column: value}
    with pytest.raises(InvalidInputError, match=column):
        builder.transform_record(record)


def test_missing_record_field_and_structure_are_refused(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=False)
    record = random_records(frame.head(1))[0]
    without = {k: v for k, v in record.items() if k != "Calibre2"}
    with pytest.raises(InvalidInputError, match="Calibre2"):
        builder.transform_record(without)
    with pytest.raises(InvalidInputError, match=ESTRUCTURA):
        builder.transform_record(record | {ESTRUCTURA: "  "})


def test_bad_frame_columns_are_refused_naming_the_column(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=False)
    broken = frame.head(10).copy()
    broken.loc[broken.index[3], PORC_HUMEDAD] = 140.0
    with pytest.raises(InvalidInputError, match=r"Porc_Humedad has 1 value"):
        builder.transform_frame(broken)
    with pytest.raises(InvalidInputError, match="missing column"):
        builder.transform_frame(frame.head(3).drop(columns=[CALIBRE_PROM]))
    texts = frame.head(3).astype({GRADOS_C: object})
    texts.loc[texts.index[0], GRADOS_C] = "38,0"
    with pytest.raises(InvalidInputError, match=GRADOS_C):
        builder.transform_frame(texts)
    missing_name = frame.head(3).astype({ESTRUCTURA: object})
    missing_name.loc[missing_name.index[1], ESTRUCTURA] = None
    with pytest.raises(InvalidInputError, match=ESTRUCTURA):
        builder.transform_frame(missing_name)


def test_transform_needs_a_fit(frame: pd.DataFrame) -> None:
    builder = FeatureBuilder(pca_of(frame), interactions=False)
    with pytest.raises(RuntimeError, match="fit"):
        builder.transform_frame(frame)


def test_pickled_builder_gives_the_same_rows(frame: pd.DataFrame) -> None:
    builder = _builder(frame, interactions=True)
    restored = pickle.loads(pickle.dumps(builder))  # noqa: S301 (own object round trip)
    np.testing.assert_array_equal(restored.transform_frame(frame), builder.transform_frame(frame))
    assert restored.feature_names == builder.feature_names


def test_two_components_carry_caliper_variation(frame: pd.DataFrame) -> None:
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), 1.0)
    builder = FeatureBuilder(pca, interactions=False).fit(frame)
    assert [n for n in builder.feature_names if n.startswith("pc_")] == list(pca.output_columns)
    matrix = builder.transform_frame(frame)
    start = len(PHYSICS_FEATURES)
    expected = pca.transform(frame[list(CALIBRES)].to_numpy())
    np.testing.assert_allclose(matrix[:, start : start + pca.n_components], expected, atol=1e-9)


_RANGES = {
    GRADOS_C: (TEMPERATURE_RANGE_C, False),
    PORC_HUMEDAD: (HUMIDITY_RANGE_PCT, True),
    "Calibre2": (CALIPER_RANGE_UM, True),
    CALIBRE_PROM: (CALIPER_RANGE_UM, True),
}


@pytest.mark.parametrize("column", sorted(_RANGES))
def test_the_record_path_takes_exactly_the_values_of_the_physical_range(
    frame: pd.DataFrame, column: str
) -> None:
    """Both bounds, one float step beyond each, and non-finite values, for inclusive and
    exclusive lower bounds: the record path accepts what the frame path accepts."""
    builder = _builder(frame, interactions=False)
    base = random_records(frame)[0]
    (low, high), lower_exclusive = _RANGES[column]
    candidates = [
        low,
        math.nextafter(low, -math.inf),
        math.nextafter(low, math.inf),
        high,
        math.nextafter(high, math.inf),
        math.nan,
        math.inf,
        -math.inf,
    ]
    for value in candidates:
        record = {**base, column: value}
        frame_ok = True
        try:
            builder.transform_frame(pd.DataFrame([record]))
        except InvalidInputError:
            frame_ok = False
        problem = ""
        try:
            builder.transform_record(record)
        except InvalidInputError as exc:
            problem = str(exc)
        record_ok = problem == ""
        assert record_ok or column in problem
        assert record_ok == frame_ok, (column, value)
        expected = math.isfinite(value) and (value > low if lower_exclusive else value >= low)
        assert record_ok == (expected and value <= high), (column, value)


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
