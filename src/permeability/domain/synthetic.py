"""A physically grounded synthetic lab export: the stand-in for the lab's confidential data.

Every downstream stage (acquisition tests, training benchmarks, drift tests) runs on it, so it
has to behave like the real thing in the two ways that matter: the target follows the
permeation law with realistic noise (which gives a known noise floor a model cannot beat),
and the export is as untidy as a hand-kept lab sheet (decimal commas, misspelt structures,
missing readings, impossible values, repeated rows). The data model, its constants and their
sources are documented in ``docs/data.md``.

Design choices that keep it reproducible and fast:

* Each random ingredient draws from its own stream of one ``SeedSequence``: the tidy and the
  messy export of a seed describe the same samples (the messy one has fewer distinct samples
  because repeated and re-measured rows take some of the requested rows).
* Everything is vectorised over rows; laminates are padded layer tables, so one million rows
  take a few seconds.
* Noise is median-centred on the log scale, so the law applied to what the lab records
  (``_physics_permeability``) is the conditional median: the best predictor under MAE.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from permeability.domain.physics import (
    REFERENCE_HUMIDITY_PCT,
    REFERENCE_TEMPERATURE_C,
    REFERENCE_THICKNESS_UM,
    arrhenius_factor,
    driving_force_pa,
)
from permeability.domain.schema import (
    CALIBRE_PROM,
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    RECORD_COLUMNS,
)
from permeability.domain.structures import (
    DEFAULT_ALIASES,
    build_alias_map,
    canonical_spelling,
    normalise_structure,
)
from permeability.errors import InvalidInputError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Truth columns (benchmarks only; exports drop every column starting with ``_``).
TRUE_PERMEABILITY: Final = "_true_permeability"
PHYSICS_PERMEABILITY: Final = "_physics_permeability"
QUIRKS: Final = "_quirks"

#: Standard test conditions (°C, % RH) and how often the lab runs each (sums to 1).
STANDARD_CONDITIONS: Final = ((38.0, 90.0), (25.0, 90.0), (23.0, 85.0), (25.0, 75.0), (23.0, 50.0))
STANDARD_CONDITION_WEIGHTS: Final = (0.50, 0.12, 0.12, 0.11, 0.15)
#: Share of tests run at arbitrary conditions, and their ranges.
ARBITRARY_CONDITION_SHARE: Final = 0.20
ARBITRARY_TEMPERATURE_C: Final = (15.0, 45.0)
ARBITRARY_HUMIDITY_PCT: Final = (10.0, 95.0)
#: Chamber set-point jitter (1 σ): a 38/90 test records e.g. 37.8 °C / 90.3 %.
CHAMBER_JITTER_C: Final = 0.15
CHAMBER_JITTER_PCT: Final = 0.4
#: True mean thickness of a sample around its nominal gauge (1 σ, log scale): ±10 % ≈ 2.5 σ.
GAUGE_SPREAD: Final = 0.04
#: Instrument repeatability (1 σ, relative) and the detection limit where it degrades (g/m²·day).
INSTRUMENT_REPEATABILITY: Final = 0.05
DETECTION_LIMIT: Final = 0.02
NEAR_LIMIT_REPEATABILITY: Final = 0.15
MAX_REPEATABILITY: Final = 0.20
#: Heavy-tailed lot noise is clipped at this many σ (a pinhole-ridden sample, not a new film).
LOT_NOISE_CLIP_SIGMAS: Final = 6.0
#: Test dates spread over about two years.
DATE_SPAN_DAYS: Final = 730
#: A re-measurement happens this many days after the first test (inclusive range).
REMEASURE_DELAY_DAYS: Final = (1, 30)
SIGNIFICANT_DIGITS: Final = 3


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
    base mix and appears only when a :class:`DriftSpec` introduces it. A gauge listed twice
    in ``gauges_um`` is twice as common.
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


@dataclass(frozen=True)
class DriftSpec:
    """A change in what reaches the lab, for drift tests.

    ``humidity_shift_pct`` moves every test's RH (percentage points, clipped to 1–100);
    ``barrier_factor`` multiplies one structure's WVTR (a supplier or process change);
    ``new_structures`` adds structures the base mix never produces, together taking
    ``new_structure_share`` of the samples.
    """

    humidity_shift_pct: float = 0.0
    barrier_factor: Mapping[str, float] = field(default_factory=dict)
    new_structures: tuple[str, ...] = ()
    new_structure_share: float = 0.15

    def __post_init__(self) -> None:
        if not math.isfinite(self.humidity_shift_pct):
            raise InvalidInputError("DriftSpec.humidity_shift_pct must be a finite number")
        for name, factor in self.barrier_factor.items():
            if not (math.isfinite(factor) and factor > 0):
                raise InvalidInputError(
                    f"DriftSpec.barrier_factor[{name!r}] must be a positive number, got {factor}"
                )
        if not 0.0 < self.new_structure_share < 1.0:
            raise InvalidInputError(
                f"DriftSpec.new_structure_share must be in (0, 1), got {self.new_structure_share}"
            )
        object.__setattr__(self, "barrier_factor", MappingProxyType(dict(self.barrier_factor)))


@dataclass(frozen=True)
class MessSpec:
    """The fraction of rows affected by each quirk of a hand-kept lab export.

    Defaults follow what real exports look like (``docs/data.md``); :meth:`none` is tidy.
    ``repeated_row`` and ``remeasured`` rows are part of the requested row count.
    """

    decimal_comma: float = 0.30
    structure_spelling: float = 0.25
    missing_caliper: float = 0.03
    impossible_value: float = 0.01
    repeated_row: float = 0.01
    remeasured: float = 0.005
    unit_text: float = 0.005

    def __post_init__(self) -> None:
        for item in fields(self):
            rate = getattr(self, item.name)
            if not 0.0 <= rate <= 1.0:
                raise InvalidInputError(f"MessSpec.{item.name} must be in [0, 1], got {rate}")
        if self.repeated_row + self.remeasured > 0.5:
            raise InvalidInputError(
                "MessSpec.repeated_row + MessSpec.remeasured must not exceed 0.5 of the rows"
            )

    @classmethod
    def none(cls) -> MessSpec:
        """A tidy export: numeric columns, canonical names, one row per measurement."""
        return cls(**{item.name: 0.0 for item in fields(cls)})


# --- the structure catalogue (sources and estimates: docs/data.md) -------------------------

_MATERIALS: Final = MappingProxyType(
    {
        m.name: m
        for m in (
            Material("BOPP", 5.0, 0.95, 11.0, 0.0),
            Material("BOPP MET", 0.30, 0.10, 15.0, 0.0),
            Material("PET", 20.0, 0.95, 8.0, 0.3),
            Material("PET MET", 0.80, 0.15, 15.0, 0.0),
            Material("LDPE", 20.0, 0.90, 33.0, 0.0),
            Material("HDPE", 6.5, 0.90, 30.0, 0.0),
            Material("CPP", 12.0, 0.95, 11.0, 0.0),
            Material("BOPA", 250.0, 1.00, 5.0, 2.5),
            Material("BOPP PVDC", 4.5, 0.20, 30.0, 0.0),
            Material("EVOH", 60.0, 1.00, 40.0, 3.0),
        )
    }
)


def _mono(
    name: str, gauges: tuple[float, ...], cv: float, lot: float, df: float | None, freq: float
) -> FilmSpec:
    return FilmSpec(name, (Layer(_MATERIALS[name], 1.0),), gauges, cv, lot, df, freq)


def _laminate(
    layers: tuple[tuple[str, float], ...],
    gauges: tuple[float, ...],
    cv: float,
    lot: float,
    df: float | None,
    freq: float,
) -> FilmSpec:
    name = "/".join(material for material, _ in layers)
    built = tuple(Layer(_MATERIALS[material], share) for material, share in layers)
    return FilmSpec(name, built, gauges, cv, lot, df, freq)


_CATALOGUE: Final = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _mono("BOPP", (15, 20, 25, 30, 30, 35, 40), 0.02, 0.08, None, 0.22),
            _mono("BOPP MET", (15, 18, 20, 25, 30), 0.02, 0.35, 3.0, 0.12),
            _mono("PET", (12, 12, 12, 15, 23, 23), 0.015, 0.08, None, 0.08),
            _mono("PET MET", (12, 12, 12, 15), 0.015, 0.30, 3.0, 0.06),
            _mono("LDPE", (40, 50, 60, 80), 0.06, 0.12, None, 0.10),
            _mono("HDPE", (20, 30, 40, 50), 0.05, 0.10, None, 0.04),
            _mono("CPP", (20, 25, 30, 40, 50), 0.03, 0.10, None, 0.06),
            _mono("BOPA", (12, 15, 15, 20, 25), 0.02, 0.12, None, 0.05),
            _mono("BOPP PVDC", (18, 20, 25, 30), 0.02, 0.12, None, 0.04),
            _laminate((("PET", 0.2), ("LDPE", 0.8)), (52, 62, 75, 87), 0.04, 0.10, None, 0.07),
            _laminate((("BOPP", 0.5), ("BOPP MET", 0.5)), (35, 40, 50, 60), 0.02, 0.25, 4.0, 0.06),
            _laminate((("PET MET", 0.2), ("LDPE", 0.8)), (52, 62, 75, 87), 0.04, 0.25, 4.0, 0.05),
            _laminate((("BOPA", 0.2), ("LDPE", 0.8)), (65, 75, 90, 115), 0.04, 0.10, None, 0.05),
            # Not in the base mix: structures a DriftSpec can introduce.
            _laminate(
                (("PET", 0.15), ("EVOH", 0.05), ("LDPE", 0.8)), (70, 90), 0.04, 0.12, None, 0.0
            ),
            _laminate((("BOPP", 0.4), ("CPP", 0.6)), (45, 55, 70), 0.03, 0.10, None, 0.0),
            _laminate((("PET MET", 0.25), ("CPP", 0.75)), (50, 60, 70), 0.03, 0.25, 4.0, 0.0),
        )
    }
)

#: Noise of a laminate resolved on the fly (not in the catalogue): generic values.
_ON_THE_FLY_CALIPER_CV: Final = 0.03
_ON_THE_FLY_LOT_SIGMA: Final = 0.12
_ON_THE_FLY_METALLIZED_LOT_SIGMA: Final = 0.25
_ON_THE_FLY_METALLIZED_TAIL_DF: Final = 4.0


def structure_catalogue() -> Mapping[str, FilmSpec]:
    """Every structure the generator knows, by canonical name (read-only)."""
    return _CATALOGUE


def base_mix() -> tuple[str, ...]:
    """The structures of the lab's usual sample mix (catalogue entries with a frequency)."""
    return tuple(name for name, spec in _CATALOGUE.items() if spec.frequency > 0)


