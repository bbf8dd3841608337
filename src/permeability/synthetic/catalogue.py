"""The structures the generator knows: the seed layout's mix and the lab's real laminates.

Names are canonical under :mod:`permeability.record.structures` (``normalise_structure(name) ==
name``), so a generated record and a cleaned real record name a film the same way. The seed
layout keeps its thirteen-film mix (metallized and coated films as single materials); the real
layout's mix is the seed lab's export (docs/data.md, "The real layout"): 40 product structures,
most of them laminates written layer by layer, with the real export's row shares as weights.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from permeability.errors import InvalidInputError
from permeability.record.structures import (
    DEFAULT_ALIASES,
    LAYER_ALIASES,
    build_alias_map,
    canonical_spelling,
    normalise_structure,
    parse_structure,
)
from permeability.synthetic.physics import (
    MATERIALS,
    FilmSpec,
    FloatArray,
    Layer,
    law,
    layer_table,
)


@functools.cache
def aliases() -> Mapping[str, str]:
    """The default alias map, built once (parsing is cached per map)."""
    return build_alias_map()


def _mono(
    name: str, gauges: tuple[float, ...], cv: float, lot: float, df: float | None, freq: float
) -> FilmSpec:
    return FilmSpec(name, (Layer(MATERIALS[name], 1.0),), gauges, cv, lot, df, freq)


def _laminate(
    layers: tuple[tuple[str, float], ...],
    gauges: tuple[float, ...],
    cv: float,
    lot: float,
    df: float | None,
    freq: float,
) -> FilmSpec:
    name = normalise_structure("/".join(material for material, _ in layers), aliases())
    built = tuple(Layer(MATERIALS[material], share) for material, share in layers)
    return FilmSpec(name, built, gauges, cv, lot, df, freq)


_CATALOGUE: Final = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _mono("BOPP", (15, 20, 25, 30, 30, 35, 40), 0.02, 0.08, None, 0.22),
            _mono("BOPP/MET", (15, 18, 20, 25, 30), 0.02, 0.35, 3.0, 0.12),
            _mono("PET", (12, 12, 12, 15, 23, 23), 0.015, 0.08, None, 0.08),
            _mono("PET/MET", (12, 12, 12, 15), 0.015, 0.30, 3.0, 0.06),
            _mono("LDPE", (40, 50, 60, 80), 0.06, 0.12, None, 0.10),
            _mono("HDPE", (20, 30, 40, 50), 0.05, 0.10, None, 0.04),
            _mono("PPC", (20, 25, 30, 40, 50), 0.03, 0.10, None, 0.06),
            _mono("NY", (12, 15, 15, 20, 25), 0.02, 0.12, None, 0.05),
            _mono("BOPP/PVDC", (18, 20, 25, 30), 0.02, 0.12, None, 0.04),
            _laminate((("PET", 0.2), ("LDPE", 0.8)), (52, 62, 75, 87), 0.04, 0.10, None, 0.07),
            _laminate((("BOPP", 0.5), ("BOPP/MET", 0.5)), (35, 40, 50, 60), 0.02, 0.25, 4.0, 0.06),
            _laminate((("PET/MET", 0.2), ("LDPE", 0.8)), (52, 62, 75, 87), 0.04, 0.25, 4.0, 0.05),
            _laminate((("NY", 0.2), ("LDPE", 0.8)), (65, 75, 90, 115), 0.04, 0.10, None, 0.05),
            # Not in the base mix: structures a DriftSpec can introduce.
            _laminate(
                (("PET", 0.15), ("EVOH", 0.05), ("LDPE", 0.8)), (70, 90), 0.04, 0.12, None, 0.0
            ),
            _laminate((("BOPP", 0.4), ("PPC", 0.6)), (45, 55, 70), 0.03, 0.10, None, 0.0),
            _laminate((("PET/MET", 0.25), ("PPC", 0.75)), (50, 60, 70), 0.03, 0.25, 4.0, 0.0),
        )
    }
)

# --- the real export's laminates ------------------------------------------------------------

#: Nominal gauge (µm) of each layer inside a laminate (estimates from converters' usual
#: constructions); a MET layer is a few tens of nm: its thickness never enters its barrier.
_LAYER_GAUGE_UM: Final = {
    "PET": 12.0,
    "BOPP": 20.0,
    "PE": 60.0,
    "PE-MDO": 25.0,
    "PPC": 30.0,
    "NY": 15.0,
    "AL": 8.0,
    "MET": 0.05,
    "PAPEL": 70.0,
    "PLA": 25.0,
    "CELOFAN": 25.0,
    "PVC": 150.0,
    "MATE": 20.0,
}
#: A single-layer product is thicker than the same layer inside a laminate.
_MONO_GAUGE_UM: Final = {"PE": 100.0, "PET": 50.0, "PE-MDO": 30.0, "PPC": 40.0, "BOPP": 30.0}
#: Gauges of one structure: the nominal total times these factors (a factor listed twice is
#: twice as common).
_GAUGE_FACTORS: Final = (0.8, 1.0, 1.0, 1.25)

#: (as the lab types it, rows in the real export): the product structures of the seed lab's
#: export and their row counts (measured on ``seed_lab_processed.csv``; PLA and PVC appear as
#: names without rows there, so they get one). Non-products are in ``synthetic_export.py``.
REAL_PRODUCT_ROWS: Final = (
    ("PET-AL-PE", 155),
    ("PET-PET-MET-PE", 124),
    ("BOPP-BOPP-MET", 69),
    ("PET-PE", 62),
    ("BOPP-MET", 60),
    ("PE-MDO-PE", 59),
    ("PET-BOPP-PE", 52),
    ("PE", 42),
    ("PET", 32),
    ("PE-PE", 31),
    ("BOPP-BOPP-PPC", 30),
    ("PET-AL-NY-PPC", 26),
    ("BOPP-BOPP", 23),
    ("BOPP", 19),
    ("PET-NY-PE", 16),
    ("PET-PPC", 14),
    ("PE-MDO", 12),
    ("BOPP-PPC", 11),
    ("PET-PET-MET", 10),
    ("BOPP-AL-PE", 10),
    ("BOPP-PE", 9),
    ("PAPEL-PE", 8),
    ("BOPP-BOPP-PE", 8),
    ("PET-PET-PPC", 6),
    ("BOPP-PET-PE", 6),
    ("BOPP-MATE-BOPP-MET", 6),
    ("PAPEL", 6),
    ("BOPP-PET-BOPP", 4),
    ("BOPP-BOPP-BOPP", 4),
    ("PET-AL-NY-PE", 4),
    ("CELOFAN-PLA", 4),
    ("PET-BOPP", 4),
    ("BOPP-PET", 3),
    ("NY-PE", 3),
    ("PET-AL-PPC", 2),
    ("PET-AL", 2),
    ("PET-PET-PE", 2),
    ("PPC", 2),
    ("PLA", 1),
    ("PVC", 1),
)

#: Lot-to-lot noise (σ on the log scale, Student-t df or None): foil laminates read at the
#: detection limit with pinholes and handling damage giving a very heavy upper tail; metallized
#: films 20–50 % with a tail (domain notes); everything else 5–15 %.
_FOIL_LOT: Final = (1.0, 4.0)
_METALLIZED_LOT: Final = (0.35, 3.0)
_PLAIN_LOT: Final = (0.10, None)
_PAPER_LOT: Final = (0.18, None)


def _real_spec(typed: str, rows: int) -> FilmSpec:
    parsed = parse_structure(typed, aliases())
    layers = parsed.layers
    gauges = [
        _MONO_GAUGE_UM.get(layer, _LAYER_GAUGE_UM[layer])
        if len(layers) == 1
        else _LAYER_GAUGE_UM[layer]
        for layer in layers
    ]
    total = sum(gauges)
    lot = (
        _FOIL_LOT
        if "AL" in layers
        else _METALLIZED_LOT
        if "MET" in layers
        else _PAPER_LOT
        if {"PAPEL", "CELOFAN"} & set(layers)
        else _PLAIN_LOT
    )
    blown = bool({"PE", "PE-MDO", "PAPEL"} & set(layers))
    return FilmSpec(
        name=parsed.name,
        layers=tuple(
            Layer(MATERIALS[layer], g / total) for layer, g in zip(layers, gauges, strict=True)
        ),
        gauges_um=tuple(round(total * factor) for factor in _GAUGE_FACTORS),
        caliper_cv=0.04 if blown else 0.02,
        lot_sigma=lot[0],
        lot_tail_df=lot[1],
        frequency=float(rows),
    )


_REAL_CATALOGUE: Final = MappingProxyType(
    {spec.name: spec for spec in (_real_spec(typed, rows) for typed, rows in REAL_PRODUCT_ROWS)}
)
#: How the lab types each real structure (canonical name -> the export's spelling).
REAL_SPELLING: Final = MappingProxyType(
    {normalise_structure(typed, aliases()): typed for typed, _ in REAL_PRODUCT_ROWS}
)

#: Noise of a laminate resolved on the fly (not in a catalogue): generic values.
_ON_THE_FLY_CALIPER_CV: Final = 0.03
_ON_THE_FLY_LOT_SIGMA: Final = 0.12
_ON_THE_FLY_METALLIZED_LOT_SIGMA: Final = 0.25
_ON_THE_FLY_METALLIZED_TAIL_DF: Final = 4.0


def structure_catalogue() -> Mapping[str, FilmSpec]:
    """Every structure of the seed layout, by canonical name (read-only)."""
    return _CATALOGUE


def real_catalogue() -> Mapping[str, FilmSpec]:
    """The real layout's product structures, by canonical name (read-only)."""
    return _REAL_CATALOGUE


