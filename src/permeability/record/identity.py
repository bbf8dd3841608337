"""What a lab record is: its identity, the test it is a replicate of, and how it may be used.

* **Identity** (``record_id``): the values of ``acquisition.record_key`` joined. By default the
  export's running record number ``CONSECUTIVO`` when it has one; without it, the columns that
  tell one measurement from another (:data:`DEFAULT_IDENTITY`: test date, ``Referencia``,
  ``Estructura``, ``Muestra`` (the replicate number) and the conditions). Re-reading an export
  gives the same ids, so a second acquisition changes nothing and a corrected value updates its
  record.
* **Test** (``test_id``): the replicates of one film under one set of conditions share a test
  (:data:`DEFAULT_TEST_GROUP`); later stages split, cross-validate and calibrate by it.
* **Product or not** (``is_product``): calibration and reference films and unreported or
  under-study materials (:data:`DEFAULT_NON_PRODUCT`) are real measurements, kept and flagged,
  but no product model learns or offers them.
* **Detection limit** (``below_detection_limit``): a WVTR of 0 or under the limit is a
  left-censored value, stored *at* the limit (the most the film can transmit): that is the one
  way training, metrics and intervals treat it (docs/acquisition.md).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from permeability.record.schema import (
    CONSECUTIVO,
    ESTRUCTURA,
    FECHA,
    GRADOS_C,
    INSTRUMENTISTA,
    IS_PRODUCT,
    MUESTRA,
    PORC_HUMEDAD,
    REFERENCIA,
)
from permeability.record.structures import canonical_spelling

if TYPE_CHECKING:  # frames only: imported by the functions that use them
    import pandas as pd

#: The identity of a record in an export without a record number.
DEFAULT_IDENTITY: Final = (FECHA, REFERENCIA, ESTRUCTURA, MUESTRA, GRADOS_C, PORC_HUMEDAD)
#: Replicates of one test share these values.
DEFAULT_TEST_GROUP: Final = (FECHA, REFERENCIA, ESTRUCTURA, GRADOS_C, PORC_HUMEDAD)
#: Columns a record key or a test group may use.
IDENTITY_COLUMNS: Final = (CONSECUTIVO, *DEFAULT_IDENTITY, INSTRUMENTISTA)
#: The seed lab's non-product names (calibration and reference films, materials under study
#: or unreported), as shell patterns on canonical names.
DEFAULT_NON_PRODUCT: Final = (
    "CALIBRACION*",
    "MATERIAL-REF*",
    "NIST-*",
    "EN-ESTUDIO*",
    "NO-REPORTAD*",
    "ANALISIS-DE-ESTRUCTURA*",
    "MUESTRA-*",
)
#: Reference films among the non-products: what a lab measures to check its instrument.
REFERENCE_FILMS: Final = ("CALIBRACION*", "MATERIAL-REF*", "NIST-*")
#: g/m²·day. The lower end of the stated range of coulometric WVTR instruments (ASTM F1249 /
#: ISO 15106-3 class); the seed lab reports values down to 0.0001, so it runs such a sensor.
#: An infrared cell (ASTM F1249 / ISO 15106-2) stops near 0.005: set it in the YAML.
DEFAULT_DETECTION_LIMIT: Final = 0.0005
#: Separates the values of a multi-column record key.
KEY_SEPARATOR: Final = "|"
#: Longest record number, reference or analyst name kept; longer is a paste error. One limit
#: for every entry (acquisition, the API, batch files), so what loads can also be scored.
MAX_FIELD_LENGTH: Final = 120
#: Years a test date may have (a typo such as 21 or 20221 is an error, not a date).
TEST_YEARS: Final = (1900, 2200)
#: Control characters: C0 (U+0000-U+001F, tab, line feed and carriage return included), DEL
#: (U+007F) and C1 (U+0080-U+009F). None belongs inside a lab record's text: a NUL or a C1 code
#: is a paste or encoding accident that an .xlsx cannot even hold, and a tab or a line break
#: inside a name makes it a different name to everything that matches on it.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WHOLE: Final = re.compile(r"^([+-]?\d+)\.0*$")


def dates_from_parts(
    year: NDArray[np.float64], month: NDArray[np.float64], day: NDArray[np.float64]
) -> NDArray[np.datetime64]:
    """The real export's ``Año``/``Mes``/``Día`` as dates (datetime64[ns]); NaT where a part is
    missing or not a whole number, the year is outside :data:`TEST_YEARS`, or the three make
    no calendar date (2021/2/30). The one rule acquisition and batch scoring apply."""
    import pandas as pd

    with np.errstate(invalid="ignore"):
        whole = np.logical_and.reduce([np.mod(v, 1.0) == 0 for v in (year, month, day)])
        usable = whole & (year >= TEST_YEARS[0]) & (year <= TEST_YEARS[1])
    built = pd.to_datetime(
        pd.DataFrame(
            {
                "year": np.where(usable, year, 2000),
                "month": np.where(usable, month, 1),
                "day": np.where(usable, day, 1),
            }
        ),
        errors="coerce",
    ).to_numpy(dtype="datetime64[ns]")
    return np.where(usable, built, np.datetime64("NaT", "ns"))


def control_character_problem(text: str) -> str | None:
    """The text rule of every record text field, structure names included (None: nothing
    wrong), in words that follow the field's name and value: "contains a control character
    (U+0000) at position 3" (the first one; positions count from 1).

    ``text`` is the value trimmed of surrounding blanks (spaces, tabs, line breaks), as every
    entry trims it first: only what would be stored is judged.
    """
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"contains a control character (U+{ord(found.group()):04X}) at position {found.start() + 1}"
    )


def field_text_problem(text: str) -> str | None:
    """What is wrong with a record field's trimmed text (None: nothing), in words that follow
    the field's name and value: :func:`control_character_problem`, then the length."""
    problem = control_character_problem(text)
    if problem is not None:
        return problem
    if len(text) > MAX_FIELD_LENGTH:
        return f"is longer than {MAX_FIELD_LENGTH} characters"
    return None


