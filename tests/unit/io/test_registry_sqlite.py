"""The champion's label read from the embedded SQLite store with one query, as MLflow says."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from permeability.io.registry_sqlite import sqlite_champion_resolver, sqlite_database
from permeability.settings import Settings


def _never() -> str | None:
    raise AssertionError("the fallback was asked although the query fits the schema")


def test_the_database_of_a_sqlite_uri() -> None:
    assert sqlite_database("sqlite:////srv/home/mlflow/mlflow.db") == Path(
        "/srv/home/mlflow/mlflow.db"
    )
    assert sqlite_database("sqlite:///relative/mlflow.db") == Path("relative/mlflow.db")
    assert sqlite_database("sqlite:///:memory:") is None
    assert sqlite_database("http://mlflow:5000") is None
    assert sqlite_database("postgresql://u@db/mlflow") is None


def test_a_store_not_created_yet_has_no_champion_and_stays_absent(tmp_path: Path) -> None:
    database = tmp_path / "mlflow" / "mlflow.db"
    assert sqlite_champion_resolver(database, "permeability", _never)() is None
    assert not database.exists()


def test_a_schema_that_does_not_fit_is_answered_by_the_fallback(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE registered_model_aliases (alias TEXT, version INT, name TEXT)")
    asked: list[int] = []

    def fallback() -> str | None:
        asked.append(1)
        return "0.7"

    resolve = sqlite_champion_resolver(database, "permeability", fallback)
    assert resolve() == "0.7"
    assert resolve() == "0.7"
    assert asked == [1, 1]


@pytest.mark.slow
def test_it_follows_the_alias_as_mlflow_does(settings: Settings, tmp_path: Path) -> None:
    """Against a store MLflow created, moved by MLflow's client."""
    from permeability.io.registry import CHAMPION_ALIAS, LABEL_TAG, Registry
    from permeability.io.registry_lookup import mlflow_champion_resolver
    from permeability.io.tracking import REGISTERED_MODEL_NAME

    registry = Registry.from_settings(settings)
    registry.setup()
    client = registry.client
    versions = [
        client.create_model_version(
            REGISTERED_MODEL_NAME, source=str(tmp_path), tags={LABEL_TAG: label}
        ).version
        for label in ("0.1", "0.2")
    ]
    database = sqlite_database(settings.resolved_tracking_uri)
    assert database is not None
    resolve = sqlite_champion_resolver(database, REGISTERED_MODEL_NAME, _never)
    through_mlflow = mlflow_champion_resolver(settings)
    assert resolve() is None
    assert through_mlflow() is None
    for version, label in zip(versions, ("0.1", "0.2"), strict=True):
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version)
        assert resolve() == label
        assert through_mlflow() == label
    assert sqlite_champion_resolver(database, "another-model", _never)() is None
