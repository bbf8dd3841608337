"""The retraining rules: triggers, the new-tests window, the holdout, per-test judging, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from permeability.errors import InvalidInputError
from permeability.monitoring.comparison import compare_versions
from permeability.monitoring.evaluation import evaluate_scored
from permeability.monitoring.events import Event
from permeability.monitoring.retraining import (
    RETRAIN_LABEL_PREFIX,
    Trigger,
    approval_event,
    assess_triggers,
    choose_holdout,
    count_tests,
    evaluation_triggers,
    generated_label,
    is_generated_label,
    new_tests_trigger,
    new_tests_window,
    per_test_scores,
)
from permeability.monitoring.snapshot import MonitoringSnapshot
from tests.monitoring_snapshots import bare_snapshot
from tests.unit.monitoring.evaluation_support import scored_table

# -- labels ---------------------------------------------------------------------------------

WHEN = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_a_generated_label_is_the_utc_time_of_the_decision() -> None:
    assert generated_label(WHEN, set()) == "retrain-20260304-050607"
    bogota = WHEN.astimezone(timezone(timedelta(hours=-5)))
    assert generated_label(bogota, set()) == "retrain-20260304-050607"
    assert generated_label(WHEN.replace(tzinfo=None), set()) == "retrain-20260304-050607"
    assert is_generated_label(generated_label(WHEN, set()))
    assert not is_generated_label("0.1-retrain-x")


def test_a_taken_generated_label_gets_the_next_free_suffix() -> None:
    base = "retrain-20260304-050607"
    assert generated_label(WHEN, {base}) == f"{base}-2"
    assert generated_label(WHEN, {base, f"{base}-2", "0.1"}) == f"{base}-3"
    assert RETRAIN_LABEL_PREFIX == "retrain-"


# -- triggers -------------------------------------------------------------------------------


def _snapshot(champion: str | None, *events: Event) -> MonitoringSnapshot:
    return bare_snapshot(champion, list(events), generated_at=WHEN, feature_set_version=3)


def _event(kind: str, version: str = "0.1") -> Event:
    return Event(kind=kind, severity="warning", subject=version)  # type: ignore[arg-type]


def _by_name(triggers: list[Trigger]) -> dict[str, Trigger]:
    return {t.name: t for t in triggers}


def test_drift_and_degradation_of_the_champion_are_triggers() -> None:
    snapshot = _snapshot("0.1", _event("drift"), _event("degradation"), _event("coverage"))
    found = _by_name(evaluation_triggers(snapshot, "0.1", on_drift=True, on_degradation=True))
    assert found["drift"].met
    assert found["degradation"].met
    assert "ev1" in found["drift"].reason


def test_a_quiet_evaluation_meets_no_trigger() -> None:
    found = _by_name(
        evaluation_triggers(
            _snapshot("0.1", _event("coverage")), "0.1", on_drift=True, on_degradation=True
        )
    )
    assert not found["drift"].met
    assert not found["degradation"].met
    assert "found no drift" in found["drift"].reason


def test_findings_about_another_champion_or_none_do_not_count_and_say_why() -> None:
    other = _snapshot("0.0", _event("drift"), _event("degradation"))
    found = _by_name(evaluation_triggers(other, "0.1", on_drift=True, on_degradation=True))
    assert not found["drift"].met
    assert not found["degradation"].met
    assert "is about 0.0, not the champion 0.1" in found["drift"].reason

    missing = _by_name(
        evaluation_triggers(
            None, "0.1", on_drift=True, on_degradation=True, snapshot_problem="never evaluated"
        )
    )
    assert not missing["drift"].met
    assert missing["drift"].reason == "not assessed: never evaluated"


def test_a_trigger_turned_off_is_not_met_whatever_the_evaluation_found() -> None:
    snapshot = _snapshot("0.1", _event("drift"), _event("degradation"))
    found = _by_name(evaluation_triggers(snapshot, "0.1", on_drift=False, on_degradation=True))
    assert not found["drift"].met
    assert "retraining.on_drift: false" in found["drift"].reason
    assert found["degradation"].met


def test_new_tests_trigger_at_the_threshold() -> None:
    assert new_tests_trigger(30, 30, "0.1").met
    below = new_tests_trigger(29, 30, "0.1")
    assert not below.met
    assert "29 new labelled test(s) since 0.1's training, fewer than" in below.reason


def test_assessment_trains_on_a_met_trigger_and_not_on_none() -> None:
    quiet = [new_tests_trigger(2, 30, "0.1")]
    verdict = assess_triggers(quiet, force=False)
    assert not verdict.train
    assert verdict.reason.startswith("no retraining trigger is met: new_tests: 2 new")
    met = [new_tests_trigger(40, 30, "0.1")]
    assert assess_triggers(met, force=False).train
    assert assess_triggers(met, force=False).met == ["new_tests"]


def test_force_trains_regardless_and_is_listed_first() -> None:
    verdict = assess_triggers([new_tests_trigger(0, 30, "0.1")], force=True, already_trained="x")
    assert verdict.train
    assert verdict.met == ["force"]
    assert verdict.triggers[0].name == "force"


def test_a_met_trigger_waits_when_this_data_already_gave_a_challenger() -> None:
    met = [new_tests_trigger(40, 30, "0.1")]
    verdict = assess_triggers(met, force=False, already_trained="challenger retrain-1 (run r)")
    assert not verdict.train
    assert "challenger retrain-1 (run r) was already trained" in verdict.reason
    assert verdict.met == ["new_tests"]  # the finding is kept, only the action waits


# -- the window and the holdout -------------------------------------------------------------


def _tests_frame(tests: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Rows of (test id, date, replicates)."""
    rows = [(test, day) for test, day, replicates in tests for _ in range(replicates)]
    return pd.DataFrame(
        {
            "test_id": [r[0] for r in rows],
            "Fecha": pd.to_datetime([r[1] for r in rows]),
            "Permeabilidad": np.linspace(1.0, 2.0, len(rows)),
        }
    )


