"""The outbox: deliveries kept on disk, claimed by one process at a time, requeued when their
claimant died."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from permeability.io.notifications.outbox import STALE_CLAIM_SECONDS, Delivery, Outbox
from permeability.monitoring.events import Event

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
EVENT = Event(kind="promoted", severity="info", subject="1.4")


def delivery(channel: str = "mail", seconds: int = 0) -> Delivery:
    at = T0 + timedelta(seconds=seconds)
    return Delivery(
        publication="p1", channel=channel, event=EVENT, enqueued_at=at, next_attempt_at=at
    )


def test_pending_deliveries_come_back_oldest_first_per_channel(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    later, earlier, other = delivery(seconds=5), delivery(seconds=1), delivery("teams")
    for d in (later, earlier, other):
        outbox.put(d)
    assert [d.id for d in outbox.pending("mail")] == [earlier.id, later.id]
    assert [d.id for d in outbox.pending("teams")] == [other.id]
    assert outbox.pending("nobody") == []
    assert outbox.count("mail") == 2


def test_a_delivery_is_claimed_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    d = delivery()
    outbox.put(d)
    claim = outbox.claim(d)
    assert claim is not None
    assert outbox.claim(d) is None
    assert outbox.pending("mail") == []
    assert outbox.count("mail") == 1  # still owed while claimed

    updated = d.model_copy(update={"attempts": 1, "last_error": "HTTP 503"})
    outbox.requeue(claim, updated)
    assert outbox.pending("mail") == [updated]

    again = outbox.claim(updated)
    assert again is not None
    outbox.remove(again)
    assert outbox.count("mail") == 0


def test_a_claim_of_a_dead_process_goes_back_to_the_queue(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    d = delivery()
    outbox.put(d)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    queued = outbox.root / "mail" / d.file_name
    queued.rename(queued.with_name(f"{queued.name}.claimed-{dead.stdout.strip()}"))
    assert outbox.pending("mail") == []

    assert outbox.recover_stale_claims("mail") == 1
    assert outbox.pending("mail") == [d]


def test_a_live_claim_stays_unless_it_is_too_old(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    d = delivery()
    outbox.put(d)
    claim = outbox.claim(d)
    assert claim is not None
    assert outbox.recover_stale_claims("mail") == 0

    old = claim.path.stat().st_mtime - STALE_CLAIM_SECONDS - 1
    os.utime(claim.path, (old, old))
    assert outbox.recover_stale_claims("mail") == 1
    assert outbox.pending("mail") == [d]


def test_an_unreadable_file_is_set_aside_not_lost(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(delivery())
    bad = outbox.root / "mail" / "20260101T000000000000-bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert len(outbox.pending("mail")) == 1
    assert not bad.exists()
    assert bad.with_name(bad.name + ".bad").exists()