@functools.cache
def _aliases() -> Mapping[str, str]:
    return MappingProxyType(build_alias_map())


@functools.cache
def resolve_structure(name: str) -> FilmSpec:
    """A structure from any spelling: a catalogue entry or a laminate ``A/B`` of known materials.

    Laminates built on the fly get equal layer shares and generic noise, so a drift test can
    introduce any plausible combination without editing the catalogue.
    """
    canonical = normalise_structure(name, _aliases())
    if canonical in _CATALOGUE:
        return _CATALOGUE[canonical]
    layers = tuple(layer for layer in canonical.split("/") if layer)
    if layers and all(layer in _MATERIALS for layer in layers):
        metallized = any("MET" in layer for layer in layers)
        return FilmSpec(
            name=canonical,
            layers=tuple(Layer(_MATERIALS[layer], 1.0 / len(layers)) for layer in layers),
            gauges_um=tuple(float(25 * len(layers) + step) for step in (0, 10, 20)),
            caliper_cv=_ON_THE_FLY_CALIPER_CV,
            lot_sigma=_ON_THE_FLY_METALLIZED_LOT_SIGMA if metallized else _ON_THE_FLY_LOT_SIGMA,
            lot_tail_df=_ON_THE_FLY_METALLIZED_TAIL_DF if metallized else None,
            frequency=0.0,
        )
    raise InvalidInputError(
        f"structure {name!r} is neither in the catalogue nor a laminate of known materials "
        f"({', '.join(_MATERIALS)})"
    )


