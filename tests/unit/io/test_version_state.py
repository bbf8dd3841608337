"""What ``GET /versions`` shows for a version, read from its stored metadata, odd or not."""

from __future__ import annotations

from permeability.io.version_state import state_of


def test_the_state_carries_what_training_recorded() -> None:
    metadata = {
        "chosen_model": "hgb",
        "metrics": {"mae": 0.5},
        "created_at": "2026-01-02T10:00:00+00:00",
        "n_train": 120,
        "lineage": {"run_id": "abc"},
        "known_structures": ["PET", "BOPP"],
        "interval_level": 0.9,
        "non_product": ["^QC-"],
        "detection_limit": 0.05,
    }

    state = state_of("0.3", "available", True, True, None, metadata)

    assert (state.version, state.status, state.loaded, state.champion) == (
        "0.3",
        "available",
        True,
        True,
    )
    assert state.model_name == "hgb"
    assert state.metrics == {"mae": 0.5}
    assert (state.created_at, state.n_train, state.run_id) == (
        "2026-01-02T10:00:00+00:00",
        120,
        "abc",
    )
    assert state.known_structures == ("BOPP", "PET")
    assert (state.interval_level, state.detection_limit) == (0.9, 0.05)
    assert state.non_product == ("^QC-",)


def test_missing_or_odd_fields_show_as_empty() -> None:
    empty = state_of("0.1", "unavailable", False, False, "metadata is unreadable", {})
    assert (empty.model_name, empty.metrics, empty.n_train, empty.run_id) == (None, {}, None, None)
    assert (empty.known_structures, empty.non_product, empty.interval_level) == ((), None, None)
    assert empty.reason == "metadata is unreadable"

    odd = state_of(
        "0.2",
        "available",
        False,
        False,
        None,
        {
            "model": "ridge",
            "metrics": ["mae", 0.5],
            "n_train": True,
            "lineage": "abc",
            "interval_level": "0.9",
            "non_product": ["^QC-", 1],
            "detection_limit": 1,
        },
    )
    assert odd.model_name == "ridge"
    assert (odd.metrics, odd.n_train, odd.run_id, odd.interval_level) == ({}, None, None, None)
    assert odd.non_product is None
    assert odd.detection_limit == 1.0
