"""The control chart on the seed lab's real reference-film results (``../shared/data``).

The processed file keeps the real WVTR of every row but no dates and no ``Referencia``: rows
are taken in file order as time (record number = row number), tests are rebuilt the way
``tests/real_export.py`` rebuilds them (consecutive replicates of one structure and
conditions), and values under the detection limit are censored as acquisition censors them.
What is true there, and what the tests check:

* ``NIST-ROJA``: 3 results of one steady film: too few for limits;
* ``MATERIAL-REF``: 6 results near the detection limit, 2 of them under it: too few;
* ``CALIBRACION``: 20 rows, several calibration films under one name spanning four decades.
  On log10 the chart has limits, but they span more than five decades: without a
  ``Referencia`` to split the films it cannot catch anything an instrument would do. On a
  linear scale its lower limit is a negative WVTR: meaningless, hence log10 by default.

No exact real value is asserted (the data README forbids using it as a fixture).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permeability.monitoring.control_chart import control_charts
from permeability.monitoring.control_chart_events import chart_events
from permeability.monitoring.reports import ChartSeries
from permeability.record.identity import DEFAULT_DETECTION_LIMIT, censor_below_limit
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    ESTRUCTURA,
    FECHA,
    PERMEABILIDAD,
    RECORD_ID,
    REFERENCIA,
    TEST_ID,
)
from tests.real_export import group_tests, load_processed, replicate_numbers, structure_names
from tests.unit.monitoring.control_chart_support import params


@pytest.fixture(scope="module")
def real_rows() -> pd.DataFrame:
    """Every real row as the store would chart it: file order as time, no date, no reference."""
    processed = load_processed()
    structures = structure_names(processed)
    tests = group_tests(
        structures,
        processed["Grados_C"],
        processed["Porc_Humedad"],
        replicate_numbers(processed["Muestra"]),
    )
    values, below = censor_below_limit(
        processed[PERMEABILIDAD].to_numpy(dtype=np.float64), DEFAULT_DETECTION_LIMIT
    )
    return pd.DataFrame(
        {
            RECORD_ID: [str(i + 1) for i in range(len(processed))],
            ESTRUCTURA: structures.to_numpy(),
            PERMEABILIDAD: values,
            FECHA: pd.Series(pd.NaT, index=processed.index, dtype="datetime64[ns]"),
            REFERENCIA: pd.Series([None] * len(processed), dtype="str"),
            TEST_ID: [f"T-{t}" for t in tests],
            BELOW_DETECTION_LIMIT: below,
        }
    )


def by_name(charts: list[ChartSeries]) -> dict[str, ChartSeries]:
    assert all(c.series == "" for c in charts)  # no Referencia: one series per name
    return {c.reference: c for c in charts}


def test_each_reference_gets_one_point_per_test_in_file_order(real_rows: pd.DataFrame) -> None:
    charts = by_name(control_charts(real_rows, params()))

    assert sorted(charts) == ["CALIBRACION", "MATERIAL-REF", "NIST-ROJA"]
    for name, chart in charts.items():
        rows = real_rows[real_rows[ESTRUCTURA] == name]
        assert len(chart.points) == rows[TEST_ID].nunique()
        assert sum(p.replicates for p in chart.points) == len(rows)
        records = [int(str(p.record)) for p in chart.points]
        assert records == sorted(records)
    assert sum(p.replicates for p in charts["CALIBRACION"].points) == 20
    assert len(charts["CALIBRACION"].points) < 20  # replicate pairs are one point each


def test_nist_roja_and_material_ref_have_too_few_results_for_limits(
    real_rows: pd.DataFrame,
) -> None:
    charts = by_name(control_charts(real_rows, params()))
    nist, material = charts["NIST-ROJA"], charts["MATERIAL-REF"]

    assert nist.status == material.status == "too_few_points"
    assert nist.note == "3 usable result(s); 8 are needed before limits are set"
    assert sum(p.censored for p in material.points) == 2
    assert material.note.startswith("4 usable result(s) (2 more below the detection limit")
    assert chart_events([nist, material]) == []


def test_calibracion_without_referencia_has_limits_too_wide_to_catch_anything(
    real_rows: pd.DataFrame,
) -> None:
    chart = by_name(control_charts(real_rows, params()))["CALIBRACION"]
    assert chart.lower_limit is not None
    assert chart.upper_limit is not None

    assert chart.status == "in_control"
    assert not any(p.violations for p in chart.points)
    decades = chart.upper_limit - chart.lower_limit
    assert decades > 5.0  # the films it mixes span four decades, its limits more than five
    measured = [p.measured for p in chart.points if not p.censored]
    assert max(measured) / min(measured) > 1e2


def test_calibracion_on_a_linear_scale_gets_a_negative_lower_limit(
    real_rows: pd.DataFrame,
) -> None:
    chart = by_name(control_charts(real_rows, params(scale="linear")))["CALIBRACION"]

    assert chart.lower_limit is not None
    assert chart.lower_limit < 0.0
