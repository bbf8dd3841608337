"""The lab's sample record: the seed's Spanish column names, their units and physical ranges.

These names are the contract with the lab (the seed's request body uses them), so they are
kept verbatim everywhere a record crosses a boundary.
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
