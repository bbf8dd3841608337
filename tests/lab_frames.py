"""Small feature-store-like frames drawn from the permeation law, for the modelling tests.

Independent of the project's generator on purpose: the modelling tests must know the exact
law and noise they are given, and stay small and fast.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from permeability.features.pca import CaliperPCA, fit_caliper_pca
from permeability.features.physics import arrhenius_factor, driving_force_pa
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)

#: name -> (WVTR at 38 °C/90 %/25 µm, thickness exponent, Ep kJ/mol, humidity sensitivity)
FILMS: Mapping[str, tuple[float, float, float, float]] = {
    "BOPP": (5.0, 1.0, 11.0, 0.0),
    "BOPP/MET": (0.3, 0.1, 20.0, 0.0),
    "PET": (20.0, 0.9, 30.0, 0.5),
    "NY": (250.0, 1.0, 40.0, 4.0),
}


def law(
    structure: np.ndarray, temperature: np.ndarray, humidity: np.ndarray, thickness: np.ndarray
) -> np.ndarray:
    """The noise-free WVTR of the films above."""
    params = np.array([FILMS[s] for s in structure])
    ref, exponent, energy, beta = params.T
    factor = driving_force_pa(temperature, humidity) / driving_force_pa(38.0, 90.0)
    return (
        ref
        * (25.0 / thickness) ** exponent
        * arrhenius_factor(temperature, energy)
        * factor
        * np.exp(beta * (humidity - 90.0) / 100.0)
    )


def physics_frame(
    rows: int,
    seed: int,
    *,
    weights: Mapping[str, float] | None = None,
    noise: float = 0.05,
) -> pd.DataFrame:
    """``rows`` samples with log-normal noise of σ ``noise``; structures drawn by ``weights``."""
    rng = np.random.default_rng(seed)
    mix = dict(weights or {name: 1.0 for name in FILMS})
    names = np.array(list(mix))
    probabilities = np.array(list(mix.values())) / sum(mix.values())
    structure = rng.choice(names, size=rows, p=probabilities)
    temperature = rng.uniform(15.0, 45.0, rows).round(1)
    humidity = rng.uniform(20.0, 95.0, rows).round(1)
    thickness = rng.uniform(12.0, 60.0, rows)
    readings = thickness[:, None] * (1.0 + rng.normal(0.0, 0.02, (rows, 5)))
    readings = readings.round(1)
    mean = readings.mean(axis=1).round(2)
    measured = law(structure, temperature, humidity, mean) * np.exp(rng.normal(0.0, noise, rows))
    frame = pd.DataFrame(
        {
            MUESTRA: np.arange(1, rows + 1),
            GRADOS_C: temperature,
            PORC_HUMEDAD: humidity,
            ESTRUCTURA: structure,
            **{c: readings[:, i] for i, c in enumerate(CALIBRES)},
            CALIBRE_PROM: mean,
            PERMEABILIDAD: measured,
        }
    )
    return frame


def pca_of(frame: pd.DataFrame, threshold: float = 0.99) -> CaliperPCA:
    return fit_caliper_pca(frame[list(CALIBRES)].to_numpy(), threshold)


def random_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The frame's rows as request-like records (plain Python values)."""
    return [
        {
            str(key): (value.item() if hasattr(value, "item") else value)
            for key, value in row.items()
        }
        for row in frame.to_dict(orient="records")
    ]
