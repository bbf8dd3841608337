"""The generated exports several synthetic tests read: 20,000 rows of seed 7, messy and tidy."""

from __future__ import annotations

import functools

import pandas as pd

from permeability.record.schema import CALIBRE_PROM, CALIBRES, GRADOS_C, PERMEABILIDAD, PORC_HUMEDAD
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec

NUMERIC_COLUMNS = (GRADOS_C, PORC_HUMEDAD, *CALIBRES, CALIBRE_PROM, PERMEABILIDAD)
MESSY_ROWS = 20_000


@functools.cache
def messy_frame() -> pd.DataFrame:
    """The default mess, with the truth columns; generated once per test process."""
    return generate_lab_data(MESSY_ROWS, 7, with_truth=True)


@functools.cache
def tidy_frame() -> pd.DataFrame:
    """The same samples without mess, with the truth columns; generated once per process."""
    return generate_lab_data(MESSY_ROWS, 7, mess=MessSpec.none(), with_truth=True)