# --- the law ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LayerTable:
    """Per-structure layer parameters padded to the same number of layers (share 0 = absent)."""

    wvtr_ref: FloatArray
    exponent: FloatArray
    activation: FloatArray
    humidity: FloatArray
    share: FloatArray


def _layer_table(specs: Sequence[FilmSpec]) -> _LayerTable:
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
    return _LayerTable(**table)


def _law(
    table: _LayerTable,
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


def reference_wvtr(
    structure: str | ArrayLike,
    temperature_c: ArrayLike,
    humidity_pct: ArrayLike,
    thickness_um: ArrayLike,
) -> FloatArray:
    """The noise-free law (g/m²·day), vectorised over rows; inputs broadcast together.

    WVTR = WVTR_ref · (25/L)^n · arrhenius(T, Ep) · Δp(T, RH)/Δp(38, 90) · exp(β·(RH − 90)/100)
    per layer, layers in series. Any spelling of a known structure is accepted; rows whose
    thickness is not positive or whose RH is negative give NaN (no physical answer).
    """
    names = np.asarray(structure, dtype=object)
    t, rh, thickness, names = np.broadcast_arrays(
        np.asarray(temperature_c, dtype=np.float64),
        np.asarray(humidity_pct, dtype=np.float64),
        np.asarray(thickness_um, dtype=np.float64),
        names,
    )
    shape = t.shape
    unique, codes = np.unique(names.ravel().astype(str), return_inverse=True)
    table = _layer_table([resolve_structure(str(name)) for name in unique])
    flat_t, flat_rh, flat_l = t.ravel(), rh.ravel(), thickness.ravel()
    valid = (flat_l > 0) & (flat_rh >= 0) & np.isfinite(flat_l)
    safe_l = np.where(valid, flat_l, 1.0)
    result = _law(table, codes.astype(np.int64), flat_t, np.where(valid, flat_rh, 0.0), safe_l)
    return np.where(valid, result, np.nan).reshape(shape)


# --- sampling -----------------------------------------------------------------------------

_STREAMS: Final = (
    "structure",
    "conditions",
    "thickness",
    "readings",
    "lot",
    "instrument",
    "dates",
    "remeasure",
    "missing",
    "impossible",
    "comma",
    "units",
    "spelling",
    "repeat",
)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {
        name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)
    }


