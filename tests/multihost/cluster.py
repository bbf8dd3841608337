"""The project spread over hosts: what runs where, with which settings, and how it is started.

``store``: PostgreSQL (the machine's, through a socat forwarder on the bridge) behind ``mlflow
server``, moto's S3 server holding MLflow's artifacts, the feature store and the prediction log
(Delta tables). ``train``: the training service and the scheduler. ``infer-1``, ``infer-2``:
inference replicas, each with an EMPTY home of its own. ``edge``: nginx in front of them.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import psycopg

from tests.multihost.network import PREFIX_PATTERN, Network, Service

HOSTS: Final = ("store", "train", "infer-1", "infer-2", "edge")
REPLICAS: Final = ("infer-1", "infer-2")
BUCKET: Final = "permeability"
S3_PORT: Final = 9000
MLFLOW_PORT: Final = 5000
TRAINING_PORT: Final = 8000
INFERENCE_PORT: Final = 8001
EDGE_PORT: Final = 8080


def postgres(database: str) -> str:
    """The machine's PostgreSQL as the root namespace reaches it (trust, user postgres)."""
    return f"host=127.0.0.1 port=5432 user=postgres dbname={database}"


#: Where runs' databases are created and dropped from.
POSTGRES_ADMIN: Final = postgres("test")
BIN: Final = Path(sys.executable).parent
#: Header nginx adds to every answer: which replica(s) it tried, the last one answered.
UPSTREAM_HEADER: Final = "X-Upstream"
#: Bearer token of the training service's state-changing endpoints.
API_TOKEN: Final = "multihost-token"


