"""The lab's sample record: the seed's Spanish column names, their units and physical ranges.

These names are the contract with the lab (the seed's request body uses them), so they are
kept verbatim everywhere a record crosses a boundary. ``Muestra`` is the *replicate number* of
a test (specimen 1, 2, ... of one film under one set of conditions), not a sample id: the
record's identity is ``record_id`` (``CONSECUTIVO`` when the export has it) and the test it
belongs to is ``test_id``.
"""

from __future__ import annotations

from typing import Final

MUESTRA: Final = "Muestra"
GRADOS_C: Final = "Grados_C"
PORC_HUMEDAD: Final = "Porc_Humedad"
ESTRUCTURA: Final = "Estructura"
CALIBRES: Final = ("Calibre1", "Calibre2", "Calibre3", "Calibre4", "Calibre5")
CALIBRE_PROM: Final = "CalibreProm"
PERMEABILIDAD: Final = "Permeabilidad"
FECHA: Final = "Fecha"

# The seed lab's real export (docs/data.md, "The lab's real export") adds these columns.
#: Running record number: the record's identity when the export has it.
CONSECUTIVO: Final = "CONSECUTIVO"
#: The test date in three columns (year, month, day); combined into Fecha on read.
ANIO: Final = "Año"
MES: Final = "Mes"
DIA: Final = "Día"
DATE_PARTS: Final = (ANIO, MES, DIA)
#: Product reference and the analyst who ran the test.
REFERENCIA: Final = "Referencia"
INSTRUMENTISTA: Final = "Instrumentista"
#: Record fields that identify a record and travel with it (store, API echo, prediction log).
RECORD_FIELDS: Final = (CONSECUTIVO, REFERENCIA, INSTRUMENTISTA)
#: The real export spells the caliper mean this way (headers match ignoring "_").
CALIBRE_PROM_REAL: Final = "Calibre_Prom"
#: The real export's three trailing empty columns (a spreadsheet's leftovers).
REAL_EXPORT_EMPTY_COLUMNS: Final = ("Unnamed: 17", "Unnamed: 18", "Unnamed: 19")

#: The seed lab's real export, its columns in order (the seed ETL's own list).
REAL_EXPORT_COLUMNS: Final = (
    CONSECUTIVO,
    ANIO,
    MES,
    DIA,
    REFERENCIA,
    ESTRUCTURA,
    *CALIBRES,
    CALIBRE_PROM_REAL,
    MUESTRA,
    GRADOS_C,
    PORC_HUMEDAD,
    PERMEABILIDAD,
    INSTRUMENTISTA,
    *REAL_EXPORT_EMPTY_COLUMNS,
)

# Columns the feature store derives and keeps with each record.
#: The record's key: the values of ``acquisition.record_key`` joined (see record/identity.py).
RECORD_ID: Final = "record_id"
#: The test the record is a replicate of (same date, reference, structure and conditions).
TEST_ID: Final = "test_id"
#: The structure's layers joined by "/" ("" when the name is not a list of known layers).
LAYERS: Final = "layers"
#: False for calibration and reference films and unreported materials: never trained on.
IS_PRODUCT: Final = "is_product"
#: True when the measured WVTR was 0 or below the detection limit (stored at the limit).
BELOW_DETECTION_LIMIT: Final = "below_detection_limit"

#: Inputs known before the lab test ends (what a guide value may use).
INPUT_COLUMNS: Final = (GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, *CALIBRES, CALIBRE_PROM)
#: Every column of a lab record, in the seed's order, target and date last.
RECORD_COLUMNS: Final = (MUESTRA, *INPUT_COLUMNS, PERMEABILIDAD, FECHA)
REQUIRED_COLUMNS: Final = (MUESTRA, GRADOS_C, PORC_HUMEDAD, ESTRUCTURA, PERMEABILIDAD)

UNITS: Final = {
    GRADOS_C: "°C",
    PORC_HUMEDAD: "% RH",
    CALIBRE_PROM: "µm",
    PERMEABILIDAD: "g/m²·day",
    **{c: "µm" for c in CALIBRES},
}

#: Physical ranges (inclusive bounds unless stated). Permeation cells and cups are run
#: between about 5 and 60 °C; RH is a percentage; films are a few µm to a few hundred µm.
TEMPERATURE_RANGE_C: Final = (0.0, 80.0)
HUMIDITY_RANGE_PCT: Final = (0.0, 100.0)  # lower bound exclusive: no driving force at 0 % RH
CALIPER_RANGE_UM: Final = (0.0, 2000.0)  # lower bound exclusive
PERMEABILITY_RANGE: Final = (0.0, 100_000.0)  # lower bound exclusive: the target is > 0

#: A lab's CalibreProm agrees with its readings up to rounding; a larger gap is a typo
#: (16.4 typed as 164) or a reading from another sample.
CALIPER_MEAN_REL_TOL: Final = 0.03
CALIPER_MEAN_ABS_TOL_UM: Final = 0.2


def caliper_mean_tolerance(readings_mean: float) -> float:
    """How far (µm) a stated caliper mean may be from the mean of the readings."""
    return max(CALIPER_MEAN_ABS_TOL_UM, CALIPER_MEAN_REL_TOL * abs(readings_mean))


def caliper_mean_consistent(mean: float, readings_mean: float) -> bool:
    """Whether a stated caliper mean agrees with the mean of the readings."""
    return abs(mean - readings_mean) <= caliper_mean_tolerance(readings_mean)