@dataclass(frozen=True)
class _Mix:
    """The structures that can appear, their sampling weights and their layer table."""

    specs: tuple[FilmSpec, ...]
    weights: FloatArray
    barrier: FloatArray
    table: _LayerTable

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)


def _build_mix(drift: DriftSpec | None) -> _Mix:
    specs = [_CATALOGUE[name] for name in base_mix()]
    weights = np.array([spec.frequency for spec in specs], dtype=np.float64)
    weights /= weights.sum()
    if drift is not None and drift.new_structures:
        new = [resolve_structure(name) for name in drift.new_structures]
        for spec in new:
            if spec.name in base_mix():
                raise InvalidInputError(
                    f"DriftSpec.new_structures: {spec.name!r} is already in the base mix"
                )
        specs += new
        each = drift.new_structure_share / len(new)
        weights = np.r_[weights * (1.0 - drift.new_structure_share), np.full(len(new), each)]
    barrier = np.ones(len(specs))
    for name, factor in (drift.barrier_factor if drift is not None else {}).items():
        target = resolve_structure(name).name
        positions = [i for i, spec in enumerate(specs) if spec.name == target]
        if not positions:
            raise InvalidInputError(
                f"DriftSpec.barrier_factor: structure {name!r} is not among the generated ones"
            )
        barrier[positions] = factor
    return _Mix(tuple(specs), weights, barrier, _layer_table(specs))


def _conditions(
    rng: np.random.Generator, rows: int, humidity_shift: float
) -> tuple[FloatArray, FloatArray]:
    """Mostly standard conditions with chamber jitter, the rest anywhere in the usual range."""
    standard = rng.random(rows) >= ARBITRARY_CONDITION_SHARE
    which = rng.choice(len(STANDARD_CONDITIONS), size=rows, p=STANDARD_CONDITION_WEIGHTS)
    set_points = np.asarray(STANDARD_CONDITIONS, dtype=np.float64)[which]
    t_standard = np.round(set_points[:, 0] + rng.normal(0.0, CHAMBER_JITTER_C, rows), 1)
    rh_standard = np.round(set_points[:, 1] + rng.normal(0.0, CHAMBER_JITTER_PCT, rows), 1)
    t_any = np.round(rng.uniform(*ARBITRARY_TEMPERATURE_C, rows), 1)
    rh_any = np.round(rng.uniform(*ARBITRARY_HUMIDITY_PCT, rows))
    temperature = np.where(standard, t_standard, t_any)
    shifted = np.clip(np.where(standard, rh_standard, rh_any) + humidity_shift, 1.0, 100.0)
    return temperature, np.asarray(np.round(shifted, 1), dtype=np.float64)


def _true_thickness(rng: np.random.Generator, mix: _Mix, codes: IntArray) -> FloatArray:
    """A nominal gauge of the sample's structure, then the film's deviation from it."""
    width = max(len(spec.gauges_um) for spec in mix.specs)
    gauges = np.zeros((len(mix.specs), width))
    counts = np.array([len(spec.gauges_um) for spec in mix.specs])
    for row, spec in enumerate(mix.specs):
        gauges[row, : len(spec.gauges_um)] = spec.gauges_um
    pick = np.floor(rng.random(len(codes)) * counts[codes]).astype(np.int64)
    nominal = gauges[codes, pick]
    return np.asarray(nominal * np.exp(rng.normal(0.0, GAUGE_SPREAD, len(codes))))


def _caliper_readings(
    rng: np.random.Generator, mix: _Mix, codes: IntArray, thickness: FloatArray
) -> FloatArray:
    cv = np.array([spec.caliper_cv for spec in mix.specs])[codes]
    noise = rng.normal(0.0, 1.0, (len(codes), len(CALIBRES))) * cv[:, None]
    return np.asarray(np.round(thickness[:, None] * (1.0 + noise), 1))


def _lot_factor(rng: np.random.Generator, mix: _Mix, codes: IntArray) -> FloatArray:
    """Lot-to-lot factor, median 1: lognormal, or Student-t on the log scale for barriers."""
    sigma = np.array([spec.lot_sigma for spec in mix.specs])[codes]
    z = rng.normal(0.0, 1.0, len(codes))
    for code, spec in enumerate(mix.specs):
        df = spec.lot_tail_df
        rows = np.flatnonzero(codes == code)
        if df is not None and rows.size:
            # Scaled so its σ matches lot_sigma when the variance exists (df > 2).
            scale = math.sqrt((df - 2.0) / df) if df > 2 else 1.0
            z[rows] = rng.standard_t(df, rows.size) * scale
    z = np.clip(z, -LOT_NOISE_CLIP_SIGMAS, LOT_NOISE_CLIP_SIGMAS)
    return np.asarray(np.exp(sigma * z))


