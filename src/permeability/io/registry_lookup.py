"""Where the inference service learns its champion, and how a missing one reaches its host.

One choice per tracking URI, made once when the model cache is built
(:meth:`~permeability.io.model_cache.ModelCache.from_settings`): a tracking server is asked
over its REST API and its artifact proxy (:mod:`permeability.io.registry_rest`), the embedded
SQLite store with one SQL query (:mod:`permeability.io.registry_sqlite`), anything else through
MLflow's client. Only the last imports MLflow (≈ 1 s of a replica's start).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from permeability.io.model_store import ModelStore
from permeability.settings import Settings

#: The label carrying the ``champion`` alias (``None``: no version does).
ChampionResolver = Callable[[], str | None]
#: Puts a label's folder into the model store from wherever the registry keeps it.
VersionFetcher = Callable[[str, ModelStore], object]


def is_rest_registry(uri: str) -> bool:
    """An ``http(s)://`` tracking URI: a server :mod:`permeability.io.registry_rest` talks to."""
    return urlsplit(uri).scheme in ("http", "https")


def registry_champion_resolver(settings: Settings) -> ChampionResolver:
    """The label carrying the ``champion`` alias in the configured MLflow registry.

    A tracking server is asked over its REST API and the embedded SQLite store with one query
    (neither imports MLflow, ≈ 1 s); any other store through MLflow's client.
    """
    from permeability.io.registry_sqlite import sqlite_champion_resolver, sqlite_database
    from permeability.io.tracking import REGISTERED_MODEL_NAME

    uri = settings.resolved_tracking_uri
    if is_rest_registry(uri):
        from permeability.io.registry_rest import RemoteRegistry  # httpx: only for a server

        return RemoteRegistry.from_settings(settings).champion_label
    database = sqlite_database(uri)
    if database is not None:
        return sqlite_champion_resolver(
            database, REGISTERED_MODEL_NAME, mlflow_champion_resolver(settings)
        )
    return mlflow_champion_resolver(settings)


def mlflow_champion_resolver(settings: Settings) -> ChampionResolver:
    """The champion's label through MLflow's client (imports MLflow on first use)."""

    registry: list[Any] = []  # created on first use: importing MLflow costs about a second

    def resolve() -> str | None:
        if not registry:
            from permeability.io.registry import Registry

            registry.append(Registry.from_settings(settings))
        champion = registry[0].champion()
        return None if champion is None else champion.label

    return resolve


def registry_fetcher(settings: Settings) -> VersionFetcher | None:
    """How a missing champion reaches this host: from a tracking server's artifact proxy;
    ``None`` for a local store (there the model store *is* where training publishes)."""
    if not is_rest_registry(settings.resolved_tracking_uri):
        return None
    from permeability.io.registry_rest import RemoteRegistry  # httpx: only for a server

    return RemoteRegistry.from_settings(settings).fetch_label
