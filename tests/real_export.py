"""Rebuild the seed lab's raw export format from its processed file, for tests (never stored).

The only real data of the lab (``../shared/data/seed_lab_processed.csv``, see its README) is
the seed authors' *processed* feature store: one-hot structures, min-max-scaled replicate
number and conditions, a PCA of the calipers, and the real, unscaled WVTR. This module maps it
back to the lab's raw export format (``CONSECUTIVO, Año, Mes, Día, Referencia, Estructura,
Calibre1..Calibre5, Calibre_Prom, Muestra, Grados_C, Porc_Humedad, Permeabilidad,
Instrumentista`` and three empty ``Unnamed: 17..19`` columns) with affine maps, which keep the
information the processed file holds, and invents only what it lost (dates, references,
analysts), deterministically. The result is built in memory at test time and written under a
test's temporary folder: the real data is never copied into the repository.

Every step is a small pure function; :func:`build_real_export` composes them, and
:func:`drop_consecutivo`, :func:`shuffle_rows`, :func:`single_date_column` and
:func:`respell` build the same export differently (the "held back" style of check).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sqlalchemy import Column, Date, Double, Integer, MetaData, String, Table, create_engine
from sqlalchemy.types import TypeEngine

from permeability.record.schema import CALIBRES, REAL_EXPORT_COLUMNS, REAL_EXPORT_EMPTY_COLUMNS

#: The processed real data, beside the repository (``../shared/data``), never inside it.
SEED_LAB_PROCESSED: Final = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed_lab_processed.csv"
)

CALIPER_COLUMNS: Final = CALIBRES
UNNAMED_COLUMNS: Final = REAL_EXPORT_EMPTY_COLUMNS
#: The raw export's columns, in order (the seed ETL's own list; record/schema.py).
EXPORT_COLUMNS: Final = REAL_EXPORT_COLUMNS

ONE_HOT_PREFIX: Final = "Estructura_"
#: The category ``get_dummies(drop_first=True)`` dropped: the 4 rows with no one-hot set.
#: pandas sorts the categories and drops the first, so the missing name sorts before
#: ``ANALISIS-DE-ESTRUCTURA``, the first column left; ``BOPP-AL-PE`` (the data README's guess)
#: cannot be it, because it still has its own column. Those 4 rows measure 0.000112 g/m²·day,
#: a foil barrier at the instrument's floor, on a thick film (comp1 near the top quartile):
#: aluminium foil laminated to PE, spelled the lab's way, ``AL-PE``, fits both facts.
DROPPED_STRUCTURE: Final = "AL-PE"
#: Not products (data README): calibration and reference films, unreported or under study.
NON_PRODUCT_NAMES: Final = frozenset(
    {
        "CALIBRACION",
        "MATERIAL-REF",
        "NIST-ROJA",
        "EN-ESTUDIO",
        "NO-REPORTADA",
        "NO-REPORTADO",
        "ANALISIS-DE-ESTRUCTURA",
        "MUESTRA-AZUL",
        "MUESTRA-1A-QUALY",
    }
)
#: Spellings of one structure seen in the raw export (data README), cycled test by test.
REAL_SPELLINGS: Final[Mapping[str, tuple[str, ...]]] = {
    "PET-AL-PE": ("PET-AL-PE", "PET / AL / PE"),
    "BOPP-BOPP-MET": ("BOPP-BOPP-MET", "BOPP-BOPPMET"),
    "BOPP-MATE-BOPP-MET": ("BOPP-MATE-BOPP-MET", "BOPP-MATE---BOPP-MET"),
    "NO-REPORTADA": ("NO-REPORTADA", "NO-REPORTADO"),
}
#: Other plausible spellings (separators, case, spaces), for an export built differently.
OTHER_SPELLINGS: Final[Mapping[str, tuple[str, ...]]] = {
    "PET-AL-PE": ("PET/AL/PE", "pet - al - pe", "PET AL PE"),
    "BOPP-BOPP-MET": ("BOPP/BOPP MET", "Bopp-Bopp-Met"),
    "PET-PET-MET-PE": ("PET/PET MET/PE", "PET-PET-MET-PE"),
    "PE-MDO-PE": ("PE-MDO / PE", "PE-MDO-PE"),
    "BOPP-MET": ("BOPP MET", "bopp-met"),
}

#: Affine maps back from [0, 1] (each column's min and max became 0 and 1; see the README).
#: Temperature: the scaled values are multiples of 1/55 (all but one KNN-imputed row), i.e.
#: 55 steps of the instrument's 0.1 °C resolution: a 5.5 °C span, 34.5-40.0 °C (median
#: 36.6 °C, around the tropical 37.8 °C set point of ASTM F1249; cells drift test to test).
TEMPERATURE_MIN_C: Final = 34.5
TEMPERATURE_SPAN_C: Final = 5.5
#: Humidity: multiples of 1/270 (again but the imputed rows): 270 steps of 0.1 % RH, a 27 %
#: span, 68.0-95.0 % RH (median 79.5 %, the 90 % set point near the top).
HUMIDITY_MIN_PCT: Final = 68.0
HUMIDITY_SPAN_PCT: Final = 27.0
#: Calipers: comp1 grows with thickness (mono PET lowest, foil/nylon laminates highest), so
#: the file's lowest comp1 is a 12 µm PET and its highest a 120 µm laminate.
THICKNESS_MIN_UM: Final = 12.0
THICKNESS_MAX_UM: Final = 120.0
#: Replicates: the five scaled values are 0, 1/6, 1/3, 2/3 and 1, and four of them sit on
#: thirds, so the raw range max - min was 3: replicate = 1 + 3 * scaled, i.e. 1, 2, 3, 4. The
#: one row at 1/6 (1.5, a KNN-imputed mean of a 1 and a 2) is rounded down to 1. Ranking the
#: five values as 1..5 instead would make the 98 % of rows that come in pairs replicates
#: "1 and 3", never consecutive.
REPLICATE_SPAN: Final = 3
#: Who runs tests: one analyst on duty per ISO week.
ANALYSTS: Final = ("J. Cardona", "L. Restrepo", "A. Gómez", "M. Patiño")
#: Working days between one test's date and the next (0: same day), cycled.
DAY_STEPS: Final = (1, 0, 1, 2, 1, 0, 1, 3)
FIRST_TEST_DAY: Final = date(2019, 2, 4)  # a Monday
#: A caliper reading is unreadable ("s.d.") in every 23rd row, a second one every 115th.
MISSING_READING_EVERY: Final = 23
SECOND_MISSING_EVERY: Final = 115


def require_seed_lab_data(path: Path = SEED_LAB_PROCESSED) -> Path:
    """The processed real data; skip without it, but fail under CI.

    Like ``tests/conftest.py``'s ``require_service``: with ``PERMEABILITY_REQUIRE_SERVICES=1``
    (CI) the file must exist, so its absence fails the test instead of skipping it.
    """
    if path.is_file():
        return path
    message = f"the seed lab's real data is missing: {path}"
    if os.environ.get("PERMEABILITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and PERMEABILITY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def load_processed(path: Path | None = None) -> pd.DataFrame:
    """The processed file as the seed authors wrote it (row order kept)."""
    return pd.read_csv(require_seed_lab_data(path or SEED_LAB_PROCESSED))


# --------------------------------------------------------------------------- column maps


def structure_names(processed: pd.DataFrame) -> pd.Series:
    """The structure of each row from its one-hot columns (none set: :data:`DROPPED_STRUCTURE`)."""
    one_hot = [c for c in processed.columns if c.startswith(ONE_HOT_PREFIX)]
    flags = processed[one_hot].to_numpy(dtype=np.float64) > 0.5
    if (flags.sum(axis=1) > 1).any():
        raise ValueError("a row has more than one structure set")
    names = np.array([c.removeprefix(ONE_HOT_PREFIX) for c in one_hot], dtype=object)
    picked = np.where(flags.any(axis=1), names[flags.argmax(axis=1)], DROPPED_STRUCTURE)
    return pd.Series(picked, index=processed.index, dtype=object, name="Estructura")


def replicate_numbers(scaled: pd.Series) -> NDArray[np.int64]:
    """``1 + 3 * scaled``, rounded down (see :data:`REPLICATE_SPAN`)."""
    values = 1.0 + REPLICATE_SPAN * scaled.to_numpy(dtype=np.float64)
    return np.floor(values + 1e-9).astype(np.int64)


def affine(scaled: pd.Series, low: float, span: float, decimals: int) -> NDArray[np.float64]:
    """``low + span * scaled``, rounded to the lab's resolution."""
    return np.round(low + span * scaled.to_numpy(dtype=np.float64), decimals)


