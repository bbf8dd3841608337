"""The seed's loop closed: evaluation tells people, feeds retraining, and checks the instrument.

One home, driven through the CLI as a lab would run it, with notification channels that are
real servers started here (SMTP with STARTTLS and login, an HTTP webhook) and two that are not
there (a port where nothing listens, a socket that accepts and never answers):

1. acquire a year of lab results (with a steady reference film), train a linear champion and
   promote it;
2. a shifted batch arrives: every product reads three times its old WVTR (a process change)
   and the reference film reads far above its limits;
3. the scheduled evaluation (``schedule --once``) flags drift and degradation and the
   reference film; the e-mail and the webhook receive them, in Spanish; the job did not wait
   for the channels that do not answer;
4. ``retrain`` trains a challenger with ``auto`` on the new feature set and judges it against
   the champion on the latest tests: with ``auto_promote`` and a margin it cannot reach, the
   champion stays; with a reachable margin, the challenger becomes the champion and the
   channels hear of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from permeability.cli.main import app
from permeability.io.exports import write_lab_export
from permeability.io.notifications.dispatcher import stop_dispatchers
from permeability.io.notifications.history import History
from permeability.io.registry import Registry
from permeability.settings import Settings
from permeability.synthetic.export import generate_lab_export
from tests.builders import reference_export_rows
from tests.e2e.cli_json import cli_json
from tests.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Certificates,
    Mailbox,
    Webhook,
    black_hole,
    eventually,
    make_certificates,
    smtp_server,
    webhook_server,
)
from tests.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRST_ROWS: Final = 1200
SHIFTED_ROWS: Final = 700
STEADY: Final = (2.40, 2.43, 2.38, 2.41, 2.39, 2.44, 2.37, 2.40, 2.42, 2.38)
NON_PRODUCT: Final = "CALIB|NIST|MATERIAL|ESTUDIO|REPORT|ANALISIS|MUESTRA"


def _config(
    certificates: Certificates,
    smtp_port: int,
    hook: Webhook,
    silent: int,
    closed: int,
    margin: float,
) -> dict[str, Any]:
    return {
        "notifications": {
            "language": "es",
            "exit_wait_seconds": 0,
            "channels": [
                {
                    "name": "lab-mail",
                    "kind": "email",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "starttls": True,
                    "username_env": "LAB_SMTP_USER",
                    "password_env": "LAB_SMTP_PASSWORD",
                    "ca_file": str(certificates.ca_file),
                    "sender": "lab@example.org",
                    "to": ["qa@example.org"],
                    "events": ["drift", "degradation", "reference_out_of_control", "promoted"],
                },
                {"name": "hook", "kind": "webhook", "format": "json", "url": hook.url},
                {
                    "name": "teams-silent",
                    "kind": "webhook",
                    "format": "teams",
                    "url": f"http://127.0.0.1:{silent}/webhook",
                    "min_severity": "warning",
                },
                {
                    "name": "slack-down",
                    "kind": "webhook",
                    "format": "slack",
                    "url": f"http://127.0.0.1:{closed}/services/x",
                },
            ],
        },
        "schedule": {
            "jobs": [{"name": "nightly-evaluation", "kind": "evaluate", "cron": "0 3 * * *"}]
        },
        "retraining": {"auto_promote": True, "margin": margin, "min_new_tests": 30},
        "control_chart": {"baseline_points": 8, "min_points": 6},
    }


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[tuple[Certificates, int, Mailbox, Webhook, int, int]]:
    certificates = make_certificates(tmp_path / "certificates")
    with (
        smtp_server(certificates) as (smtp_port, mailbox),
        webhook_server() as hook,
        black_hole() as silent,
    ):
        try:
            yield certificates, smtp_port, mailbox, hook, silent, free_port()
        finally:
            stop_dispatchers(timeout=1.0)


def _products(frame: pd.DataFrame) -> pd.Series:
    return ~frame["Estructura"].astype(str).str.contains(NON_PRODUCT)


def _hook_kinds(hook: Webhook) -> list[str]:
    return [str(r.body["event"]["kind"]) for r in list(hook.requests)]


def _mail_subjects(mailbox: Mailbox) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in list(mailbox.messages)]


def test_a_shifted_batch_is_flagged_told_retrained_and_promoted_only_by_its_margin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    channels: tuple[Certificates, int, Mailbox, Webhook, int, int],
) -> None:
    certificates, smtp_port, mailbox, hook, silent, closed = channels
    config_file = tmp_path / "permeability.yaml"

    def configure(margin: float) -> None:
        config = _config(certificates, smtp_port, hook, silent, closed, margin)
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    configure(margin=0.99)
    home = tmp_path / "storage"
    monkeypatch.setenv("PERMEABILITY_HOME", str(home))
    monkeypatch.setenv("PERMEABILITY_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("LAB_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("LAB_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = Settings(home=home)

    # 1. A year of results with a steady reference film; a linear champion.
    first = generate_lab_export(FIRST_ROWS, 31, messy=False)
    steady = reference_export_rows(
        first, STEADY, referencia="NIST-RED-7", first_id=90_001, start=date(2024, 2, 1)
    )
    first_file = write_lab_export(pd.concat([first, steady], ignore_index=True), tmp_path / "a.csv")
    cli_json("acquire", "--source", str(first_file))
    cli_json("train", "--model", "Ridge", "--version", "1.0", "--test-size", "0.25")
    cli_json("promote", "1.0")
    assert eventually(lambda: "promoted" in _hook_kinds(hook))

    # 2. The process changed: every product reads three times its WVTR; the reference jumps.
    shifted = generate_lab_export(
        SHIFTED_ROWS, 32, messy=False, start_id=FIRST_ROWS + 1, start_date=date(2026, 6, 1)
    )
    products = _products(shifted)
    shifted.loc[products, "Permeabilidad"] = shifted.loc[products, "Permeabilidad"] * 3.0
    jump = reference_export_rows(
        first, (4.0,), referencia="NIST-RED-7", first_id=90_101, start=date(2028, 6, 1)
    )
    shifted_file = write_lab_export(
        pd.concat([shifted, jump], ignore_index=True), tmp_path / "b.csv"
    )
    cli_json("acquire", "--source", str(shifted_file))

    # 3. The scheduled evaluation flags it and tells the channels, without waiting for them.
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["schedule", "--once"])
    evaluation_seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    silent_states = _states(settings, "teams-silent")
    assert silent_states
    assert all(state == "queued" for state in silent_states), silent_states
    for kind in ("drift", "degradation", "reference_out_of_control"):
        assert eventually(partial(_told, hook, kind)), (kind, _hook_kinds(hook))
    assert eventually(lambda: len(mailbox.messages) >= 4)  # promoted + the three findings
    subjects = _mail_subjects(mailbox)
    assert any("Deriva" in s for s in subjects), subjects
    assert any("NIST-ROJA" in s and "fuera de control" in s for s in subjects), subjects
    drift = next(r.body for r in hook.requests if r.body["event"]["kind"] == "drift")
    assert drift["event"]["subject"] == "1.0"
    assert drift["event"]["run_id"]
    assert mailbox.logins  # a login, and every message over STARTTLS
    assert all(mailbox.encrypted)
    # The channel where nothing listens was tried, failed, and is being retried with backoff.
    assert eventually(
        lambda: bool({"retrying", "failed"} & set(_states(settings, "slack-down"))), timeout=20
    )

    # 4a. A challenger that cannot win by 99 % is trained, judged and not promoted.
    kept = cli_json("retrain")
    assert kept["decision"] == "kept", kept["reason"]
    assert str(kept["challenger"]).startswith("retrain-")
    assert kept["comparison"]["challenger_wins"] is False
    assert _champion(settings) == "1.0"
    assert len(kept["holdout"]["tests"]) >= 5

    # 4b. With a margin it can reach, a challenger becomes the champion. (The same feature set
    # against the same champion gives the same challenger, so retrain waits for new results
    # unless forced: the lab lowered its margin and asks for a new judgement.)
    configure(margin=0.05)
    waiting = cli_json("retrain")
    assert waiting["decision"] == "no_trigger", waiting["reason"]
    assert "already trained" in waiting["reason"]
    promoted = cli_json("retrain", "--force")
    assert promoted["decision"] == "promoted", promoted["reason"]
    challenger = str(promoted["challenger"])
    assert challenger != kept["challenger"]
    assert challenger.startswith("retrain-")
    assert promoted["comparison"]["challenger_wins"] is True
    assert promoted["comparison"]["improvement"] >= 0.05
    assert _champion(settings) == challenger
    assert eventually(
        lambda: any(
            r.body["event"]["kind"] == "promoted" and r.body["event"]["subject"] == challenger
            for r in list(hook.requests)
        )
    )
    # The evaluation, long as it is, is not the channels' waiting: a silent channel's timeout
    # alone would be longer than the whole job if it had waited.
    assert evaluation_seconds < 120, evaluation_seconds
    json.dumps(promoted)  # the report is plain JSON


def _told(hook: Webhook, kind: str) -> bool:
    return kind in _hook_kinds(hook)


def _states(settings: Settings, channel: str) -> list[str]:
    """Each recorded event's latest delivery state on ``channel``."""
    states: list[str] = []
    for entry in History(settings.paths.notifications).entries():
        states.extend(d.status for d in entry.deliveries if d.channel == channel)
    return states


def _champion(settings: Settings) -> str | None:
    found = Registry.from_settings(settings).champion()
    return None if found is None else found.label