def instrument_sigma(wvtr: ArrayLike) -> FloatArray:
    """Relative repeatability (1 σ): 5 %, rising to 15–20 % near the detection limit."""
    value = np.maximum(np.asarray(wvtr, dtype=np.float64), 1e-12)
    near_limit = NEAR_LIMIT_REPEATABILITY * DETECTION_LIMIT / value
    return np.asarray(np.minimum(np.hypot(INSTRUMENT_REPEATABILITY, near_limit), MAX_REPEATABILITY))


def _measure(rng: np.random.Generator, wvtr: FloatArray) -> FloatArray:
    noise = np.exp(rng.normal(0.0, 1.0, len(wvtr)) * instrument_sigma(wvtr))
    return round_significant(wvtr * noise, SIGNIFICANT_DIGITS)


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


@dataclass
class _Samples:
    """Column arrays of the generated samples (numeric until the mess turns some into text)."""

    muestra: IntArray
    codes: IntArray
    temperature: FloatArray
    humidity: FloatArray
    readings: FloatArray  # (n, 5)
    mean_caliper: FloatArray
    measured: FloatArray
    day: IntArray
    true_wvtr: FloatArray
    sample_wvtr: FloatArray  # true · lot: what a re-measurement measures again

    def take(self, rows: IntArray) -> _Samples:
        return _Samples(
            self.muestra[rows],
            self.codes[rows],
            self.temperature[rows],
            self.humidity[rows],
            self.readings[rows],
            self.mean_caliper[rows],
            self.measured[rows],
            self.day[rows],
            self.true_wvtr[rows],
            self.sample_wvtr[rows],
        )

    @staticmethod
    def concat(first: _Samples, second: _Samples) -> _Samples:
        return _Samples(
            *(
                np.concatenate([getattr(first, f.name), getattr(second, f.name)])
                for f in fields(_Samples)
            )
        )


def _draw_samples(
    rows: int,
    streams: dict[str, np.random.Generator],
    mix: _Mix,
    drift: DriftSpec | None,
    start_id: int,
) -> _Samples:
    codes = streams["structure"].choice(len(mix.specs), size=rows, p=mix.weights).astype(np.int64)
    shift = drift.humidity_shift_pct if drift is not None else 0.0
    temperature, humidity = _conditions(streams["conditions"], rows, shift)
    thickness = _true_thickness(streams["thickness"], mix, codes)
    readings = _caliper_readings(streams["readings"], mix, codes, thickness)
    true_wvtr = _law(mix.table, codes, temperature, humidity, thickness) * mix.barrier[codes]
    sample_wvtr = true_wvtr * _lot_factor(streams["lot"], mix, codes)
    # Arrivals spread evenly at random over the span; the first sample is tested on start_date.
    arrivals = np.floor(np.sort(streams["dates"].uniform(0.0, DATE_SPAN_DAYS, rows)))
    day = (arrivals - arrivals[0]).astype(np.int64)
    return _Samples(
        muestra=np.arange(start_id, start_id + rows, dtype=np.int64),
        codes=codes,
        temperature=temperature,
        humidity=humidity,
        readings=readings,
        mean_caliper=np.round(readings.mean(axis=1), 2),
        measured=_measure(streams["instrument"], sample_wvtr),
        day=day,
        true_wvtr=true_wvtr,
        sample_wvtr=sample_wvtr,
    )


def _remeasure(rng: np.random.Generator, samples: _Samples, count: int) -> _Samples:
    """The same samples tested again later: same inputs and lot, a new instrument reading."""
    sources = np.sort(rng.choice(len(samples.muestra), size=count, replace=False))
    again = samples.take(sources)
    again.day = again.day + rng.integers(
        REMEASURE_DELAY_DAYS[0], REMEASURE_DELAY_DAYS[1] + 1, count
    )
    again.measured = _measure(rng, again.sample_wvtr)
    return again


# --- the mess -----------------------------------------------------------------------------

_QUIRK_NAMES: Final = (
    "decimal_comma",
    "structure_spelling",
    "missing_caliper",
    "impossible_humidity",
    "impossible_caliper",
    "inconsistent_caliper_mean",
    "impossible_permeability",
    "unit_text",
    "remeasured",
    "repeated_row",
)
_BIT: Final = {name: 1 << i for i, name in enumerate(_QUIRK_NAMES)}
_NOT_A_NUMBER_TEXT: Final = ("n/a", "N/A", "pendiente", "error", "-")
_UNIT_COLUMNS: Final = (
    (GRADOS_C, "°C"),
    (PORC_HUMEDAD, "%"),
    *((c, "µm") for c in CALIBRES),
    (CALIBRE_PROM, "µm"),
)


