"""The champion's label read straight from the embedded SQLite tracking store, without MLflow.

Why: the inference service asks the registry one question at start and every few seconds
(which label carries the ``champion`` alias), and answering it through MLflow's client costs
``import mlflow`` plus SQLAlchemy set-up (≈ 1.5 s of a replica's start, and ≈ 0.4 s more of
garbage collection afterwards). On the embedded store the answer is one read-only SQL query on
two tables of MLflow's schema (``registered_model_aliases``, ``model_version_tags``).

That schema is MLflow's, not ours: when the query does not fit it (a table or column renamed
by an MLflow upgrade), the lookup goes through MLflow's client instead (``fallback``), so a
schema change costs speed, never correctness. A database that does not exist yet has no
champion (and is not created: only training creates the store).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from permeability.io.registry import CHAMPION_ALIAS, LABEL_TAG

logger = logging.getLogger("permeability.registry_sqlite")

_CHAMPION_LABEL: Final = """
SELECT tags.value
  FROM registered_model_aliases AS aliases
  JOIN model_version_tags AS tags
    ON tags.workspace = aliases.workspace
   AND tags.name = aliases.name
   AND tags.version = aliases.version
   AND tags.key = ?
 WHERE aliases.workspace = 'default' AND aliases.name = ? AND aliases.alias = ?
"""


def sqlite_database(uri: str) -> Path | None:
    """The file of a ``sqlite:///...`` tracking URI (``None`` for anything else)."""
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or not parts.path or parts.path == "/:memory:":
        return None
    return Path(unquote(parts.path.removeprefix("/")))  # sqlite:////abs, sqlite:///relative


def sqlite_champion_resolver(
    database: Path, model_name: str, fallback: Callable[[], str | None]
) -> Callable[[], str | None]:
    """A resolver answering from ``database`` directly; ``fallback`` when the schema differs."""
    use_fallback = False

    def resolve() -> str | None:
        nonlocal use_fallback
        if use_fallback:
            return fallback()
        if not database.is_file():
            return None
        try:
            with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5.0) as db:
                row = db.execute(
                    _CHAMPION_LABEL, (LABEL_TAG, model_name, CHAMPION_ALIAS)
                ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such" not in str(exc):
                raise  # locked, unreadable...: the caller reports it and keeps the last answer
            logger.warning(
                "the tracking store's schema is not the one expected (%s): the "
                "champion is looked up through MLflow from now on",
                exc,
            )
            use_fallback = True
            return fallback()
        return None if row is None else str(row[0])

    return resolve
