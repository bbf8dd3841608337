"""Several uvicorn workers on one port, each accepting on its own listening socket.

Why: uvicorn's multi-worker mode hands every worker the same listening socket, and the worker
whose event loop wakes first accepts every connection waiting in it. A client that opens its
keep-alive connections at once (a load balancer's pool, a load generator) can therefore land
them all on one worker while the other idles: on an idle 2-core machine, wrk's 32 connections
went 32/0 in two runs of three (7,100-7,600 req/s, p99 8.8-11.4 ms) against 14/18 in the third
(13,000 req/s, p99 7.9 ms). With ``SO_REUSEPORT`` each worker listens on a socket of its own
and Linux spreads new connections over those sockets by a hash of the addresses.

How, without replacing uvicorn's supervisor (worker restarts, signals, health checks): the
parent binds one socket with ``SO_REUSEPORT`` that never listens (it holds the port, so a
port in use fails at once, and it fixes the port when 0 was asked for). Uvicorn pickles the
sockets it is given into each worker it starts; this one unpickles into a *new* socket bound
to the same address, which uvicorn's server starts listening on once the app's start-up has
finished, so a worker still loading its model receives no connections. Where the platform has
no load-balancing ``SO_REUSEPORT`` (not Linux), the workers share one socket as uvicorn does.

What of uvicorn (0.54) this relies on, public names but undocumented behaviour (no attribute
with a leading underscore is read): ``uvicorn.supervisors.Multiprocess(config, sockets).run()``
is the supervisor ``uvicorn.run(workers=N)`` itself runs; it gives the sockets to every worker
it starts or restarts as an argument of a ``spawn`` multiprocessing process, so they are
pickled (where :class:`PortReservation` takes over); the worker's ``Server`` hands each socket
to ``loop.create_server(sock=...)`` only after the lifespan start-up, and asyncio calls
``listen()`` then; ``uvicorn.config.STARTUP_FAILURE`` is the exit status of a failed start. A
uvicorn release that changes any of these fails ``tests/unit/runtime/test_workers.py`` or
``tests/e2e/test_serve_workers.py``.

Why no public API instead: uvicorn's own (``run`` or ``Config`` with ``workers``, ``fd``) binds
one socket in the supervisor that every worker inherits; per-worker sockets were proposed
upstream but are not released. Gunicorn 27's ``reuse_port`` does bind a socket in each worker
after the fork, and with ``uvicorn_worker.UvicornWorker`` it spreads connections as well as this
module at the same CPU per answer (below), but it is not as exact, each checked: a port in use
makes each worker retry for 5 s and exit 1, which the arbiter restarts for ever (here: the start
stops at once naming the port); a second service started on the port of a running one silently
takes half its connections (98/102 answers); a worker listens before its app's start-up, so a
restarted worker's share of new connections waits for its model; and forked workers are not
multiprocessing children, so after a ``kill -9`` of the arbiter they serve on as orphans
(uvicorn's stop: ``exit_with_supervisor`` in ``services/inference/state.py``). Putting those
back would take as much code around gunicorn as this module, plus two dependencies.

Measured by ``bench/workers.py``: 2 workers, wrk POSTing a sample to ``/inference`` over 32
keep-alive connections, the five servers running at once and their runs interleaved; three
runs (3, 3 and 5 rounds) on a 2-core machine that other jobs kept at a load average of 3 to 10,
so req/s moved up to 3x between rounds of one server: only CPU per answer and the spread of
connections tell the ways apart. Median of each run; rounds with all 32 connections on one
worker (and the smaller worker's fewest) over all 11:

    way                                            req/s     p99 ms   CPU us/ans  all 32 on one
    this module                        1,183/1,774/1,889  108/60/79  358/356/349  0/11 (fewest 9)
    uvicorn.run(workers=2), one socket   982/1,619/2,039   82/60/60  353/406/321  2/11 (32/0, 31/1)
    gunicorn+UvicornWorker, one socket 1,497/1,611/2,784   72/52/32  330/348/312  2/11 (32/0 twice)
    gunicorn+UvicornWorker, reuse_port 1,164/1,464/2,062   72/55/60  358/356/362  0/11 (fewest 7)
    gunicorn -k asgi, reuse_port         894/1,560/1,543   94/61/59  413/364/423  0/11 (fewest 12)
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
