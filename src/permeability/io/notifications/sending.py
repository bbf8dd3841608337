"""One delivery attempt of one event on one channel: word it, then send it by the channel's kind."""

from __future__ import annotations

from collections.abc import Mapping

from permeability.io.notifications.links import Links
from permeability.io.notifications.smtp import send_email
from permeability.io.notifications.webhook import post_webhook
from permeability.monitoring.events import Event
from permeability.monitoring.message_templates import Language
from permeability.monitoring.messages import Message, render
from permeability.notifications_config import EmailChannel, WebhookChannel

Channel = EmailChannel | WebhookChannel


def wants(channel: Channel, event: Event) -> bool:
    """Whether ``channel`` asked for events of this kind and severity."""
    return event.kind in channel.events and event.at_least(channel.min_severity)


def word(event: Event, language: Language, links: Links) -> Message:
    return render(event, language, run_url=links.run_url(event), page_url=links.page)


def deliver(
    channel: Channel,
    event: Event,
    language: Language,
    links: Links,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send once; raises :class:`~permeability.io.notifications.delivery.DeliveryError`."""
    message = word(event, language, links)
    if isinstance(channel, EmailChannel):
        send_email(channel, event, message, environ=environ)
    else:
        post_webhook(channel, event, message, environ=environ)
