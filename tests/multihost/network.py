"""Hosts on one machine: a bridge and one network namespace per host, made and removed by the
test (root only), and whatever a crashed earlier run left of them swept away first.

Every name carries the run's prefix (``pmh`` + 5 hex digits): namespaces ``<prefix>-<host>``,
the bridge ``<prefix>br``, the veth ends ``<prefix>v<n>`` (Linux allows 15 characters), and the
run's folder ``/tmp/permeability-multihost/<prefix>/`` holding ``owner`` (the pytest pid) and
``groups`` (the process groups started), so a later run can tell a dead run's leftovers from a
live one's and end exactly those processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

RUNS_ROOT: Final = Path("/tmp/permeability-multihost")
PREFIX_PATTERN: Final = re.compile(r"^pmh[0-9a-f]{5}")
#: Seconds a process group gets to stop on SIGTERM before SIGKILL.
STOP_GRACE_S: Final = 20.0


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to the group, SIGKILL to what is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)


def _kill_namespace_processes(namespace: str) -> None:
    """Anything still running in ``namespace`` (a process that left its group)."""
    for text in _ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(text), signal.SIGKILL)


@dataclass
class Service:
    """One process started in a host (its own process group; output in ``log``)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


@dataclass
class Network:
    """The bridge, the hosts' namespaces and addresses, the processes started in them."""

    prefix: str
    subnet: str  # e.g. "10.213.7" (a /24)
    hosts: tuple[str, ...]
    folder: Path
    services: list[Service] = field(default_factory=list)
    _created: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the PostgreSQL forwarder listens)."""
        return f"{self.subnet}.254"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{self.hosts.index(host) + 1}"

    def create(self) -> None:
        """Bridge up with the gateway address, then per host: namespace, veth into the
        bridge, ``eth0`` with the host's address, ``lo`` up."""
        _ip("link", "add", self.bridge, "type", "bridge")
        self._created.append("bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for number, host in enumerate(self.hosts):
            namespace = self.namespace(host)
            _ip("netns", "add", namespace)
            self._created.append(namespace)
            veth = f"{self.prefix}v{number}"
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", veth, "master", self.bridge, "up")
            inside = ("-n", namespace)
            _ip(*inside, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
            _ip(*inside, "link", "set", "lo", "up")

    def start(
        self,
        host: str | None,
        name: str,
        command: Sequence[str],
        environment: Mapping[str, str],
    ) -> Service:
        """``command`` in ``host``'s namespace (``None``: the root namespace), in its own
        process group, recorded so that teardown, or the next run's sweep, ends it."""
        argv = (
            list(command)
            if host is None
            else ["ip", "netns", "exec", self.namespace(host), *command]
        )
        log = self.folder / f"{name}.log"
        output: IO[bytes]
        with log.open("ab") as output:
            process = subprocess.Popen(
                argv,
                env=dict(environment),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with (self.folder / "groups").open("a", encoding="utf-8") as groups:
            groups.write(f"{process.pid}\n")
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def stop(self, service: Service, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM to the service's group, SIGKILL to what is left of it once the service
        ended or after ``grace_s``; its exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=5)
        return service.process.returncode

    def remove(self) -> None:
        """Every process group, every namespace (and what runs in it), the bridge."""
        for service in reversed(self.services):
            if service.process.poll() is None:
                self.stop(service, grace_s=5.0)
        for name in reversed(self._created):
            if name == "bridge":
                _ip("link", "del", self.bridge, check=False)
            else:
                _kill_namespace_processes(name)
                _ip("netns", "del", name, check=False)
        self._created.clear()


def new_network(hosts: Sequence[str]) -> Network:
    """A fresh prefix and /24 not in use on this machine, and the run's folder claimed."""
    prefix = f"pmh{secrets.token_hex(3)[:5]}"
    used = _ip("-o", "addr", "show")
    for _ in range(50):
        subnet = f"10.213.{secrets.randbelow(250) + 1}"
        if f" {subnet}." not in used:
            break
    else:
        raise RuntimeError("no free 10.213.x.0/24 subnet for the test's bridge")
    folder = RUNS_ROOT / prefix
    folder.mkdir(parents=True)
    (folder / "owner").write_text(str(os.getpid()), encoding="utf-8")
    return Network(prefix=prefix, subnet=subnet, hosts=tuple(hosts), folder=folder)


def dead_runs() -> list[str]:
    """Prefixes of earlier runs whose pytest process is gone (their leftovers may go)."""
    prefixes = []
    if RUNS_ROOT.exists():
        for folder in RUNS_ROOT.iterdir():
            owner = folder / "owner"
            pid = int(owner.read_text()) if owner.exists() else 0
            if PREFIX_PATTERN.match(folder.name) and not (pid and _alive(pid)):
                prefixes.append(folder.name)
    return prefixes


def live_runs() -> set[str]:
    if not RUNS_ROOT.exists():
        return set()
    return {f.name for f in RUNS_ROOT.iterdir() if f.name not in dead_runs()}


def sweep() -> list[str]:
    """Remove what crashed earlier runs left: their process groups, namespaces, links and
    folders (databases: :func:`tests.multihost.store.sweep_databases`). Returns the prefixes
    swept."""
    live = live_runs()
    swept = set()
    for prefix in dead_runs():
        groups = RUNS_ROOT / prefix / "groups"
        for line in groups.read_text().split() if groups.exists() else []:
            _kill_group(int(line), grace_s=0.5)  # a dead run: no shutdown to wait for
        swept.add(prefix)
    for namespace in _ip("netns", "list", check=False).split("\n"):
        name = namespace.split(" ")[0]
        found = PREFIX_PATTERN.match(name)
        if found and found.group(0) not in live:
            _kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)
            swept.add(found.group(0))
    for line in _ip("-o", "link", "show", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        found = PREFIX_PATTERN.match(name)
        if found and found.group(0) not in live:
            _ip("link", "del", name, check=False)
            swept.add(found.group(0))
    for prefix in swept:
        shutil.rmtree(RUNS_ROOT / prefix, ignore_errors=True)
    return sorted(swept)
