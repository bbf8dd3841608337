"""Which rows a version is evaluated on: new since its training, the shared window, dates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from permeability.monitoring.windows import (
    labelled_when,
    new_since_training,
    on_or_after,
    shared_window,
    unseen_rows,
)
from tests.unit.monitoring.evaluation_support import records, store_rows


def test_new_rows_are_unseen_samples_and_changed_records() -> None:
    training = records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 0.3, "BOPP MET")])
    current = records([(1, 5.0, "BOPP"), (2, 6.5, "BOPP"), (3, 0.3, "BOPP MET"), (4, 7.0, "PET")])
    current.loc[2, "Calibre3"] = np.nan
    training.loc[2, "Calibre3"] = np.nan  # missing in both: the same record
    assert new_since_training(current, training).tolist() == [False, True, False, True]


CREATED = "2025-06-01T12:00:00+00:00"


def _loaded(current: pd.DataFrame, *stamps: str | None) -> pd.DataFrame:
    """``current`` with an ``ingested_at`` column (UTC) of the given load times."""
    return current.assign(ingested_at=pd.to_datetime(pd.Series(stamps), utc=True))


def test_without_lineage_the_rows_loaded_after_the_version_was_created_are_unseen() -> None:
    current = _loaded(
        records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 7.0, "PET"), (4, 8.0, "PET")]),
        "2025-05-31T09:00:00+00:00",  # before the version
        "2025-06-01T12:00:00+00:00",  # loaded the very moment it was created
        "2025-06-02T08:00:00+00:00",  # after
        None,  # load time unknown
    )
    assert unseen_rows(current, None, CREATED).tolist() == [False, False, True, False]


def test_without_lineage_or_dates_no_row_counts_as_unseen() -> None:
    current = _loaded(records([(1, 5.0, "BOPP")]), "2025-06-02T08:00:00+00:00")
    assert unseen_rows(current, None, None).tolist() == [False]
    assert unseen_rows(current, None, "not a date").tolist() == [False]
    assert unseen_rows(current.drop(columns=["ingested_at"]), None, CREATED).tolist() == [False]


def test_with_lineage_the_training_rows_decide_not_the_load_times() -> None:
    training = records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP")])
    current = _loaded(
        records([(1, 5.0, "BOPP"), (2, 6.5, "BOPP"), (3, 7.0, "PET")]),
        "2025-06-02T08:00:00+00:00",  # loaded again after creation, unchanged: seen
        "2025-05-31T09:00:00+00:00",  # loaded before creation, but re-measured: unseen
        "2025-05-31T09:00:00+00:00",  # never in its training: unseen
    )
    assert unseen_rows(current, training, CREATED).tolist() == [False, True, True]


def test_shared_window_keeps_the_rows_no_compared_version_trained_on() -> None:
    current = _loaded(
        records([(1, 5.0, "BOPP"), (2, 6.0, "BOPP"), (3, 7.0, "PET"), (4, 8.0, "PET")]),
        "2025-05-01T00:00:00+00:00",
        "2025-06-10T00:00:00+00:00",
        "2025-06-20T00:00:00+00:00",
        "2025-06-30T00:00:00+00:00",
    )
    unseen = {
        "0.1": unseen_rows(current, None, "2025-06-05T00:00:00+00:00"),  # rows 2, 3, 4
        "0.2": unseen_rows(current, None, "2025-06-15T00:00:00+00:00"),  # rows 3, 4
        # with lineage: trained on rows 1 and 3, so rows 2 and 4 are unseen
        "0.3": unseen_rows(current, records([(1, 5.0, "BOPP"), (3, 7.0, "PET")]), None),
    }
    kept, dropped = shared_window(unseen, champion="0.1")
    assert sorted(kept) == ["0.1", "0.2", "0.3"]
    assert all(mask.tolist() == [False, False, False, True] for mask in kept.values())
    assert dropped == {}


def test_shared_window_leaves_out_versions_with_nothing_newer_than_the_champion() -> None:
    unseen = {
        "0.1": np.array([False, True, True]),  # the champion
        "0.2": np.array([False, True, False]),  # trained later, row 2 still unseen
        "0.3": np.array([True, False, False]),  # unseen only where the champion trained
        "0.4": np.array([False, False, False]),  # trained on everything
    }
    kept, dropped = shared_window(unseen, champion="0.1")
    assert {label: mask.tolist() for label, mask in kept.items()} == {
        "0.1": [False, True, False],
        "0.2": [False, True, False],
    }
    assert dropped["0.3"].startswith("it trained on every labelled row the champion has not seen")
    assert dropped["0.4"] == "no labelled data arrived after its training"


def test_shared_window_without_a_champion_starts_from_every_versions_unseen_rows() -> None:
    unseen = {
        "0.1": np.array([True, True, False]),
        "0.2": np.array([False, True, True]),
        "0.3": np.array([False, False, False]),
    }
    for champion in (None, "0.9"):  # none set, or set but not among the compared versions
        kept, dropped = shared_window(unseen, champion=champion)
        assert {label: mask.tolist() for label, mask in kept.items()} == {
            "0.1": [False, True, False],
            "0.2": [False, True, False],
        }
        assert dropped == {"0.3": "no labelled data arrived after its training"}


def test_on_or_after_keeps_dated_rows_from_the_day_on() -> None:
    when = pd.Series(pd.to_datetime(pd.Series(["2025-01-01", "2025-02-01", None])))
    assert on_or_after(when, pd.Timestamp("2025-01-15")).tolist() == [False, True, False]
    assert on_or_after(when, None).tolist() == [True, True, True]


def test_when_falls_back_to_the_load_time_for_undated_rows() -> None:
    frame = pd.DataFrame(
        {
            "Fecha": pd.to_datetime(pd.Series(["2025-03-01", None])),
            "ingested_at": pd.to_datetime(["2025-06-01T10:00", "2025-06-02T11:00"], utc=True),
        }
    )
    assert labelled_when(frame).tolist() == [
        pd.Timestamp("2025-03-01"),
        pd.Timestamp("2025-06-02 11:00"),
    ]


def test_new_rows_are_found_by_record_id_not_by_the_replicate_number() -> None:
    training = store_rows(
        [
            {"record_id": "101", "Muestra": 1, "Permeabilidad": 5.0},
            {"record_id": "102", "Muestra": 2, "Permeabilidad": 5.2},
        ]
    )
    current = store_rows(
        [
            {"record_id": "101", "Muestra": 1, "Permeabilidad": 5.0},
            {"record_id": "102", "Muestra": 2, "Permeabilidad": 5.2},
            {"record_id": "103", "Muestra": 1, "Permeabilidad": 5.0},  # a new test, replicate 1
            {"record_id": "104", "Muestra": 2, "Permeabilidad": 5.3},
        ]
    )
    assert new_since_training(current, training).tolist() == [False, False, True, True]
    # An old store without record ids falls back on Muestra (and then sees nothing new here).
    old = new_since_training(current.drop(columns="record_id"), training)
    assert old.tolist() == [False, False, False, True]
