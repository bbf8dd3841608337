"""The retraining policy's rules: when to train a challenger, what it may learn, how it is judged.

The ``retrain`` job (:mod:`permeability.pipelines.retraining`) reads the state of the loop and
asks this module three questions, each answered with figures and a sentence:

1. **Should a challenger be trained?** (:func:`assess_triggers`) Yes when forced; when the
   latest evaluation of the *current* champion (the monitoring snapshot) flagged drift
   (``retraining.on_drift``) or degradation (``retraining.on_degradation``); or when at least
   ``retraining.min_new_tests`` new labelled tests arrived since the champion's training. A
   snapshot about another champion, or none, meets no evaluation trigger (the reason says so).
   A trigger is not acted on twice for the same data: when a challenger was already trained
   against this champion on this feature-set version, training again would fit the same model
   (trainings are deterministic), so the answer is no until new lab results arrive (or forced).
2. **What is the recent window, and which part judges?** (:func:`new_tests_window`,
   :func:`choose_holdout`) The window is the champion's *new tests*: product tests none of
   whose rows it trained on (:func:`~permeability.monitoring.windows.unseen_rows`; a test with
   one replicate seen is left out, so the champion is never judged on a twin of a row it
   learnt). The holdout is the latest ``holdout_fraction`` of those tests by test date (at least
   ``min_holdout_tests``), whole tests only; the challenger learns everything else, the earlier
   new tests included.
3. **Who wins?** Both versions score the holdout; :func:`per_test_scores` turns each version's
   scored rows into one row per test before
   :func:`~permeability.monitoring.evaluation.evaluate_scored`, so a test of four replicates
   does not count four times, and :func:`~permeability.monitoring.comparison.compare_versions`
   applies the margin rule.

**Version labels** of challengers are generated (:func:`generated_label`):
``retrain-YYYYMMDD-HHMMSS`` from the UTC time of the decision, then ``-2``, ``-3``, ... when that
label is taken (in the model store or the registry). The prefix ``retrain-`` is reserved: a
person's label starting with it is refused when a version is trained
(:func:`permeability.io.model_store.validate_new_label`), so a generated label never collides
with a person's, and a version's label says who made it.

Pure: no storage, no tracking, no configuration object (the job passes the values).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from permeability.errors import InvalidInputError
from permeability.monitoring.comparison import ComparisonOutcome
from permeability.monitoring.events import Event
from permeability.monitoring.scored_rows import SCORED_COLUMNS, TEST_COLUMN, usable_rows
from permeability.monitoring.snapshot import MonitoringSnapshot
from permeability.monitoring.windows import labelled_when
from permeability.record.schema import TEST_ID

#: Labels starting with this are the retrain job's alone (see the module docstring).
RETRAIN_LABEL_PREFIX: Final = "retrain-"
_LABEL_TIME_FORMAT: Final = "%Y%m%d-%H%M%S"

TriggerName = Literal["force", "drift", "degradation", "new_tests"]


def is_generated_label(label: str) -> bool:
    """Whether ``label`` is in the retrain job's reserved namespace."""
    return label.startswith(RETRAIN_LABEL_PREFIX)


def generated_label(now: datetime, taken: Collection[str]) -> str:
    """``retrain-YYYYMMDD-HHMMSS`` (UTC) for ``now``, with ``-2``, ``-3``... if taken."""
    stamp = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(UTC)
    base = f"{RETRAIN_LABEL_PREFIX}{stamp.strftime(_LABEL_TIME_FORMAT)}"
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}-{counter}", counter + 1
    return candidate


# -- 1. triggers ------------------------------------------------------------------------------


class Trigger(BaseModel):
    """One reason to retrain, whether it is met, and why (or why not)."""

    model_config = ConfigDict(frozen=True)

    name: TriggerName
    met: bool
    reason: str


