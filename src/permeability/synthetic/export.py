"""The lab's real export, synthesised: what ``permeability generate-data`` writes by default.

The seed lab's real export (docs/data.md, "The real layout") is not the seed's tidy record: each
row is one *replicate* of a test (``Muestra`` = 1, 2, sometimes 3–4), identified by a running
``CONSECUTIVO``; the date comes in three columns; a tenth of the rows are calibration and
reference films or unreported materials; foil laminates read at the detection limit (some
exactly 0); most structures are laminates written layer by layer, with a long tail of rare
ones. Acquisition, training and evaluation must cope with exactly that, so the generator
writes it, from the same materials and law as the seed layout
(:mod:`permeability.synthetic.physics`).

A *test* is one film under one set of conditions: its replicates share the date, reference,
structure, conditions, gauge and lot, and differ only by specimen and instrument noise. Every
ingredient has its own random stream of one ``SeedSequence``: the same seed gives the same
frame. Everything is vectorised over tests and rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date
from typing import Final, Literal

import numpy as np
import pandas as pd

from permeability.errors import InvalidInputError
from permeability.record.schema import (
    ANIO,
    CALIBRE_PROM_REAL,
    CALIBRES,
    CONSECUTIVO,
    DIA,
    ESTRUCTURA,
    GRADOS_C,
    INSTRUMENTISTA,
    MES,
    MUESTRA,
    PERMEABILIDAD,
    PORC_HUMEDAD,
    REAL_EXPORT_COLUMNS,
    REAL_EXPORT_EMPTY_COLUMNS,
    REFERENCIA,
)
from permeability.synthetic.generator import generate_lab_data
from permeability.synthetic.lab import (
    FILM,
    TEST,
    Tests,
    draw_tests,
    measure_replicates,
    spell_structures,
)
from permeability.synthetic.mess import MessSpec
from permeability.synthetic.physics import FloatArray, IntArray, law, named_streams
from permeability.synthetic.truth import PHYSICS_PERMEABILITY, TRUE_PERMEABILITY

Layout = Literal["real", "seed"]
#: ``real``: the seed lab's export (the default); ``seed``: the seed's record (Muestra as id).
LAYOUTS: Final = ("real", "seed")
#: Text a lab types in a caliper cell with no reading ("sin dato").
CALIPER_TEXTS: Final = ("s.d.", "s.d.", "s.d.", "S.D.", "sd")
#: The instrument reports four decimals: a reading under 0.00005 g/m²·day is written as 0.
REPORTED_DECIMALS: Final = 4


@dataclass(frozen=True)
class ExportSpec:
    """How the real layout's tests are made up; defaults measured on the real export.

    ``non_product_share``: tests on calibration or reference films or unreported materials;
    ``replicate_weights``: chance of 1, 2, 3 or 4 replicates per test; ``spelling_variant``:
    tests whose structure is typed another way (``PET / AL / PE``); ``caliper_text``: rows with
    text (``s.d.``) in one or two caliper cells. The last two are estimates; :meth:`tidy` drops
    them (non-products and detection-limit zeros stay: they are measurements, not mess).
    """

    non_product_share: float = 0.11
    replicate_weights: tuple[float, float, float, float] = (0.12, 0.85, 0.02, 0.01)
    spelling_variant: float = 0.04
    caliper_text: float = 0.02

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            for rate in value if isinstance(value, tuple) else (value,):
                if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
                    raise InvalidInputError(
                        f"ExportSpec.{item.name} must be in [0, 1], got {value}"
                    )
        if self.non_product_share >= 1.0:
            raise InvalidInputError("ExportSpec.non_product_share must be below 1")
        if not math.isclose(sum(self.replicate_weights), 1.0, abs_tol=1e-9):
            raise InvalidInputError(
                f"ExportSpec.replicate_weights must sum to 1, got {sum(self.replicate_weights)}"
            )

    @classmethod
    def tidy(cls) -> ExportSpec:
        """Canonical spellings and numeric calipers; the lab's mix of tests unchanged."""
        return cls(spelling_variant=0.0, caliper_text=0.0)


_STREAMS: Final = (
    "replicates",
    "labels",
    "films",
    "conditions",
    "thickness",
    "lot",
    "dates",
    "references",
    "analysts",
    "specimens",
    "readings",
    "instrument",
    "zeros",
    "spelling",
    "caliper_text",
)


