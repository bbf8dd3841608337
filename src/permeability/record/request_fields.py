"""The record fields a guide-value request may carry, and the structures no guide value is for.

Why (issue 11): in the lab's real export ``Muestra`` is the *replicate number* of a test, not a
sample id, so a served guide value can only be matched with the lab's later result through the
record's identity: ``CONSECUTIVO`` (the running record number) when the lab has it, else the
test date, ``Referencia``, structure, ``Muestra`` and conditions. Requests may therefore send
``CONSECUTIVO``, ``Referencia`` and ``Fecha`` (files also ``Año``/``Mes``/``Día``); they do not
change the guide value, they are echoed and logged so evaluation can join on them. One set of
rules here serves the single path (pydantic validators) and batch scoring (whole columns), so
both accept and refuse the same values with the same words.

Also here: whether a canonical structure is a non-product for a version (calibration and
reference films, unreported materials; ``PermeabilityModel.non_product``), cached per name
because the single path asks it on every request, and the below-detection-limit flag.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.dates import NOT_A_DATE, DatePart, check_date_parts
from permeability.record.identity import field_text_problem, is_non_product, whole_number_text
from permeability.record.parsing import parse_dates
from permeability.record.problems import Problems, shown
from permeability.record.schema import (
    ANIO,
    CONSECUTIVO,
    DATE_PARTS,
    DIA,
    ESTRUCTURA,
    FECHA,
    MES,
    REFERENCIA,
)

if TYPE_CHECKING:  # frames only: imported by the functions that use them
    import pandas as pd

#: The optional record fields of a request, in the order answers echo them.
RECORD_INPUT_FIELDS: Final = (CONSECUTIVO, REFERENCIA, FECHA)
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# -- one value (the single path) --------------------------------------------------------------


def record_number_text(value: Any) -> str:
    """``CONSECUTIVO`` as text: text trimmed, a whole number written without decimals.

    Raises ValueError with the problem in words (the caller names the field).
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("must not be blank")
        _check_field_text(text)
        return whole_number_text(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"must be text or a whole number, got {type(value).__name__} {repr(value)[:40]}"
        )
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"must be text or a whole number, got {value!r}")
    number = int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return str(number)


def reference_text(value: Any) -> str:
    """``Referencia`` as trimmed text (a product reference is text; numbers are refused)."""
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {type(value).__name__} {repr(value)[:40]}")
    text = value.strip()
    if not text:
        raise ValueError("must not be blank")
    _check_field_text(text)
    return text


def _check_field_text(text: str) -> None:
    """Acquisition's rule for the same field (record/identity.py): one set of rules."""
    problem = field_text_problem(text)
    if problem is not None:
        raise ValueError(problem)


def iso_test_date(value: Any) -> datetime.date:
    """``Fecha`` of a JSON request: a calendar date written YYYY-MM-DD.

    No range is imposed: acquisition accepts any date the lab wrote, and a guide value's date
    must be able to meet the stored record's (generated exports are dated in the future).
    """
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        raise ValueError(f"must be a date written YYYY-MM-DD, got {repr(value)[:40]}")
    try:
        day = datetime.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"is not a calendar date: {value.strip()!r}") from None
    return day


# -- whole columns (batch scoring) ------------------------------------------------------------


@dataclass(frozen=True)
class RecordFields:
    """The record fields of a batch, one entry per row (``None`` where absent or bad)."""

    consecutivo: NDArray[np.object_]
    referencia: NDArray[np.object_]
    fecha: NDArray[np.datetime64]  # datetime64[D], NaT where absent or bad

    @classmethod
    def empty(cls, n: int) -> RecordFields:
        return cls(
            np.full(n, None, dtype=object),
            np.full(n, None, dtype=object),
            np.full(n, "NaT", dtype="datetime64[D]"),
        )


def check_record_fields(frame: pd.DataFrame, problems: Problems) -> RecordFields:
    """Parse the optional record columns the frame has; a bad value is a row problem naming
    the field (a missing one is not: the fields are optional). Checked in acquisition's order:
    the date, then the record number and reference."""
    fields = RecordFields.empty(len(frame))
    fecha = _check_fecha(frame, problems) if FECHA in frame.columns else None
    parts = (
        _check_date_parts(frame, problems) if any(p in frame.columns for p in DATE_PARTS) else None
    )
    if fecha is not None and parts is not None:
        stated, built = fecha, parts
        disagree = ~np.isnat(stated) & ~np.isnat(built) & (stated != built)
        problems.each(
            disagree,
            lambda i: f"{FECHA} {stated[i]} disagrees with {ANIO}/{MES}/{DIA} {built[i]}",
        )
        fecha = np.where(np.isnat(stated), built, stated)
        fecha[disagree] = np.datetime64("NaT")
    chosen = fecha if fecha is not None else parts
    if chosen is not None:
        fields.fecha[:] = chosen
    if CONSECUTIVO in frame.columns:
        _parse_texts(
            frame[CONSECUTIVO], CONSECUTIVO, _file_record_number, fields.consecutivo, problems
        )
    if REFERENCIA in frame.columns:
        _parse_texts(frame[REFERENCIA], REFERENCIA, _file_reference, fields.referencia, problems)
    return fields


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _file_record_number(value: Any) -> str:
    """As :func:`record_number_text` (which reads '17.0', a spreadsheet's number, as 17)."""
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    return record_number_text(value)