class TriggerAssessment(BaseModel):
    """Every trigger looked at and the verdict: train a challenger or not, in one sentence."""

    model_config = ConfigDict(frozen=True)

    triggers: list[Trigger]
    train: bool
    reason: str

    @property
    def met(self) -> list[str]:
        return [t.name for t in self.triggers if t.met]


def evaluation_triggers(
    snapshot: MonitoringSnapshot | None,
    champion: str,
    *,
    on_drift: bool,
    on_degradation: bool,
    snapshot_problem: str | None = None,
) -> list[Trigger]:
    """The drift and degradation triggers, from the latest evaluation of the champion.

    Only a snapshot about ``champion`` counts: findings about a previous champion say nothing
    about the one serving now. ``snapshot_problem`` says why there is no snapshot.
    """
    missing = _snapshot_not_usable(snapshot, champion, snapshot_problem)
    drifted, degraded = False, False
    if missing is None and snapshot is not None:
        kinds = {event.kind for event in snapshot.events}
        drifted = (snapshot.drift is not None and snapshot.drift.drifted) or "drift" in kinds
        degraded = "degradation" in kinds
    where = f"evaluation {snapshot.evaluation_id}" if snapshot is not None else "evaluation"
    return [
        _finding("drift", on_drift, drifted, missing, f"{where} flagged drift of {champion}"),
        _finding(
            "degradation",
            on_degradation,
            degraded,
            missing,
            f"{where} found {champion}'s metric degraded",
        ),
    ]


def _snapshot_not_usable(
    snapshot: MonitoringSnapshot | None, champion: str, problem: str | None
) -> str | None:
    if snapshot is None:
        return problem or "no evaluation has been recorded"
    if snapshot.champion != champion:
        return (
            f"the latest evaluation ({snapshot.evaluation_id}) is about "
            f"{snapshot.champion or 'no champion'}, not the champion {champion}"
        )
    return None


def _finding(
    name: TriggerName, enabled: bool, found: bool, missing: str | None, sentence: str
) -> Trigger:
    if not enabled:
        return Trigger(name=name, met=False, reason=f"off (retraining.on_{name}: false)")
    if missing is not None:
        return Trigger(name=name, met=False, reason=f"not assessed: {missing}")
    if not found:
        return Trigger(name=name, met=False, reason=f"the latest evaluation found no {name}")
    return Trigger(name=name, met=True, reason=sentence)


def new_tests_trigger(new_tests: int, min_new_tests: int, champion: str) -> Trigger:
    """Met when at least ``min_new_tests`` labelled tests arrived since the champion's training."""
    met = new_tests >= min_new_tests
    relation = "at least" if met else "fewer than"
    return Trigger(
        name="new_tests",
        met=met,
        reason=f"{new_tests} new labelled test(s) since {champion}'s training, {relation} "
        f"retraining.min_new_tests={min_new_tests}",
    )


def assess_triggers(
    triggers: Sequence[Trigger], *, force: bool, already_trained: str | None = None
) -> TriggerAssessment:
    """The verdict on ``triggers``.

    ``force`` trains regardless. ``already_trained`` names a challenger (and its run) already
    trained against this champion on this feature-set version: retraining on the same data
    would fit the same model, so met triggers wait for new data.
    """
    listed = list(triggers)
    if force:
        listed.insert(0, Trigger(name="force", met=True, reason="forced by the request"))
        return TriggerAssessment(triggers=listed, train=True, reason="forced by the request")
    met = [t for t in listed if t.met]
    if not met:
        reason = "no retraining trigger is met: " + "; ".join(
            f"{t.name}: {t.reason}" for t in listed
        )
        return TriggerAssessment(triggers=listed, train=False, reason=reason)
    because = "; ".join(t.reason for t in met)
    if already_trained is not None:
        reason = (
            f"{because}; but {already_trained} was already trained on this feature-set version "
            "against this champion, and the same data would give the same model: waiting for "
            "new lab results (force to train anyway)"
        )
        return TriggerAssessment(triggers=listed, train=False, reason=reason)
    return TriggerAssessment(triggers=listed, train=True, reason=because)