def wait_until(
    ready: Callable[[], bool], timeout_s: float, what: str, service: Service | None = None
) -> None:
    """Poll ``ready`` until true; a clear failure (with the service's output) otherwise."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if service is not None and service.process.poll() is not None:
            raise AssertionError(f"{what}: {service.name} exited: {service.tail()}")
        if time.monotonic() > deadline:
            tail = service.tail() if service is not None else ""
            raise AssertionError(f"{what} not within {timeout_s:.0f} s. {tail}")
        time.sleep(0.25)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Cluster:
    """Addresses, settings and processes of one run."""

    network: Network
    database: str
    homes: Path

    def url(self, host: str, port: int) -> str:
        return f"http://{self.network.address(host)}:{port}"

    @property
    def s3_endpoint(self) -> str:
        return self.url("store", S3_PORT)

    @property
    def storage_options(self) -> dict[str, str]:
        """deltalake's options for the object store (the test reads the log with them)."""
        return {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "multihost",
            "AWS_SECRET_ACCESS_KEY": "multihost",  # moto accepts any key
            "AWS_REGION": "us-east-1",
        }

    @property
    def feature_store_uri(self) -> str:
        return f"s3://{BUCKET}/feature-store"

    def base_environment(self) -> dict[str, str]:
        """What every process gets: the object store's endpoint and keys, no telemetry, the
        venv's tools on PATH, and none of the developer's ``PERMEABILITY_*``."""
        return {
            "PATH": f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "OMP_NUM_THREADS": "1",
            **self.storage_options,
        }

    def project_environment(self, host: str) -> dict[str, str]:
        """A project process on ``host``: its own home, the shared feature store and log on S3,
        the MLflow server on ``store``."""
        home = self.homes / host
        home.mkdir(parents=True, exist_ok=True)
        return {
            **self.base_environment(),
            "HOME": str(home),
            "PERMEABILITY_HOME": str(home / "storage"),
            "PERMEABILITY_FEATURE_STORE_URI": self.feature_store_uri,
            "MLFLOW_TRACKING_URI": self.url("store", MLFLOW_PORT),
            "PERMEABILITY_API_TOKEN": API_TOKEN,
        }

    # ------------------------------------------------------------ starting hosts

    def start_forwarder(self) -> Service:
        """PostgreSQL listens on 127.0.0.1 of the root namespace: socat on the bridge address."""
        gateway = self.network.gateway
        listen = f"TCP-LISTEN:5432,bind={gateway},reuseaddr,fork"
        return self.network.start(
            None, "socat", ["socat", listen, "TCP:127.0.0.1:5432"], self.base_environment()
        )

    def start_object_store(self) -> Service:
        address = self.network.address("store")
        command = [str(BIN / "moto_server"), "-H", address, "-p", str(S3_PORT)]
        service = self.network.start("store", "moto", command, self.base_environment())
        wait_until(lambda: answers(f"{self.s3_endpoint}/"), 30, "moto's S3 server", service)
        created = httpx.put(f"{self.s3_endpoint}/{BUCKET}", timeout=10)
        created.raise_for_status()
        return service

    def start_mlflow(self) -> Service:
        address = self.network.address("store")
        backend = f"postgresql+psycopg://postgres@{self.network.gateway}:5432/{self.database}"
        command = [
            *(str(BIN / "mlflow"), "server", "--host", address, "--port", str(MLFLOW_PORT)),
            *("--workers", "1", "--backend-store-uri", backend),
            *("--artifacts-destination", f"s3://{BUCKET}/mlflow"),
            *("--allowed-hosts", f"{address},{address}:{MLFLOW_PORT}"),
        ]
        environment = {
            **self.base_environment(),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }
        service = self.network.start("store", "mlflow", command, environment)
        health = f"{self.url('store', MLFLOW_PORT)}/health"
        wait_until(lambda: answers(health), 120, "mlflow server", service)
        return service

    def start_project(self, host: str, name: str, *args: str) -> Service:
        command = [sys.executable, "-m", "permeability", *args]
        return self.network.start(host, name, command, self.project_environment(host))

    def start_training(self) -> Service:
        address = self.network.address("train")
        service = self.start_project(
            "train",
            "training",
            "serve",
            "training",
            "--host",
            address,
            "--port",
            str(TRAINING_PORT),
        )
        health = f"{self.url('train', TRAINING_PORT)}/health"
        wait_until(lambda: answers(health), 120, "training service", service)
        return service

    def start_replica(self, host: str, incarnation: int = 1) -> Service:
        """``permeability serve inference`` on ``host`` (alive: /health; serving: /ready)."""
        address = self.network.address(host)
        service = self.start_project(
            host,
            f"{host}.{incarnation}",
            *("serve", "inference", "--host", address, "--port", str(INFERENCE_PORT)),
            "--no-access-log",
        )
        health = f"{self.url(host, INFERENCE_PORT)}/health"
        wait_until(lambda: answers(health), 120, f"inference on {host}", service)
        return service

    def start_edge(self) -> Service:
        prefix = self.network.folder / "nginx"
        prefix.mkdir()
        config = prefix / "nginx.conf"
        config.write_text(self.nginx_config(prefix), encoding="utf-8")
        command = ["nginx", "-c", str(config), "-p", str(prefix), "-e", str(prefix / "error.log")]
        service = self.network.start("edge", "nginx", command, self.base_environment())
        wait_until(lambda: answers(f"{self.url('edge', EDGE_PORT)}/health"), 30, "nginx", service)
        return service

    def nginx_config(self, prefix: Path) -> str:
        servers = "\n".join(
            f"    server {self.network.address(h)}:{INFERENCE_PORT} max_fails=1 fail_timeout=10s;"
            for h in REPLICAS
        )
        temp = "\n".join(
            f"  {kind}_temp_path {prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""daemon off;
user root;
worker_processes 1;
pid {prefix / "nginx.pid"};
events {{ worker_connections 512; }}
http {{
  access_log off;
{temp}
  upstream inference {{
{servers}
  }}
  server {{
    listen {self.network.address("edge")}:{EDGE_PORT};
    location / {{
      proxy_pass http://inference;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      add_header {UPSTREAM_HEADER} $upstream_addr always;
    }}
  }}
}}
"""


def replica_of(cluster: Cluster, upstream: str) -> str:
    """The replica that answered, from nginx's ``$upstream_addr`` (the last one tried)."""
    address = upstream.split(",")[-1].strip().rsplit(":", 1)[0]
    hosts = {cluster.network.address(h): h for h in REPLICAS}
    return hosts.get(address, f"unknown {upstream!r}")


def create_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection,
    ):
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sweep_databases(live: set[str]) -> list[str]:
    """Databases of earlier runs (named by their prefix) that no live run owns."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
    stale = [n for n in names if PREFIX_PATTERN.fullmatch(n) and n not in live]
    for name in stale:
        drop_database(name)
    return stale
