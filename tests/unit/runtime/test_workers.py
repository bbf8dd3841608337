"""Listening sockets for several uvicorn workers: one per worker on the same port.

Loopback only (no network beyond this machine). The balancing itself is Linux's; these tests
check what the project relies on: the parent's socket holds the port without taking
connections, each worker's copy is a socket of its own on that port, and the kernel spreads
connections over the worker sockets.
"""

from __future__ import annotations

import io
import pickle
import selectors
import socket
from collections import Counter
from collections.abc import Iterator

import pytest
from uvicorn.config import STARTUP_FAILURE

from permeability.runtime.workers import BALANCES_CONNECTIONS, reserve_port, run_workers

pytestmark = pytest.mark.skipif(
    not BALANCES_CONNECTIONS, reason="SO_REUSEPORT balancing is Linux's"
)


def _as_sent_to_a_worker(sock: socket.socket) -> socket.socket:
    """What a worker process receives: the socket through multiprocessing's pickler."""
    from multiprocessing.reduction import ForkingPickler

    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(sock)
    received = pickle.loads(buffer.getvalue())  # noqa: S301  (our own bytes)
    assert isinstance(received, socket.socket)
    return received


@pytest.fixture
def reservation() -> Iterator[socket.socket]:
    sock = reserve_port("127.0.0.1", 0)
    try:
        yield sock
    finally:
        sock.close()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_parents_socket_holds_the_port_but_takes_no_connection(
    reservation: socket.socket,
) -> None:
    port = reservation.getsockname()[1]
    assert port > 0
    assert _refused(port)
    other = socket.socket()
    with other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", port))  # a server without SO_REUSEPORT cannot take the port


def test_a_second_service_on_the_same_port_is_refused(reservation: socket.socket) -> None:
    """Sockets that all set SO_REUSEPORT share a port: a mistaken second start on the port of
    a running service must fail instead of silently taking half of its connections."""
    port = reservation.getsockname()[1]
    with _as_sent_to_a_worker(reservation) as worker:
        worker.listen()  # the first service is up
        with pytest.raises(OSError, match="in use"):
            reserve_port("127.0.0.1", port)


def test_each_worker_gets_its_own_socket_on_the_port_listening_only_when_told(
    reservation: socket.socket,
) -> None:
    port = reservation.getsockname()[1]
    first = _as_sent_to_a_worker(reservation)
    second = _as_sent_to_a_worker(reservation)
    with first, second:
        assert len({reservation.fileno(), first.fileno(), second.fileno()}) == 3
        assert first.getsockname() == second.getsockname() == ("127.0.0.1", port)
        assert first.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert _refused(port)  # bound, not listening: a worker still starting takes nothing
        first.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            accepted, _ = first.accept()
            with accepted:  # Linux copies TCP_NODELAY to the accepted connection
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_connections_are_spread_over_the_workers_sockets(reservation: socket.socket) -> None:
    port = reservation.getsockname()[1]
    listeners = [_as_sent_to_a_worker(reservation) for _ in range(2)]
    selector = selectors.DefaultSelector()
    for index, listener in enumerate(listeners):
        listener.listen(128)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, index)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(64)]
    taken: Counter[int] = Counter()
    accepted: list[socket.socket] = []
    try:
        while sum(taken.values()) < len(clients):
            events = selector.select(timeout=5)
            assert events, f"only {sum(taken.values())} of {len(clients)} connections arrived"
            for key, _ in events:
                with_listener = listeners[key.data]
                while True:
                    try:
                        connection, _ = with_listener.accept()
                    except BlockingIOError:
                        break
                    accepted.append(connection)
                    taken[key.data] += 1
    finally:
        for sock in (*clients, *accepted, *listeners):
            sock.close()
        selector.close()
    # By a hash of the addresses: 64 connections split about 32/32; fewer than 12 on one
    # socket has a probability below 1e-6. One shared socket would give them all to one worker.
    assert min(taken[0], taken[1]) >= 12, taken


def test_a_port_in_use_stops_the_start_naming_it(capfd: pytest.CaptureFixture[str]) -> None:
    busy = socket.socket()
    with busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            run_workers(
                "permeability.services.inference.app:create_app",
                2,
                "127.0.0.1",
                port,
                access_log=False,
            )
    assert stop.value.code == STARTUP_FAILURE
    assert f"cannot listen on 127.0.0.1:{port}" in capfd.readouterr().err