# -- 2. the window and its holdout ------------------------------------------------------------


def _test_ids(frame: pd.DataFrame) -> pd.Series:
    if TEST_ID not in frame.columns:
        raise InvalidInputError(
            f"the labelled rows lack column '{TEST_ID}' (the test each replicate belongs to)"
        )
    return frame[TEST_ID].astype("str")


def new_tests_window(products: pd.DataFrame, unseen: NDArray[np.bool_]) -> pd.DataFrame:
    """The rows of the tests none of whose rows the champion trained on.

    ``products`` are the product rows of the current feature set, ``unseen`` (aligned with
    them) marks those the champion did not train on. A test with a replicate the champion saw
    is left out whole: scoring its twin would flatter the champion.
    """
    if len(unseen) != len(products):
        raise InvalidInputError(
            f"unseen has {len(unseen)} flags for {len(products)} rows; they must be aligned"
        )
    tests = _test_ids(products)
    seen_tests = set(tests[~np.asarray(unseen, dtype=bool)])
    keep = np.asarray(unseen, dtype=bool) & ~tests.isin(seen_tests).to_numpy(dtype=bool)
    return products.loc[keep].reset_index(drop=True)


def count_tests(frame: pd.DataFrame) -> int:
    """How many distinct tests the rows belong to."""
    return int(_test_ids(frame).nunique()) if len(frame) else 0


class Holdout(BaseModel):
    """How the recent window is split: the tests both versions are judged on, and the rest.

    ``problem`` is set (and ``tests`` empty) when there are too few tests for a comparison.
    """

    model_config = ConfigDict(frozen=True)

    window_rows: int
    window_tests: int
    tests: tuple[str, ...]
    learn_tests: int
    first: str | None
    last: str | None
    problem: str | None