def base_mix() -> tuple[str, ...]:
    """The structures of the seed layout's usual mix (catalogue entries with a frequency)."""
    return tuple(name for name, spec in _CATALOGUE.items() if spec.frequency > 0)


def _materials_of(layers: tuple[str, ...]) -> tuple[str, ...] | None:
    """Layers grouped into materials, longest first ("BOPP", "MET" is the material BOPP/MET)."""
    found: list[str] = []
    i = 0
    while i < len(layers):
        pair = "/".join(layers[i : i + 2])
        if i + 1 < len(layers) and pair in MATERIALS:
            found.append(pair)
            i += 2
        elif layers[i] in MATERIALS:
            found.append(layers[i])
            i += 1
        else:
            return None
    return tuple(found)


@functools.cache
def resolve_structure(name: str) -> FilmSpec:
    """A structure from any spelling: a catalogue entry or a laminate of known materials.

    The seed catalogue comes first, then the real export's laminates. Laminates built on the
    fly get equal layer shares and generic noise, so a drift test can introduce any plausible
    combination without editing a catalogue.
    """
    parsed = parse_structure(name, aliases())
    for catalogue in (_CATALOGUE, _REAL_CATALOGUE):
        if parsed.name in catalogue:
            return catalogue[parsed.name]
    materials = _materials_of(parsed.layers)
    if materials:
        metallized = any("MET" in m or m == "AL" for m in materials)
        return FilmSpec(
            name=parsed.name,
            layers=tuple(Layer(MATERIALS[m], 1.0 / len(materials)) for m in materials),
            gauges_um=tuple(float(25 * len(materials) + step) for step in (0, 10, 20)),
            caliper_cv=_ON_THE_FLY_CALIPER_CV,
            lot_sigma=_ON_THE_FLY_METALLIZED_LOT_SIGMA if metallized else _ON_THE_FLY_LOT_SIGMA,
            lot_tail_df=_ON_THE_FLY_METALLIZED_TAIL_DF if metallized else None,
            frequency=0.0,
        )
    raise InvalidInputError(
        f"structure {name!r} is neither in the catalogue nor a laminate of known materials "
        f"({', '.join(MATERIALS)})"
    )


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
    table = layer_table([resolve_structure(str(name)) for name in unique])
    flat_t, flat_rh, flat_l = t.ravel(), rh.ravel(), thickness.ravel()
    valid = (flat_l > 0) & (flat_rh >= 0) & np.isfinite(flat_l)
    safe_l = np.where(valid, flat_l, 1.0)
    result = law(table, codes.astype(np.int64), flat_t, np.where(valid, flat_rh, 0.0), safe_l)
    return np.where(valid, result, np.nan).reshape(shape)


