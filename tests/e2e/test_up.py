"""`permeability up` as a user runs it: builds the loop, serves everything, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from permeability.services.inference.schemas import SEED_BODY


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_for_line(process: subprocess.Popen[str], fragment: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line.rstrip())
        if fragment in line:
            return seen
    raise AssertionError(f"never printed {fragment!r}; stdout was:\n" + "\n".join(seen))


def _drain(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line.rstrip())


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren... (the MLflow UI runs `mlflow ui`, which runs uvicorn)."""
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


@pytest.mark.e2e
def test_up_serves_every_part_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    training, inference, ui = _free_ports(3)
    environment = {
        **os.environ,
        "PERMEABILITY_HOME": str(tmp_path / "storage"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    command = [sys.executable, "-m", "permeability", "up", "--rows", "600"]
    command += ["--model", "LinearRegression", "--training-port", str(training)]
    command += ["--inference-port", str(inference), "--ui-port", str(ui)]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        printed = _wait_for_line(process, "Ctrl-C stops them all", timeout_s=420)
        # Keep reading what `up` prints: a full pipe (64 KiB of service logs nobody reads)
        # would block it on a write and look like a shutdown that never ends.
        threading.Thread(target=_drain, args=(process, printed), daemon=True).start()
        assert any(f"http://127.0.0.1:{inference}/" in line for line in printed)
        assert any("champion: 0.1" in line for line in printed)
        children = _children(process.pid)
        assert len(children) == 4  # training API, inference API, MLflow UI, scheduler
        everything = _descendants(process.pid)
        assert len(everything) > len(children)  # e.g. the MLflow UI's own server process

        answer = httpx.post(f"http://127.0.0.1:{inference}/inference", json=SEED_BODY, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == "0.1"
        assert httpx.get(f"http://127.0.0.1:{training}/versions", timeout=30).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ui}/", timeout=30).status_code == 200

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_gone(p) for p in everything):
            time.sleep(0.1)
        assert [p for p in everything if not _gone(p)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
