"""The seed layout's samples: which films, under which conditions, how thick, how permeable.

Each sample is drawn once (:func:`draw_samples`): a structure from the mix (:func:`build_mix`,
with the changes a :class:`DriftSpec` asks for), the test conditions, the film's true
thickness and its caliper readings, the lot's deviation from the law, then one instrument
reading; a re-measurement (:func:`remeasure`) reads the same sample again later. Everything is
vectorised over rows, and each ingredient draws from its own named random stream.

Noise is median-centred on the log scale, so the law applied to what the lab records is the
conditional median: the best predictor under MAE (the noise floor,
:mod:`permeability.synthetic.truth`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import CALIBRES
from permeability.synthetic.catalogue import base_mix, resolve_structure, structure_catalogue
from permeability.synthetic.physics import (
    FilmSpec,
    LayerTable,
    instrument_sigma,
    law,
    layer_table,
    round_significant,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

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
#: Heavy-tailed lot noise is clipped at this many σ (a pinhole-ridden sample, not a new film).
LOT_NOISE_CLIP_SIGMAS: Final = 6.0
#: Test dates spread over about two years.
DATE_SPAN_DAYS: Final = 730
#: A re-measurement happens this many days after the first test (inclusive range).
REMEASURE_DELAY_DAYS: Final = (1, 30)
#: Measured values are recorded to this many significant digits.
SIGNIFICANT_DIGITS: Final = 3


@dataclass
class Samples:
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

    def take(self, rows: IntArray) -> Samples:
        return Samples(
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
    def concat(first: Samples, second: Samples) -> Samples:
        return Samples(
            *(
                np.concatenate([getattr(first, f.name), getattr(second, f.name)])
                for f in fields(Samples)
            )
        )


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
class Mix:
    """The structures that can appear, their sampling weights and their layer table."""

    specs: tuple[FilmSpec, ...]
    weights: FloatArray
    barrier: FloatArray
    table: LayerTable

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)


def build_mix(drift: DriftSpec | None) -> Mix:
    """The base mix at its catalogue frequencies, with the new structures and barrier
    changes ``drift`` asks for."""
    specs = [structure_catalogue()[name] for name in base_mix()]
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
    return Mix(tuple(specs), weights, barrier, layer_table(specs))


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


def _true_thickness(rng: np.random.Generator, mix: Mix, codes: IntArray) -> FloatArray:
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
    rng: np.random.Generator, mix: Mix, codes: IntArray, thickness: FloatArray
) -> FloatArray:
    cv = np.array([spec.caliper_cv for spec in mix.specs])[codes]
    noise = rng.normal(0.0, 1.0, (len(codes), len(CALIBRES))) * cv[:, None]
    return np.asarray(np.round(thickness[:, None] * (1.0 + noise), 1))


def _lot_factor(rng: np.random.Generator, mix: Mix, codes: IntArray) -> FloatArray:
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


def _measure(rng: np.random.Generator, wvtr: FloatArray) -> FloatArray:
    noise = np.exp(rng.normal(0.0, 1.0, len(wvtr)) * instrument_sigma(wvtr))
    return round_significant(wvtr * noise, SIGNIFICANT_DIGITS)


def draw_samples(
    rows: int,
    streams: dict[str, np.random.Generator],
    mix: Mix,
    drift: DriftSpec | None,
    start_id: int,
) -> Samples:
    codes = streams["structure"].choice(len(mix.specs), size=rows, p=mix.weights).astype(np.int64)
    shift = drift.humidity_shift_pct if drift is not None else 0.0
    temperature, humidity = _conditions(streams["conditions"], rows, shift)
    thickness = _true_thickness(streams["thickness"], mix, codes)
    readings = _caliper_readings(streams["readings"], mix, codes, thickness)
    true_wvtr = law(mix.table, codes, temperature, humidity, thickness) * mix.barrier[codes]
    sample_wvtr = true_wvtr * _lot_factor(streams["lot"], mix, codes)
    # Arrivals spread evenly at random over the span; the first sample is tested on start_date.
    arrivals = np.floor(np.sort(streams["dates"].uniform(0.0, DATE_SPAN_DAYS, rows)))
    day = (arrivals - arrivals[0]).astype(np.int64)
    return Samples(
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


def remeasure(rng: np.random.Generator, samples: Samples, count: int) -> Samples:
    """The same samples tested again later: same inputs and lot, a new instrument reading."""
    sources = np.sort(rng.choice(len(samples.muestra), size=count, replace=False))
    again = samples.take(sources)
    again.day = again.day + rng.integers(
        REMEASURE_DELAY_DAYS[0], REMEASURE_DELAY_DAYS[1] + 1, count
    )
    again.measured = _measure(rng, again.sample_wvtr)
    return again