def _first_alias(target: str, table: Mapping[str, str]) -> str | None:
    return next((alias for alias, value in table.items() if value == target), None)


def spelling_variants(name: str) -> tuple[str, ...]:
    """Hand-typed spellings of a canonical structure that the alias map brings back to it.

    Case and spaces, other separators (``PET / LDPE``, ``BOPP-MET``), whole-name aliases
    (``Metallized bopp``) and layer aliases (``Opp/Pebd``, ``Bopp metalizado``).
    """
    layers = name.split("/")
    spaced = [_first_alias(layer, LAYER_ALIASES) or layer for layer in layers]
    spanish = [layers[0], *(("METALIZADO" if layer == "MET" else layer) for layer in layers[1:])]
    whole = [alias for alias, target in DEFAULT_ALIASES.items() if target == name]
    candidates = [name.lower(), name.title(), f"{name} ", f" {name.lower()}"]
    if "/" in name:
        candidates += [name.replace("/", " / "), name.lower().replace("/", " /")]
        candidates += [name.replace("/", "-"), name.replace("/", " ")]
        candidates += [" ".join(spanish).capitalize(), "/".join(spaced).title()]
    elif spaced[0] != name:
        candidates += [spaced[0].capitalize(), spaced[0]]
    candidates += [alias.capitalize() for alias in whole[:3]] + [a.lower() for a in whole[:1]]
    unique = dict.fromkeys(c for c in candidates if c != name)
    target = canonical_spelling(name)
    return tuple(c for c in unique if normalise_structure(c, aliases()) == target)
