"""A physically grounded synthetic lab export: the stand-in for the lab's confidential data.

Every downstream stage (acquisition tests, training benchmarks, drift tests) runs on it, so it
has to behave like the real thing in the two ways that matter: the target follows the
permeation law with realistic noise (which gives a known noise floor a model cannot beat,
:mod:`permeability.synthetic.truth`), and the export is as untidy as a hand-kept lab sheet
(decimal commas, misspelt structures, missing readings, impossible values, repeated rows;
:mod:`permeability.synthetic.mess`). The samples are drawn by
:mod:`permeability.synthetic.sampling`; here they become the seed layout's record. The data
model, its constants and their sources are documented in ``docs/data.md``.

Each random ingredient draws from its own stream of one ``SeedSequence``: the tidy and the
messy export of a seed describe the same samples (the messy one has fewer distinct samples
because repeated and re-measured rows take some of the requested rows). Everything is
vectorised over rows; laminates are padded layer tables, so one million rows take a few
seconds.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from permeability.errors import InvalidInputError
from permeability.record.schema import ESTRUCTURA, FECHA, MUESTRA, RECORD_COLUMNS
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
from permeability.synthetic.physics import law, named_streams
from permeability.synthetic.sampling import DriftSpec, Mix, build_mix, draw_samples, remeasure
from permeability.synthetic.truth import PHYSICS_PERMEABILITY, QUIRKS, TRUE_PERMEABILITY

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

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
    mix: Mix,
    drift: DriftSpec | None,
    start_id: int,
) -> tuple[Samples, BoolArray, int]:
    """All ``rows`` samples are drawn (so tidy and messy share them); repeats and
    re-measurements then take the place of the last ones. Returns the samples, which of them
    are re-measurements, and how many rows to paste twice."""
    n_repeat = round(rows * spec.repeated_row)
    n_remeasure = round(rows * spec.remeasured)
    drawn = draw_samples(rows, streams, mix, drift, start_id)
    base = drawn.take(np.arange(rows - n_repeat - n_remeasure, dtype=np.int64))
    again = remeasure(streams["remeasure"], base, n_remeasure)
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
    mix = build_mix(drift)
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
