"""The seed layout's mess: the quirks of a hand-kept lab sheet, applied to generated samples.

The samples are drawn by :mod:`permeability.synthetic.sampling`; each quirk hits an
independent random share of rows and records itself in a bit mask, so benchmarks can tell
touched rows from clean ones (``_quirks``) and the noise floor is measured on untouched rows
only. Rates and examples: ``docs/data.md``, "The messy export".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    CALIBRE_PROM,
    CALIBRES,
    GRADOS_C,
    PERMEABILIDAD,
    PORC_HUMEDAD,
)
from permeability.synthetic.catalogue import spelling_variants
from permeability.synthetic.sampling import Samples

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


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


QUIRK_NAMES: Final = (
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
BIT: Final = {name: 1 << i for i, name in enumerate(QUIRK_NAMES)}
_NOT_A_NUMBER_TEXT: Final = ("n/a", "N/A", "pendiente", "error", "-")
_UNIT_COLUMNS: Final = (
    (GRADOS_C, "°C"),
    (PORC_HUMEDAD, "%"),
    *((c, "µm") for c in CALIBRES),
    (CALIBRE_PROM, "µm"),
)


def missing_calipers(rng: np.random.Generator, samples: Samples, rate: float) -> BoolArray:
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


def impossible_values(
    rng: np.random.Generator, samples: Samples, rate: float, bits: IntArray
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
    bits[humidity_rows] |= BIT["impossible_humidity"]
    caliper_rows = rows[kind == 1]
    first_present = np.argmax(~np.isnan(samples.readings[caliper_rows]), axis=1)
    reading = samples.readings[caliper_rows, first_present]
    samples.readings[caliper_rows, first_present] = np.where(variant[kind == 1] == 0, 0.0, -reading)
    bits[caliper_rows] |= BIT["impossible_caliper"]
    mean_rows = rows[kind == 2]
    samples.mean_caliper[mean_rows] = np.round(samples.mean_caliper[mean_rows] * 10.0, 2)
    bits[mean_rows] |= BIT["inconsistent_caliper_mean"]
    target_rows = rows[kind == 3]
    measured = samples.measured[target_rows]
    samples.measured[target_rows] = np.where(variant[kind == 3] == 0, 0.0, -measured)
    text_rows = rows[kind == 4]
    bits[np.r_[target_rows, text_rows]] |= BIT["impossible_permeability"]
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


def write_text(
    cells: Cells, column: str, rows: IntArray, texts: Sequence[str] | NDArray[np.object_]
) -> None:
    """Put text into a numeric column, which from then on holds floats and strings."""
    if rows.size == 0:
        return
    if cells[column].dtype != object:
        cells[column] = cells[column].astype(object)
    cells[column][rows] = texts


def decimal_commas(rng: np.random.Generator, cells: Cells, rate: float, bits: IntArray) -> None:
    """Rows typed on a Spanish-locale machine: every decimal number of the row has a comma."""
    rows = rng.random(len(bits)) < rate
    bits[rows] |= BIT["decimal_comma"]
    for name, values in cells.items():
        chosen = np.flatnonzero(rows & np.isfinite(values.astype(np.float64)))
        write_text(cells, name, chosen, _comma_texts(values[chosen].astype(np.float64)))


def unit_texts(rng: np.random.Generator, cells: Cells, rate: float, bits: IntArray) -> None:
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
        write_text(cells, column, np.array([row]), [f" {text} " if pad else f"{text} {unit}"])
    bits[rows] |= BIT["unit_text"]


def spelled_structures(
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
            bits[rows] |= BIT["structure_spelling"]
    return spelled


def repeat_order(rng: np.random.Generator, rows: int, count: int) -> tuple[IntArray, BoolArray]:
    """Row order with ``count`` rows pasted twice (the copy right after its original)."""
    copies = rng.choice(rows, size=count, replace=False)
    order = np.sort(np.r_[np.arange(rows), copies], kind="stable").astype(np.int64)
    is_copy = np.r_[False, order[1:] == order[:-1]]
    return order, is_copy


def quirk_labels(bits: IntArray) -> NDArray[np.object_]:
    """``;``-joined quirk names per row ("" for a clean row)."""
    unique, inverse = np.unique(bits, return_inverse=True)
    labels = [";".join(n for n in QUIRK_NAMES if int(u) & BIT[n]) for u in unique]
    return np.asarray(labels, dtype=object)[inverse]


def messy_cells(
    samples: Samples, spec: MessSpec, streams: dict[str, np.random.Generator], bits: IntArray
) -> Cells:
    """The numeric columns after the impossible values, decimal commas and unit texts."""
    text_targets = impossible_values(streams["impossible"], samples, spec.impossible_value, bits)
    cells: Cells = {
        GRADOS_C: samples.temperature,
        PORC_HUMEDAD: samples.humidity,
        **{name: samples.readings[:, i] for i, name in enumerate(CALIBRES)},
        CALIBRE_PROM: samples.mean_caliper,
        PERMEABILIDAD: samples.measured,
    }
    decimal_commas(streams["comma"], cells, spec.decimal_comma, bits)
    unit_texts(streams["units"], cells, spec.unit_text, bits)
    words = streams["impossible"].integers(0, len(_NOT_A_NUMBER_TEXT), text_targets.size)
    placeholders = np.asarray(_NOT_A_NUMBER_TEXT, dtype=object)[words]
    write_text(cells, PERMEABILIDAD, text_targets, placeholders)
    return cells