def test_the_window_leaves_out_a_test_the_champion_saw_a_replicate_of() -> None:
    frame = _tests_frame(
        [("T-a", "2025-01-01", 2), ("T-b", "2025-01-02", 2), ("T-c", "2025-01-03", 1)]
    )
    unseen = np.array([True, False, True, True, True])  # T-a's second replicate was trained on
    window = new_tests_window(frame, unseen)
    assert sorted(set(window["test_id"])) == ["T-b", "T-c"]
    assert len(window) == 3
    assert count_tests(window) == 2
    assert count_tests(window.iloc[0:0]) == 0
    with pytest.raises(InvalidInputError, match="aligned"):
        new_tests_window(frame, unseen[:-1])
    with pytest.raises(InvalidInputError, match="test_id"):
        new_tests_window(frame.drop(columns=["test_id"]), unseen)


def test_the_holdout_is_the_latest_whole_tests() -> None:
    days = [f"2025-01-{d:02d}" for d in range(1, 11)]
    # Ten tests of three replicates, listed out of date order.
    frame = _tests_frame([(f"T-{d}", day, 3) for d, day in reversed(list(enumerate(days)))])
    holdout = choose_holdout(frame, fraction=0.3, min_tests=2)
    assert holdout.problem is None
    assert holdout.tests == ("T-7", "T-8", "T-9")
    assert holdout.learn_tests == 7
    assert (holdout.window_tests, holdout.window_rows) == (10, 30)
    assert holdout.first == "2025-01-08T00:00:00"
    assert holdout.last == "2025-01-10T00:00:00"
    held = frame["test_id"].isin(holdout.tests)
    assert held.sum() == 9  # every replicate of a held-out test, none of the others
    assert frame.loc[held, "Fecha"].min() > frame.loc[~held, "Fecha"].max()


def test_the_holdout_takes_at_least_min_tests_and_leaves_one_to_learn() -> None:
    frame = _tests_frame([(f"T-{d}", f"2025-02-{d + 1:02d}", 1) for d in range(6)])
    assert len(choose_holdout(frame, fraction=0.1, min_tests=4).tests) == 4
    widest = choose_holdout(frame, fraction=0.99, min_tests=2)
    assert len(widest.tests) == 5
    assert widest.learn_tests == 1


def test_tests_on_the_same_day_are_ordered_by_id_and_undated_ones_are_oldest() -> None:
    frame = _tests_frame([("T-b", "2025-01-05", 1), ("T-a", "2025-01-05", 1), ("T-z", "", 1)])
    frame.loc[2, "Fecha"] = pd.NaT
    assert choose_holdout(frame, fraction=0.3, min_tests=1).tests == ("T-b",)
    assert choose_holdout(frame, fraction=0.6, min_tests=2).tests == ("T-a", "T-b")