def whole_number_text(text: str) -> str:
    """A record number as text: '17.0' (a spreadsheet's number) is '17'; other text unchanged."""
    return _WHOLE.sub(r"\1", text.strip())


@dataclass(frozen=True)
class RecordRules:
    """The record rules of one acquisition (``acquisition.*`` in the config).

    ``record_key`` None means: resolve it from the source's columns
    (:func:`resolve_record_key`). ``missing_tokens`` are added to the built-in ones.
    """

    record_key: tuple[str, ...] | None = None
    test_group: tuple[str, ...] = DEFAULT_TEST_GROUP
    non_product: tuple[str, ...] = DEFAULT_NON_PRODUCT
    detection_limit: float = DEFAULT_DETECTION_LIMIT
    missing_tokens: tuple[str, ...] = ()


def resolve_record_key(configured: Sequence[str] | None, present: Sequence[str]) -> tuple[str, ...]:
    """The record key of a source: the configured one, else CONSECUTIVO when present."""
    if configured:
        return tuple(configured)
    return (CONSECUTIVO,) if CONSECUTIVO in present else DEFAULT_IDENTITY


_INTEGRAL: Final = re.compile(r"^[+-]?\d+\.0*$")


def key_text(values: pd.Series) -> pd.Series:
    """One key column as stable text: trimmed, '17.0' -> '17', dates ISO, missing ''."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values)
        return pd.Series(
            np.where(stamps.isna(), "", stamps.dt.strftime("%Y-%m-%d")), index=values.index
        ).astype("str")
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        texts = [
            "" if np.isnan(v) else (str(int(v)) if v.is_integer() else repr(float(v)))
            for v in numbers
        ]
        return pd.Series(texts, index=values.index, dtype="str")
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64").astype("str")
    text = values.astype("str").fillna("").str.strip()
    integral = text.str.match(_INTEGRAL)
    text = text.where(~integral, text.str.replace(r"\.0*$", "", regex=True))
    return text.fillna("").astype("str")


def join_key(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The values of ``columns`` as one text per row (a single column: its text alone)."""
    parts = [key_text(frame[c]) if c in frame.columns else _blank(frame) for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + KEY_SEPARATOR + part
    return joined.reset_index(drop=True).astype("str")


def _blank(frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    return pd.Series([""] * len(frame), index=frame.index, dtype="str")


def assign_test_ids(frame: pd.DataFrame, group: Sequence[str]) -> pd.Series:
    """``T-`` and 12 hex digits of the test's joined values: short, stable, opaque."""
    import pandas as pd

    joined = join_key(frame, group)
    codes, uniques = pd.factorize(joined)
    names = np.array(
        [f"T-{hashlib.sha256(str(u).encode()).hexdigest()[:12]}" for u in uniques], dtype=object
    )
    return pd.Series(names[codes] if len(codes) else [], dtype="str")


def non_product_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Patterns in the canonical spelling structures are matched in."""
    return tuple(canonical_spelling(p).replace(" ", "-") for p in patterns if p.strip())


def is_non_product(name: str, patterns: Sequence[str]) -> bool:
    """Whether a canonical structure name is a calibration, reference or unreported material."""
    return any(fnmatch.fnmatchcase(name, p) for p in non_product_patterns(patterns))


def non_product_mask(names: Sequence[object], patterns: Sequence[str]) -> NDArray[np.bool_]:
    """:func:`is_non_product` per name, checked once per distinct name."""
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(list(names), dtype=object))
    verdicts = np.r_[[is_non_product(str(u), patterns) for u in uniques], False].astype(bool)
    return np.asarray(verdicts[codes], dtype=bool)


def censor_below_limit(
    values: NDArray[np.float64], limit: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Values at or above ``limit`` as they are; 0 and those under it at the limit, flagged."""
    with np.errstate(invalid="ignore"):
        below = (values >= 0.0) & (values < limit)
    return np.where(below, limit, values), np.asarray(below, dtype=bool)


def product_rows(frame: pd.DataFrame, patterns: Sequence[str] = ()) -> pd.DataFrame:
    """The rows a product model may learn from: flagged products whose name is not excluded.

    Both checks: the store's ``is_product`` flag (set at acquisition) and the ``patterns`` in
    force now (a name added to ``acquisition.non_product`` after loading is excluded too).
    A frame without the flag (built by hand, or an old store) is all products.
    """
    keep = np.ones(len(frame), dtype=bool)
    if IS_PRODUCT in frame.columns:  # a missing flag (a frame merged with an old one) is a product
        keep &= frame[IS_PRODUCT].astype("boolean").fillna(True).to_numpy(dtype=bool)
    if patterns and ESTRUCTURA in frame.columns:
        keep &= ~non_product_mask(list(frame[ESTRUCTURA]), patterns)
    return frame if keep.all() else frame[keep]
