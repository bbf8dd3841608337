"""Passwords inside a source URL, masked wherever the source is shown (labels, messages, logs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qsl, urlsplit

_URL_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_sql_url(source: str) -> bool:
    """A SQLAlchemy URL (``dialect+driver://...``); ``file://`` and plain paths are files."""
    return bool(_URL_SCHEME.match(source)) and not source.lower().startswith("file://")


def source_secrets(source: str) -> list[str]:
    """Passwords inside a URL (userinfo or a ``password=`` parameter), to be masked everywhere."""
    if not is_sql_url(source):
        return []
    secrets: list[str] = []
    try:
        parts = urlsplit(source)
        if parts.password:
            secrets.append(parts.password)
        secrets.extend(v for k, v in parse_qsl(parts.query) if "password" in k.lower() and v)
    except ValueError:
        match = re.search(r"://[^:/@\s]*:([^@\s]+)@", source)
        if match:
            secrets.append(match.group(1))
    raw_userinfo = re.search(r"://[^:/@\s]*:([^@\s]+)@", source)
    if raw_userinfo:
        secrets.append(raw_userinfo.group(1))
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def mask_source(source: str) -> str:
    """The source as it may be shown: a URL's password replaced by ``***``."""
    return mask_secrets(source, source_secrets(source))