def _file_reference(value: Any) -> str:
    return reference_text(value)


def _parse_texts(
    column: pd.Series,
    name: str,
    parse: Any,
    out: NDArray[np.object_],
    problems: Problems,
) -> None:
    """Each distinct value parsed once (a file repeats its references)."""
    raw = column.to_numpy(dtype=object)
    bad = np.zeros(len(raw), dtype=bool)
    reasons: dict[int, str] = {}
    cache: dict[Any, tuple[str | None, str | None]] = {}
    for i, value in enumerate(raw):
        if _missing(value):
            continue
        try:
            key: Any = (type(value), value)
            hash(key)
        except TypeError:
            key = None
        verdict = cache.get(key) if key is not None else None
        if verdict is None:
            try:
                verdict = (parse(value), None)
            except ValueError as exc:
                verdict = (None, str(exc))
            if key is not None:
                cache[key] = verdict
        text, problem = verdict
        if problem is None:
            out[i] = text
        else:
            bad[i] = True
            reasons[i] = problem
    problems.each(bad, lambda i: f"{name} {shown(raw[i])} {reasons[i]}")


def _check_fecha(frame: pd.DataFrame, problems: Problems) -> NDArray[np.datetime64]:
    """``Fecha`` as acquisition reads it (ISO or DD/MM/YYYY text; a spreadsheet's date)."""
    import pandas as pd

    raw = frame[FECHA].to_numpy(dtype=object)
    n = len(raw)
    days = np.full(n, "NaT", dtype="datetime64[D]")
    is_date = np.array([isinstance(v, datetime.date) for v in raw], dtype=bool)
    for i in np.flatnonzero(is_date):
        days[i] = np.datetime64(pd.Timestamp(raw[i]).date(), "D")
    is_text = np.array([isinstance(v, str) for v in raw], dtype=bool)
    other = ~is_date & ~is_text & ~np.array([_missing(v) for v in raw], dtype=bool)
    problems.value(other, FECHA, raw, NOT_A_DATE)
    if is_text.any():
        texts = np.flatnonzero(is_text)
        parsed = parse_dates(pd.Series(raw[texts], dtype="str"))
        values = np.asarray(parsed.values, dtype="datetime64[D]")
        invalid = np.zeros(n, dtype=bool)
        invalid[texts] = parsed.invalid
        ok = texts[~parsed.invalid & ~parsed.missing]
        days[ok] = values[~parsed.invalid & ~parsed.missing]
        problems.value(invalid, FECHA, raw, NOT_A_DATE)
    return days


def _check_date_parts(frame: pd.DataFrame, problems: Problems) -> NDArray[np.datetime64]:
    """``Año``/``Mes``/``Día`` (the real export's three date columns) as one date, by the rules
    of :func:`permeability.record.dates.check_date_parts`."""
    n = len(frame)
    parts: dict[str, DatePart] = {}
    for name in DATE_PARTS:
        raw = frame[name].to_numpy(dtype=object) if name in frame.columns else np.full(n, None)
        given = np.array([not _missing(v) for v in raw], dtype=bool)
        values = np.full(n, np.nan)
        for i in np.flatnonzero(given):
            whole = _whole_number(raw[i])
            if whole is not None:
                values[i] = whole
        parts[name] = DatePart(values, given, raw)
    return check_date_parts(parts, problems).astype("datetime64[D]")


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if math.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0*)?\s*", value):
        return int(value.strip().split(".")[0])
    return None


def record_field_columns(fields: RecordFields, rows: NDArray[np.intp]) -> dict[str, Any]:
    """The prediction log's record columns for the scored ``rows``."""
    return {
        CONSECUTIVO: fields.consecutivo[rows],
        REFERENCIA: fields.referencia[rows],
        FECHA: fields.fecha[rows],
    }


# -- non-products and the detection limit ------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def non_product(name: str, patterns: tuple[str, ...]) -> bool:
    """:func:`permeability.record.identity.is_non_product`, remembered per (name, patterns): the
    single path asks on every request, and the answer never changes for a version."""
    return bool(patterns) and is_non_product(name, patterns)


def non_product_message(raw: Any, canonical: str) -> str:
    """Why no guide value is given for a structure that is not a product."""
    shown = raw if isinstance(raw, str) else repr(raw)
    spelled = repr(shown) if shown.strip() == canonical else f"{shown!r} ({canonical})"
    return (
        f"{ESTRUCTURA} {spelled} is a calibration/reference film or an unreported material, "
        "not a product: the model gives no guide value for it"
    )


def product_structures(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """``names`` without the non-products (what the page may offer)."""
    chosen = tuple(patterns)
    return [n for n in names if not non_product(str(n), chosen)]


def below_detection_limit(prediction: float, limit: float | None) -> bool:
    """Whether a guide value lies under the instrument's detection limit (a measurement of
    such a film would read 0: the answer says "< limit", not a number)."""
    return limit is not None and prediction < limit