def test_too_few_tests_for_a_holdout_is_a_stated_problem() -> None:
    frame = _tests_frame([("T-1", "2025-01-01", 4), ("T-2", "2025-01-02", 4)])
    holdout = choose_holdout(frame, fraction=0.5, min_tests=2)
    assert holdout.tests == ()
    assert holdout.problem is not None
    assert "2 new test(s)" in holdout.problem
    assert "retraining.min_holdout_tests" in holdout.problem
    assert choose_holdout(frame.iloc[0:0], fraction=0.5, min_tests=1).problem is not None
    with pytest.raises(InvalidInputError, match="fraction"):
        choose_holdout(frame, fraction=1.0, min_tests=1)


# -- judging per test -------------------------------------------------------------------------


def test_each_test_counts_once_at_the_geometric_mean_of_its_replicates() -> None:
    scored = scored_table(
        measured=[2.0, 8.0, 10.0, 5.0],
        predicted=[4.0, 4.0, 10.0, 1.0],
        lower=[1.0, 4.0, 5.0, 0.5],
        upper=[4.0, 16.0, 20.0, 2.0],
        decision=["approve", "approve", "reject", "retest"],
        test=["T-a", "T-a", "T-b", "T-b"],
    )
    tests = per_test_scores(scored)
    assert list(tests["test"]) == ["T-a", "T-b"]
    a, b = tests.iloc[0], tests.iloc[1]
    assert a["measured"] == pytest.approx(4.0)  # sqrt(2 * 8)
    assert a["predicted"] == pytest.approx(4.0)
    assert (a["lower"], a["upper"]) == (pytest.approx(2.0), pytest.approx(8.0))
    assert a["decision"] == "approve"  # the replicates agree
    assert b["decision"] == ""  # they disagree: the test has no decision
    assert b["measured"] == pytest.approx(np.sqrt(50.0))
    metrics = evaluate_scored(tests)
    assert metrics.n == 2
    assert metrics.metrics["mae"] == pytest.approx(abs(np.sqrt(50.0) - np.sqrt(10.0)) / 2)


def test_a_test_of_many_replicates_weighs_as_much_as_a_single_one() -> None:
    many = scored_table(
        measured=[10.0] * 9 + [10.0],
        predicted=[11.0] * 9 + [20.0],
        lower=[1.0] * 10,
        upper=[100.0] * 10,
        test=["T-big"] * 9 + ["T-one"],
    )
    by_row = evaluate_scored(many).metrics["mae"]
    by_test = evaluate_scored(per_test_scores(many)).metrics["mae"]
    assert by_row == pytest.approx((9 * 1.0 + 10.0) / 10)
    assert by_test == pytest.approx((1.0 + 10.0) / 2)


def test_unusable_rows_are_dropped_before_a_test_is_made_one_row() -> None:
    scored = scored_table(
        measured=[4.0, -1.0, 9.0],
        predicted=[4.0, 4.0, 9.0],
        lower=[1.0, 1.0, 1.0],
        upper=[10.0, 10.0, 10.0],
        test=["T-a", "T-a", "T-b"],
    )
    tests = per_test_scores(scored)
    assert list(tests["measured"]) == [pytest.approx(4.0), pytest.approx(9.0)]
    with pytest.raises(InvalidInputError, match="'test'"):
        per_test_scores(scored.drop(columns=["test"]))


# -- telling people -------------------------------------------------------------------------


def _metrics(measured: list[float], predicted: list[float]) -> object:
    n = len(measured)
    return evaluate_scored(
        scored_table(measured=measured, predicted=predicted, lower=[0.1] * n, upper=[100.0] * n)
    )


def test_a_winner_awaiting_approval_carries_the_comparison() -> None:
    scores = {
        "0.1": _metrics([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]),
        "retrain-x": _metrics([1.0, 2.0, 3.0], [1.1, 2.1, 3.1]),
    }
    comparison = compare_versions(scores, "0.1", margin=0.05)  # type: ignore[arg-type]
    event = approval_event(comparison, tests=3, run_id="run1", experiment_id="7")
    assert event.kind == "approval_needed"
    assert event.subject == "retrain-x"
    assert event.figures["champion"] == "0.1"
    assert event.figures["metric"] == "mae"
    assert event.figures["champion_value"] == pytest.approx(1.0)
    assert event.figures["challenger_value"] == pytest.approx(0.1)
    assert event.figures["improvement"] == pytest.approx(0.9)
    assert event.figures["tests"] == 3
    assert event.figures["reason"] == comparison.reason
    assert (event.run_id, event.experiment_id) == ("run1", "7")
    lost = compare_versions(scores, "0.1", margin=0.95)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="won"):
        approval_event(lost, tests=3)
