"""Water-vapour permeation physics used by the generator and by the model's features.

Steady permeation through a film: WVTR = P(T) · Δp / L^n, with the driving force
Δp = RH/100 · p_sat(T) (Magnus form) and an Arrhenius permeability coefficient P(T).
Sources and constants: ``docs/data.md``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

GAS_CONSTANT_J_MOL_K: Final = 8.314462618
KELVIN_OFFSET: Final = 273.15
#: Magnus coefficients over water (Sonntag 1990 / WMO), valid about -45 to 60 °C.
MAGNUS_A_PA: Final = 611.2
MAGNUS_B: Final = 17.62
MAGNUS_C_C: Final = 243.12
#: The tropical reference condition of ASTM F1249 data sheets: 38 °C / 90 % RH.
REFERENCE_TEMPERATURE_C: Final = 38.0
REFERENCE_HUMIDITY_PCT: Final = 90.0
REFERENCE_THICKNESS_UM: Final = 25.0

FloatArray = NDArray[np.float64]


def saturation_pressure_pa(temperature_c: ArrayLike) -> FloatArray:
    """Saturation vapour pressure of water (Pa): 6.62 kPa at 38 °C, 2.81 kPa at 23 °C."""
    t = np.asarray(temperature_c, dtype=np.float64)
    return np.asarray(MAGNUS_A_PA * np.exp(MAGNUS_B * t / (MAGNUS_C_C + t)), dtype=np.float64)


def driving_force_pa(temperature_c: ArrayLike, humidity_pct: ArrayLike) -> FloatArray:
    """Partial-pressure difference across the film with a dry side: RH/100 · p_sat(T)."""
    rh = np.asarray(humidity_pct, dtype=np.float64)
    return np.asarray(rh / 100.0 * saturation_pressure_pa(temperature_c), dtype=np.float64)


def inverse_temperature_k(temperature_c: ArrayLike) -> FloatArray:
    """1/T in 1/K, the Arrhenius variable."""
    return np.asarray(1.0 / (np.asarray(temperature_c, dtype=np.float64) + KELVIN_OFFSET))


def arrhenius_factor(
    temperature_c: ArrayLike,
    activation_energy_kj_mol: ArrayLike,
    reference_c: float = REFERENCE_TEMPERATURE_C,
) -> FloatArray:
    """P(T)/P(T_ref) = exp(-Ep/R · (1/T - 1/T_ref))."""
    ep = np.asarray(activation_energy_kj_mol, dtype=np.float64) * 1000.0
    delta = inverse_temperature_k(temperature_c) - 1.0 / (reference_c + KELVIN_OFFSET)
    return np.asarray(np.exp(-ep / GAS_CONSTANT_J_MOL_K * delta), dtype=np.float64)


def series_transmission_rate(rates: ArrayLike, axis: int = -1) -> FloatArray:
    """Layers in series (a laminate): 1/TR_total = Σ 1/TR_i."""
    values = np.asarray(rates, dtype=np.float64)
    return np.asarray(1.0 / np.sum(1.0 / values, axis=axis), dtype=np.float64)
