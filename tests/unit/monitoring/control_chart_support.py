"""Reference-film results as the feature store holds them, for the control-chart tests.

One entry per test: a number is a test with one replicate, a tuple a test with several. Tests
are dated ``every_days`` apart from ``start`` and numbered from ``first_record`` on, as the
store's ``record_id`` (the export's ``CONSECUTIVO``) numbers them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd

from permeability.config import ControlChartParams
from permeability.record.schema import (
    BELOW_DETECTION_LIMIT,
    CONSECUTIVO,
    ESTRUCTURA,
    FECHA,
    IS_PRODUCT,
    MUESTRA,
    PERMEABILIDAD,
    RECORD_ID,
    REFERENCIA,
    TEST_ID,
)

#: Steady results of a reference film around 2.4 g/m²·day (log10 scatter about 0.004).
STEADY: tuple[float, ...] = (2.40, 2.42, 2.38, 2.41, 2.39, 2.43, 2.37, 2.40, 2.42, 2.38)


def reference_tests(
    tests: Sequence[float | tuple[float, ...]],
    *,
    structure: str = "NIST-ROJA",
    referencia: str | None = "RN-1",
    start: str = "2024-01-01",
    every_days: int = 7,
    censored: Collection[int] = (),
    first_record: int = 1,
    product: bool = False,
) -> pd.DataFrame:
    """Rows of ``tests`` (``censored``: positions of tests whose replicates are all below the
    detection limit, stored at the values given)."""
    rows = []
    record = first_record
    for position, entry in enumerate(tests):
        replicates = entry if isinstance(entry, tuple) else (entry,)
        day = pd.Timestamp(start) + pd.Timedelta(days=every_days * position)
        test = f"T-{structure}-{referencia}-{position}"
        for number, value in enumerate(replicates, start=1):
            rows.append(
                {
                    RECORD_ID: str(record),
                    CONSECUTIVO: str(record),
                    MUESTRA: number,
                    ESTRUCTURA: structure,
                    PERMEABILIDAD: float(value),
                    FECHA: day,
                    REFERENCIA: referencia,
                    TEST_ID: test,
                    IS_PRODUCT: product,
                    BELOW_DETECTION_LIMIT: position in censored,
                }
            )
            record += 1
    frame = pd.DataFrame(rows)
    frame[REFERENCIA] = frame[REFERENCIA].astype("str")
    frame[FECHA] = frame[FECHA].astype("datetime64[ns]")
    return frame


def params(**changes: object) -> ControlChartParams:
    """The chart's parameters with ``changes`` (validated as the YAML would be)."""
    return ControlChartParams.model_validate(changes)
