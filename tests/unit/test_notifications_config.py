"""The notifications section: the issue's example loads, and every mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from permeability.config import load_config
from permeability.errors import InvalidInputError
from permeability.monitoring.events import EVENT_KINDS
from permeability.notifications_config import (
    EmailChannel,
    NotificationParams,
    RetryPolicy,
    WebhookChannel,
)

EXAMPLE = """
notifications:
  language: es
  channels:
    - {name: lab-mail, kind: email, host: smtp.lab.local, port: 587, starttls: true,
       sender: lab@example.org, to: [qa@example.org], events: [drift, degradation, job_failed]}
    - {name: teams, kind: webhook, format: teams, url_env: TEAMS_WEBHOOK_URL, min_severity: warning}
"""


def load(tmp_path: Path, text: str) -> NotificationParams:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path).notifications


def test_the_issue_example_loads(tmp_path: Path) -> None:
    params = load(tmp_path, EXAMPLE)
    mail, teams = params.channels
    assert isinstance(mail, EmailChannel)
    assert isinstance(teams, WebhookChannel)
    assert mail.events == ("drift", "degradation", "job_failed")
    assert mail.min_severity == "info"
    assert mail.starttls
    assert not mail.ssl
    assert teams.events == EVENT_KINDS
    assert teams.min_severity == "warning"
    assert teams.url is None
    assert params.language == "es"


def test_defaults_have_no_channel_and_spanish() -> None:
    params = load_config(None).notifications
    assert params.channels == ()
    assert params.language == "es"
    assert params.repeat_after_hours > 24  # a nightly run does not repeat itself
    assert 0 < params.exit_wait_seconds <= 10


def channel(**fields: object) -> str:
    inner = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return f"notifications:\n  channels:\n    - {{{inner}}}\n"


MAIL = {
    "name": "m",
    "kind": "email",
    "host": "h",
    "sender": "lab@example.org",
    "to": "[qa@example.org]",
}
HOOK = {"name": "w", "kind": "webhook", "url": "'https://hooks.example.org/x'"}


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (channel(**HOOK, events="[drift, rain]"), "channels.0.webhook.events.1", "Input should be"),
        (
            channel(**{**HOOK, "url_env": "HOOK_URL"}),
            "channels.0.webhook",
            "exactly one of url and url_env",
        ),
        (channel(name="w", kind="webhook"), "channels.0.webhook", "exactly one of url and url_env"),
        (
            "notifications:\n  channels:\n"
            "    - {name: a, kind: webhook, url: 'http://x.org'}\n"
            "    - {name: a, kind: webhook, url: 'http://y.org'}\n",
            "notifications.channels",
            "unique, repeated: a",
        ),
        (
            channel(**{**MAIL, "to": "[qa.example.org]"}),
            "channels.0.email.to",
            "not an e-mail address",
        ),
        (channel(**{**MAIL, "to": "[]"}), "channels.0.email.to", "at least 1"),
        (
            channel(**{**MAIL, "sender": "'lab @example.org'"}),
            "channels.0.email.sender",
            "not an e-mail",
        ),
        (channel(**HOOK, events="[drift, drift]"), "channels.0.webhook.events", "more than once"),
        (
            channel(**HOOK, min_severity="urgent"),
            "channels.0.webhook.min_severity",
            "Input should be",
        ),
        (
            channel(**{**HOOK, "url": "'ftp://x.org/'"}),
            "channels.0.webhook.url",
            "http:// or https://",
        ),
        (channel(**HOOK, format="discord"), "channels.0.webhook.format", "Input should be"),
        (channel(**MAIL, ssl="true"), "channels.0.email", "ssl and starttls exclude each other"),
        (channel(**MAIL, username_env="U"), "channels.0.email", "go together"),
        (
            channel(**MAIL, starttls="false", username_env="U", password_env="P"),
            "channels.0.email",
            "password would travel in clear",
        ),
        (channel(**MAIL, password="hunter2"), "channels.0.email.password", "Extra inputs"),
        (channel(**MAIL, password_env="'not a name'", username_env="U"), "password_env", "pattern"),
        (channel(**{**MAIL, "name": "'a/b'"}), "channels.0.email.name", "pattern"),
        (channel(name="p", kind="pager"), "notifications.channels.0", "'email', 'webhook'"),
        ("notifications:\n  language: fr\n", "notifications.language", "'es' or 'en'"),
        ("notifications:\n  retry: {attempts: 0}\n", "notifications.retry.attempts", "greater"),
        ("notifications:\n  exit_wait_seconds: -1\n", "notifications.exit_wait_seconds", "greater"),
    ],
)
def test_a_mistake_names_its_field(tmp_path: Path, text: str, field: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert field in message
    assert problem in message


def test_implicit_tls_and_a_login_from_the_environment(tmp_path: Path) -> None:
    params = load(
        tmp_path,
        channel(**MAIL, port=465, ssl="true", starttls="false", username_env="SMTP_USER",
                password_env="SMTP_PASSWORD"),
    )  # fmt: skip
    (mail,) = params.channels
    assert isinstance(mail, EmailChannel)
    assert (mail.port, mail.ssl, mail.starttls) == (465, True, False)
    assert (mail.username_env, mail.password_env) == ("SMTP_USER", "SMTP_PASSWORD")


def test_backoff_grows_by_its_factor() -> None:
    policy = RetryPolicy(first_backoff_seconds=2.0, factor=3.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 54.0]
