"""Memory of the inference service under an oversized chunked upload (issue 13, item 1).

    .venv/bin/python bench/upload_limit.py
    .venv/bin/python bench/upload_limit.py --over-mib 400 --reference-mib 20

The attack the hostile-user review made: a ``text/csv`` body streamed to ``POST
/inference/batch`` with ``Transfer-Encoding: chunked`` (no ``Content-Length``), valid rows that
keep coming past the 200 MiB limit. Before the fix it was accepted (200 after 46 s, the server
at 5.3 GB RSS). Now every body is counted as it streams (``services/common/body_limit.py``).

One real service (``permeability serve inference``, one process, a LinearRegression champion)
is attacked (on the batch route, then on the single-sample route whose cap is 1 MiB), and the
same service then takes an accepted chunked upload of
``--reference-mib`` as the reference measured in the same run: what holding and scoring a body
costs. Printed: the status, bytes the client managed to send, seconds, and the server's RSS
before, its peak (``VmHWM``) and its RSS after, for each. The claim is the attack's peak growth
staying near zero (bounded by a chunk, not by the body) while the reference's grows with its
size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import (
    VENV_BIN,
    base_env,
    free_port,
    prepare_home,
    promote,
    running,
)

MIB = 1024 * 1024


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB (Linux /proc)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def csv_stream(target_bytes: int) -> tuple[Iterator[bytes], list[int]]:
    """A valid lab CSV of about ``target_bytes``, in 64 KiB chunks; counts what was sent."""
    header = (
        b"Muestra,Grados_C,Porc_Humedad,Estructura,Calibre1,Calibre2,Calibre3,Calibre4,"
        b"Calibre5,CalibreProm\n"
    )
    row = b"1,25.6,50,BOPP,16.4,16.5,16.3,16.4,16.4,16.4\n"
    chunk = row * (64 * 1024 // len(row))
    sent = [0]

    def chunks() -> Iterator[bytes]:
        yield header
        sent[0] += len(header)
        while sent[0] < target_bytes:
            yield chunk
            sent[0] += len(chunk)

    return chunks(), sent


def upload(url: str, pid: int, target_bytes: int, path: str = "/inference/batch") -> dict[str, Any]:
    before = memory_mib(pid)
    chunks, sent = csv_stream(target_bytes)
    started = time.perf_counter()
    try:
        response = httpx.post(
            f"{url}{path}",
            content=chunks,
            headers={"Content-Type": "text/csv"},
            timeout=600,
        )
        status: int | str = response.status_code
    except httpx.HTTPError as exc:  # the server closed the connection mid-upload
        status = type(exc).__name__
    seconds = time.perf_counter() - started
    time.sleep(1.0)
    after = memory_mib(pid)
    return {
        "status": status,
        "sent_mib": round(sent[0] / MIB, 1),
        "seconds": round(seconds, 1),
        "rss_before_mib": round(before["VmRSS"], 1),
        "peak_mib": round(after["VmHWM"], 1),
        "rss_after_mib": round(after["VmRSS"], 1),
        "peak_growth_mib": round(after["VmHWM"] - before["VmHWM"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--over-mib", type=float, default=400.0, help="attack body size")
    parser.add_argument("--reference-mib", type=float, default=20.0, help="accepted body size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as scratch:
        home = Path(scratch) / "home"
        labels = prepare_home(home, 400, "RandomForestRegressor", skip_tree=True)
        promote(home, labels["linear"])
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [str(VENV_BIN / "permeability"), "serve", "inference", "--port", str(port)]
        env = base_env(home)
        with running(command, env, f"{url}/ready", Path(scratch) / "server.log") as process:
            attack = upload(url, process.pid, int(args.over_mib * MIB))
            single = upload(url, process.pid, int(args.over_mib * MIB), path="/inference")
            reference = upload(url, process.pid, int(args.reference_mib * MIB))
            health = httpx.get(f"{url}/health", timeout=10).status_code
    print(
        f"{'upload':<34}{'status':>8}{'sent MiB':>10}{'s':>7}{'RSS before':>12}"
        f"{'peak':>8}{'after':>8}{'peak growth':>13}"
    )
    for name, row in (
        (f"attack: chunked {args.over_mib:g} MiB (limit 200)", attack),
        (f"attack on /inference: {args.over_mib:g} MiB (1)", single),
        (f"reference: chunked {args.reference_mib:g} MiB, accepted", reference),
    ):
        print(
            f"{name:<34}{row['status']!s:>8}{row['sent_mib']:>10.1f}{row['seconds']:>7.1f}"
            f"{row['rss_before_mib']:>12.0f}{row['peak_mib']:>8.0f}{row['rss_after_mib']:>8.0f}"
            f"{row['peak_growth_mib']:>13.1f}"
        )
    per_body_mib = reference["peak_growth_mib"] / max(args.reference_mib, 1e-9)
    print(
        f"reference costs {per_body_mib:.1f} MiB of peak per MiB of body; at that rate the "
        f"attack's {attack['sent_mib']:.0f} MiB would have cost {per_body_mib * attack['sent_mib']:,.0f}"
        f" MiB; it cost {attack['peak_growth_mib']:.1f} MiB. Service healthy after: {health == 200}"
    )
    print(
        json.dumps({"attack": attack, "single": single, "reference": reference, "health": health})
    )


if __name__ == "__main__":
    main()
