"""Answered predictions lost to ``kill -9`` of the inference service under load (issue 13, item 6).

    .venv/bin/python bench/kill9_predictions.py
    .venv/bin/python bench/kill9_predictions.py --duration 20 --kill-after 12 --connections 32

The review's replay: ``wrk`` POSTs the seed's single record at the service, which is killed
with ``kill -9 <pid>`` in the middle of the load; the service is started again on the same
storage, stopped cleanly, and the prediction log is counted. Before the spool, 10,908 of 51,392
answered predictions (21 %, the last ~5 s) never reached the log.

Two services from one prepared home, each on its own copy, run one after the other:

- reference: ``inference.prediction_spool: false`` (rows wait in memory for their commit, as
  before the spool);
- shipped: the spool on (every answered prediction appended to a local file before its answer
  leaves, replayed by the next start).

Answered = wrk's completed requests minus its non-2xx answers; requests cut by the kill are
not answered. Logged = rows in the prediction log after the restart. A logged count above the
answered one is expected with the spool: a request spooled whose answer the kill cut off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from permeability.services.inference.schemas import SEED_SAMPLE
from serve import (
    VENV_BIN,
    base_env,
    free_port,
    prepare_home,
    promote,
    run_wrk,
    wait_until_ready,
)


def _start(home: Path, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**base_env(home), "PERMEABILITY_CONFIG_FILE": str(config)}
    command = [
        str(VENV_BIN / "permeability"),
        "serve",
        "inference",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_until_ready(f"http://127.0.0.1:{port}/ready", process)
    return process


def _logged(home: Path) -> int:
    from permeability.io.predictions.reader import read_predictions
    from permeability.settings import Settings

    return len(read_predictions(Settings(home=home).resolved_feature_store_uri))


def replay(base: Path, workdir: Path, spool: bool, args: argparse.Namespace) -> dict[str, Any]:
    name = "spool" if spool else "no-spool"
    home = workdir / name
    shutil.copytree(base, home)
    config = workdir / f"{name}.yaml"
    config.write_text(f"inference:\n  prediction_spool: {str(spool).lower()}\n", encoding="utf-8")
    log = workdir / f"{name}.log"
    before = _logged(home)
    port = free_port()
    process = _start(home, config, port, log)
    body = json.dumps({"data_test": SEED_SAMPLE})
    result: dict[str, Any] = {}

    def load() -> None:
        result.update(
            run_wrk(
                f"http://127.0.0.1:{port}/inference",
                body,
                args.connections,
                args.duration,
                workdir,
            )
        )

    driver = threading.Thread(target=load)
    driver.start()
    time.sleep(args.kill_after)
    os.kill(process.pid, signal.SIGKILL)  # the service alone, as `kill -9 <pid>`
    process.wait(timeout=30)
    driver.join()
    time.sleep(2.0)
    # Whatever it started and left behind (the spool's helper exits by itself).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    again = _start(home, config, port, log)  # replays the spool before it is ready
    again.send_signal(signal.SIGTERM)
    again.wait(timeout=120)
    answered = int(result["requests"]) - int(result["non_2xx"])
    logged = _logged(home) - before
    return {
        "variant": name,
        "answered": answered,
        "logged": logged,
        "lost": max(answered - logged, 0),
        "lost_pct": round(100 * max(answered - logged, 0) / max(answered, 1), 2),
        "rps": result["rps"],
        "socket_errors": result["socket_errors"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="Seconds of wrk load.")
    parser.add_argument("--kill-after", type=float, default=9.0, help="Seconds before kill -9.")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kill9-") as scratch:
        workdir = Path(scratch)
        base = workdir / "base"
        labels = prepare_home(base, 400, "RandomForestRegressor", skip_tree=True)
        promote(base, labels["linear"])
        rows = [replay(base, workdir, spool, args) for spool in (False, True)]
    print(f"\nkill -9 after {args.kill_after:g} s of {args.duration} s of wrk load")
    print(f"{'variant':<10}{'answered':>10}{'logged':>10}{'lost':>8}{'lost %':>8}{'req/s':>9}")
    for row in rows:
        print(
            f"{row['variant']:<10}{row['answered']:>10,}{row['logged']:>10,}{row['lost']:>8,}"
            f"{row['lost_pct']:>8.2f}{row['rps']:>9,.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