def temperatures(scaled: pd.Series) -> NDArray[np.float64]:
    """°C, to 0.1 (see :data:`TEMPERATURE_MIN_C`)."""
    return affine(scaled, TEMPERATURE_MIN_C, TEMPERATURE_SPAN_C, 1)


def humidities(scaled: pd.Series) -> NDArray[np.float64]:
    """% RH, to 0.1 (see :data:`HUMIDITY_MIN_PCT`)."""
    return affine(scaled, HUMIDITY_MIN_PCT, HUMIDITY_SPAN_PCT, 1)


def thicknesses(comp1: pd.Series) -> NDArray[np.float64]:
    """µm, unrounded: the file's comp1 range onto 12-120 µm (see :data:`THICKNESS_MIN_UM`)."""
    values = comp1.to_numpy(dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    return THICKNESS_MIN_UM + (values - low) / (high - low) * (THICKNESS_MAX_UM - THICKNESS_MIN_UM)


def caliper_readings(thickness: NDArray[np.float64], comp2: pd.Series) -> pd.DataFrame:
    """Five readings per row to 0.1 µm, spread around the thickness, their mean unchanged.

    The spread (the readings' differences are what comp2 carries) is 1 % plus |comp2| / 2
    (comp2 reaches 0.038: at most about 3 %); the pattern −2, −1, 0, 1, 2 (in half-spreads, summing to 0) is
    rotated by the row's position so the thickest reading moves from column to column.
    """
    spread = 0.01 + 0.5 * np.abs(comp2.to_numpy(dtype=np.float64))
    pattern = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]) / 2.0
    offsets = np.stack([np.roll(pattern, i % 5) for i in range(len(thickness))])
    readings = np.round(thickness[:, None] * (1.0 + spread[:, None] * offsets), 1)
    return pd.DataFrame(readings, columns=list(CALIPER_COLUMNS))


