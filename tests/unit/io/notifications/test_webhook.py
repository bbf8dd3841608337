"""Webhooks through a real HTTP server: the JSON, Slack and Teams bodies that arrive, and how
each kind of failure is reported (never with the URL in it)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from permeability.io.notifications.delivery import DeliveryError
from permeability.io.notifications.links import Links
from permeability.io.notifications.sending import deliver
from permeability.monitoring.events import Event
from permeability.notifications_config import WebhookChannel
from tests.notification_servers import black_hole, webhook_server
from tests.ports import free_port

LINKS = Links(mlflow_ui="http://mlflow.lab:5000", page="http://lab-server:8001/")
CHART = Event(
    kind="reference_out_of_control",
    severity="critical",
    subject="NIST-ROJA / lote 7",
    figures={
        "reference": "NIST-ROJA",
        "series": "lote 7",
        "rules": "1,4",
        "value": 12.84,
        "lower": 9.71,
        "upper": 12.2,
        "when": "2026-03-03",
        "points": 27,
    },
    run_id="8f2c1d9e",
)


def hook(url: str, **extra: Any) -> WebhookChannel:
    return WebhookChannel.model_validate(
        {"name": "hook", "kind": "webhook", "url": url, "timeout": 2, **extra}
    )


def test_the_json_format_carries_the_event_and_its_message() -> None:
    with webhook_server() as server:
        deliver(hook(server.url), CHART, "en", LINKS)
    (received,) = server.requests
    assert received.path == "/hook/T0KEN-IN-THE-PATH"
    assert received.headers["Content-Type"] == "application/json"
    assert received.body["event"] == json.loads(CHART.model_dump_json())
    message = received.body["message"]
    assert message["title"] == "Reference film NIST-ROJA / lote 7 out of control"
    assert {"key": "value", "label": "Value", "value": "12.84 g/m²·day"} in message["figures"]
    assert message["links"][0] == {
        "label": "MLflow run",
        "url": "http://mlflow.lab:5000/#/runs/8f2c1d9e",
    }
    assert message["language"] == "en"
    assert "What to do:" in message["text"]


def test_the_slack_format_is_text_and_mrkdwn_blocks() -> None:
    event = CHART.model_copy(update={"figures": {**CHART.figures, "series": "<lote & 7>"}})
    with webhook_server() as server:
        deliver(hook(server.url, format="slack"), event, "es", LINKS)
    body = server.requests[0].body
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: Crítico: Película de referencia")
    types = [block["type"] for block in body["blocks"]]
    assert types == ["header", "section", "section", "section", "section", "context"]
    header = body["blocks"][0]["text"]
    assert header["type"] == "plain_text"
    assert len(header["text"]) <= 150
    fields = body["blocks"][2]["fields"]
    assert {"type": "mrkdwn", "text": "*Serie*\n&lt;lote &amp; 7&gt;"} in fields
    assert {"type": "mrkdwn", "text": "*Reglas incumplidas*\n1 y 4"} in fields
    assert len(fields) <= 10
    links = body["blocks"][4]["text"]["text"]
    assert "<http://mlflow.lab:5000/#/runs/8f2c1d9e|Ejecución en MLflow>" in links
    assert "<http://lab-server:8001/|Página del laboratorio>" in links


def test_slack_fields_go_ten_to_a_section() -> None:
    figures = {f"extra_{n:02d}": n for n in range(13)}
    event = Event(kind="drift", severity="info", subject="1.3", figures=figures)
    with webhook_server() as server:
        deliver(hook(server.url, format="slack"), event, "en", Links(None, None))
    sections = [b for b in server.requests[0].body["blocks"] if "fields" in b]
    assert [len(s["fields"]) for s in sections] == [10, 3]


def test_the_teams_format_is_a_message_with_one_adaptive_card() -> None:
    with webhook_server() as server:
        deliver(hook(server.url, format="teams"), CHART, "en", LINKS)
    body = server.requests[0].body
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title = card["body"][0]
    assert title["text"] == "Critical: Reference film NIST-ROJA / lote 7 out of control"
    assert title["color"] == "attention"
    facts = next(item for item in card["body"] if item["type"] == "FactSet")["facts"]
    assert {"title": "Rules broken", "value": "1 and 4"} in facts
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "MLflow run",
            "url": "http://mlflow.lab:5000/#/runs/8f2c1d9e",
        },
        {"type": "Action.OpenUrl", "title": "Lab page", "url": "http://lab-server:8001/"},
    ]


def test_url_and_headers_come_from_the_environment() -> None:
    with webhook_server() as server:
        channel = WebhookChannel(
            name="hook", kind="webhook", url_env="LAB_HOOK", headers_env="LAB_HOOK_HEADERS"
        )
        environ = {"LAB_HOOK": server.url, "LAB_HOOK_HEADERS": '{"Authorization": "Bearer abc"}'}
        deliver(channel, CHART, "en", LINKS, environ=environ)
    assert server.requests[0].headers["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({}, "environment variable LAB_HOOK (url_env) is not set"),
        ({"LAB_HOOK": "http://x.org", "LAB_HOOK_HEADERS": "[1]"}, "JSON object of text headers"),
    ],
)
def test_missing_or_bad_environment_is_permanent(environ: dict[str, str], reason: str) -> None:
    channel = WebhookChannel(
        name="hook", kind="webhook", url_env="LAB_HOOK", headers_env="LAB_HOOK_HEADERS"
    )
    with pytest.raises(DeliveryError, match=re.escape(reason)) as caught:
        deliver(channel, CHART, "en", LINKS, environ=environ)
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("status", "permanent"), [(503, False), (429, False), (404, True), (400, True)]
)
def test_an_error_answer_says_its_status_and_whether_to_retry(status: int, permanent: bool) -> None:
    with webhook_server([status]) as server, pytest.raises(DeliveryError) as caught:
        deliver(hook(server.url), CHART, "en", LINKS)
    assert str(caught.value).startswith(f"HTTP {status} ")
    assert caught.value.permanent is permanent


def test_a_secret_url_never_appears_in_the_reason() -> None:
    port = free_port()
    secret = f"http://127.0.0.1:{port}/hook/T0KEN-IN-THE-PATH"
    channel = WebhookChannel(name="hook", kind="webhook", url_env="LAB_HOOK")
    with pytest.raises(DeliveryError) as caught:
        deliver(channel, CHART, "en", LINKS, environ={"LAB_HOOK": secret})
    assert "T0KEN" not in str(caught.value)
    assert secret not in str(caught.value)
    assert not caught.value.permanent
    assert str(caught.value).startswith("ConnectError")


def test_a_silent_server_times_out_within_the_channel_timeout() -> None:
    with black_hole() as port:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            deliver(hook(f"http://127.0.0.1:{port}/x", timeout=0.5), CHART, "en", LINKS)
    assert time.monotonic() - started < 3.0
    assert str(caught.value) == "no answer within 0.5s"
    assert not caught.value.permanent
