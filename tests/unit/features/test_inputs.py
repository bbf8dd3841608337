"""What the features refuse of a record or a frame, naming the field; unseen structures."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.features.engineering import FeatureBuilder
from permeability.features.hierarchy import OTHER
from permeability.features.inputs import UnknownStructureError
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIPER_RANGE_UM,
    ESTRUCTURA,
    GRADOS_C,
    HUMIDITY_RANGE_PCT,
    PORC_HUMEDAD,
    TEMPERATURE_RANGE_C,
)
from tests.lab_frames import pca_of, physics_frame, random_records


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return physics_frame(3000, seed=1)


def _builder(frame: pd.DataFrame, *, interactions: bool, threshold: float = 0.99) -> FeatureBuilder:
    return FeatureBuilder(pca_of(frame, threshold), interactions=interactions).fit(frame)


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