def blank_some_readings(readings: pd.DataFrame, tokens: Sequence[str] = ("s.d.",)) -> pd.DataFrame:
    """Readings as cells, a few replaced by a "no value" token (never more than 2 in a row).

    Row ``i`` (0-based) loses reading ``(i // 23) % 5`` when ``(i + 1) % 23 == 0`` and also
    the next one when ``(i + 1) % 115 == 0``; tokens are cycled over the blanked cells.
    """
    cells = readings.astype(object).copy()
    used = 0
    for i in range(len(cells)):
        if (i + 1) % MISSING_READING_EVERY:
            continue
        first = (i // MISSING_READING_EVERY) % 5
        columns = [first] + ([(first + 1) % 5] if (i + 1) % SECOND_MISSING_EVERY == 0 else [])
        for column in columns:
            cells.iat[i, column] = tokens[used % len(tokens)]
            used += 1
    return cells


def caliper_means(cells: pd.DataFrame) -> NDArray[np.float64]:
    """``Calibre_Prom``: the mean of the readings present, to 0.1 µm, as the lab computes it."""
    numbers = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return np.asarray(np.round(np.nanmean(numbers, axis=1), 1), dtype=np.float64)


def group_tests(
    structures: pd.Series, temperature: pd.Series, humidity: pd.Series, replicate: NDArray[np.int64]
) -> NDArray[np.int64]:
    """The test (0, 1, ...) of each row, in file order.

    A row continues the test of the row before it when both share structure and (scaled)
    conditions and its replicate number is the previous one plus 1; otherwise it starts a test.
    """
    names = structures.tolist()
    temps = temperature.to_numpy(dtype=np.float64)
    hums = humidity.to_numpy(dtype=np.float64)
    numbers = np.zeros(len(names), dtype=np.int64)
    current = 0
    for i in range(1, len(names)):
        same = (
            names[i] == names[i - 1]
            and temps[i] == temps[i - 1]
            and hums[i] == hums[i - 1]
            and replicate[i] == replicate[i - 1] + 1
        )
        current += 0 if same else 1
        numbers[i] = current
    return numbers


def first_of_each_test(tests: NDArray[np.int64]) -> NDArray[np.int64]:
    """Position of each test's first row (tests are numbered 0.. in file order)."""
    _, first = np.unique(tests, return_index=True)
    return np.asarray(first, dtype=np.int64)


def references_per_test(structures: Sequence[str], thickness: Sequence[float]) -> list[str]:
    """A product reference per test: one per (structure, thickness to 5 µm), in order of first use."""
    codes: dict[tuple[str, int], str] = {}
    references = []
    for name, microns in zip(structures, thickness, strict=True):
        product = (name, round(microns / 5.0))
        codes.setdefault(product, f"REF-{len(codes) + 1:04d}")
        references.append(codes[product])
    return references


def _next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def dates_per_test(references: Sequence[str], start: date = FIRST_TEST_DAY) -> list[date]:
    """A working day per test, advancing by :data:`DAY_STEPS`; a day never holds one reference twice."""
    dates: list[date] = []
    day = start
    on_day: set[str] = set()
    for k, reference in enumerate(references):
        step = DAY_STEPS[k % len(DAY_STEPS)] if k else 0
        if step == 0 and reference in on_day:
            step = 1
        for _ in range(step):
            day = _next_working_day(day)
        if step:
            on_day = set()
        on_day.add(reference)
        dates.append(day)
    return dates


def analysts_per_test(dates: Sequence[date]) -> list[str]:
    """The analyst on duty in each test's ISO week."""
    return [ANALYSTS[d.isocalendar().week % len(ANALYSTS)] for d in dates]


def spellings_per_test(
    structures: Sequence[str], spellings: Mapping[str, Sequence[str]] = REAL_SPELLINGS
) -> list[str]:
    """Each test's structure as typed: the k-th test of a structure takes spelling k (cycled)."""
    seen: dict[str, int] = {}
    typed = []
    for name in structures:
        k = seen.get(name, 0)
        seen[name] = k + 1
        variants = spellings.get(name) or (name,)
        typed.append(variants[k % len(variants)])
    return typed


# --------------------------------------------------------------------------- the export


@dataclass(frozen=True)
class RealExport:
    """The raw export and, row by row, what the builder knows about it (not in the export)."""

    frame: pd.DataFrame
    #: Canonical one-hot name per row (before respelling), aligned with ``frame``.
    structure: pd.Series
    #: Test number per row, aligned with ``frame``.
    test: pd.Series

    @property
    def is_product(self) -> pd.Series:
        return ~self.structure.isin(NON_PRODUCT_NAMES)

    @property
    def product_rows(self) -> int:
        return int(self.is_product.sum())


def build_real_export(
    processed: pd.DataFrame,
    *,
    spellings: Mapping[str, Sequence[str]] = REAL_SPELLINGS,
    missing_tokens: Sequence[str] = ("s.d.",),
    start: date = FIRST_TEST_DAY,
) -> RealExport:
    """The raw real-format export, one row per processed row, in the processed file's order."""
    structure = structure_names(processed)
    replicate = replicate_numbers(processed["Muestra"])
    tests = group_tests(structure, processed["Grados_C"], processed["Porc_Humedad"], replicate)
    thickness = thicknesses(processed["comp1_calibre"])
    cells = blank_some_readings(
        caliper_readings(thickness, processed["comp2_calibre"]), missing_tokens
    )
    firsts = first_of_each_test(tests)
    test_structures = [str(structure.iat[i]) for i in firsts]
    references = references_per_test(test_structures, [float(thickness[i]) for i in firsts])
    dates = dates_per_test(references, start)
    analysts = analysts_per_test(dates)
    typed = spellings_per_test(test_structures, spellings)
    frame = pd.DataFrame(
        {
            "CONSECUTIVO": np.arange(1, len(processed) + 1, dtype=np.int64),
            "Año": [dates[t].year for t in tests],
            "Mes": [dates[t].month for t in tests],
            "Día": [dates[t].day for t in tests],
            "Referencia": [references[t] for t in tests],
            "Estructura": [typed[t] for t in tests],
            **{c: cells[c].to_numpy() for c in CALIPER_COLUMNS},
            "Calibre_Prom": caliper_means(cells),
            "Muestra": replicate,
            "Grados_C": temperatures(processed["Grados_C"]),
            "Porc_Humedad": humidities(processed["Porc_Humedad"]),
            "Permeabilidad": processed["Permeabilidad"].to_numpy(dtype=np.float64),
            "Instrumentista": [analysts[t] for t in tests],
            **{c: [None] * len(processed) for c in UNNAMED_COLUMNS},
        }
    )
    return RealExport(
        frame[list(EXPORT_COLUMNS)],
        structure.reset_index(drop=True),
        pd.Series(tests, name="test"),
    )


def drop_consecutivo(export: RealExport) -> RealExport:
    """The export without its record numbers."""
    return RealExport(export.frame.drop(columns="CONSECUTIVO"), export.structure, export.test)


def shuffle_rows(export: RealExport, seed: int) -> RealExport:
    """The same rows in a seeded random order (row by row knowledge kept aligned)."""
    order = np.random.default_rng(seed).permutation(len(export.frame))

    def take(values: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
        return values.iloc[order].reset_index(drop=True)

    return RealExport(
        pd.DataFrame(take(export.frame)),
        pd.Series(take(export.structure)),
        pd.Series(take(export.test)),
    )


def single_date_column(export: RealExport, fmt: str | None = "%Y-%m-%d") -> RealExport:
    """``Año``/``Mes``/``Día`` replaced by one ``Fecha`` column where ``Año`` was.

    ``fmt`` None keeps :class:`datetime.date` values (a SQL ``DATE`` column).
    """
    frame = export.frame
    days = [
        date(int(y), int(m), int(d))
        for y, m, d in zip(frame["Año"], frame["Mes"], frame["Día"], strict=True)
    ]
    values: list[object] = list(days) if fmt is None else [d.strftime(fmt) for d in days]
    position = list(frame.columns).index("Año")
    rest = frame.drop(columns=["Año", "Mes", "Día"])
    rest.insert(position, "Fecha", values)
    return RealExport(rest, export.structure, export.test)


def respell(export: RealExport, spellings: Mapping[str, Sequence[str]]) -> RealExport:
    """Structures in ``spellings`` retyped (the k-th test of one takes spelling k); others kept."""
    tests = export.test.to_numpy().tolist()
    structure_of = dict(zip(tests, export.structure.astype(str), strict=True))
    numbers = sorted(structure_of)  # tests in the original file order
    retyped = dict(
        zip(numbers, spellings_per_test([structure_of[t] for t in numbers], spellings), strict=True)
    )
    frame = export.frame.copy()
    frame["Estructura"] = [
        retyped[t] if structure_of[t] in spellings else typed
        for t, typed in zip(tests, frame["Estructura"], strict=True)
    ]
    return RealExport(frame, export.structure, export.test)


def with_permeability(export: RealExport, consecutivo: int, value: float) -> RealExport:
    """A re-export where one record's ``Permeabilidad`` was corrected."""
    frame = export.frame.copy()
    hit = frame["CONSECUTIVO"] == consecutivo
    if int(hit.sum()) != 1:
        raise ValueError(f"CONSECUTIVO {consecutivo} is not one row of the export")
    frame.loc[hit, "Permeabilidad"] = value
    return RealExport(frame, export.structure, export.test)


# --------------------------------------------------------------------------- writers


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """UTF-8 CSV, empty cells for missing values."""
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def write_xlsx(frame: pd.DataFrame, path: Path) -> Path:
    """One-sheet .xlsx (openpyxl), as the lab's Excel export."""
    frame.to_excel(path, index=False, sheet_name="Hoja1", engine="openpyxl")
    return path


def _sql_type(values: pd.Series) -> TypeEngine[Any]:
    present = values.dropna()
    if present.empty:
        return String(20)
    if pd.api.types.is_integer_dtype(values):
        return Integer()
    if pd.api.types.is_float_dtype(values):
        return Double()  # MariaDB's FLOAT is single precision: it would alter the real values
    if all(isinstance(v, date) for v in present):
        return Date()
    longest = max(len(str(v)) for v in present)
    return String(max(20, 2 * longest))


def _sql_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    cleaned = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, object]] = []
    for record in cleaned.to_dict(orient="records"):
        rows.append(
            {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
        )
    return rows


def write_sql_table(frame: pd.DataFrame, url: str, name: str) -> Table:
    """(Re)create table ``name`` holding ``frame``: numbers as numbers, text cells as text."""
    table = Table(
        name,
        MetaData(),
        *[Column(str(c), _sql_type(frame[c])) for c in frame.columns],
    )
    engine = create_engine(url)
    try:
        table.drop(engine, checkfirst=True)
        table.create(engine)
        with engine.begin() as connection:
            connection.execute(table.insert(), _sql_rows(frame))
    finally:
        engine.dispose()
    return table


def drop_sql_table(url: str, name: str) -> None:
    engine = create_engine(url)
    try:
        Table(name, MetaData()).drop(engine, checkfirst=True)
    finally:
        engine.dispose()


@contextmanager
def sql_table_name(url: str, prefix: str = "lab_export") -> Iterator[str]:
    """A fresh table name, dropped (if created) on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        drop_sql_table(url, name)
