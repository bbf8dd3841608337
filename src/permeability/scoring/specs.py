"""Specification limits: which maximum WVTR applies to a sample, and why none might.

A lab limit is a one-sided maximum stated *at test conditions* ("BOPP 20–22 µm: WVTR ≤ 6
g/m²·day at 38 °C / 90 % RH"). A result measured at other conditions is not comparable with
it ("a result without its test conditions is not accepted"), so a limit applies to a sample
only when the sample's temperature and humidity lie within the limit's tolerances and, when
the limit has a thickness band, its mean caliper lies inside the band. When no limit
applies, there is no decision, and the reason says which of those checks failed.

Several limits may exist per structure (different bands or conditions). When more than one
applies, the most specific wins: a limit with a thickness band beats one without, a narrower
band beats a wider one, and among equals the strictest (lowest) maximum wins, so an
ambiguous specification never approves more than the strictest reading of it would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from permeability.record.schema import UNITS

PERMEABILITY_UNIT: Final = UNITS["Permeabilidad"]

#: Why a sample got no limit (codes are what the vectorised matcher returns per row).
REASON_MATCHED: Final = 0
REASON_NO_LIMIT: Final = 1
REASON_THICKNESS: Final = 2
REASON_CONDITIONS: Final = 3


class SpecLimit(BaseModel):
    """One maximum WVTR for one structure at stated test conditions (and optional gauge band)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    structure: str = Field(min_length=1, description="Canonical structure name, e.g. 'BOPP/MET'.")
    max_permeability: float = Field(
        gt=0.0, allow_inf_nan=False, description=f"Upper limit of WVTR in {PERMEABILITY_UNIT}."
    )
    temperature_c: float = Field(
        ge=0.0, le=80.0, allow_inf_nan=False, description="Test temperature the limit is stated at."
    )
    humidity_pct: float = Field(
        gt=0.0, le=100.0, allow_inf_nan=False, description="Test humidity (% RH) of the limit."
    )
    temperature_tolerance_c: float = Field(
        default=1.0, ge=0.0, le=20.0, allow_inf_nan=False, description="Accepted ± °C."
    )
    humidity_tolerance_pct: float = Field(
        default=2.0, ge=0.0, le=50.0, allow_inf_nan=False, description="Accepted ± % RH."
    )
    min_thickness_um: float | None = Field(
        default=None, gt=0.0, allow_inf_nan=False, description="Band start (inclusive), µm."
    )
    max_thickness_um: float | None = Field(
        default=None, gt=0.0, allow_inf_nan=False, description="Band end (inclusive), µm."
    )
    method: str | None = Field(default=None, max_length=100, description="e.g. 'ASTM F1249'.")
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _band_is_ordered(self) -> SpecLimit:
        low, high = self.min_thickness_um, self.max_thickness_um
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_thickness_um ({low}) must not exceed max_thickness_um ({high})")
        return self

    @property
    def has_band(self) -> bool:
        return self.min_thickness_um is not None or self.max_thickness_um is not None

    @property
    def band_width(self) -> float:
        low = self.min_thickness_um if self.min_thickness_um is not None else 0.0
        high = self.max_thickness_um if self.max_thickness_um is not None else np.inf
        return float(high - low)

    def conditions_text(self) -> str:
        return (
            f"{self.temperature_c:g} ± {self.temperature_tolerance_c:g} °C / "
            f"{self.humidity_pct:g} ± {self.humidity_tolerance_pct:g} % RH"
        )

    def band_text(self) -> str:
        low = "" if self.min_thickness_um is None else f"{self.min_thickness_um:g}"
        high = "" if self.max_thickness_um is None else f"{self.max_thickness_um:g}"
        if not self.has_band:
            return "any thickness"
        if low and high:
            return f"{low}–{high} µm"
        return f"≥ {low} µm" if low else f"≤ {high} µm"

    def describe(self) -> str:
        return (
            f"{self.structure} {self.band_text()}: ≤ {self.max_permeability:g} "
            f"{PERMEABILITY_UNIT} at {self.conditions_text()}"
        )


