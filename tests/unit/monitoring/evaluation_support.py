"""Frames and a model for the evaluation tests: lab records, scored rows, a prediction log."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from permeability.features.pca import fit_caliper_pca
from permeability.modelling.predictor import PermeabilityModel
from permeability.modelling.training import train_model
from permeability.record.schema import CALIBRES
from permeability.scoring.decisions import DecisionPolicy
from permeability.scoring.specs import SpecificationSet, SpecLimit
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.mess import MessSpec

POLICY = DecisionPolicy(level=0.9, approve_below=0.05, reject_above=0.95)


def scored_table(**columns: object) -> pd.DataFrame:
    """A scored-rows table; unspecified columns get harmless defaults."""
    n = len(next(iter(columns.values())))  # type: ignore[arg-type]
    base: dict[str, object] = {
        "Muestra": np.arange(1, n + 1),
        "structure": ["BOPP"] * n,
        "level": [0.9] * n,
        "limit": [np.nan] * n,
        "p_exceed": [np.nan] * n,
        "decision": [""] * n,
        "when": pd.date_range("2025-01-01", periods=n, freq="D"),
    }
    base.update(columns)
    return pd.DataFrame(base)


def records(rows: list[tuple[int, float, str]]) -> pd.DataFrame:
    """Lab records (Muestra, Permeabilidad, Estructura) tested alike in everything else."""
    return pd.DataFrame(
        {
            "Muestra": [r[0] for r in rows],
            "Grados_C": [38.0] * len(rows),
            "Porc_Humedad": [90.0] * len(rows),
            "Estructura": [r[2] for r in rows],
            **{c: [20.0] * len(rows) for c in CALIBRES},
            "CalibreProm": [20.0] * len(rows),
            "Permeabilidad": [r[1] for r in rows],
        }
    )


def store_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Feature-store rows of the real export's kind: Muestra 1 and 2 in every test."""
    base = records([(int(r["Muestra"]), float(r["Permeabilidad"]), "BOPP") for r in rows])
    for column in ("CONSECUTIVO", "Referencia", "Fecha", "record_id", "is_product"):
        values = [r.get(column) for r in rows]
        if any(v is not None for v in values):
            base[column] = values
    if "Fecha" in base.columns:
        base["Fecha"] = pd.to_datetime(base["Fecha"])
    return base


def prediction_log(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    """Served BOPP predictions (timestamp, version, Muestra, prediction), all approved."""
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([r[0] for r in rows], utc=True),
            "version": [r[1] for r in rows],
            "Muestra": [r[2] for r in rows],
            "Grados_C": [38.0] * len(rows),
            "Porc_Humedad": [90.0] * len(rows),
            "structure": ["BOPP"] * len(rows),
            "prediction": [r[3] for r in rows],
            "lower": [r[3] * 0.8 for r in rows],
            "upper": [r[3] * 1.2 for r in rows],
            "level": [0.9] * len(rows),
            "spec_limit": [6.0] * len(rows),
            "p_exceed": [0.01] * len(rows),
            "decision": ["approve"] * len(rows),
        }
    )


@functools.cache
def trained_model() -> PermeabilityModel:
    """A linear model trained on 1,500 tidy generated rows (seed 21); trained once."""
    frame = generate_lab_data(1500, 21, mess=MessSpec.none())
    pca = fit_caliper_pca(frame[list(CALIBRES)].to_numpy(dtype=np.float64), 0.99)
    return train_model(frame, pca, model="LinearRegression", test_size=0.25).model


def bopp_limit() -> SpecificationSet:
    """One limit: BOPP at 38 °C / 90 % RH, 6 g/m²·day."""
    limit = SpecLimit(structure="BOPP", max_permeability=6.0, temperature_c=38.0, humidity_pct=90.0)
    return SpecificationSet.from_limits([limit], "test")