def dated_tests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per test: its id and its date (earliest of its rows, test date else load
    time), oldest first; undated tests count as oldest; ties broken by id, so the order is
    deterministic."""
    when = labelled_when(frame).to_numpy()
    dated = pd.DataFrame({"test": _test_ids(frame).to_numpy(dtype=object), "when": when})
    per_test = dated.groupby("test", sort=False)["when"].min().reset_index()
    return per_test.sort_values(["when", "test"], na_position="first", kind="stable").reset_index(
        drop=True
    )


def choose_holdout(window: pd.DataFrame, *, fraction: float, min_tests: int) -> Holdout:
    """The latest ``fraction`` of the window's tests by date (at least ``min_tests``), whole.

    At least one new test must remain for the challenger to learn from; with fewer than
    ``min_tests + 1`` tests there is no comparison worth making and ``problem`` says so.
    """
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError(f"holdout fraction must be in (0, 1), got {fraction}")
    if min_tests < 1:
        raise InvalidInputError(f"min_tests must be at least 1, got {min_tests}")
    ordered = dated_tests(window) if len(window) else pd.DataFrame({"test": [], "when": []})
    n = len(ordered)
    if n < min_tests + 1:
        return Holdout(
            window_rows=len(window),
            window_tests=n,
            tests=(),
            learn_tests=n,
            first=None,
            last=None,
            problem=f"{n} new test(s): judging a challenger needs at least {min_tests} "
            f"(retraining.min_holdout_tests) plus one to learn from",
        )
    size = min(max(min_tests, math.ceil(fraction * n)), n - 1)
    held = ordered.iloc[n - size :]
    stamps = pd.to_datetime(held["when"], errors="coerce").dropna()
    return Holdout(
        window_rows=len(window),
        window_tests=n,
        tests=tuple(str(t) for t in held["test"]),
        learn_tests=n - size,
        first=stamps.min().isoformat() if len(stamps) else None,
        last=stamps.max().isoformat() if len(stamps) else None,
        problem=None,
    )


# -- 3. judging on tests, not rows -----------------------------------------------------------


def per_test_scores(scored: pd.DataFrame) -> pd.DataFrame:
    """Scored rows (:data:`SCORED_COLUMNS` plus :data:`TEST_COLUMN`) made one row per test.

    Why: a test's replicates are one film under one set of conditions, so they are not
    independent evidence; a test of four replicates would otherwise weigh four times one of a
    single replicate. The test's result is what the lab reports, the geometric mean of its
    replicates (WVTR is judged in log space), and so are its guide value and interval bounds.
    The interval is a replicate's, so averaging makes coverage a little generous; both versions
    are judged the same way, and with replicates a few percent apart the effect is small next to
    model error. A decision counts when its replicates agree (otherwise the test has none);
    ``when`` is the test's earliest; ``Muestra``, structure and limit are the first given.
    Unusable rows (:func:`~permeability.monitoring.scored_rows.usable_rows`) are left out first.
    """
    rows = usable_rows(scored)
    if TEST_COLUMN not in rows.columns:
        raise InvalidInputError(f"scored rows lack column '{TEST_COLUMN}' (the test of each row)")
    if rows.empty:
        return rows.loc[:, [*SCORED_COLUMNS, TEST_COLUMN]]
    with np.errstate(divide="ignore"):
        logs = pd.DataFrame(
            {
                column: np.log(rows[column].to_numpy(dtype=np.float64))
                for column in ("measured", "predicted", "lower", "upper")
            }
        )
    logs[TEST_COLUMN] = rows[TEST_COLUMN].astype(str).to_numpy(dtype=object)
    grouped = rows.assign(**{TEST_COLUMN: logs[TEST_COLUMN]}).groupby(TEST_COLUMN, sort=True)
    means = np.exp(logs.groupby(TEST_COLUMN, sort=True).mean())
    decisions = grouped["decision"].agg(_agreed_decision)
    first = grouped[[c for c in SCORED_COLUMNS if c not in _AGGREGATED]].first()
    result = first.assign(
        measured=means["measured"],
        predicted=means["predicted"],
        lower=means["lower"],
        upper=means["upper"],
        level=grouped["level"].mean(),
        p_exceed=grouped["p_exceed"].mean(),
        decision=decisions,
        when=grouped["when"].min(),
    ).reset_index()
    return result.loc[:, [*SCORED_COLUMNS, TEST_COLUMN]]


#: Columns :func:`per_test_scores` computes rather than takes from a test's first row.
_AGGREGATED: Final = frozenset(
    {"measured", "predicted", "lower", "upper", "level", "p_exceed", "decision", "when"}
)


def _agreed_decision(values: pd.Series) -> object:
    distinct = set(values.astype(object).where(values.notna(), "").astype(str))
    return distinct.pop() if len(distinct) == 1 else ""


# -- telling people ---------------------------------------------------------------------------


def approval_event(
    comparison: ComparisonOutcome,
    *,
    tests: int,
    run_id: str | None = None,
    experiment_id: str | None = None,
) -> Event:
    """The ``approval_needed`` event of a challenger that won but may not promote itself
    (``retraining.auto_promote`` false): the figures a person needs to decide."""
    challenger, champion = comparison.best_challenger, comparison.champion
    if not comparison.challenger_wins or challenger is None or champion is None:
        raise InvalidInputError("only a challenger that won its comparison awaits approval")
    values = {c.version: c.value for c in comparison.contenders}
    return Event(
        kind="approval_needed",
        severity="warning",
        subject=challenger,
        figures={
            "challenger": challenger,
            "champion": champion,
            "metric": comparison.metric,
            "challenger_value": round(float(values[challenger]), 6),
            "champion_value": round(float(values[champion]), 6),
            "improvement": round(float(comparison.improvement or 0.0), 6),
            "tests": tests,
            "reason": comparison.reason,
        },
        run_id=run_id,
        experiment_id=experiment_id,
        # One challenger needs one approval, however often the message is retried.
        key=f"approval_needed:{challenger}",
    )
