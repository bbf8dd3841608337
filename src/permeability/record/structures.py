"""Film-structure names as typed by hand, brought to one canonical name and its list of layers.

Labs write a laminate layer by layer with ``-``, ``/``, ``+`` or spaces (``PET / AL / PE``,
``PET-AL-PE``, ``BOPP-MATE---BOPP-MET``), fuse layers (``BOPP-BOPPMET``) and spell materials in
Spanish or English (``Bopp metalizado``). A name whose every part is a layer of the vocabulary
(:data:`LAYER_VOCABULARY`, after :data:`LAYER_ALIASES`) becomes its layers joined by ``/``:
``PET-AL-PE``, ``PET / AL / PE`` and ``pet/al/pe`` are all ``PET/AL/PE`` with layers
``(PET, AL, PE)``. ``/`` is the separator because one layer name holds a hyphen (``PE-MDO``).

A name that is not a list of known layers (``ANALISIS-DE-ESTRUCTURA``, ``NUEVO FILM``) is kept,
never rejected: its parts are joined by ``-`` and it has no layers, so new films still flow
through acquisition and appear in drift reports. The vocabulary grows from config
(``acquisition.structure_aliases`` maps a spelling, whole name or layer, to a canonical one).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

#: Layers of the seed lab's real export, then the generator's own materials.
LAYER_VOCABULARY: Final = (
    # the real export (docs/data.md, "Structure names")
    "PET",  # biaxially oriented polyester
    "BOPP",  # biaxially oriented polypropylene
    "PE",  # polyethylene (sealant)
    "PE-MDO",  # machine-direction-oriented polyethylene
    "PPC",  # cast polypropylene (CPP)
    "NY",  # nylon / polyamide (BOPA)
    "AL",  # aluminium foil
    "MET",  # vacuum metallization of the layer before it
    "PAPEL",  # paper
    "PLA",  # polylactic acid
    "CELOFAN",  # cellophane
    "PVC",  # polyvinyl chloride
    "MATE",  # matte (coated) BOPP
    "BOPP-PL",  # pearlised (cavitated, white opaque) BOPP: the real export's "BOPPPL"
    # the synthetic generator's materials
    "LDPE",
    "HDPE",
    "EVOH",
    "PVDC",
)

#: Other spellings of one layer (keys and values in canonical spelling).
LAYER_ALIASES: Final[Mapping[str, str]] = {
    "OPP": "BOPP",
    "BOPET": "PET",
    "PET BIORIENTADO": "PET",
    "POLIESTER": "PET",
    "POLIETILENO": "PE",
    "PEBD": "LDPE",
    "PE BAJA DENSIDAD": "LDPE",
    "PEAD": "HDPE",
    "PE ALTA DENSIDAD": "HDPE",
    "MDO": "PE-MDO",
    "MDOPE": "PE-MDO",
    "PEMDO": "PE-MDO",
    "CPP": "PPC",
    "PP CAST": "PPC",
    "CAST PP": "PPC",
    "NYLON": "NY",
    "BOPA": "NY",
    "PA": "NY",
    "PA6": "NY",
    "POLIAMIDA": "NY",
    "ALU": "AL",
    "ALUMINIO": "AL",
    "FOIL": "AL",
    "METALIZADO": "MET",
    "METALIZADA": "MET",
    "METALLIZED": "MET",
    "METALIZED": "MET",
    "METAL": "MET",
    "PAPER": "PAPEL",
    "CELLOPHANE": "CELOFAN",
    "CELOFANE": "CELOFAN",
    "MATTE": "MATE",
    "BOPPPL": "BOPP-PL",
    "BOPP PL": "BOPP-PL",
    "BOPP PERLADO": "BOPP-PL",
    "PERLADO": "BOPP-PL",
    "PEARLISED BOPP": "BOPP-PL",
    "PEARLIZED BOPP": "BOPP-PL",
}

#: Whole names whose layer order differs from how they are typed (metallization is written
#: after the layer that carries it). Values are canonical names.
DEFAULT_ALIASES: Final[Mapping[str, str]] = {
    "METALLIZED BOPP": "BOPP/MET",
    "METALIZED BOPP": "BOPP/MET",
    "MET BOPP": "BOPP/MET",
    "MBOPP": "BOPP/MET",
    "METALLIZED PET": "PET/MET",
    "METALIZED PET": "PET/MET",
    "MET PET": "PET/MET",
    "MPET": "PET/MET",
    # the real export's non-product names, typed in either gender
    "NO REPORTADO": "NO-REPORTADA",
    "NO REPORTADA": "NO-REPORTADA",
}

_SPACES = re.compile(r"[\s_]+")
_SPLIT = re.compile(r"[\s/+_-]+")
#: Longest run of typed parts that one layer spelling can span ("PE BAJA DENSIDAD").
_MAX_PARTS = 3


@dataclass(frozen=True)
class StructureName:
    """A structure's canonical name and its layers (empty when it is not a list of layers)."""

    name: str
    layers: tuple[str, ...]

    @property
    def layers_text(self) -> str:
        """The layers as stored with a record: joined by ``/`` ("" when none)."""
        return "/".join(self.layers)