def _missing_calipers(rng: np.random.Generator, samples: _Samples, rate: float) -> BoolArray:
    """Blank one or two readings; the sheet's mean then covers the readings that remain."""
    hit = rng.random(len(samples.muestra)) < rate
    rows = np.flatnonzero(hit)
    blanks = np.where(rng.random(rows.size) < 0.7, 1, 2)
    order = np.argsort(rng.random((rows.size, len(CALIBRES))), axis=1)
    for k in (1, 2):
        chosen = rows[blanks >= k]
        samples.readings[chosen, order[blanks >= k, k - 1]] = np.nan
    samples.mean_caliper[rows] = np.round(np.nanmean(samples.readings[rows], axis=1), 2)
    return hit


def _impossible_values(
    rng: np.random.Generator, samples: _Samples, rate: float, bits: IntArray
) -> IntArray:
    """Typos and placeholders no instrument produces; returns rows whose target must become text."""
    rows = np.flatnonzero(rng.random(len(samples.muestra)) < rate)
    kind = rng.integers(0, 5, rows.size)
    variant = rng.integers(0, 3, rows.size)
    humidity_rows, humidity_variant = rows[kind == 0], variant[kind == 0]
    rh = samples.humidity[humidity_rows]
    samples.humidity[humidity_rows] = np.select(
        [humidity_variant == 0, humidity_variant == 1], [np.maximum(rh * 10.0, 101.0), 0.0], -rh
    )
    bits[humidity_rows] |= _BIT["impossible_humidity"]
    caliper_rows = rows[kind == 1]
    first_present = np.argmax(~np.isnan(samples.readings[caliper_rows]), axis=1)
    reading = samples.readings[caliper_rows, first_present]
    samples.readings[caliper_rows, first_present] = np.where(variant[kind == 1] == 0, 0.0, -reading)
    bits[caliper_rows] |= _BIT["impossible_caliper"]
    mean_rows = rows[kind == 2]
    samples.mean_caliper[mean_rows] = np.round(samples.mean_caliper[mean_rows] * 10.0, 2)
    bits[mean_rows] |= _BIT["inconsistent_caliper_mean"]
    target_rows = rows[kind == 3]
    measured = samples.measured[target_rows]
    samples.measured[target_rows] = np.where(variant[kind == 3] == 0, 0.0, -measured)
    text_rows = rows[kind == 4]
    bits[np.r_[target_rows, text_rows]] |= _BIT["impossible_permeability"]
    return text_rows


def _as_text(value: float, decimal_comma: bool) -> str:
    text = repr(float(value))
    return text.replace(".", ",") if decimal_comma else text


Cells = dict[str, FloatArray | NDArray[np.object_]]


def _comma_texts(values: FloatArray) -> NDArray[np.object_]:
    """Decimal-comma strings; each distinct value is formatted once (values are rounded)."""
    unique, inverse = np.unique(values, return_inverse=True)
    texts = np.asarray([_as_text(v, True) for v in unique], dtype=object)
    return np.asarray(texts[inverse], dtype=object)


def _write_text(
    cells: Cells, column: str, rows: IntArray, texts: Sequence[str] | NDArray[np.object_]
) -> None:
    """Put text into a numeric column, which from then on holds floats and strings."""
    if rows.size == 0:
        return
    if cells[column].dtype != object:
        cells[column] = cells[column].astype(object)
    cells[column][rows] = texts


def _decimal_commas(rng: np.random.Generator, cells: Cells, rate: float, bits: IntArray) -> None:
    """Rows typed on a Spanish-locale machine: every decimal number of the row has a comma."""
    rows = rng.random(len(bits)) < rate
    bits[rows] |= _BIT["decimal_comma"]
    for name, values in cells.items():
        chosen = np.flatnonzero(rows & np.isfinite(values.astype(np.float64)))
        _write_text(cells, name, chosen, _comma_texts(values[chosen].astype(np.float64)))


def _unit_texts(rng: np.random.Generator, cells: Cells, rate: float, bits: IntArray) -> None:
    """A number typed with its unit or padded with spaces ("16.4 µm", " 25,6 ")."""
    rows = np.flatnonzero(rng.random(len(bits)) < rate)
    picks = rng.integers(0, len(_UNIT_COLUMNS), rows.size)
    padded = rng.random(rows.size) < 0.5
    for row, pick, pad in zip(rows, picks, padded, strict=True):
        column, unit = _UNIT_COLUMNS[pick]
        value = cells[column][row]
        if isinstance(value, float) and math.isnan(value):
            column, unit = _UNIT_COLUMNS[0]
            value = cells[column][row]
        text = value if isinstance(value, str) else _as_text(value, False)
        _write_text(cells, column, np.array([row]), [f" {text} " if pad else f"{text} {unit}"])
    bits[rows] |= _BIT["unit_text"]


