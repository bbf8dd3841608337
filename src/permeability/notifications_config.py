"""The ``notifications:`` section of the YAML: who is told what, in which language, and how hard
delivery tries (docs/monitoring.md, Notifications).

A channel is an e-mail relay (SMTP) or a webhook (plain JSON, Slack or Microsoft Teams); each
says which event kinds it wants and the least severity it lets through. Secrets never sit in
the YAML: a channel names the environment variables that hold them (``password_env``,
``url_env``, ``headers_env``), read when a message is sent.

Kept apart from :mod:`permeability.config` (which embeds it as ``ProjectConfig.notifications``)
because it is a section of its own size; like the rest of the configuration it is frozen, typed
and checked when the file is loaded, so a typo stops the job at once instead of at 2 a.m.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from permeability.monitoring.events import EVENT_KINDS, EventKind, Severity
from permeability.monitoring.message_templates import Language

#: A plain address (``qa@example.org``): one ``@``, no spaces, brackets or separators.
_ADDRESS: Final = re.compile(r"^[^@\s<>,;:\"()\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ChannelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Unique name (letters, digits, '-', '_', '.'): the outbox folder and logs use it.",
    ),
]
EnvName = Annotated[str, Field(pattern=_ENV_NAME.pattern, description="An environment variable.")]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Channel(_Section):
    """What every channel has: a name, what it wants, how long one send may take."""

    name: ChannelName
    events: tuple[EventKind, ...] = Field(
        default=EVENT_KINDS,
        min_length=1,
        description="Event kinds sent on this channel (default: all).",
    )
    min_severity: Severity = Field(
        default="info", description="Least severity sent: info < warning < critical."
    )
    timeout: float = Field(
        default=10.0, gt=0.0, le=120.0, description="Seconds one delivery attempt may take."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the authority that signed the server's certificate (a lab's "
        "own CA); default: the system's trusted authorities.",
    )

    @field_validator("events")
    @classmethod
    def _no_repeats(cls, value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
        repeated = sorted({kind for kind in value if value.count(kind) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(repeated)} more than once")
        return value


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an e-mail address like qa@example.org")
    return value


class EmailChannel(_Channel):
    """An SMTP relay: STARTTLS (port 587) by default, implicit TLS with ``ssl`` (port 465).

    Login happens when ``username_env`` and ``password_env`` are set, and only over TLS: a
    password is never sent in the clear.
    """

    kind: Literal["email"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(default=False, description="Connect over TLS from the start (SMTPS).")
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    sender: str = Field(description="The From address.")
    to: tuple[str, ...] = Field(min_length=1, description="Recipients (at least one).")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            _address(address)
        return value

    @model_validator(mode="after")
    def _security(self) -> EmailChannel:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls exclude each other: set starttls: false with ssl")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together (or neither: no login)")
        if self.username_env is not None and not (self.ssl or self.starttls):
            raise ValueError("a login needs starttls or ssl: the password would travel in clear")
        return self


class WebhookChannel(_Channel):
    """An HTTP(S) endpoint taking a JSON POST: ``json`` (the event and its message), ``slack``
    (an incoming webhook) or ``teams`` (an incoming webhook or a Workflows trigger).

    Webhook URLs of Slack and Teams are secrets (whoever has one can post): keep them in the
    environment with ``url_env``; ``url`` is for internal endpoints.
    """

    kind: Literal["webhook"]
    format: Literal["json", "slack", "teams"] = "json"
    url: str | None = None
    url_env: EnvName | None = None
    headers_env: EnvName | None = Field(
        default=None,
        description="Environment variable holding extra request headers as a JSON object "
        '(e.g. {"Authorization": "Bearer ..."}).',
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


Channel = Annotated[EmailChannel | WebhookChannel, Field(discriminator="kind")]


class RetryPolicy(_Section):
    """How a failing delivery is retried: attempt n waits ``first_backoff_seconds *
    factor**(n-1)`` after the previous one; it is given up after ``attempts`` tries or once
    ``max_total_seconds`` passed since it was published (whichever comes first, always after a
    last try), and the give-up is logged and recorded."""

    attempts: int = Field(default=5, ge=1, le=50)
    first_backoff_seconds: float = Field(default=2.0, gt=0.0, le=3600.0)
    factor: float = Field(default=3.0, ge=1.0, le=10.0)
    max_total_seconds: float = Field(default=3600.0, gt=0.0, le=7 * 24 * 3600.0)

    def backoff(self, attempts_made: int) -> float:
        """Seconds to wait after the ``attempts_made``-th failed attempt."""
        return self.first_backoff_seconds * self.factor ** max(0, attempts_made - 1)


class NotificationParams(_Section):
    """Notification channels and how messages are worded and delivered."""

    language: Language = Field(default="es", description="Language of every message.")
    channels: tuple[Channel, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    repeat_after_hours: float = Field(
        default=168.0,
        ge=0.0,
        le=24 * 365.0,
        description="An event with the same key as one published less than this ago is "
        "recorded but not sent again (0: always send).",
    )
    exit_wait_seconds: float = Field(
        default=5.0,
        ge=0.0,
        le=120.0,
        description="How long a finishing command waits for its deliveries; what is left stays "
        "in the outbox for the next process.",
    )

    @field_validator("channels")
    @classmethod
    def _unique_names(
        cls, value: tuple[EmailChannel | WebhookChannel, ...]
    ) -> tuple[EmailChannel | WebhookChannel, ...]:
        names = [channel.name for channel in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"channel names must be unique, repeated: {', '.join(repeated)}")
        return value