def canonical_spelling(raw: str) -> str:
    """Upper case, no accents, single spaces, no space around ``/``."""
    text = unicodedata.normalize("NFKD", raw)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _SPACES.sub(" ", text).strip().upper()
    return re.sub(r"\s*/\s*", "/", text)


def _key(text: str) -> str:
    """A spelling reduced for lookup: canonical, separators as single spaces."""
    return " ".join(part for part in _SPLIT.split(canonical_spelling(text)) if part)


def build_alias_map(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Whole-name and layer aliases plus the user's, keyed by their reduced spelling.

    A value is a canonical name (``BOPP/MET``) or a layer (``PE-MDO``); both are stored as typed
    (canonical spelling) and resolved again by :func:`parse_structure`.
    """
    merged = {_key(k): canonical_spelling(v) for k, v in DEFAULT_ALIASES.items()}
    merged.update({_key(k): canonical_spelling(v) for k, v in LAYER_ALIASES.items()})
    for key, value in (extra or {}).items():
        merged[_key(key)] = canonical_spelling(value)
    return _FrozenAliases(merged)


def _layer_lookup(aliases: Mapping[str, str]) -> dict[str, str]:
    """Reduced spelling -> layer, for the vocabulary and every alias whose target is a layer."""
    lookup = {_key(layer): layer for layer in LAYER_VOCABULARY}
    for spelled, target in aliases.items():
        layer = lookup.get(_key(target))
        if layer is not None:
            lookup[spelled] = layer
    return lookup


def _split_fused(part: str, lookup: Mapping[str, str]) -> list[str] | None:
    """'BOPPMET' -> ['BOPP', 'MET']: layers written without a separator, or None."""
    if not part:
        return []
    for end in range(len(part), 0, -1):
        layer = lookup.get(part[:end])
        if layer is not None:
            rest = _split_fused(part[end:], lookup)
            if rest is not None:
                return [layer, *rest]
    return None


def _layers(parts: Sequence[str], lookup: Mapping[str, str]) -> list[str] | None:
    """The layers of ``parts`` (longest spellings first), or None when a part is no layer."""
    layers: list[str] = []
    i = 0
    while i < len(parts):
        for width in range(min(_MAX_PARTS, len(parts) - i), 0, -1):
            layer = lookup.get(" ".join(parts[i : i + width]))
            if layer is not None:
                layers.append(layer)
                i += width
                break
        else:
            fused = _split_fused(parts[i], lookup)
            if fused is None:
                return None
            layers.extend(fused)
            i += 1
    return layers


def parse_structure(raw: str, aliases: Mapping[str, str]) -> StructureName:
    """The canonical name and layers of a typed structure; see the module docstring.

    ``aliases`` must come from :func:`build_alias_map`.
    """
    return _parse(raw, _frozen(aliases))


def normalise_structure(raw: str, aliases: Mapping[str, str]) -> str:
    """The canonical name of a structure (``PET / AL / PE`` -> ``PET/AL/PE``)."""
    return parse_structure(raw, aliases).name


class _FrozenAliases(dict[str, str]):
    """An alias map that is never changed after it is built: hashable (once), so parsing is
    cached per distinct spelling and alias map."""

    def __init__(self, items: Mapping[str, str]) -> None:
        super().__init__(items)
        self._hash = hash(frozenset(self.items()))

    def __hash__(self) -> int:  # type: ignore[override]
        return self._hash


def _frozen(aliases: Mapping[str, str]) -> _FrozenAliases:
    return aliases if isinstance(aliases, _FrozenAliases) else _FrozenAliases(aliases)


@lru_cache(maxsize=4096)
def _parse(raw: str, aliases: _FrozenAliases) -> StructureName:
    lookup = _layer_lookup(aliases)
    key = _key(raw)
    whole = aliases.get(key)
    if whole is not None and _key(whole) != key:
        return _parse(whole, aliases)
    parts = key.split(" ") if key else []
    layers = _layers(parts, lookup) if parts else None
    if layers:
        return StructureName("/".join(layers), tuple(layers))
    return StructureName("-".join(parts), ())


#: Families of films by the layer that sets their barrier, best barrier first: a laminate
#: belongs to the family of its best barrier (layers in series, 1/WVTR = Σ 1/WVTR_layer, so
#: the tightest layer dominates). Used to pool rare structures and to bound extrapolation.
FAMILIES: Final = (
    ("foil", ("AL",)),
    ("metallized", ("MET",)),
    ("pvdc-coated", ("PVDC",)),
    ("polypropylene", ("BOPP", "PPC", "MATE", "BOPP-PL")),
    ("polyethylene", ("PE", "PE-MDO", "LDPE", "HDPE")),
    ("polyester", ("PET",)),
    ("nylon", ("NY",)),
    ("evoh", ("EVOH",)),  # an oxygen barrier, but hygroscopic: a poor water-vapour barrier
    ("pvc", ("PVC",)),
    ("bio-based", ("PLA", "CELOFAN")),
    ("paper", ("PAPEL",)),
)
#: The family of a name that is not a list of known layers.
UNKNOWN_FAMILY: Final = "unknown"


def structure_family(layers: Sequence[str]) -> str:
    """The family of a structure's layers: that of its best barrier (see :data:`FAMILIES`)."""
    present = set(layers)
    for family, members in FAMILIES:
        if present.intersection(members):
            return family
    return UNKNOWN_FAMILY