def spelling_variants(name: str) -> tuple[str, ...]:
    """Hand-typed spellings of a canonical structure that the alias map brings back to it."""
    aliases = [alias for alias, target in DEFAULT_ALIASES.items() if target == name]
    candidates = [name.lower(), name.title(), f"{name} ", f" {name.lower()}"]
    candidates += [name.replace(" ", "  ")] if " " in name else []
    candidates += [name.replace("/", " / "), name.lower().replace("/", " /")] if "/" in name else []
    candidates += [alias.capitalize() for alias in aliases[:3]] + [a.lower() for a in aliases[:1]]
    if "/" in name:
        layer_aliases = [
            next((a for a, t in DEFAULT_ALIASES.items() if t == layer), layer)
            for layer in name.split("/")
        ]
        candidates.append("/".join(layer_aliases).title())
    unique = dict.fromkeys(c for c in candidates if c != name)
    return tuple(
        c for c in unique if normalise_structure(c, _aliases()) == canonical_spelling(name)
    )


def _spelled_structures(
    rng: np.random.Generator, names: tuple[str, ...], codes: IntArray, rate: float, bits: IntArray
) -> NDArray[np.object_]:
    spelled = np.asarray(names, dtype=object)[codes]
    hit = rng.random(len(codes)) < rate
    picks = rng.random(len(codes))
    for code, name in enumerate(names):
        variants = spelling_variants(name)
        rows = np.flatnonzero(hit & (codes == code))
        if variants and rows.size:
            chosen = np.floor(picks[rows] * len(variants)).astype(np.int64)
            spelled[rows] = np.asarray(variants, dtype=object)[chosen]
            bits[rows] |= _BIT["structure_spelling"]
    return spelled


def _repeat_order(rng: np.random.Generator, rows: int, count: int) -> tuple[IntArray, BoolArray]:
    """Row order with ``count`` rows pasted twice (the copy right after its original)."""
    copies = rng.choice(rows, size=count, replace=False)
    order = np.sort(np.r_[np.arange(rows), copies], kind="stable").astype(np.int64)
    is_copy = np.r_[False, order[1:] == order[:-1]]
    return order, is_copy


def _quirk_labels(bits: IntArray) -> NDArray[np.object_]:
    """``;``-joined quirk names per row ("" for a clean row)."""
    unique, inverse = np.unique(bits, return_inverse=True)
    labels = [";".join(n for n in _QUIRK_NAMES if int(u) & _BIT[n]) for u in unique]
    return np.asarray(labels, dtype=object)[inverse]


# --- the frame ----------------------------------------------------------------------------


def _fechas(start_date: date, day: IntArray) -> NDArray[np.object_]:
    unique, inverse = np.unique(day, return_inverse=True)
    stamps = (np.datetime64(start_date, "D") + unique.astype("timedelta64[D]")).astype(str)
    return np.asarray(stamps, dtype=object)[inverse]


def _column(cells: FloatArray | NDArray[np.object_]) -> pd.Series:
    """A float column while no cell is text; object (floats and strings) once one is."""
    return pd.Series(cells, dtype=object if cells.dtype == object else np.float64)


def _samples_in_date_order(
    rows: int,
    spec: MessSpec,
    streams: dict[str, np.random.Generator],
    mix: _Mix,
    drift: DriftSpec | None,
    start_id: int,
) -> tuple[_Samples, BoolArray, int]:
    """All ``rows`` samples are drawn (so tidy and messy share them); repeats and
    re-measurements then take the place of the last ones. Returns the samples, which of them
    are re-measurements, and how many rows to paste twice."""
    n_repeat = round(rows * spec.repeated_row)
    n_remeasure = round(rows * spec.remeasured)
    drawn = _draw_samples(rows, streams, mix, drift, start_id)
    base = drawn.take(np.arange(rows - n_repeat - n_remeasure, dtype=np.int64))
    again = _remeasure(streams["remeasure"], base, n_remeasure)
    remeasured = np.r_[np.zeros(len(base.muestra), dtype=bool), np.ones(n_remeasure, dtype=bool)]
    order = np.argsort(np.r_[base.day, again.day], kind="stable").astype(np.int64)
    return _Samples.concat(base, again).take(order), remeasured[order], n_repeat


