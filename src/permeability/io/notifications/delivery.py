"""What one delivery attempt may end in, and what every channel needs to make one safely.

A failed attempt raises :class:`DeliveryError` with a one-line reason that is safe to log: no
password, no webhook URL (a Slack or Teams URL *is* a credential), no header value. ``permanent``
says that trying again cannot help (a refused login, a revoked webhook, a missing environment
variable): the dispatcher then gives up at once instead of retrying for an hour.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path

from permeability.io.sources.secrets import mask_secrets


class DeliveryError(Exception):
    """One attempt failed; ``str(exc)`` is the reason, with every secret masked."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(" ".join(reason.split()) or "failed")
        self.permanent = permanent


def masked(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each secret (longest first) replaced by ``***``."""
    present = sorted({s for s in secrets if s}, key=len, reverse=True)
    return mask_secrets(text, present)


def secret_from_env(variable: str, field: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable a channel names; a permanent error when unset."""
    value = (os.environ if environ is None else environ).get(variable, "")
    if not value:
        raise DeliveryError(f"environment variable {variable} ({field}) is not set", permanent=True)
    return value


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificates checked against the system's authorities, or only ``ca_file``'s."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"ca_file {ca_file} cannot be read: {exc}", permanent=True) from exc
