"""E-mail over SMTP: STARTTLS or implicit TLS, a login from the environment, text and HTML.

The standard library does it all (:mod:`smtplib`, :class:`email.message.EmailMessage`). The
message goes as ``multipart/alternative``: the plain text every client shows, and a small HTML
part with the figures in a table and the links clickable.
"""

from __future__ import annotations

import html
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from permeability.io.notifications.delivery import (
    DeliveryError,
    masked,
    secret_from_env,
    tls_context,
)
from permeability.monitoring.events import Event
from permeability.monitoring.messages import Message
from permeability.notifications_config import EmailChannel


def compose(channel: EmailChannel, event: Event, message: Message) -> EmailMessage:
    """The e-mail: subject, sender, recipients, date, a text body and its HTML twin."""
    mail = EmailMessage()
    mail["Subject"] = message.subject_line
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail["Date"] = format_datetime(event.occurred_at)
    mail["Message-ID"] = make_msgid(domain=channel.sender.rpartition("@")[2])
    mail.set_content(message.text())
    mail.add_alternative(_html(message), subtype="html")
    mail["Content-Language"] = message.language  # after the body: set_content clears Content-*
    return mail


def send_email(
    channel: EmailChannel,
    event: Event,
    message: Message,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """One attempt to hand the message to the relay; :class:`DeliveryError` when it fails."""
    login = None
    if channel.username_env and channel.password_env:
        login = (
            secret_from_env(channel.username_env, "username_env", environ),
            secret_from_env(channel.password_env, "password_env", environ),
        )
    password = login[1] if login else None
    mail = compose(channel, event, message)
    context = tls_context(channel.ca_file) if channel.ssl or channel.starttls else None
    # EHLO with the plain host name: socket.getfqdn() may wait seconds on reverse DNS.
    local = socket.gethostname() or "localhost"
    try:
        client: smtplib.SMTP
        if channel.ssl:
            client = smtplib.SMTP_SSL(
                channel.host, channel.port, local, timeout=channel.timeout, context=context
            )
        else:
            client = smtplib.SMTP(channel.host, channel.port, local, timeout=channel.timeout)
        with client:
            if channel.starttls:
                client.starttls(context=context)
            if login:
                client.login(*login)
            client.send_message(mail)
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"the server refuses: {exc}", permanent=True) from exc
    except smtplib.SMTPAuthenticationError as exc:
        reason = f"login refused ({exc.smtp_code})"
        raise DeliveryError(reason, permanent=True) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(sorted(exc.recipients))
        raise DeliveryError(f"recipients refused: {refused}", permanent=True) from exc
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        reason = masked(f"server answered {exc.smtp_code} {text}", [password])
        raise DeliveryError(reason, permanent=500 <= exc.smtp_code < 600) from exc
    except ssl.SSLCertVerificationError as exc:
        reason = f"the server's certificate is not trusted ({exc.verify_message}); see ca_file"
        raise DeliveryError(reason, permanent=True) from exc
    except TimeoutError as exc:
        raise DeliveryError(f"no answer within {channel.timeout:g}s") from exc
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib reports a read that timed out as a disconnection; say what happened.
        if isinstance(exc.__context__, TimeoutError):
            raise DeliveryError(f"no answer within {channel.timeout:g}s") from exc
        raise DeliveryError(f"the server hung up: {exc}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        reason = masked(f"{type(exc).__name__}: {exc}", [password])
        raise DeliveryError(reason) from exc


def _html(message: Message) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><th align='left'>{e(f.label)}</th><td>{e(f.value)}</td></tr>" for f in message.figures
    )
    links = " · ".join(f"<a href='{e(link.url)}'>{e(link.label)}</a>" for link in message.links)
    parts = [
        f"<h3>{e(message.severity_label)}: {e(message.title)}</h3>",
        f"<p>{e(message.summary)}</p>",
        f"<table>{rows}</table>" if rows else "",
        f"<p><b>{e(message.action_label)}:</b> {e(message.action)}</p>",
        f"<p>{links}</p>" if links else "",
        f"<p><small>{e(message.footer)}</small></p>",
    ]
    return f"<html lang='{message.language}'><body>{''.join(parts)}</body></html>"
