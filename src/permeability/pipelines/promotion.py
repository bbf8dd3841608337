"""Which versions exist, which one is the champion, and moving the champion alias.

Promotion is its own job (as in fmind/mlops-python-package): training registers a version,
a person decides which one serves. The ``champion`` alias of registered model
``permeability`` is what serving follows; who moved it, when and why are recorded as tags on
the promoted registry version.

A version is listed from both places it lives: the model store folder (what this home can
serve) and the registry (what MLflow knows). Its status is ``champion`` or ``available``
when the folder is intact, ``unavailable`` when files are missing or corrupt, or when only
the registry knows it.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from permeability.config import ProjectConfig
from permeability.errors import ConflictError, NotFoundError
from permeability.io.model_store import ModelStore, StoredVersion, validate_label
from permeability.pipelines.base import JobContext, job_context
from permeability.settings import Settings

STAGE = "promote"
Status = Literal["champion", "available", "unavailable"]


class VersionInfo(BaseModel):
    """One trained version: its scores, lineage and whether it can be served."""

    version: str
    status: Status
    is_champion: bool
    registry_version: str | None
    run_id: str | None
    model: str | None
    chosen_model: str | None
    metrics: dict[str, float]
    lineage: dict[str, Any]
    created_at: str | None
    problem: str | None


class VersionsReport(BaseModel):
    versions: list[VersionInfo]
    champion: str | None
    registry_error: str | None = None


class PromotionResult(BaseModel):
    version: str
    registry_version: str
    registered_model: str
    alias: str
    previous_champion: str | None
    promoted_by: str
    promoted_at: str
    reason: str | None


def list_versions(settings: Settings, *, registry: Any = None) -> VersionsReport:
    """Every version in the model store or the registry, oldest first.

    A registry that cannot be reached degrades the answer (statuses come from the store
    alone, ``registry_error`` says why) instead of failing it.
    """
    from permeability.io.registry import Registry

    stored = {v.label: v for v in ModelStore(settings.paths.models).versions()}
    registered: dict[str, Any] = {}
    registry_error = None
    try:
        registry = registry or Registry.from_settings(settings)
        registered = {v.label: v for v in registry.list_versions() if v.label is not None}
    except Exception as exc:
        registry_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    labels = list(stored) + sorted(set(registered) - set(stored), key=_registry_order(registered))
    versions = [_version_info(label, stored.get(label), registered.get(label)) for label in labels]
    champion = next((v.version for v in versions if v.is_champion), None)
    return VersionsReport(versions=versions, champion=champion, registry_error=registry_error)


def _registry_order(registered: dict[str, Any]) -> Any:
    return lambda label: int(registered[label].version)


def _version_info(label: str, stored: StoredVersion | None, registered: Any) -> VersionInfo:
    metadata = dict(stored.metadata or {}) if stored is not None else {}
    lineage = dict(metadata.get("lineage") or {})
    if registered is not None:
        lineage.setdefault("registry_version", registered.version)
        lineage.setdefault("run_id", registered.run_id)
        for key in ("feature_set_version", "data_hash", "feature_store_uri"):
            if key in registered.tags:
                lineage.setdefault(key, registered.tags[key])
    is_champion = bool(registered is not None and registered.is_champion)
    status, problem = _status(stored, registered, is_champion)
    return VersionInfo(
        version=label,
        status=status,
        is_champion=is_champion,
        registry_version=registered.version if registered is not None else None,
        run_id=lineage.get("run_id"),
        model=metadata.get("model"),
        chosen_model=metadata.get("chosen_model")
        or (registered.tags.get("chosen_model") if registered is not None else None),
        metrics={k: float(v) for k, v in (metadata.get("metrics") or {}).items()},
        lineage=lineage,
        created_at=metadata.get("created_at"),
        problem=problem,
    )


def _status(
    stored: StoredVersion | None, registered: Any, is_champion: bool
) -> tuple[Status, str | None]:
    if stored is None:
        return "unavailable", "not in the model store (only the registry knows it)"
    if stored.status == "unavailable":
        return "unavailable", stored.problem
    if registered is None:
        return "available", "not found in the registry"
    return ("champion" if is_champion else "available"), None


def promote(
    settings: Settings,
    label: str,
    *,
    reason: str | None = None,
    promoted_by: str | None = None,
    config: ProjectConfig | None = None,
    registry: Any = None,
) -> PromotionResult:
    """Move the ``champion`` alias to ``label``'s registry version (intact versions only)."""
    with job_context(STAGE, settings, config=config) as context:
        return _promote(context, label, reason, promoted_by, registry)


def _promote(
    context: JobContext,
    label: str,
    reason: str | None,
    promoted_by: str | None,
    registry: Any,
) -> PromotionResult:
    from permeability.io.registry import CHAMPION_ALIAS, Registry

    validate_label(label)
    stored = _ensure_servable(ModelStore(context.paths.models), label)
    if registry is None:
        registry = Registry.from_settings(context.settings)
        registry.setup()
    previous = registry.champion()
    who = promoted_by or _current_user()
    when = datetime.now(UTC).isoformat()
    promoted = registry.promote(
        label,
        tags={
            "promoted_by": who,
            "promoted_at": when,
            "promotion_reason": reason or "",
            "previous_champion": (previous.label or "") if previous is not None else "",
        },
    )
    context.logger.info(
        "version %s (registry v%s) is now %s; was %s; by %s: %s",
        label,
        promoted.version,
        CHAMPION_ALIAS,
        previous.label if previous is not None else "none",
        who,
        reason or "no reason given",
    )
    previous_label = previous.label if previous is not None else None
    _announce(context, stored, previous_label, who, reason, when)
    return PromotionResult(
        version=label,
        registry_version=promoted.version,
        registered_model=registry.config.model_name,
        alias=CHAMPION_ALIAS,
        previous_champion=previous.label if previous is not None else None,
        promoted_by=who,
        promoted_at=when,
        reason=reason,
    )


def _announce(
    context: JobContext,
    stored: StoredVersion,
    previous: str | None,
    who: str,
    reason: str | None,
    when: str,
) -> None:
    """A new champion is news for the lab: a ``promoted`` event (never fails the promotion)."""
    from permeability.monitoring.events import Event
    from permeability.pipelines.notifying import notify

    label, metadata = stored.label, dict(stored.metadata or {})
    metrics = metadata.get("metrics") or {}
    event = Event(
        kind="promoted",
        severity="info",
        subject=label,
        figures={
            "version": label,
            "previous": previous,
            "promoted_by": who,
            "reason": reason or "",
            "model": metadata.get("chosen_model") or metadata.get("model"),
            "metric": "mae" if "mae" in metrics else None,
            "value": float(metrics["mae"]) if "mae" in metrics else None,
        },
        run_id=(metadata.get("lineage") or {}).get("run_id"),
        key=f"promoted:{label}:{when}",
    )
    notify(context, [event])


def _ensure_servable(store: ModelStore, label: str) -> StoredVersion:
    """Only a version whose files are intact may serve; say what is wrong otherwise."""
    try:
        stored = store.inspect(label)
    except NotFoundError as exc:
        raise NotFoundError(
            f"version '{label}' is not in the model store; train it first "
            "(see `permeability versions`)"
        ) from exc
    if stored.status != "available":
        raise ConflictError(
            f"version '{label}' cannot be promoted: its model-store copy is unusable "
            f"({stored.problem})"
        )
    return stored


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
