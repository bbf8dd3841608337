"""`permeability serve inference --workers 2`: connections opened at once reach both workers.

With one listening socket shared by the workers, the worker that wakes first accepts every
waiting connection (measured by bench/workers.py: all 32 of wrk's connections on one worker in
2 rounds of 11, and in two runs of three on an idle machine); with a socket per worker, Linux
spreads them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from permeability.runtime.workers import BALANCES_CONNECTIONS
from tests.ports import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not BALANCES_CONNECTIONS, reason="SO_REUSEPORT balancing is Linux's"),
]
CONNECTIONS = 32


def _worker_pids(url: str, workers: int, process: subprocess.Popen[bytes]) -> set[int]:
    """Until every worker has started (each answers /health with its pid)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while len(seen) < workers and time.monotonic() < deadline:
        assert process.poll() is None, "the service exited while starting"
        try:
            seen.add(httpx.get(f"{url}/health", timeout=2).json()["pid"])
        except httpx.TransportError:
            time.sleep(0.3)
    assert len(seen) == workers, f"only workers {seen} answered"
    return seen


def _pid_over(connection: socket.socket) -> int:
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        chunk = connection.recv(4096)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return int(json.loads(body)["pid"])


def test_connections_opened_at_once_are_spread_over_the_workers(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PERMEABILITY_")},
        "PERMEABILITY_HOME": str(tmp_path / "storage"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [sys.executable, "-m", "permeability", "serve", "inference"]
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "2", "--no-access-log"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        workers = _worker_pids(url, 2, process)
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        try:
            answered = Counter(_pid_over(connection) for connection in connections)
        finally:
            for connection in connections:
                connection.close()
        assert set(answered) == workers, answered
        # By a hash of the addresses: about 16/16; fewer than 5 on one worker has a
        # probability below 1e-4.
        assert min(answered.values()) >= 5, answered
        assert "one socket each, SO_REUSEPORT" in log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=60) == 0, log.read_text()[-2000:]
        finally:
            if process.poll() is None:
                process.kill()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the service"
