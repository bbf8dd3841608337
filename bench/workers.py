"""Two service workers on one port: throughput and how connections spread, per way of running them.

What it does, in a fresh temporary home: trains a small linear version and promotes it, then
starts the inference service with 2 worker processes in each of these ways at once, each on its
own free loopback port:

- ``serve --workers 2``: the project's way (``runtime/workers.py``, a ``SO_REUSEPORT`` socket
  per uvicorn worker);
- ``uvicorn.run(workers=2)``: uvicorn's public API, one listening socket shared by the workers;
- with gunicorn importable (``--with-gunicorn DIR`` adds a folder holding gunicorn and
  uvicorn-worker, e.g. ``pip install --target DIR gunicorn uvicorn-worker``): gunicorn with
  ``uvicorn_worker.UvicornWorker``, without and with ``reuse_port`` (with it, each gunicorn
  worker binds its own socket after the fork), and gunicorn's own ASGI worker (``-k asgi``)
  with ``reuse_port``.

Every server runs the same app factory with ``lifespan`` on, no access log, one BLAS thread.
Then, for ``--rounds`` rounds, each server in turn (the order rotating) takes ``wrk`` with
``--connections`` keep-alive connections POSTing the seed sample to ``/inference``; in the middle
of each run ``ss`` counts the established connections per worker process. Which worker takes
the connections of one wrk run is decided when wrk opens them all at once, so every round is a
new draw. Prints a table and one JSON line.

    python3 -m venv /tmp/gu && /tmp/gu/bin/pip install --target /tmp/gu-site gunicorn uvicorn-worker
    uv run python bench/workers.py --with-gunicorn /tmp/gu-site     # about 5 minutes

Needs ``wrk`` and ``ss`` (Debian: ``apt-get install -y wrk iproute2``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import (
    SEED_RECORD,
    base_env,
    free_port,
    prepare_home,
    promote,
    run_wrk,
    running,
    tree_cpu_s,
    wait_for_workers,
)

FACTORY = "permeability.services.inference.app:create_inference_app"

_UVICORN_SHARED = f"""
import sys
import uvicorn

if __name__ == "__main__":  # the workers are spawned: they import this file again
    uvicorn.run(
        "{FACTORY}", factory=True, workers=2, host="127.0.0.1", port=int(sys.argv[1]),
        access_log=False, lifespan="on",
    )
"""

# Gunicorn's documented way to change the uvicorn settings of its worker: a subclass.
_GUNICORN_WORKER = """
from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "on", "access_log": False}
"""


def _gunicorn(port: int, worker_class: str, *, reuse_port: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--worker-class",
        worker_class,
        "--bind",
        f"127.0.0.1:{port}",
        *(["--reuse-port"] if reuse_port else []),
        f"{FACTORY}()",
    ]


def variants(workdir: Path, gunicorn: bool) -> list[tuple[str, Any]]:
    """(name, port -> command) for every way measured."""
    shared = workdir / "uvicorn_shared.py"
    shared.write_text(_UVICORN_SHARED, encoding="utf-8")
    (workdir / "bench_gunicorn_worker.py").write_text(_GUNICORN_WORKER, encoding="utf-8")
    ways: list[tuple[str, Any]] = [
        (
            "serve --workers 2 (workers.py)",
            lambda port: [
                sys.executable,
                "-m",
                "permeability",
                "serve",
                "inference",
                "--port",
                str(port),
                "--workers",
                "2",
                "--no-access-log",
            ],
        ),
        ("uvicorn.run(workers=2)", lambda port: [sys.executable, str(shared), str(port)]),
    ]
    if gunicorn:
        ways += [
            (
                "gunicorn + UvicornWorker",
                lambda port: _gunicorn(port, "bench_gunicorn_worker.Worker", reuse_port=False),
            ),
            (
                "gunicorn + UvicornWorker, reuse_port",
                lambda port: _gunicorn(port, "bench_gunicorn_worker.Worker", reuse_port=True),
            ),
            (
                "gunicorn -k asgi, reuse_port",
                lambda port: [
                    *_gunicorn(port, "asgi", reuse_port=True),
                    "--asgi-lifespan",
                    "on",
                ],
            ),
        ]
    return ways


def connections_per_process(port: int) -> dict[int, int]:
    """Established connections on the server side of ``port``, by the process holding them."""
    listed = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(Counter(int(pid) for pid in re.findall(r"pid=(\d+)", listed)))


def measured(
    server: tuple[str, str, int, int], body: str, args: argparse.Namespace, workdir: Path
) -> Any:
    """One wrk run, the connections per worker counted half-way through it, and the CPU the
    whole service spent per answer (what moves least with the load of other jobs)."""
    _, url, port, pid = server
    spread: dict[int, int] = {}

    def count() -> None:
        time.sleep(args.duration / 2)
        spread.update(connections_per_process(port))

    counter = threading.Thread(target=count)
    before = tree_cpu_s(pid)
    counter.start()
    cell = run_wrk(f"{url}/inference", body, args.connections, args.duration, workdir)
    counter.join()
    after = tree_cpu_s(pid)
    if before is not None and after is not None and cell["requests"]:
        cell["cpu_us_per_request"] = round((after - before) / cell["requests"] * 1e6, 1)
    return {**cell, "per_worker": sorted(spread.values(), reverse=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--with-gunicorn", type=Path, help="folder holding gunicorn")
    args = parser.parse_args()
    body = json.dumps({"data_test": SEED_RECORD})
    with tempfile.TemporaryDirectory(prefix="permeability-bench-workers-") as folder:
        workdir = Path(folder)
        home = workdir / "home"
        labels = prepare_home(home, 400, "RandomForestRegressor", skip_tree=True)
        promote(home, labels["linear"])
        path = [str(workdir), *([str(args.with_gunicorn)] if args.with_gunicorn else [])]
        gunicorn = (
            args.with_gunicorn is not None or importlib.util.find_spec("gunicorn") is not None
        )
        servers = []
        with ExitStack() as stack:
            for index, (name, command) in enumerate(variants(workdir, gunicorn)):
                port = free_port()
                env = base_env(home)
                env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")])
                metrics = workdir / f"metrics-{index}"
                metrics.mkdir()
                env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
                url = f"http://127.0.0.1:{port}"
                log = workdir / f"server-{index}.log"
                try:
                    process = stack.enter_context(running(command(port), env, f"{url}/ready", log))
                except RuntimeError:
                    sys.exit(f"{name} did not start:\n{log.read_text()[-3000:]}")
                wait_for_workers(url, 2)
                run_wrk(f"{url}/inference", body, 8, 2, workdir)  # warm-up
                servers.append((name, url, port, process.pid))
            results = []
            for turn in range(args.rounds):
                order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
                for server in order:
                    cell = measured(server, body, args, workdir)
                    results.append({"server": server[0], "round": turn + 1, **cell})
    results.sort(key=lambda row: (row["server"], row["round"]))
    print(f"\n{args.connections} connections, {args.duration} s per run, 2 workers")
    print(
        f"{'server':<38} {'round':>5} {'req/s':>8} {'p99 ms':>7} {'CPU us/req':>10} "
        f"{'non-2xx':>7}  per worker"
    )
    for row in results:
        spread = "/".join(str(n) for n in row["per_worker"])
        print(
            f"{row['server']:<38} {row['round']:>5} {row['rps']:>8.0f} {row['p99_ms']:>7.2f} "
            f"{row.get('cpu_us_per_request', float('nan')):>10.0f} {row['non_2xx']:>7}  {spread}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