@dataclass(frozen=True)
class SpecMatch:
    """The limit that applies to one sample, or ``None`` with the reason why none does."""

    limit: SpecLimit | None
    reason: str


@dataclass(frozen=True)
class BatchSpecMatch:
    """Per-row result of :meth:`SpecificationSet.match_many`: limit index (-1 = none) and code."""

    limit_index: NDArray[np.int64]
    reason_code: NDArray[np.int8]


def _priority(limit: SpecLimit) -> tuple[int, float, float]:
    return (0 if limit.has_band else 1, limit.band_width, limit.max_permeability)


@dataclass(frozen=True)
class SpecificationSet:
    """The limits in force, ordered most specific first, and where they came from."""

    limits: tuple[SpecLimit, ...]
    source: str

    @classmethod
    def from_limits(cls, limits: Iterable[SpecLimit], source: str) -> SpecificationSet:
        return cls(tuple(sorted(limits, key=_priority)), source)

    @cached_property
    def _by_structure(self) -> dict[str, tuple[SpecLimit, ...]]:
        """Limits per structure, most specific first: a dictionary lookup per request."""
        grouped: dict[str, list[SpecLimit]] = {}
        for limit in self.limits:
            grouped.setdefault(limit.structure, []).append(limit)
        return {name: tuple(limits) for name, limits in grouped.items()}

    @cached_property
    def _applies(self) -> dict[int, str]:
        """The "limit ... applies" sentence of each limit, worded once."""
        return {id(limit): _applies_reason(limit) for limit in self.limits}

    @cached_property
    def _bands(self) -> dict[str, str]:
        """The thickness bands of each structure's limits, worded once (the thickness reason
        names them all)."""
        return {
            name: ", ".join(sorted({limit.band_text() for limit in limits}))
            for name, limits in self._by_structure.items()
        }

    @cached_property
    def _stated_at_several_conditions(self) -> frozenset[str]:
        """Structures whose limits are not all stated at the same test conditions."""
        return frozenset(
            name
            for name, limits in self._by_structure.items()
            if len({limit.conditions_text() for limit in limits}) > 1
        )

    @cached_property
    def _stated_texts(self) -> dict[tuple[int, ...], str]:
        return {}

    def _stated(self, limits: Sequence[SpecLimit]) -> str:
        """The conditions some of this set's limits are stated at, worded once per set of
        limits (keyed by identity, which the set's own limits keep: cheaper than hashing)."""
        key = tuple(map(id, limits))
        text = self._stated_texts.get(key)
        if text is None:
            text = "; ".join(sorted({limit.conditions_text() for limit in limits}))
            self._stated_texts[key] = text
        return text

    @property
    def structures(self) -> list[str]:
        return sorted(self._by_structure)

    def for_structure(self, structure: str) -> tuple[SpecLimit, ...]:
        return self._by_structure.get(structure, ())

    def match(
        self, structure: str, temperature_c: float, humidity_pct: float, thickness_um: float
    ) -> SpecMatch:
        """The limit for one sample (``structure`` already canonical), or why there is none."""
        candidates = self.for_structure(structure)
        if not candidates:
            return SpecMatch(None, _no_limit_reason(structure))
        in_band = [c for c in candidates if _in_band(c, thickness_um)]
        if not in_band:
            return SpecMatch(
                None, _thickness_reason(structure, thickness_um, self._bands[structure])
            )
        for limit in in_band:
            if _conditions_match(limit, temperature_c, humidity_pct):
                return SpecMatch(limit, self._applies[id(limit)])
        return SpecMatch(
            None, _conditions_reason((temperature_c, humidity_pct), self._stated(in_band))
        )

    def match_many(
        self,
        structures: ArrayLike,
        temperature_c: ArrayLike,
        humidity_pct: ArrayLike,
        thickness_um: ArrayLike,
    ) -> BatchSpecMatch:
        """Vectorised :meth:`match`: per limit, numpy work on the rows of its structure only."""
        import pandas as pd  # a frame's path: a replica's start needs only :meth:`match`

        codes, uniques = pd.factorize(np.asarray(structures, dtype=object))
        return self.match_coded(
            np.asarray(codes, dtype=np.intp),
            [str(u) for u in uniques],
            temperature_c,
            humidity_pct,
            thickness_um,
        )

    def match_coded(
        self,
        codes: NDArray[np.intp],
        names: Sequence[str],
        temperature_c: ArrayLike,
        humidity_pct: ArrayLike,
        thickness_um: ArrayLike,
    ) -> BatchSpecMatch:
        """:meth:`match_many` for structures already factorised (``names[codes[i]]``)."""
        uniques = names
        temperature = np.asarray(temperature_c, dtype=np.float64)
        humidity = np.asarray(humidity_pct, dtype=np.float64)
        thickness = np.asarray(thickness_um, dtype=np.float64)
        index = np.full(len(codes), -1, dtype=np.int64)
        code = np.full(len(codes), REASON_NO_LIMIT, dtype=np.int8)
        position = {id(limit): i for i, limit in enumerate(self.limits)}
        for code_of_structure, name in enumerate(uniques):
            limits = self._by_structure.get(str(name))
            if not limits:
                continue
            rows = np.flatnonzero(codes == code_of_structure)
            temp, hum, thick = temperature[rows], humidity[rows], thickness[rows]
            chosen = np.full(len(rows), -1, dtype=np.int64)
            reason = np.full(len(rows), REASON_THICKNESS, dtype=np.int8)
            for limit in limits:  # most specific first: the first match wins
                band = _in_band_many(limit, thick)
                reason[band & (reason == REASON_THICKNESS)] = REASON_CONDITIONS
                newly = band & (chosen < 0) & _conditions_match_many(limit, temp, hum)
                chosen[newly] = position[id(limit)]
            reason[chosen >= 0] = REASON_MATCHED
            index[rows] = chosen
            code[rows] = reason
        return BatchSpecMatch(index, code)

    def reason_for_row(
        self,
        code: int,
        limit_index: int,
        structure: str,
        temperature_c: float,
        humidity_pct: float,
        thickness_um: float,
    ) -> str:
        """The sentence :meth:`match` would give, from a row of :meth:`match_many`."""
        if code == REASON_MATCHED:
            return _applies_reason(self.limits[limit_index])
        if code == REASON_NO_LIMIT:
            return _no_limit_reason(structure)
        candidates = self.for_structure(structure)
        if code == REASON_THICKNESS:
            return _thickness_reason(structure, thickness_um, self._bands[structure])
        in_band = [c for c in candidates if _in_band(c, thickness_um)]
        return _conditions_reason((temperature_c, humidity_pct), self._stated(in_band))

    def reason_for_case(self, code: int, limit_index: int, structure: str, band: int) -> str:
        """:meth:`reason_for_row` without the row's own numbers (mean caliper, test
        conditions): the one sentence of every row with these codes (``band`` from
        :meth:`band_codes`), which a batch words once for all of them."""
        if code == REASON_MATCHED:
            return _applies_reason(self.limits[limit_index])
        if code == REASON_NO_LIMIT:
            return _no_limit_reason(structure)
        if code == REASON_THICKNESS:
            return _thickness_reason(structure, None, self._bands[structure])
        return _conditions_reason(None, self._stated(self._in_band_of(structure, band)))

    def band_codes(
        self, codes: NDArray[np.intp], names: Sequence[str], thickness_um: ArrayLike
    ) -> NDArray[np.int64]:
        """Per row (structures factorised as in :meth:`match_coded`), a number that two rows of
        one structure share only when the limits whose band holds their mean caliper are
        stated at the same test conditions, so that their conditions reason is one sentence.

        0 for a structure whose limits are all stated at one condition. Otherwise, as a band
        holds t when low ≤ t ≤ high, how many band starts t has reached and how many band ends
        it has passed fix the limits in band (:meth:`_in_band_of` turns them back).
        """
        thickness = np.asarray(thickness_um, dtype=np.float64)
        result = np.zeros(len(codes), dtype=np.int64)
        for code, name in enumerate(names):
            if str(name) not in self._stated_at_several_conditions:
                continue
            limits = self._by_structure[str(name)]
            rows = np.flatnonzero(codes == code)
            edges = np.array([_band_edges(c) for c in limits])
            lows, highs = np.sort(edges[:, 0]), np.sort(edges[:, 1])
            reached = np.searchsorted(lows, thickness[rows], side="right")
            passed = np.searchsorted(highs, thickness[rows], side="left")
            result[rows] = reached * (len(limits) + 1) + passed
        return result

    def _in_band_of(self, structure: str, band: int) -> Sequence[SpecLimit]:
        """The limits in band for the rows of ``structure`` with this :meth:`band_codes` number
        (all its limits when they are stated at one condition: any of them says it)."""
        limits = self.for_structure(structure)
        if structure not in self._stated_at_several_conditions:
            return limits
        reached, passed = divmod(band, len(limits) + 1)
        # Equal edges are all reached (or passed) together, so the sorted prefixes are exact.
        started = sorted(limits, key=lambda c: _band_edges(c)[0])[:reached]
        ended = {id(c) for c in sorted(limits, key=lambda c: _band_edges(c)[1])[:passed]}
        return [c for c in started if id(c) not in ended]

    def to_records(self) -> list[dict[str, object]]:
        return [limit.model_dump() for limit in self.limits]


