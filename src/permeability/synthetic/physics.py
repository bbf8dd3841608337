"""The synthetic generator's materials and the permeation law it samples from.

Both layouts of the generator (the seed's record, :mod:`permeability.synthetic.generator`, and
the lab's real export, :mod:`permeability.synthetic.export`) draw on one table of materials and
one law: a laminate's value then means the same thing whichever layout writes it. Values,
sources and which ones are estimates: ``docs/data.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from permeability.features.physics import (
    REFERENCE_HUMIDITY_PCT,
    REFERENCE_TEMPERATURE_C,
    REFERENCE_THICKNESS_UM,
    arrhenius_factor,
    driving_force_pa,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Instrument repeatability (1 σ, relative) and the detection limit where it degrades (g/m²·day).
INSTRUMENT_REPEATABILITY: Final = 0.05
DETECTION_LIMIT: Final = 0.02
NEAR_LIMIT_REPEATABILITY: Final = 0.15
MAX_REPEATABILITY: Final = 0.20


@dataclass(frozen=True)
class Material:
    """The water-vapour barrier of one film material, i.e. of one layer of a structure."""

    name: str
    wvtr_ref: float  # g/m²·day at 38 °C / 90 % RH for 25 µm
    thickness_exponent: float  # WVTR ∝ (25/L)^n: ≈1 homogeneous, ≈0–0.2 metallized/coated
    activation_energy_kj_mol: float  # Ep of the permeability coefficient
    humidity_sensitivity: float  # β in exp(β·(RH − 90)/100): 0 for hydrophobic films


@dataclass(frozen=True)
class Layer:
    """A material and its share of the structure's total thickness."""

    material: Material
    share: float


@dataclass(frozen=True)
class FilmSpec:
    """A structure as the lab receives it: its layers and how its samples vary.

    ``frequency`` is its relative weight in the lab's sample mix; 0 means it is not in the
    base mix and appears only when a drift introduces it. A gauge listed twice in
    ``gauges_um`` is twice as common.
    """

    name: str
    layers: tuple[Layer, ...]
    gauges_um: tuple[float, ...]
    caliper_cv: float
    lot_sigma: float  # σ of the lot-to-lot factor on the log scale
    lot_tail_df: float | None  # Student-t degrees of freedom (heavy tail), None: lognormal
    frequency: float

    @property
    def is_laminate(self) -> bool:
        return len(self.layers) > 1


#: Every material, by canonical name (``normalise_structure(name) == name``). The seed layout's
#: metallized and coated films are single materials ("BOPP/MET" is one barrier, as in the seed
#: record); the real export's vocabulary has the metallization as its own layer ("MET").
MATERIALS: Final = MappingProxyType(
    {
        m.name: m
        for m in (
            # the seed layout's materials
            Material("BOPP", 5.0, 0.95, 11.0, 0.0),
            Material("BOPP/MET", 0.30, 0.10, 15.0, 0.0),
            Material("PET", 20.0, 0.95, 8.0, 0.3),
            Material("PET/MET", 0.80, 0.15, 15.0, 0.0),
            Material("LDPE", 20.0, 0.90, 33.0, 0.0),
            Material("HDPE", 6.5, 0.90, 30.0, 0.0),
            Material("PPC", 12.0, 0.95, 11.0, 0.0),  # cast PP (CPP)
            Material("NY", 250.0, 1.00, 5.0, 2.5),  # nylon / BOPA (PA6)
            Material("BOPP/PVDC", 4.5, 0.20, 30.0, 0.0),
            Material("EVOH", 60.0, 1.00, 40.0, 3.0),
            # the real export's other layers (docs/data.md, "The real layout")
            Material("PE", 10.0, 0.90, 33.0, 0.0),  # density unstated: between HDPE and LDPE
            Material("PE-MDO", 9.0, 0.90, 33.0, 0.0),  # oriented PE: below blown PE (estimate)
            Material("MATE", 6.0, 0.95, 11.0, 0.0),  # matte-coated BOPP (estimate)
            Material("AL", 0.004, 0.0, 0.0, 0.0),  # foil: pinholes only (estimate)
            Material("MET", 0.35, 0.0, 15.0, 0.0),  # metallization of the layer before it
            Material("PAPEL", 40.0, 1.00, 10.0, 2.0),  # coated paper (estimate), hygroscopic
            Material("PLA", 200.0, 1.00, 20.0, 0.3),  # estimate
            Material("CELOFAN", 10.0, 0.50, 10.0, 3.0),  # coated cellophane (estimate)
            Material("PVC", 30.0, 0.95, 30.0, 0.0),  # estimate
        )
    }
)


