"""E-mail through a real SMTP server (aiosmtpd) that requires STARTTLS and a login over it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from permeability.io.notifications.delivery import DeliveryError
from permeability.io.notifications.links import Links
from permeability.io.notifications.sending import deliver
from permeability.io.notifications.smtp import send_email
from permeability.monitoring.events import Event
from permeability.monitoring.messages import render
from permeability.notifications_config import EmailChannel
from tests.notification_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Certificates,
    black_hole,
    free_port,
    smtp_server,
)

LOGIN = {"LAB_SMTP_USER": SMTP_USER, "LAB_SMTP_PASSWORD": SMTP_PASSWORD}
LINKS = Links(mlflow_ui="http://mlflow.lab:5000", page="http://lab-server:8001/")
DRIFT = Event(
    kind="drift",
    severity="warning",
    subject="1.3",
    figures={"version": "1.3", "features": "Grados_C", "rows": 212, "reference_rows": 4810},
    run_id="8f2c1d9e",
)


def mail_channel(port: int, certificates: Certificates | None, **extra: object) -> EmailChannel:
    fields: dict[str, object] = {
        "name": "lab-mail",
        "kind": "email",
        "host": "127.0.0.1",
        "port": port,
        "sender": "lab@example.org",
        "to": ["qa@example.org", "jefe@example.org"],
        "username_env": "LAB_SMTP_USER",
        "password_env": "LAB_SMTP_PASSWORD",
        "ca_file": certificates.ca_file if certificates else None,
        "timeout": 5,
        **extra,
    }
    return EmailChannel.model_validate(fields)


def test_a_message_arrives_over_starttls_after_a_login(certificates: Certificates) -> None:
    with smtp_server(certificates) as (port, mailbox):
        deliver(mail_channel(port, certificates), DRIFT, "es", LINKS, environ=LOGIN)

    (mail,) = mailbox.messages
    assert mailbox.logins == [SMTP_USER]
    assert mailbox.encrypted == [True]
    assert mailbox.envelopes == [("lab@example.org", ["qa@example.org", "jefe@example.org"])]
    assert mail["Subject"] == "[permeability] Aviso: Deriva en los datos del modelo 1.3"
    assert mail["From"] == "lab@example.org"
    assert mail["Content-Language"] == "es"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "4810 filas" in text
    assert "- Variables con deriva: Grados_C" in text
    assert "http://mlflow.lab:5000/#/runs/8f2c1d9e" in text
    assert "Qué hacer:" in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<a href='http://lab-server:8001/'>Página del laboratorio</a>" in html
    assert "<th align='left'>Filas</th><td>212</td>" in html


def test_markup_in_figures_is_escaped_in_the_html_part(certificates: Certificates) -> None:
    event = Event(kind="job_failed", severity="critical", subject="nightly",
                  figures={"job": "nightly", "kind": "acquire", "error": "<script>x</script>"})  # fmt: skip
    with smtp_server(certificates) as (port, mailbox):
        deliver(mail_channel(port, certificates), event, "en", LINKS, environ=LOGIN)
    html = mailbox.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_a_wrong_password_is_permanent_and_never_shown(certificates: Certificates) -> None:
    wrong = {**LOGIN, "LAB_SMTP_PASSWORD": "not-the-Passw0rd"}
    with smtp_server(certificates) as (port, mailbox), pytest.raises(DeliveryError) as caught:
        deliver(mail_channel(port, certificates), DRIFT, "en", LINKS, environ=wrong)
    assert caught.value.permanent
    assert "login refused (535)" in str(caught.value)
    assert "not-the-Passw0rd" not in str(caught.value)
    assert mailbox.messages == []


def test_an_unset_password_variable_is_named(certificates: Certificates) -> None:
    with smtp_server(certificates) as (port, _), pytest.raises(DeliveryError) as caught:
        deliver(
            mail_channel(port, certificates), DRIFT, "en", LINKS, environ={"LAB_SMTP_USER": "x"}
        )
    assert caught.value.permanent
    assert str(caught.value) == "environment variable LAB_SMTP_PASSWORD (password_env) is not set"


def test_an_untrusted_certificate_is_refused(certificates: Certificates) -> None:
    with smtp_server(certificates) as (port, mailbox), pytest.raises(DeliveryError) as caught:
        deliver(mail_channel(port, None), DRIFT, "en", LINKS, environ=LOGIN)
    assert caught.value.permanent
    assert "certificate is not trusted" in str(caught.value)
    assert mailbox.messages == []


def test_a_server_that_wants_a_login_refuses_a_channel_without_one(
    certificates: Certificates,
) -> None:
    channel = mail_channel(port=1, certificates=certificates, username_env=None, password_env=None)
    with smtp_server(certificates) as (port, mailbox), pytest.raises(DeliveryError) as caught:
        send_email(channel.model_copy(update={"port": port}), DRIFT, render(DRIFT, "en"))
    assert caught.value.permanent
    assert "530" in str(caught.value)
    assert mailbox.messages == []


def test_no_server_is_a_failure_worth_retrying(certificates: Certificates) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(mail_channel(free_port(), certificates), DRIFT, "en", LINKS, environ=LOGIN)
    assert not caught.value.permanent
    assert "ConnectionRefusedError" in str(caught.value)


def test_a_silent_server_times_out_within_the_channel_timeout(certificates: Certificates) -> None:
    with black_hole() as port:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            deliver(
                mail_channel(port, certificates, timeout=0.5), DRIFT, "en", LINKS, environ=LOGIN
            )
    assert time.monotonic() - started < 3.0
    assert not caught.value.permanent
    assert "no answer within 0.5s" in str(caught.value)


def test_an_unreadable_ca_file_is_named(tmp_path: Path, certificates: Certificates) -> None:
    channel = mail_channel(free_port(), certificates, ca_file=tmp_path / "missing.pem")
    with pytest.raises(DeliveryError, match=r"ca_file .*missing\.pem cannot be read") as caught:
        deliver(channel, DRIFT, "en", LINKS, environ=LOGIN)
    assert caught.value.permanent