def _messy_cells(
    samples: _Samples, spec: MessSpec, streams: dict[str, np.random.Generator], bits: IntArray
) -> Cells:
    """The numeric columns after the impossible values, decimal commas and unit texts."""
    text_targets = _impossible_values(streams["impossible"], samples, spec.impossible_value, bits)
    cells: Cells = {
        GRADOS_C: samples.temperature,
        PORC_HUMEDAD: samples.humidity,
        **{name: samples.readings[:, i] for i, name in enumerate(CALIBRES)},
        CALIBRE_PROM: samples.mean_caliper,
        PERMEABILIDAD: samples.measured,
    }
    _decimal_commas(streams["comma"], cells, spec.decimal_comma, bits)
    _unit_texts(streams["units"], cells, spec.unit_text, bits)
    words = streams["impossible"].integers(0, len(_NOT_A_NUMBER_TEXT), text_targets.size)
    placeholders = np.asarray(_NOT_A_NUMBER_TEXT, dtype=object)[words]
    _write_text(cells, PERMEABILIDAD, text_targets, placeholders)
    return cells


def generate_lab_data(
    rows: int,
    seed: int,
    *,
    start_id: int = 1,
    start_date: date = date(2024, 1, 1),
    mess: MessSpec | None = MessSpec(),
    drift: DriftSpec | None = None,
    with_truth: bool = False,
) -> pd.DataFrame:
    """A lab export of ``rows`` records, deterministic for ``seed``; see the module docstring.

    Samples are numbered from ``start_id`` in test-date order from ``start_date`` over about two
    years, so a later file can continue an earlier one. ``with_truth`` adds the benchmark
    columns ``_true_permeability``, ``_physics_permeability`` and ``_quirks``.
    """
    if rows < 1:
        raise InvalidInputError(f"rows must be at least 1, got {rows}")
    if seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed}")
    if start_id < 0:
        raise InvalidInputError(f"start_id must be a non-negative integer, got {start_id}")
    spec = mess or MessSpec.none()
    streams = _streams(seed)
    mix = _build_mix(drift)
    samples, remeasured, n_repeat = _samples_in_date_order(
        rows, spec, streams, mix, drift, start_id
    )
    bits = np.where(remeasured, _BIT["remeasured"], 0).astype(np.int64)
    missing = _missing_calipers(streams["missing"], samples, spec.missing_caliper)
    bits |= np.where(missing, _BIT["missing_caliper"], 0)
    # The law on what the lab records, before typos corrupt the record.
    physics = _law(
        mix.table, samples.codes, samples.temperature, samples.humidity, samples.mean_caliper
    )
    physics = physics * mix.barrier[samples.codes]
    cells = _messy_cells(samples, spec, streams, bits)
    structure = _spelled_structures(
        streams["spelling"], mix.names, samples.codes, spec.structure_spelling, bits
    )
    frame = pd.DataFrame(
        {
            MUESTRA: pd.Series(samples.muestra, dtype=np.int64),
            **{name: _column(values) for name, values in cells.items()},
            ESTRUCTURA: pd.Series(structure, dtype="str"),
            FECHA: pd.Series(_fechas(start_date, samples.day), dtype="str"),
        }
    )[list(RECORD_COLUMNS)]
    if with_truth:
        frame[TRUE_PERMEABILITY] = samples.true_wvtr
        frame[PHYSICS_PERMEABILITY] = physics
    order, is_copy = _repeat_order(streams["repeat"], len(frame), n_repeat)
    frame = frame.iloc[order].reset_index(drop=True)
    if with_truth:
        bits = bits[order] | np.where(is_copy, _BIT["repeated_row"], 0)
        frame[QUIRKS] = pd.Series(_quirk_labels(bits), dtype="str")
    return frame


# --- the noise floor ----------------------------------------------------------------------


def _clean_truth_pairs(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """(measured, physics) on rows no quirk touched; the truth columns must be present."""
    absent = [c for c in (PHYSICS_PERMEABILITY,) if c not in frame.columns]
    if absent:
        raise InvalidInputError(
            f"the noise floor needs the column {absent[0]}: generate with with_truth=True"
        )
    measured = pd.to_numeric(frame[PERMEABILIDAD], errors="coerce").to_numpy(dtype=np.float64)
    physics = frame[PHYSICS_PERMEABILITY].to_numpy(dtype=np.float64)
    keep = np.isfinite(measured) & (measured > 0) & np.isfinite(physics) & (physics > 0)
    if QUIRKS in frame.columns:
        keep &= frame[QUIRKS].to_numpy(dtype=object) == ""
    if not keep.any():
        raise InvalidInputError("the noise floor needs at least one clean row, found none")
    return measured[keep], physics[keep]


def noise_floor_mae(frame: pd.DataFrame) -> float:
    """MAE (g/m²·day) of the law on the recorded inputs: the best error a model can reach."""
    measured, physics = _clean_truth_pairs(frame)
    return float(np.mean(np.abs(measured - physics)))


def noise_floor_log_sigma(frame: pd.DataFrame) -> float:
    """σ of log(measured / law on the recorded inputs): the irreducible relative scatter."""
    measured, physics = _clean_truth_pairs(frame)
    return float(np.std(np.log(measured / physics)))
