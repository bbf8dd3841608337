"""Film-structure names as typed by hand, brought to one canonical spelling.

Structures are open-ended: a name the alias map does not know is kept (canonicalised),
never rejected, so new films flow through acquisition and appear in drift reports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

#: Known spellings (after canonicalisation) of the same film. Extend it from config.
DEFAULT_ALIASES: Final[Mapping[str, str]] = {
    "BOPP METALIZADO": "BOPP MET",
    "BOPP METALIZADA": "BOPP MET",
    "BOPP METALLIZED": "BOPP MET",
    "METALLIZED BOPP": "BOPP MET",
    "MET BOPP": "BOPP MET",
    "METBOPP": "BOPP MET",
    "BOPPMET": "BOPP MET",
    "MBOPP": "BOPP MET",
    "BOPP-MET": "BOPP MET",
    "OPP": "BOPP",
    "BOPET": "PET",
    "PET BIORIENTADO": "PET",
    "PET METALIZADO": "PET MET",
    "PET METALIZADA": "PET MET",
    "PET METALLIZED": "PET MET",
    "METALLIZED PET": "PET MET",
    "MET PET": "PET MET",
    "METPET": "PET MET",
    "PETMET": "PET MET",
    "MPET": "PET MET",
    "PET-MET": "PET MET",
    "PEBD": "LDPE",
    "PE BAJA DENSIDAD": "LDPE",
    "POLIETILENO": "LDPE",
    "PE": "LDPE",
    "PEAD": "HDPE",
    "PE ALTA DENSIDAD": "HDPE",
    "NYLON": "BOPA",
    "PA": "BOPA",
    "PA6": "BOPA",
    "POLIAMIDA": "BOPA",
    "PP CAST": "CPP",
    "CAST PP": "CPP",
}

_SEPARATORS = re.compile(r"[\s_]+")
_SLASH = re.compile(r"\s*/\s*")


def canonical_spelling(raw: str) -> str:
    """Upper case, no accents, single spaces, laminates written ``A/B``."""
    text = unicodedata.normalize("NFKD", raw)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _SEPARATORS.sub(" ", text).strip().upper()
    return _SLASH.sub("/", text)


def build_alias_map(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Default aliases plus the user's, both keyed by canonical spelling."""
    merged = {canonical_spelling(k): canonical_spelling(v) for k, v in DEFAULT_ALIASES.items()}
    for key, value in (extra or {}).items():
        merged[canonical_spelling(key)] = canonical_spelling(value)
    return merged


def normalise_structure(raw: str, aliases: Mapping[str, str]) -> str:
    """The canonical name of a structure; laminates are normalised layer by layer.

    ``aliases`` must come from :func:`build_alias_map` (keys already canonical).
    """
    spelled = canonical_spelling(raw)
    if spelled in aliases:
        return aliases[spelled]
    if "/" in spelled:
        return "/".join(aliases.get(layer, layer) for layer in spelled.split("/") if layer)
    return spelled
