"""events.jsonl: appended lines folded into one entry per event, the repeat lookup, and a line
cut by a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from permeability.io.notifications.history import Delivered, History, Published
from permeability.monitoring.events import Event

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
DRIFT = Event(kind="drift", severity="warning", subject="1.3", key="drift:1.3:Grados_C")


def test_entries_fold_each_channels_latest_state(tmp_path: Path) -> None:
    history = History(tmp_path)
    first = Published(at=T0, event=DRIFT, channels=("mail", "teams"))
    quiet = Published(at=T0, event=DRIFT.model_copy(update={"key": "other"}), channels=())
    history.append(first)
    history.append(quiet)
    history.append(Delivered(id=first.id, channel="mail", at=T0, status="delivered", attempts=1))
    history.append(
        Delivered(
            id=first.id, channel="teams", at=T0, status="retrying", attempts=1, error="HTTP 503"
        )
    )
    history.append(
        Delivered(
            id=first.id, channel="teams", at=T0, status="failed", attempts=2, error="HTTP 404"
        )
    )

    entries = history.entries()
    assert [e.id for e in entries] == [first.id, quiet.id]
    states = {s.channel: (s.status, s.attempts, s.error) for s in entries[0].deliveries}
    assert states == {"mail": ("delivered", 1, None), "teams": ("failed", 2, "HTTP 404")}
    assert entries[1].deliveries == ()
    assert [e.id for e in history.entries(limit=1)] == [quiet.id]
    assert entries[0].event == DRIFT


def test_a_queued_channel_shows_as_queued_until_an_attempt_ends(tmp_path: Path) -> None:
    history = History(tmp_path)
    record = Published(at=T0, event=DRIFT, channels=("mail",))
    history.append(record)
    (entry,) = history.entries()
    assert [(s.channel, s.status, s.attempts) for s in entry.deliveries] == [("mail", "queued", 0)]


def test_last_sent_skips_repeats_and_other_keys(tmp_path: Path) -> None:
    history = History(tmp_path)
    sent = Published(at=T0, event=DRIFT, channels=("mail",))
    history.append(sent)
    history.append(
        Published(at=T0 + timedelta(days=1), event=DRIFT, channels=(), suppressed="repeat")
    )
    other = DRIFT.model_copy(update={"key": "drift:1.3:Porc_Humedad"})
    history.append(Published(at=T0 + timedelta(days=2), event=other, channels=("mail",)))

    last = history.last_sent(DRIFT.key)
    assert last is not None
    assert last.id == sent.id
    assert history.last_sent("never") is None


def test_a_line_cut_by_a_crash_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    history = History(tmp_path)
    history.append(Published(at=T0, event=DRIFT, channels=()))
    with history.path.open("a", encoding="utf-8") as handle:
        handle.write('{"type": "published", "id": "cut", "at": "2026-')
        handle.write("\n")
    history.append(Published(at=T0, event=DRIFT, channels=()))
    assert len(history.entries()) == 2


def test_no_file_is_no_history(tmp_path: Path) -> None:
    assert History(tmp_path / "none").entries() == []
