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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRES,
    ESTRUCTURA,
    FECHA,
    MUESTRA,
    PERMEABILIDAD,
    RECORD_COLUMNS,
)
from permeability.synthetic.catalogue import (
    base_mix,
    real_catalogue,
    reference_wvtr,
    resolve_structure,
    spelling_variants,
    structure_catalogue,
)
from permeability.synthetic.mess import (
    BIT,
    MessSpec,
    Samples,
    messy_cells,
    missing_calipers,
    quirk_labels,
    repeat_order,
    spelled_structures,
)
from permeability.synthetic.physics import (
    DETECTION_LIMIT,
    INSTRUMENT_REPEATABILITY,
    MAX_REPEATABILITY,
    NEAR_LIMIT_REPEATABILITY,
    FilmSpec,
    Layer,
    LayerTable,
    Material,
    instrument_sigma,
    law,
    layer_table,
    named_streams,
    round_significant,
)

__all__ = [
    "ARBITRARY_CONDITION_SHARE",
    "ARBITRARY_HUMIDITY_PCT",
    "ARBITRARY_TEMPERATURE_C",
    "CHAMBER_JITTER_C",
    "CHAMBER_JITTER_PCT",
    "DATE_SPAN_DAYS",
    "DETECTION_LIMIT",
    "GAUGE_SPREAD",
    "INSTRUMENT_REPEATABILITY",
    "LOT_NOISE_CLIP_SIGMAS",
    "MAX_REPEATABILITY",
    "NEAR_LIMIT_REPEATABILITY",
    "PHYSICS_PERMEABILITY",
    "QUIRKS",
    "REMEASURE_DELAY_DAYS",
    "SIGNIFICANT_DIGITS",
    "STANDARD_CONDITIONS",
    "STANDARD_CONDITION_WEIGHTS",
    "TRUE_PERMEABILITY",
    "DriftSpec",
    "FilmSpec",
    "Layer",
    "Material",
    "MessSpec",
    "base_mix",
    "generate_lab_data",
    "instrument_sigma",
    "noise_floor_log_sigma",
    "noise_floor_mae",
    "real_catalogue",
    "reference_wvtr",
    "resolve_structure",
    "round_significant",
    "spelling_variants",
    "structure_catalogue",
]

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
#: Heavy-tailed lot noise is clipped at this many σ (a pinhole-ridden sample, not a new film).
LOT_NOISE_CLIP_SIGMAS: Final = 6.0
#: Test dates spread over about two years.
DATE_SPAN_DAYS: Final = 730
#: A re-measurement happens this many days after the first test (inclusive range).
REMEASURE_DELAY_DAYS: Final = (1, 30)
SIGNIFICANT_DIGITS: Final = 3


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


@dataclass(frozen=True)
class _Mix:
    """The structures that can appear, their sampling weights and their layer table."""

    specs: tuple[FilmSpec, ...]
    weights: FloatArray
    barrier: FloatArray
    table: LayerTable

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)


def _build_mix(drift: DriftSpec | None) -> _Mix:
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
    return _Mix(tuple(specs), weights, barrier, layer_table(specs))


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


def _measure(rng: np.random.Generator, wvtr: FloatArray) -> FloatArray:
    noise = np.exp(rng.normal(0.0, 1.0, len(wvtr)) * instrument_sigma(wvtr))
    return round_significant(wvtr * noise, SIGNIFICANT_DIGITS)


def _draw_samples(
    rows: int,
    streams: dict[str, np.random.Generator],
    mix: _Mix,
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


def _remeasure(rng: np.random.Generator, samples: Samples, count: int) -> Samples:
    """The same samples tested again later: same inputs and lot, a new instrument reading."""
    sources = np.sort(rng.choice(len(samples.muestra), size=count, replace=False))
    again = samples.take(sources)
    again.day = again.day + rng.integers(
        REMEASURE_DELAY_DAYS[0], REMEASURE_DELAY_DAYS[1] + 1, count
    )
    again.measured = _measure(rng, again.sample_wvtr)
    return again


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
) -> tuple[Samples, BoolArray, int]:
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
    return Samples.concat(base, again).take(order), remeasured[order], n_repeat


def generate_lab_data(
    rows: int,
    seed: int,
    *,
    start_id: int = 1,
    start_date: date = date(2024, 1, 1),
    mess: MessSpec | None = MessSpec(),  # noqa: B008 (frozen, immutable)
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
    streams = named_streams(seed, _STREAMS)
    mix = _build_mix(drift)
    samples, remeasured, n_repeat = _samples_in_date_order(
        rows, spec, streams, mix, drift, start_id
    )
    bits = np.where(remeasured, BIT["remeasured"], 0).astype(np.int64)
    missing = missing_calipers(streams["missing"], samples, spec.missing_caliper)
    bits |= np.where(missing, BIT["missing_caliper"], 0)
    # The law on what the lab records, before typos corrupt the record.
    physics = law(
        mix.table, samples.codes, samples.temperature, samples.humidity, samples.mean_caliper
    )
    physics = physics * mix.barrier[samples.codes]
    cells = messy_cells(samples, spec, streams, bits)
    structure = spelled_structures(
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
    order, is_copy = repeat_order(streams["repeat"], len(frame), n_repeat)
    frame = frame.iloc[order].reset_index(drop=True)
    if with_truth:
        bits = bits[order] | np.where(is_copy, BIT["repeated_row"], 0)
        frame[QUIRKS] = pd.Series(quirk_labels(bits), dtype="str")
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
