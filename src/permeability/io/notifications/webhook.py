"""Webhooks: one JSON POST in the shape the receiving end takes.

* ``json`` — ``{"event": <the event>, "message": <its wording>}`` for your own tools;
* ``slack`` — an incoming webhook's ``text`` (the notification and fallback) and ``blocks``
  (header, the sentence, the figures as fields, what to do, the links), in Slack's ``mrkdwn``;
* ``teams`` — what Teams incoming webhooks and the Workflows "post to a channel when a webhook
  request is received" trigger take: a ``message`` with one Adaptive Card (1.4) attachment.

Any 2xx answer is a delivery. 4xx (other than 408 and 429) means the request or the URL is
wrong and will stay wrong: no retry. The URL is never logged (Slack's and Teams' carry the key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

from permeability.io.notifications.delivery import (
    DeliveryError,
    masked,
    secret_from_env,
    tls_context,
)
from permeability.monitoring.events import Event
from permeability.monitoring.messages import Message
from permeability.notifications_config import WebhookChannel

#: 4xx answers worth retrying: the server timed out, or asks us to slow down.
_RETRYABLE_CLIENT_ERRORS: Final = frozenset({408, 425, 429})
#: Slack caps: 10 fields per section, 150 characters of header.
_SLACK_FIELDS: Final = 10
_SLACK_HEADER: Final = 150
_TEAMS_COLOURS: Final = {"info": "accent", "warning": "warning", "critical": "attention"}
_SLACK_MARKS: Final = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}


def body(channel_format: str, event: Event, message: Message) -> dict[str, Any]:
    """The JSON document the channel's format expects."""
    if channel_format == "slack":
        return slack_body(message)
    if channel_format == "teams":
        return teams_body(message)
    return {
        "event": event.model_dump(mode="json"),
        "message": {**message.model_dump(mode="json"), "text": message.text()},
    }


def slack_body(message: Message) -> dict[str, Any]:
    """An incoming-webhook payload: ``text`` for notifications, ``blocks`` for the layout."""
    mark = _SLACK_MARKS[message.severity]
    header = f"{message.severity_label}: {message.title}"
    if len(header) > _SLACK_HEADER:
        header = header[: _SLACK_HEADER - 1] + "…"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack(message.summary)}},
    ]
    figures = list(message.figures)
    for start in range(0, len(figures), _SLACK_FIELDS):
        fields = [
            {"type": "mrkdwn", "text": f"*{_slack(f.label)}*\n{_slack(f.value)}"}
            for f in figures[start : start + _SLACK_FIELDS]
        ]
        blocks.append({"type": "section", "fields": fields})
    action = f"*{_slack(message.action_label)}:* {_slack(message.action)}"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": action}})
    if message.links:
        links = " · ".join(f"<{link.url}|{_slack(link.label)}>" for link in message.links)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": links}})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack(message.footer)}]}
    )
    return {"text": f"{mark} {_slack(header)}: {_slack(message.summary)}", "blocks": blocks}


def teams_body(message: Message) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card: title, sentence, facts, action, link buttons."""
    card_body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"{message.severity_label}: {message.title}",
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOURS[message.severity],
            "wrap": True,
        },
        {"type": "TextBlock", "text": message.summary, "wrap": True},
    ]
    if message.figures:
        facts = [{"title": f.label, "value": f.value} for f in message.figures]
        card_body.append({"type": "FactSet", "facts": facts})
    card_body += [
        {
            "type": "TextBlock",
            "text": f"**{message.action_label}:** {message.action}",
            "wrap": True,
        },
        {
            "type": "TextBlock",
            "text": message.footer,
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        },
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "lang": message.language,
        "body": card_body,
    }
    if message.links:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": link.label, "url": link.url}
            for link in message.links
        ]
    return {
        "type": "message",
        "summary": message.title,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def post_webhook(
    channel: WebhookChannel,
    event: Event,
    message: Message,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """One POST; :class:`DeliveryError` (URL and header values masked) when it fails."""
    url = channel.url or secret_from_env(channel.url_env or "", "url_env", environ)
    headers = {"User-Agent": "permeability-notifications"}
    if channel.headers_env:
        headers.update(_headers(secret_from_env(channel.headers_env, "headers_env", environ)))
    secrets = [url, httpx.URL(url).path if channel.url_env else None, *headers.values()]
    verify = tls_context(channel.ca_file) if channel.ca_file else True
    try:
        response = httpx.post(
            url,
            json=body(channel.format, event, message),
            headers=headers,
            timeout=channel.timeout,
            verify=verify,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"no answer within {channel.timeout:g}s") from exc
    except httpx.HTTPError as exc:
        reason = masked(f"{type(exc).__name__}: {exc}", secrets)
        raise DeliveryError(reason) from exc
    if response.is_success:
        return
    code = response.status_code
    answer = masked(" ".join(response.text.split())[:200], secrets)
    permanent = 300 <= code < 500 and code not in _RETRYABLE_CLIENT_ERRORS
    raise DeliveryError(f"HTTP {code} {answer}".strip(), permanent=permanent)


def _headers(text: str) -> dict[str, str]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise DeliveryError(
            'headers_env must hold a JSON object of text headers, e.g. {"Authorization": "..."}',
            permanent=True,
        )
    return parsed


def _slack(text: str) -> str:
    """Slack's three control characters escaped (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
