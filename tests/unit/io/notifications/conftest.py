"""Fixtures of the notification io tests: a test authority, and no dispatcher outliving its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from permeability.io.notifications.dispatcher import stop_dispatchers
from tests.notification_servers import Certificates, make_certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def _no_dispatcher_left() -> Iterator[None]:
    yield
    stop_dispatchers(timeout=2.0)
