"""Events: the key that identifies a finding, and the severity order channels filter on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from permeability.monitoring.events import EVENT_KINDS, SEVERITIES, Event, severity_rank


def test_the_same_finding_has_the_same_key_whatever_its_run_or_time() -> None:
    first = Event(
        kind="drift",
        severity="warning",
        subject="1.3",
        figures={"features": "Grados_C", "rows": 40},
        run_id="run-a",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    again = Event(
        kind="drift",
        severity="warning",
        subject="1.3",
        figures={"rows": 40, "features": "Grados_C"},
        run_id="run-b",
        occurred_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert first.key == again.key
    assert first.key.startswith("drift:")


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "1.4"},
        {"kind": "degradation"},
        {"figures": {"features": "Porc_Humedad", "rows": 40}},
    ],
)
def test_another_finding_has_another_key(change: dict[str, object]) -> None:
    base: dict[str, object] = {
        "kind": "drift",
        "severity": "warning",
        "subject": "1.3",
        "figures": {"features": "Grados_C", "rows": 40},
    }
    assert Event.model_validate(base).key != Event.model_validate({**base, **change}).key


def test_a_producer_may_give_its_own_key() -> None:
    event = Event(kind="job_failed", severity="critical", subject="nightly", key="job:nightly")
    assert event.key == "job:nightly"


def test_severities_are_ordered_and_at_least_lets_through_the_same_and_above() -> None:
    assert SEVERITIES == ("info", "warning", "critical")
    assert [severity_rank(s) for s in SEVERITIES] == [0, 1, 2]
    warning = Event(kind="coverage", severity="warning", subject="1.3")
    assert warning.at_least("info")
    assert warning.at_least("warning")
    assert not warning.at_least("critical")


def test_events_are_frozen_and_refuse_unknown_kinds() -> None:
    event = Event(kind="test", severity="info", subject="lab-mail")
    with pytest.raises(ValidationError):
        event.subject = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="kind"):
        Event.model_validate({"kind": "rain", "severity": "info", "subject": "x"})
    assert "test" in EVENT_KINDS


def test_an_event_survives_a_round_trip_through_json() -> None:
    event = Event(
        kind="promoted", severity="info", subject="1.4", figures={"previous": "1.3"}, run_id="r1"
    )
    assert Event.model_validate_json(event.model_dump_json()) == event