def _band_edges(limit: SpecLimit) -> tuple[float, float]:
    """(start, end) of a limit's band, open ends infinite."""
    low, high = limit.min_thickness_um, limit.max_thickness_um
    return (-np.inf if low is None else low, np.inf if high is None else high)


def _in_band(limit: SpecLimit, thickness_um: float) -> bool:
    low, high = limit.min_thickness_um, limit.max_thickness_um
    return (low is None or thickness_um >= low) and (high is None or thickness_um <= high)


def _in_band_many(limit: SpecLimit, thickness: NDArray[np.float64]) -> NDArray[np.bool_]:
    inside = np.ones(thickness.shape[0], dtype=bool)
    if limit.min_thickness_um is not None:
        inside &= thickness >= limit.min_thickness_um
    if limit.max_thickness_um is not None:
        inside &= thickness <= limit.max_thickness_um
    return inside


# A hair of slack so that 37.0 against 38 ± 1 matches although 38 - 37.0 is computed exactly.
_EPS: Final = 1e-9


def _conditions_match(limit: SpecLimit, temperature_c: float, humidity_pct: float) -> bool:
    return (
        abs(temperature_c - limit.temperature_c) <= limit.temperature_tolerance_c + _EPS
        and abs(humidity_pct - limit.humidity_pct) <= limit.humidity_tolerance_pct + _EPS
    )


