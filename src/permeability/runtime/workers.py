"""Several uvicorn workers on one port, each accepting on its own listening socket.

Why: uvicorn's multi-worker mode hands every worker the same listening socket, and the worker
whose event loop wakes first accepts every connection that is waiting. A client that opens
its keep-alive connections at once (a load balancer's pool, a load generator) therefore lands
them all on one worker while the other idles: measured on this 2-core machine kind with 32
connections, 32/0 in two runs of three (7,100-7,600 req/s, p99 8.8-11.4 ms) against 14/18 in
the third (13,000 req/s, p99 7.9 ms). With ``SO_REUSEPORT`` each worker listens on a socket of
its own and Linux spreads new connections over those sockets by a hash of the addresses.

How, without replacing uvicorn's supervisor (worker restarts, signals, health checks): the
parent binds one socket with ``SO_REUSEPORT`` that never listens (it holds the port, so a
port in use fails at once, and it fixes the port when 0 was asked for). Uvicorn pickles the
sockets it is given into each worker it starts; this one unpickles into a *new* socket bound
to the same address, which uvicorn's server starts listening on once the app's start-up has
finished, so a worker still loading its model receives no connections. Where the platform has
no load-balancing ``SO_REUSEPORT`` (not Linux), the workers share one socket as uvicorn does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from typing import Any

logger = logging.getLogger("uvicorn.error")

#: Linux balances connections over sockets sharing a port; other systems give them to one.
BALANCES_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bound(sock: socket.socket, address: tuple[Any, ...], *, reuse_port: bool) -> socket.socket:
    """``sock`` bound to ``address``, not yet listening (closed if binding fails).

    TCP_NODELAY is set here because Linux copies it to every accepted connection: uvicorn
    binds without naming the TCP protocol, so asyncio would leave Nagle's algorithm on and
    every small answer would wait ~40 ms for the client's delayed ACK.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind_worker_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A worker's own socket on the shared address (``SO_REUSEPORT``), not yet listening."""
    return _bound(socket.socket(family, socket.SOCK_STREAM), address, reuse_port=True)


class PortReservation(socket.socket):
    """The parent's socket on the port; each worker that unpickles it gets its own socket.

    ``multiprocessing`` sends plain sockets to a child by duplicating the descriptor (the
    shared-socket case); this subclass defines its own pickling instead.
    """

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return bind_worker_socket, (self.family, self.getsockname())


def reserve_port(host: str, port: int) -> PortReservation:
    """Bind the parent's socket (never listening); ``port`` 0 picks a free one.

    The port is first taken by a plain socket: sockets that all set ``SO_REUSEPORT`` share a
    port, so without this a second service started by mistake on the port of a running one
    would silently get half its connections instead of failing with "address in use". (While
    the first one's workers are still starting, nothing listens yet and the check cannot see
    it: ``SO_REUSEADDR``, needed to restart over connections in TIME_WAIT, lets the bind pass.)
    """
    family = _family(host)
    with _bound(socket.socket(family, socket.SOCK_STREAM), (host, port), reuse_port=False) as probe:
        port = probe.getsockname()[1]
    reservation = PortReservation(family, socket.SOCK_STREAM)
    _bound(reservation, (host, port), reuse_port=True)
    return reservation


def shared_socket(host: str, port: int) -> socket.socket:
    """One listening socket all workers accept on (uvicorn's own way), with TCP_NODELAY."""
    return _bound(socket.socket(_family(host), socket.SOCK_STREAM), (host, port), reuse_port=False)


def run_workers(app_path: str, workers: int, host: str, port: int, *, access_log: bool) -> None:
    """Serve the ``module:factory`` app with ``workers`` uvicorn processes until stopped."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        app_path,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        access_log=access_log,
        lifespan="on",  # a failed start-up stops the worker instead of serving without state
    )
    try:
        sock = reserve_port(host, port) if BALANCES_CONNECTIONS else shared_socket(host, port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    bound_host, bound_port = sock.getsockname()[:2]
    logger.info(
        "Uvicorn running on http://%s:%d with %d workers (%s) (Press CTRL+C to quit)",
        bound_host,
        bound_port,
        workers,
        "one socket each, SO_REUSEPORT" if BALANCES_CONNECTIONS else "one shared socket",
    )
    with sock, contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()