def _date_parts(start_date: date, day: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Year, month and day of ``start_date + day`` (vectorised through numpy's calendar)."""
    stamps = np.datetime64(start_date, "D") + day.astype("timedelta64[D]")
    years = stamps.astype("datetime64[Y]")
    months = stamps.astype("datetime64[M]")
    year = years.astype(np.int64) + 1970
    month = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    dom = (stamps - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, dom


def _caliper_cells(
    rng: np.random.Generator, readings: FloatArray, rate: float
) -> tuple[list[pd.Series], pd.Series]:
    """The five readings and their mean; text in one or two cells of ``rate`` of the rows."""
    rows = np.flatnonzero(rng.random(len(readings)) < rate)
    blanks = np.where(rng.random(rows.size) < 0.7, 1, 2)
    order = np.argsort(rng.random((rows.size, len(CALIBRES))), axis=1)
    words = np.asarray(CALIPER_TEXTS, dtype=object)[rng.integers(0, len(CALIPER_TEXTS), rows.size)]
    numeric = readings.copy()
    for k in (1, 2):
        numeric[rows[blanks >= k], order[blanks >= k, k - 1]] = np.nan
    mean = np.round(np.nanmean(numeric, axis=1), 2)
    if rows.size == 0:
        return [pd.Series(readings[:, i], dtype=np.float64) for i in range(len(CALIBRES))], (
            pd.Series(mean, dtype=np.float64)
        )
    cells = readings.astype(object)
    for k in (1, 2):
        chosen = blanks >= k
        cells[rows[chosen], order[chosen, k - 1]] = words[chosen]
    columns = [pd.Series(cells[:, i], dtype=object) for i in range(len(CALIBRES))]
    return columns, pd.Series(mean, dtype=np.float64)


def generate_real_export(
    rows: int,
    seed: int,
    *,
    start_id: int = 1,
    start_date: date = date(2024, 1, 1),
    spec: ExportSpec | None = None,
    with_truth: bool = False,
) -> pd.DataFrame:
    """``rows`` replicate rows in the seed lab's export layout, deterministic for ``seed``.

    ``CONSECUTIVO`` runs from ``start_id`` in test-date order from ``start_date`` over about two
    years, so a later file can continue an earlier one. ``with_truth`` adds, for benchmarks,
    ``_true_permeability`` (the law at the film's true thickness, no lot or instrument noise),
    ``_physics_permeability`` (the law on the recorded caliper mean), ``_film`` (the canonical
    name of the film really measured, also behind a non-product label) and ``_test``.
    """
    _check(rows, seed, start_id)
    chosen = spec or ExportSpec()
    streams = named_streams(seed, _STREAMS)
    tests = draw_tests(rows, chosen, streams)
    per_row = tests.row_test
    replicate = np.arange(rows, dtype=np.int64) - tests.first_row[per_row] + 1
    measured, readings = measure_replicates(tests, streams)
    year, month, dom = _date_parts(start_date, tests.day[per_row])
    calipers, mean = _caliper_cells(streams["caliper_text"], readings, chosen.caliper_text)
    structure = spell_structures(streams["spelling"], tests, chosen.spelling_variant)
    frame = pd.DataFrame(
        {
            CONSECUTIVO: np.arange(start_id, start_id + rows, dtype=np.int64),
            ANIO: year,
            MES: month,
            DIA: dom,
            REFERENCIA: pd.Series(tests.reference[per_row], dtype="str"),
            ESTRUCTURA: pd.Series(structure[per_row], dtype="str"),
            **dict(zip(CALIBRES, calipers, strict=True)),
            CALIBRE_PROM_REAL: mean,
            MUESTRA: replicate,
            GRADOS_C: tests.temperature[per_row],
            PORC_HUMEDAD: tests.humidity[per_row],
            PERMEABILIDAD: np.round(measured, REPORTED_DECIMALS),
            INSTRUMENTISTA: pd.Series(tests.analyst[per_row], dtype="str"),
            **{name: pd.Series([None] * rows, dtype=object) for name in REAL_EXPORT_EMPTY_COLUMNS},
        }
    )
    if with_truth:
        _add_truth(frame, tests, mean.to_numpy(dtype=np.float64))
    return frame[
        [*REAL_EXPORT_COLUMNS, *(c for c in frame.columns if c not in REAL_EXPORT_COLUMNS)]
    ]


def _add_truth(frame: pd.DataFrame, tests: Tests, recorded_mean: FloatArray) -> None:
    per_row = tests.row_test
    codes = tests.film[per_row]
    t, rh = tests.temperature[per_row], tests.humidity[per_row]
    frame[TRUE_PERMEABILITY] = law(tests.table, codes, t, rh, tests.thickness[per_row])
    frame[PHYSICS_PERMEABILITY] = law(tests.table, codes, t, rh, recorded_mean)
    frame[FILM] = pd.Series(np.asarray(tests.film_names, dtype=object)[codes], dtype="str")
    frame[TEST] = per_row


def _check(rows: int, seed: int, start_id: int) -> None:
    if rows < 1:
        raise InvalidInputError(f"rows must be at least 1, got {rows}")
    if seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed}")
    if start_id < 0:
        raise InvalidInputError(f"start_id must be a non-negative integer, got {start_id}")


def generate_lab_export(
    rows: int,
    seed: int,
    *,
    layout: Layout = "real",
    start_id: int = 1,
    start_date: date = date(2024, 1, 1),
    messy: bool = True,
    with_truth: bool = False,
) -> pd.DataFrame:
    """A synthetic lab export in either layout; what ``permeability generate-data`` writes.

    ``real`` (the default) is :func:`generate_real_export` (``messy=False``: canonical spellings
    and numeric calipers); ``seed`` is :func:`~permeability.synthetic.generator.generate_lab_data`
    unchanged (``messy=False``: ``MessSpec.none()``).
    """
    if layout == "real":
        return generate_real_export(
            rows,
            seed,
            start_id=start_id,
            start_date=start_date,
            spec=ExportSpec() if messy else ExportSpec.tidy(),
            with_truth=with_truth,
        )
    if layout == "seed":
        return generate_lab_data(
            rows,
            seed,
            start_id=start_id,
            start_date=start_date,
            mess=MessSpec() if messy else MessSpec.none(),
            with_truth=with_truth,
        )
    raise InvalidInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
