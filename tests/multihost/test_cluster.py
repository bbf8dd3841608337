"""Issue 16, item 1: the loop across hosts, on real engines (PostgreSQL-backed MLflow server,
S3 object storage, Delta tables on it, nginx in front of two inference replicas).

acquire -> train -> promote on ``train``; both replicas (empty homes) serve the new champion
within their refresh interval; answers come through nginx; every answered prediction lands
once in the one prediction log on S3 and every commit the replicas made is a table version;
one replica killed with ``kill -9`` under load: nginx routes around it, the other keeps
answering, and the killed one's spooled predictions are written when it restarts.

Each answered row is identified by its record number (``CONSECUTIVO``, logged with the row).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import psycopg
import pytest
from deltalake import DeltaTable

from permeability.io.predictions.reader import read_predictions
from permeability.services.inference.app import REFRESH_SECONDS
from permeability.services.inference.schemas import SEED_SAMPLE
from tests.multihost.cluster import (
    API_TOKEN,
    BUCKET,
    EDGE_PORT,
    INFERENCE_PORT,
    REPLICAS,
    TRAINING_PORT,
    UPSTREAM_HEADER,
    Cluster,
    postgres,
    replica_of,
    wait_until,
)
from tests.multihost.network import Service

pytestmark = [pytest.mark.multihost, pytest.mark.slow]

VERSION: Final = "0.1"
STEADY_REQUESTS: Final = 120
LOAD_THREADS: Final = 4
#: Slack over the refresh interval for a replica to fetch and load a new champion.
LOAD_SLACK_S: Final = 20.0
COMMIT_LINE: Final = re.compile(r"prediction log: (\d+) rows in one commit")


@dataclass
class Client:
    """Predictions through nginx; remembers what was sent, answered, and by which replica."""

    url: str
    sent: set[str] = field(default_factory=set)
    answered: dict[str, str] = field(default_factory=dict)  # record number -> replica
    failed: dict[str, str] = field(default_factory=dict)  # record number -> what happened
    versions: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def predict(self, connection: httpx.Client, cluster: Cluster, number: str) -> bool:
        with self._lock:
            self.sent.add(number)
        body = {"data_test": {**SEED_SAMPLE, "CONSECUTIVO": number}}
        try:
            response = connection.post(f"{self.url}/inference", json=body, timeout=30)
        except httpx.HTTPError as exc:
            with self._lock:
                self.failed[number] = repr(exc)
            return False
        if response.status_code != 200:
            with self._lock:
                self.failed[number] = f"{response.status_code} {response.text[:200]}"
            return False
        answer = response.json()
        assert answer["CONSECUTIVO"] == number
        with self._lock:
            self.answered[number] = replica_of(cluster, response.headers[UPSTREAM_HEADER])
            self.versions[str(answer["version"])] += 1
        return True


def _run(cluster: Cluster, host: str, *args: str) -> str:
    """A CLI command on ``host`` (its output; a clear failure with it otherwise)."""
    command = ["ip", "netns", "exec", cluster.network.namespace(host)]
    command += [sys.executable, "-m", "permeability", *args]
    done = subprocess.run(
        command, env=cluster.project_environment(host), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args[0]} on {host}: {done.stderr[-3000:]}"
    return done.stdout


def _acquire_train_promote(cluster: Cluster) -> float:
    """The lab's export acquired, a version trained and promoted, all on ``train``; returns
    the moment of promotion."""
    export = cluster.homes / "train" / "lab.csv"
    _run(cluster, "train", "generate-data", "--out", str(export), "--rows", "600", "--seed", "7")
    _run(cluster, "train", "acquire", "--source", str(export))
    training = cluster.url("train", TRAINING_PORT)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = {"model": "LinearRegression", "version": VERSION, "test_size": 0.25}
    trained = httpx.post(f"{training}/train", json=body, headers=auth, timeout=300)
    assert trained.status_code == 201, trained.text
    promoted = httpx.post(f"{training}/versions/{VERSION}/promote", headers=auth, timeout=60)
    assert promoted.status_code == 200, promoted.text
    return time.monotonic()


def _ready_version(cluster: Cluster, host: str) -> Any:
    try:
        ready = httpx.get(f"{cluster.url(host, INFERENCE_PORT)}/ready", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return ready.get("champion") if ready.get("ready") else None


def _logged(cluster: Cluster) -> list[str]:
    frame = read_predictions(cluster.feature_store_uri, cluster.storage_options)
    return [str(n) for n in frame["CONSECUTIVO"].dropna()]


def _commits_made(services: list[Service]) -> tuple[int, int]:
    """Commits the replicas report in their output (every flush and replay goes through the
    log's committer, which logs one line per commit), and the rows they carried."""
    counts = [int(m) for s in services for m in COMMIT_LINE.findall(s.tail(10**9))]
    return len(counts), sum(counts)


def _keep_sending(client: Client, cluster: Cluster, stop: threading.Event, tag: str) -> None:
    with httpx.Client() as connection:
        n = 0
        while not stop.is_set():
            client.predict(connection, cluster, f"{tag}-{n}")
            n += 1


def test_loop_across_hosts_behind_nginx_survives_kill9(cluster: Cluster) -> None:
    started = time.monotonic()
    replicas = {
        s.name.split(".")[0]: s for s in cluster.network.services if s.name.startswith("infer")
    }
    replica_runs: list[Service] = list(replicas.values())
    edge = cluster.url("edge", EDGE_PORT)
    client = Client(edge)

    # 1. acquire -> train -> promote on `train`; both replicas (empty homes, running since
    #    before the version existed) serve it within their refresh interval.
    promoted_at = _acquire_train_promote(cluster)
    try:
        wait_until(
            lambda: all(_ready_version(cluster, host) == VERSION for host in REPLICAS),
            REFRESH_SECONDS + LOAD_SLACK_S,
            f"both replicas serving champion {VERSION} after its promotion",
        )
    except AssertionError as exc:
        tails = "\n".join(f"--- {host}: {replicas[host].tail(1500)}" for host in REPLICAS)
        raise AssertionError(f"{exc}\n{tails}") from None
    served_after_s = time.monotonic() - promoted_at
    # The registry is in the run's PostgreSQL database, the model's files on the object store.
    with psycopg.connect(postgres(cluster.database)) as database:
        aliases = database.execute("SELECT alias, version FROM registered_model_aliases")
        assert [(a, str(v)) for a, v in aliases] == [("champion", "1")]
    listing = httpx.get(f"{cluster.s3_endpoint}/{BUCKET}", params={"prefix": "mlflow/"}, timeout=30)
    assert "MLmodel" in listing.text, listing.text[:500]
    scheduler = next(s for s in cluster.network.services if s.name == "scheduler")
    assert scheduler.process.poll() is None, scheduler.tail()

    # 2. Answers through nginx, from both replicas, all by the champion.
    with httpx.Client() as connection:
        for i in range(STEADY_REQUESTS):
            assert client.predict(connection, cluster, f"steady-{i}"), client.failed
    assert client.versions == Counter({VERSION: STEADY_REQUESTS})
    by_replica = Counter(client.answered.values())
    assert set(by_replica) == set(REPLICAS), by_replica

    # ... and every answer in the one log, once (the replicas flush every few seconds).
    wait_until(lambda: len(_logged(cluster)) == len(client.answered), 30, "answers in the log")
    assert Counter(_logged(cluster)) == Counter(client.answered.keys())

    # 3. kill -9 of one replica under load: the other keeps answering through nginx.
    stop = threading.Event()
    senders = [
        threading.Thread(target=_keep_sending, args=(client, cluster, stop, f"load{k}"))
        for k in range(LOAD_THREADS)
    ]
    for sender in senders:
        sender.start()
    time.sleep(2.0)
    at_kill = Counter(client.answered.values())
    killed = replicas["infer-1"]
    killed.process.send_signal(signal.SIGKILL)  # the service alone, as `kill -9 <pid>`
    killed.process.wait(timeout=10)
    time.sleep(4.0)
    after_kill = Counter(client.answered.values())
    failed_under_kill = dict(client.failed)

    # 4. The killed replica comes back on the same home: its spool is written before ready.
    restarted = cluster.start_replica("infer-1", incarnation=2)
    replica_runs.append(restarted)
    wait_until(
        lambda: _ready_version(cluster, "infer-1") == VERSION, 60, "infer-1 ready again", restarted
    )
    time.sleep(1.0)
    stop.set()
    for sender in senders:
        sender.join(timeout=60)

    assert at_kill["infer-1"] > by_replica["infer-1"], "infer-1 was not under load when killed"
    assert after_kill["infer-2"] > at_kill["infer-2"], "infer-2 answered nothing after the kill"
    assert len(failed_under_kill) <= LOAD_THREADS, failed_under_kill  # at most those in flight
    assert "replayed" in restarted.tail(10**9), restarted.tail()

    # 5. Clean shutdown of both replicas (each flushes what it buffered), then the count.
    for host in REPLICAS:
        service = next(s for s in reversed(replica_runs) if s.name.startswith(host))
        service.process.send_signal(signal.SIGTERM)  # the service alone: it stops its helper
        assert service.process.wait(timeout=60) in (0, -signal.SIGTERM), service.tail()
    logged = Counter(_logged(cluster))
    doubled = {n: c for n, c in logged.items() if c > 1}
    assert not doubled, f"logged more than once: {list(doubled.items())[:5]}"
    missing = set(client.answered) - set(logged)
    assert not missing, f"{len(missing)} answered predictions not in the log: {sorted(missing)[:5]}"
    unanswered = set(logged) - set(client.answered)
    assert unanswered <= client.sent, "rows in the log nobody asked for"
    # Only requests in flight when the replica died: spooled (so logged), never answered.
    assert unanswered <= set(client.failed), unanswered

    # Every commit the replicas made is a version of the table (none overwritten).
    commits, rows = _commits_made(replica_runs)
    table = DeltaTable(
        f"{cluster.feature_store_uri}/predictions", storage_options=cluster.storage_options
    )
    assert len(table.history()) == commits, (len(table.history()), commits)
    assert rows == sum(logged.values())

    print(
        f"multihost: champion on both replicas {served_after_s:.1f} s after promotion; "
        f"{len(client.answered)} answered ({dict(Counter(client.answered.values()))}), "
        f"{sum(logged.values())} logged in {commits} commits; {len(client.failed)} failed "
        f"under the kill (status {sorted({v[:3] for v in client.failed.values()})}); {time.monotonic() - started:.0f} s"
    )