def _conditions_match_many(
    limit: SpecLimit, temperature: NDArray[np.float64], humidity: NDArray[np.float64]
) -> NDArray[np.bool_]:
    return np.asarray(
        (np.abs(temperature - limit.temperature_c) <= limit.temperature_tolerance_c + _EPS)
        & (np.abs(humidity - limit.humidity_pct) <= limit.humidity_tolerance_pct + _EPS)
    )


def _applies_reason(limit: SpecLimit) -> str:
    return f"limit {limit.describe()} applies"


def _no_limit_reason(structure: str) -> str:
    return f"no specification limit is defined for structure {structure}"


def _thickness_reason(structure: str, thickness_um: float | None, bands: str) -> str:
    """``thickness_um`` None: the sentence without the sample's mean caliper."""
    caliper = "mean caliper" if thickness_um is None else f"mean caliper {thickness_um:g} µm"
    return f"{caliper} is outside every thickness band with a limit for {structure} ({bands})"


def _conditions_reason(conditions: tuple[float, float] | None, stated: str) -> str:
    """``conditions`` (°C, % RH) None: the sentence without the sample's test conditions."""
    tested = (
        "test conditions"
        if conditions is None
        else f"test conditions {conditions[0]:g} °C / {conditions[1]:g} % RH"
    )
    return (
        f"{tested} do not match the conditions the limit is stated at ({stated}), so the "
        "result cannot be judged against it"
    )


def limits_by_structure(spec_set: SpecificationSet) -> Mapping[str, tuple[SpecLimit, ...]]:
    """Limits grouped per structure, for display (``GET /specs``)."""
    return {s: spec_set.for_structure(s) for s in spec_set.structures}
