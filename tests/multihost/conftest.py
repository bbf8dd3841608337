"""The multi-host topology as a module fixture: made before the test, removed after it, even
when the test fails (finalizers), and leftovers of crashed runs swept first.

Needs root, ``ip``, ``socat``, Debian's nginx (scripts/setup-multihost.sh installs both),
moto's and MLflow's servers in the venv and the machine's PostgreSQL. Without one of them
the test skips with the reason, except under ``PERMEABILITY_REQUIRE_SERVICES=1`` (CI), where
it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.multihost.cluster import (
    BIN,
    HOSTS,
    REPLICAS,
    Cluster,
    create_database,
    drop_database,
    sweep_databases,
)
from tests.multihost.network import live_runs, new_network, sweep

REPO_ROOT = Path(__file__).resolve().parents[2]


def _skip_or_fail(message: str) -> None:
    if os.environ.get("PERMEABILITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and PERMEABILITY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def require_hosts() -> None:
    """Root and every tool the topology needs, or a skip (a failure under CI) saying which."""
    if os.geteuid() != 0:
        _skip_or_fail("the multi-host test needs root (network namespaces)")
    tools = {
        "ip": shutil.which("ip"),
        "socat (Debian package 'socat')": shutil.which("socat"),
        "nginx (Debian package 'nginx-light')": shutil.which("nginx", path="/usr/sbin:/usr/bin"),
        "moto_server (moto[server], dev group)": shutil.which("moto_server", path=str(BIN)),
        "mlflow": shutil.which("mlflow", path=str(BIN)),
    }
    missing = [name for name, found in tools.items() if not found]
    if missing:
        _skip_or_fail(f"missing for the multi-host test: {', '.join(missing)}")
    require_service("PostgreSQL", "127.0.0.1", 5432)


def _keep_logs(cluster: Cluster) -> None:
    """Every process's output in test-artifacts/multihost/ (gitignored), for a failed run."""
    target = Path(os.environ.get("PERMEABILITY_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    target = target / "multihost"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    for log in cluster.network.folder.glob("*.log"):
        shutil.copy(log, target / log.name)
    nginx_errors = cluster.network.folder / "nginx" / "error.log"
    if nginx_errors.exists():
        shutil.copy(nginx_errors, target / "nginx-error.log")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Bridge, namespaces, forwarder, database, S3, MLflow, training + scheduler, two
    replicas (empty homes) and nginx. Each removal is registered before the part exists and
    runs even when setup or the test fails: processes and namespaces first, then the logs are
    kept, then the database is dropped and the run's folder removed."""
    require_hosts()
    sweep()
    sweep_databases(live_runs())
    network = new_network(HOSTS)
    cluster = Cluster(network=network, database=network.prefix, homes=network.folder / "homes")
    with ExitStack() as teardown:
        teardown.callback(shutil.rmtree, network.folder, ignore_errors=True)
        teardown.callback(drop_database, cluster.database)
        teardown.callback(_keep_logs, cluster)
        teardown.callback(network.remove)
        network.create()
        cluster.start_forwarder()
        create_database(cluster.database)
        cluster.start_object_store()
        cluster.start_mlflow()
        cluster.start_training()
        cluster.start_project("train", "scheduler", "schedule")
        for host in REPLICAS:
            cluster.start_replica(host)
        cluster.start_edge()
        yield cluster
