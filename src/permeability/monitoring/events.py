"""What the loop tells people: one :class:`Event` per finding, whoever found it.

Evaluation (drift, degradation, coverage out of its band, a new structure), the control chart
(a reference film out of control), promotion (a new champion), retraining (a challenger waiting
for approval) and the scheduler (a job that failed) each turn what they found into events; the
notifier (:mod:`permeability.io.notifications`) words them in the configured language
(:mod:`permeability.monitoring.messages`) and sends them on the channels that asked for their
kind and severity. An event carries figures, not prose: the wording is the messages' job, so a
message in Spanish and one in English say the same thing.

Pure: no delivery, no storage, no tracking.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["info", "warning", "critical"]
#: Severities in increasing order: a channel's ``min_severity`` lets through its own and above.
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)

EventKind = Literal[
    "drift",
    "degradation",
    "coverage",
    "job_failed",
    "new_structure",
    "promoted",
    "reference_out_of_control",
    "approval_needed",
    "test",
]
#: Every event kind, in the order the documentation lists them.
EVENT_KINDS: Final[tuple[EventKind, ...]] = get_args(EventKind)

Figure = float | int | str | bool | None


def severity_rank(severity: Severity) -> int:
    """0 for info, 1 for warning, 2 for critical."""
    return SEVERITIES.index(severity)


class Event(BaseModel):
    """One finding worth telling someone.

    ``subject`` names what it is about (a version label, a job name, a reference film, a
    structure); ``figures`` hold the numbers the message shows (keys per kind, documented in
    docs/monitoring.md); ``run_id`` is the MLflow run the message links to (the evaluation,
    training, promotion or retraining run that found it), ``experiment_id`` its experiment.
    ``key`` identifies the finding so that the same one is not sent twice (an evaluation run
    twice over the same data finds the same drift under a new run id, hence no run id in it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EventKind
    severity: Severity
    subject: str = Field(min_length=1, max_length=200)
    figures: dict[str, Figure] = Field(default_factory=dict)
    run_id: str | None = None
    experiment_id: str | None = None
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    key: str = ""

    def model_post_init(self, _context: object) -> None:
        if not self.key:
            digest = hashlib.sha256(
                repr((self.kind, self.subject, sorted(self.figures.items()))).encode()
            ).hexdigest()[:16]
            object.__setattr__(self, "key", f"{self.kind}:{digest}")

    def at_least(self, severity: Severity) -> bool:
        """Whether this event is as severe as ``severity`` or more."""
        return severity_rank(self.severity) >= severity_rank(severity)
