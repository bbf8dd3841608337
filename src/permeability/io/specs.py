"""Read the specification-limits YAML (the embedded default or the lab's own file).

The file is edited by hand by lab staff, so every problem is reported with the entry number,
its structure and the field, e.g. ``specs file /x/specs.yaml: entry 3 (BOPP): humidity_pct:
Input should be less than or equal to 100``. Structure names are normalised with the same
alias map as acquisition, so "Bopp metalizado" in the file means BOPP/MET.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from permeability.config import ProjectConfig
from permeability.errors import InvalidInputError
from permeability.record.structures import build_alias_map, normalise_structure
from permeability.scoring.specs import SpecificationSet, SpecLimit
from permeability.settings import Settings

EMBEDDED_SOURCE: Final = "embedded:permeability/resources/specs.yaml"
_RESOURCE_PACKAGE: Final = "permeability.resources"
_RESOURCE_NAME: Final = "specs.yaml"

logger = logging.getLogger("permeability.specs")


def embedded_specs_text() -> str:
    """The default limits shipped inside the package."""
    return resources.files(_RESOURCE_PACKAGE).joinpath(_RESOURCE_NAME).read_text(encoding="utf-8")


def specs_path(settings: Settings, config: ProjectConfig) -> Path | None:
    """Which file is in force: the environment's, else the config's, else none (embedded)."""
    return settings.specs_file or config.inference.specs_file


def load_specs(path: Path | None, aliases: Mapping[str, str] | None = None) -> SpecificationSet:
    """Parse and validate a specs file (``None``: the embedded default)."""
    alias_map = build_alias_map(aliases)
    if path is None:
        return parse_specs(embedded_specs_text(), EMBEDDED_SOURCE, alias_map)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(f"specs file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"specs file {path} cannot be read: {exc}") from exc
    return parse_specs(text, str(path.resolve()), alias_map)


def load_configured_specs(settings: Settings, config: ProjectConfig) -> SpecificationSet:
    """The limits in force for these settings and this config."""
    return load_specs(specs_path(settings, config), config.acquisition.structure_aliases)


def parse_specs(text: str, source: str, alias_map: Mapping[str, str]) -> SpecificationSet:
    """Validate YAML text; ``alias_map`` comes from :func:`build_alias_map`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"specs file {source} is not valid YAML: {exc}") from exc
    entries = _entries(raw, source)
    limits = [_limit(entry, number, source, alias_map) for number, entry in entries]
    _refuse_ambiguous(limits, source)
    return SpecificationSet.from_limits(limits, source)


def _entries(raw: Any, source: str) -> list[tuple[int, Any]]:
    if not isinstance(raw, dict) or "limits" not in raw:
        raise InvalidInputError(f"specs file {source} must be a mapping with a 'limits' list")
    unknown = sorted(set(raw) - {"version", "limits"})
    if unknown:
        raise InvalidInputError(
            f"specs file {source} has unknown top-level keys {unknown}; allowed: version, limits"
        )
    if raw.get("version", 1) != 1:
        raise InvalidInputError(f"specs file {source}: version must be 1, got {raw['version']!r}")
    limits = raw["limits"]
    if not isinstance(limits, list):
        raise InvalidInputError(f"specs file {source}: 'limits' must be a list of entries")
    return list(enumerate(limits, start=1))


def _limit(entry: Any, number: int, source: str, alias_map: Mapping[str, str]) -> SpecLimit:
    if not isinstance(entry, dict):
        raise InvalidInputError(f"specs file {source}: entry {number} must be a mapping")
    where = f"specs file {source}: entry {number}"
    structure = entry.get("structure")
    if isinstance(structure, str) and structure.strip():
        where = f"{where} ({structure.strip()})"
        entry = {**entry, "structure": normalise_structure(structure, alias_map)}
    try:
        return SpecLimit.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "entry"
        raise InvalidInputError(f"{where}: {field}: {first['msg']}") from exc


def _refuse_ambiguous(limits: list[SpecLimit], source: str) -> None:
    """Two entries for the same structure, band and conditions leave the limit undefined."""
    seen: dict[tuple[Any, ...], SpecLimit] = {}
    for limit in limits:
        key = (
            limit.structure,
            limit.min_thickness_um,
            limit.max_thickness_um,
            limit.temperature_c,
            limit.humidity_pct,
        )
        if key in seen:
            raise InvalidInputError(
                f"specs file {source} has two entries for {limit.structure} "
                f"{limit.band_text()} at {limit.temperature_c:g} °C / {limit.humidity_pct:g} % RH "
                f"(≤ {seen[key].max_permeability:g} and ≤ {limit.max_permeability:g}); keep one"
            )
        seen[key] = limit


class SpecsWatcher:
    """The limits in force for a running service, re-read when the file changes.

    Lab staff edit the YAML while the service runs. :meth:`refresh` (called periodically by
    the service, never per request) re-reads it when its size or modification time changed.
    An edit that does not validate is refused: the previous limits stay in force and
    :attr:`reload_error` says why, so a typo never silently removes every limit.
    """

    def __init__(self, path: Path | None, aliases: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.aliases = dict(aliases or {})
        self.current = load_specs(path, self.aliases)
        self.loaded_at = datetime.now(UTC)
        self.reload_error: str | None = None
        self._signature = _signature(path)

    @classmethod
    def from_settings(cls, settings: Settings, config: ProjectConfig) -> SpecsWatcher:
        return cls(specs_path(settings, config), config.acquisition.structure_aliases)

    def refresh(self) -> bool:
        """Re-read a changed file; True when new limits took effect."""
        if self.path is None:
            return False
        signature = _signature(self.path)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            self.current = load_specs(self.path, self.aliases)
        except InvalidInputError as exc:
            self.reload_error = str(exc)
            logger.error("specs file edit refused, previous limits stay in force: %s", exc)
            return False
        self.loaded_at = datetime.now(UTC)
        self.reload_error = None
        logger.info("specs reloaded from %s: %d limits", self.path, len(self.current.limits))
        return True


def _signature(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