@dataclass(frozen=True)
class LayerTable:
    """Per-structure layer parameters padded to the same number of layers (share 0 = absent)."""

    wvtr_ref: FloatArray
    exponent: FloatArray
    activation: FloatArray
    humidity: FloatArray
    share: FloatArray


def layer_table(specs: Sequence[FilmSpec]) -> LayerTable:
    """The layers of ``specs`` as padded arrays, so the law runs on all rows at once."""
    width = max(len(spec.layers) for spec in specs)
    shape = (len(specs), width)
    table = {
        key: np.zeros(shape) for key in ("wvtr_ref", "exponent", "activation", "humidity", "share")
    }
    table["wvtr_ref"][:] = 1.0  # padding must not divide by zero; its share 0 drops it
    for row, spec in enumerate(specs):
        for col, layer in enumerate(spec.layers):
            table["wvtr_ref"][row, col] = layer.material.wvtr_ref
            table["exponent"][row, col] = layer.material.thickness_exponent
            table["activation"][row, col] = layer.material.activation_energy_kj_mol
            table["humidity"][row, col] = layer.material.humidity_sensitivity
            table["share"][row, col] = layer.share
    return LayerTable(**table)


def law(
    table: LayerTable,
    codes: IntArray,
    temperature_c: FloatArray,
    humidity_pct: FloatArray,
    thickness_um: FloatArray,
) -> FloatArray:
    """Each layer's WVTR at its own thickness, then the layers in series (1/TR = Σ 1/TR_i)."""
    share = table.share[codes]
    present = share > 0
    layer_thickness = thickness_um[:, None] * np.where(present, share, 1.0)
    reference_force = driving_force_pa(REFERENCE_TEMPERATURE_C, REFERENCE_HUMIDITY_PCT)
    relative_force = driving_force_pa(temperature_c, humidity_pct) / reference_force
    rate = (
        table.wvtr_ref[codes]
        * (REFERENCE_THICKNESS_UM / layer_thickness) ** table.exponent[codes]
        * arrhenius_factor(temperature_c[:, None], table.activation[codes])
        * np.exp(table.humidity[codes] * (humidity_pct[:, None] - REFERENCE_HUMIDITY_PCT) / 100.0)
        * relative_force[:, None]
    )
    with np.errstate(divide="ignore"):
        resistance = np.where(present, 1.0 / rate, 0.0).sum(axis=1)
        return np.asarray(1.0 / resistance, dtype=np.float64)


def instrument_sigma(wvtr: ArrayLike) -> FloatArray:
    """Relative repeatability (1 σ): 5 %, rising to 15–20 % near the detection limit."""
    value = np.maximum(np.asarray(wvtr, dtype=np.float64), 1e-12)
    near_limit = NEAR_LIMIT_REPEATABILITY * DETECTION_LIMIT / value
    return np.asarray(np.minimum(np.hypot(INSTRUMENT_REPEATABILITY, near_limit), MAX_REPEATABILITY))


def round_significant(values: ArrayLike, digits: int) -> FloatArray:
    """Round to significant digits as a lab reports them (5.23, 0.0412, 312)."""
    array = np.asarray(values, dtype=np.float64)
    out = array.copy()
    finite = np.isfinite(array) & (array != 0)
    decimals = np.zeros(array.shape, dtype=np.int64)
    decimals[finite] = digits - 1 - np.floor(np.log10(np.abs(array[finite]))).astype(np.int64)
    for d in np.unique(decimals[finite]):
        rows = finite & (decimals == d)
        out[rows] = np.round(array[rows], int(d))
    return out


def named_streams(seed: int, names: Sequence[str]) -> dict[str, np.random.Generator]:
    """One independent random stream per name, all from ``seed``: adding a draw to one stream
    leaves every other stream's numbers as they were (so a change to one kind of mess does not
    reshuffle the whole export)."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}
