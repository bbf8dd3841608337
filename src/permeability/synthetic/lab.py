"""The tests behind the real layout: who and what was tested, when, under which conditions.

:mod:`permeability.synthetic.export` lays the rows out; here a *test* is drawn once (its
label, the film really measured, conditions, gauge, lot, date, reference and analyst) and its
replicates are measured from it, so replicates can only differ by specimen and instrument
noise. Shares marked "real" are measured on the seed lab's export; the rest are estimates
(docs/data.md, "The real layout").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.schema import CALIBRES
from permeability.record.structures import normalise_structure
from permeability.synthetic.catalogue import (
    REAL_PRODUCT_ROWS,
    aliases,
    real_catalogue,
)
from permeability.synthetic.physics import (
    FilmSpec,
    FloatArray,
    IntArray,
    Layer,
    LayerTable,
    Material,
    law,
    layer_table,
)

if TYPE_CHECKING:
    from permeability.synthetic.export import ExportSpec

#: Truth columns of the real layout (benchmarks only; exports drop ``_`` columns).
FILM: Final = "_film"
TEST: Final = "_test"

#: Non-product labels and their rows in the real export (real). Reference films have a known
#: WVTR; the others hide an ordinary product film.
NON_PRODUCT_ROWS: Final = (
    ("ANALISIS-DE-ESTRUCTURA", 31),
    ("EN-ESTUDIO", 28),
    ("NO-REPORTADA", 21),
    ("CALIBRACION", 20),
    ("MATERIAL-REF", 6),
    ("MUESTRA-AZUL", 4),
    ("NIST-ROJA", 3),
    ("MUESTRA-1A-QUALY", 2),
)
#: Reference films: label -> WVTR (g/m²·day at 38 °C / 90 %) of each film the label may mean.
#: Levels follow the real rows' medians (NIST-ROJA 2.4, MATERIAL-REF 0.001, CALIBRACION from
#: 0.0002 to 2): the individual values are estimates.
REFERENCE_FILMS: Final[Mapping[str, tuple[float, ...]]] = {
    "NIST-ROJA": (2.4,),
    "MATERIAL-REF": (0.001,),
    "CALIBRACION": (0.003, 0.05, 0.5, 2.0),
}
#: Test conditions: set points and their weights (estimates), the share of tests whose sheet
#: shows the set point itself, and the spread of the recorded values around it (chosen so a
#: thousand rows hold about 40 temperatures and 90 humidities, as the real export does).
SET_POINTS: Final = ((38.0, 90.0), (25.0, 75.0), (23.0, 85.0), (25.0, 90.0), (23.0, 50.0))
SET_POINT_WEIGHTS: Final = (0.86, 0.04, 0.03, 0.04, 0.03)
AT_SET_POINT: Final = 0.4
TEMPERATURE_SPREAD_C: Final = 0.5
HUMIDITY_SPREAD_PCT: Final = 2.5
HUMIDITY_LIMITS_PCT: Final = (10.0, 98.0)
#: A film's true mean thickness around its nominal gauge (1 σ, log), and a specimen's around it.
GAUGE_SPREAD: Final = 0.04
SPECIMEN_THICKNESS_SPREAD: Final = 0.01
LOT_NOISE_CLIP_SIGMAS: Final = 6.0
DATE_SPAN_DAYS: Final = 730
#: Specimen-to-specimen scatter of one film (1 σ, log; estimates chosen so replicates differ by
#: about 9 % at the median, as in the real export): plain, metallized, foil, reference film.
SPECIMEN_SIGMA: Final = {"plain": 0.07, "metallized": 0.12, "foil": 0.35, "reference": 0.01}
#: Instrument: 5 % repeatability, degrading near a coulometric sensor's detection limit.
INSTRUMENT_REPEATABILITY: Final = 0.05
DETECTION_LIMIT: Final = 0.0005
NEAR_LIMIT_REPEATABILITY: Final = 0.15
MAX_REPEATABILITY: Final = 0.5
#: Share of foil specimens with no pinhole in the test area: they read 0 (the real export has
#: 9 zeros in about 200 foil rows).
FOIL_ZERO_SHARE: Final = 0.04
#: Analysts (fictional names) and how many tests each runs.
ANALYSTS: Final = ("Ana Restrepo", "Carlos Gómez", "Diana Múnera", "Jorge Ríos")
ANALYST_WEIGHTS: Final = (0.4, 0.3, 0.2, 0.1)


def _reference_spec(label: str, index: int, wvtr: float) -> FilmSpec:
    name = label if len(REFERENCE_FILMS[label]) == 1 else f"{label}-{index + 1}"
    material = Material(name, wvtr, 0.0, 30.0, 0.0)  # a certified film: gauge does not matter
    return FilmSpec(name, (Layer(material, 1.0),), (50.0,), 0.01, 0.02, None, 0.0)


@dataclass(frozen=True)
class _Films:
    """Every film a test can measure (products, then reference films) and every label."""

    specs: tuple[FilmSpec, ...]
    kind: tuple[str, ...]  # a key of SPECIMEN_SIGMA
    labels: tuple[str, ...]  # as typed: products, then non-products
    product_weights: FloatArray
    table: LayerTable


def _kind(spec: FilmSpec) -> str:
    names = {layer.material.name for layer in spec.layers}
    return "foil" if "AL" in names else "metallized" if "MET" in names else "plain"


def _films() -> _Films:
    products = [real_catalogue()[normalise_structure(t, aliases())] for t, _ in REAL_PRODUCT_ROWS]
    references = [
        _reference_spec(label, i, wvtr)
        for label, values in REFERENCE_FILMS.items()
        for i, wvtr in enumerate(values)
    ]
    specs = (*products, *references)
    weights = np.array([spec.frequency for spec in products], dtype=np.float64)
    return _Films(
        specs=specs,
        kind=(*(_kind(s) for s in products), *("reference" for _ in references)),
        labels=(*(t for t, _ in REAL_PRODUCT_ROWS), *(label for label, _ in NON_PRODUCT_ROWS)),
        product_weights=weights / weights.sum(),
        table=layer_table(specs),
    )


@dataclass(frozen=True)
class Tests:
    """Per-test arrays (index: test), plus ``row_test``: the test of each row."""

    row_test: IntArray
    first_row: IntArray
    label: IntArray  # into labels
    labels: tuple[str, ...]
    film: IntArray  # into film_names / table
    film_names: tuple[str, ...]
    specimen_sigma: FloatArray  # per film
    is_foil: NDArray[np.bool_]  # per film
    caliper_cv: FloatArray  # per film
    table: LayerTable
    temperature: FloatArray
    humidity: FloatArray
    thickness: FloatArray
    sample_wvtr: FloatArray
    day: IntArray
    reference: NDArray[np.object_]
    analyst: NDArray[np.object_]


def _replicates(rng: np.random.Generator, rows: int, weights: tuple[float, ...]) -> IntArray:
    """The test of each row: tests of 1–4 replicates, the last one cut to fit ``rows``."""
    counts = rng.choice(np.arange(1, len(weights) + 1), size=rows, p=weights)
    ends = np.cumsum(counts)
    n_tests = int(np.searchsorted(ends, rows)) + 1
    return np.repeat(np.arange(n_tests, dtype=np.int64), counts[:n_tests])[:rows]


def _labels_and_films(
    streams: dict[str, np.random.Generator], films: _Films, n: int, non_product: float
) -> tuple[IntArray, IntArray]:
    n_products = len(films.product_weights)
    others = np.array([rows for _, rows in NON_PRODUCT_ROWS], dtype=np.float64)
    rng = streams["labels"]
    is_other = rng.random(n) < non_product
    product = rng.choice(n_products, size=n, p=films.product_weights)
    other = rng.choice(len(others), size=n, p=others / others.sum())
    label = np.where(is_other, n_products + other, product).astype(np.int64)
    hidden = streams["films"].choice(n_products, size=n, p=films.product_weights)
    pick = streams["films"].random(n)
    film = np.where(is_other, hidden, product).astype(np.int64)
    names = [spec.name for spec in films.specs]
    for j, (name, _) in enumerate(NON_PRODUCT_ROWS):
        if name in REFERENCE_FILMS:
            count = len(REFERENCE_FILMS[name])
            first = names.index(name if count == 1 else f"{name}-1")
            rows = label == n_products + j
            film[rows] = first + np.floor(pick[rows] * count).astype(np.int64)
    return label, film


def _conditions(rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
    """A set point per test; the sheet shows it, or what the chamber really held."""
    which = rng.choice(len(SET_POINTS), size=n, p=SET_POINT_WEIGHTS)
    set_t, set_rh = np.asarray(SET_POINTS, dtype=np.float64)[which].T
    exact = rng.random(n) < AT_SET_POINT
    t = np.round(set_t + rng.normal(0.0, TEMPERATURE_SPREAD_C, n), 1)
    rh = set_rh + rng.normal(0.0, HUMIDITY_SPREAD_PCT, n)
    rh = np.where(rng.random(n) < 0.6, np.round(rh * 2.0) / 2.0, np.round(rh, 1))
    rh = np.clip(rh, *HUMIDITY_LIMITS_PCT)
    return np.where(exact, set_t, t), np.where(exact, set_rh, rh)


def _lot_factor(
    rng: np.random.Generator, specs: tuple[FilmSpec, ...], film: IntArray
) -> FloatArray:
    sigma = np.array([s.lot_sigma for s in specs])[film]
    z = rng.normal(0.0, 1.0, film.size)
    for code, spec in enumerate(specs):
        rows = np.flatnonzero(film == code)
        df = spec.lot_tail_df
        if df is not None and rows.size:
            scale = math.sqrt((df - 2.0) / df) if df > 2 else 1.0
            z[rows] = rng.standard_t(df, rows.size) * scale
    return np.asarray(np.exp(sigma * np.clip(z, -LOT_NOISE_CLIP_SIGMAS, LOT_NOISE_CLIP_SIGMAS)))


def _references(rng: np.random.Generator, n: int) -> NDArray[np.object_]:
    """A product reference per test ("REF-0412"), distinct within the file."""
    width = max(4, len(str(3 * n)))
    numbers = rng.choice(10**width, size=n, replace=False)
    return np.asarray([f"REF-{k:0{width}d}" for k in numbers], dtype=object)


def _references_of(
    films: _Films, film: IntArray, products: NDArray[np.object_]
) -> NDArray[np.object_]:
    """A product test's reference is its product's; a reference film's is the film itself
    ("CALIBRACION-2", "NIST-ROJA"), as a lab records the certified film it measured, so the
    same film's results form one series on the instrument's control chart."""
    kinds = np.asarray(films.kind, dtype=object)[film]
    names = np.asarray([s.name for s in films.specs], dtype=object)[film]
    return np.where(kinds == "reference", names, products)


def draw_tests(rows: int, spec: ExportSpec, streams: dict[str, np.random.Generator]) -> Tests:
    """Every test behind ``rows`` replicate rows, in date order."""
    films = _films()
    row_test = _replicates(streams["replicates"], rows, spec.replicate_weights)
    n = int(row_test[-1]) + 1
    first_row = np.searchsorted(row_test, np.arange(n)).astype(np.int64)
    label, film = _labels_and_films(streams, films, n, spec.non_product_share)
    temperature, humidity = _conditions(streams["conditions"], n)
    gauges = [films.specs[f].gauges_um for f in range(len(films.specs))]
    pick = streams["thickness"].random(n)
    counts = np.array([len(g) for g in gauges])[film]
    padded = np.array([[*g, *([g[-1]] * (4 - len(g)))] for g in gauges], dtype=np.float64)
    nominal = padded[film, np.floor(pick * counts).astype(np.int64)]
    thickness = nominal * np.exp(streams["thickness"].normal(0.0, GAUGE_SPREAD, n))
    wvtr = law(films.table, film, temperature, humidity, thickness)
    arrivals = np.floor(np.sort(streams["dates"].uniform(0.0, DATE_SPAN_DAYS, n)))
    return Tests(
        row_test=row_test,
        first_row=first_row,
        label=label,
        labels=films.labels,
        film=film,
        film_names=tuple(s.name for s in films.specs),
        specimen_sigma=np.array([SPECIMEN_SIGMA[k] for k in films.kind]),
        is_foil=np.array([k == "foil" for k in films.kind]),
        caliper_cv=np.array([s.caliper_cv for s in films.specs]),
        table=films.table,
        temperature=temperature,
        humidity=humidity,
        thickness=thickness,
        sample_wvtr=wvtr * _lot_factor(streams["lot"], films.specs, film),
        day=(arrivals - arrivals[0]).astype(np.int64),
        reference=_references_of(films, film, _references(streams["references"], n)),
        analyst=np.asarray(ANALYSTS, dtype=object)[
            streams["analysts"].choice(len(ANALYSTS), size=n, p=ANALYST_WEIGHTS)
        ],
    )


def instrument_sigma(wvtr: FloatArray) -> FloatArray:
    """Relative repeatability (1 σ): 5 %, up to 50 % near the coulometric detection limit."""
    near = NEAR_LIMIT_REPEATABILITY * DETECTION_LIMIT / np.maximum(wvtr, 1e-12)
    return np.asarray(np.minimum(np.hypot(INSTRUMENT_REPEATABILITY, near), MAX_REPEATABILITY))


def measure_replicates(
    tests: Tests, streams: dict[str, np.random.Generator]
) -> tuple[FloatArray, FloatArray]:
    """Each replicate's WVTR and five caliper readings (rows × 5), from its test's film."""
    per_row = tests.row_test
    film = tests.film[per_row]
    rows = per_row.size
    specimens = streams["specimens"]
    scatter = specimens.normal(0.0, 1.0, rows) * tests.specimen_sigma[film]
    value = tests.sample_wvtr[per_row] * np.exp(scatter)
    thickness = tests.thickness[per_row] * np.exp(
        specimens.normal(0.0, SPECIMEN_THICKNESS_SPREAD, rows)
    )
    noise = streams["readings"].normal(0.0, 1.0, (rows, len(CALIBRES)))
    readings = np.round(thickness[:, None] * (1.0 + noise * tests.caliper_cv[film][:, None]), 1)
    instrument = streams["instrument"].normal(0.0, 1.0, rows)
    measured = value * np.exp(instrument * instrument_sigma(value))
    intact = tests.is_foil[film] & (streams["zeros"].random(rows) < FOIL_ZERO_SHARE)
    return np.where(intact, 0.0, measured), readings


def real_variants(typed: str) -> tuple[str, ...]:
    """Other ways the lab types a structure, each naming the same film (or non-product)."""
    canonical = normalise_structure(typed, aliases())
    parts = typed.split("-")
    candidates = [
        typed.replace("-", " / "),
        canonical,
        f"{typed} ",
        typed.lower(),
        typed.replace("-MET", "MET"),
        "---".join(["-".join(parts[:2]), "-".join(parts[2:])]) if len(parts) > 2 else typed,
        typed.replace("-", " "),
    ]
    if typed.endswith("REPORTADA"):
        candidates.append(typed[:-1] + "O")  # NO-REPORTADO: a non-product all the same
    keep = dict.fromkeys(c for c in candidates if c != typed)
    return tuple(
        c for c in keep if normalise_structure(c, aliases()) == canonical or c.endswith("REPORTADO")
    )


def spell_structures(rng: np.random.Generator, tests: Tests, rate: float) -> NDArray[np.object_]:
    """Each test's structure as typed: the lab's spelling, another one for ``rate`` of tests."""
    typed = np.asarray(tests.labels, dtype=object)[tests.label]
    hit = rng.random(typed.size) < rate
    pick = rng.random(typed.size)
    for code, name in enumerate(tests.labels):
        variants = real_variants(name)
        rows = np.flatnonzero(hit & (tests.label == code))
        if variants and rows.size:
            chosen = np.floor(pick[rows] * len(variants)).astype(np.int64)
            typed[rows] = np.asarray(variants, dtype=object)[chosen]
    return typed
