"""Watch a study live in Optuna Dashboard: ``tunekit dashboard SOURCE [--port N]``.

A tunekit study is an Optuna storage, so `Optuna Dashboard
<https://optuna-dashboard.readthedocs.io>`_ shows it as it runs: trials as they
finish, the optimization history, parameter importances and each trial's user
attributes (tunekit's per-fold scores, failure reasons and worker). This module
starts the dashboard on this machine for a storage URL, an SQLite file or a
result directory that holds one (``results/<study>`` of the studies in
``studies/``). It needs the ``dashboard`` extra::

    pip install 'tunekit[dashboard]'

The server is a small single-process WSGI server bound to ``127.0.0.1`` by
default: open it on another machine through an SSH tunnel
(``ssh -L 8080:localhost:8080 HOST``) rather than binding a public address.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import threading
import wsgiref.simple_server
from collections.abc import Callable, Iterator
from pathlib import Path

from tunekit.exceptions import TunekitError
from tunekit.storage import open_for_reading
from tunekit.storage.urls import SQLITE_SUFFIXES, redact_url, sqlite_url

__all__ = [
    "DEFAULT_PORT",
    "DashboardError",
    "command",
    "make_server",
    "serve",
    "storage_url",
]

logger = logging.getLogger("tunekit")

DEFAULT_PORT = 8080
INSTALL = "pip install 'tunekit[dashboard]'"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DashboardError(TunekitError, ValueError):
    """The dashboard cannot start: a bad source, a port in use or a missing extra."""


def _import_dashboard():
    try:
        import optuna_dashboard
    except ImportError:
        raise ImportError(
            f"tunekit dashboard needs Optuna Dashboard, which is not installed: {INSTALL}"
        ) from None
    return optuna_dashboard


def storage_url(source: str | os.PathLike) -> str:
    """The Optuna storage URL behind ``source``.

    Parameters
    ----------
    source : str or path-like
        A storage URL (``sqlite:///results/tune/study.db``,
        ``postgresql://user@host/db``), an SQLite file (``.db``, ``.sqlite``,
        ``.sqlite3``) or a directory holding exactly one such file (a study's
        result directory).

    Returns
    -------
    url : str
        The URL as given, or ``sqlite:///<absolute path>`` for a file or
        directory.

    Raises
    ------
    DashboardError
        If the path does not exist, is not an SQLite file, or the directory
        holds no or several databases.

    Examples
    --------
    >>> from tunekit.dashboard import storage_url
    >>> storage_url("postgresql://tuner@db.example/studies")
    'postgresql://tuner@db.example/studies'
    """
    text = os.fspath(source)
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in SQLITE_SUFFIXES)
        if len(found) != 1:
            what = f"{len(found)} databases {[p.name for p in found]}" if found else "no database"
            raise DashboardError(
                f"the directory {text!r} holds {what}; the dashboard needs exactly one Optuna "
                "storage: pass its file or its URL (sqlite:///PATH, postgresql://...)"
            )
        path = found[0]
    elif not path.exists():
        raise DashboardError(
            f"no such file or directory: {text!r}; pass a storage URL (sqlite:///..., "
            "postgresql://...), an SQLite file or a study's result directory"
        )
    elif path.suffix.lower() not in SQLITE_SUFFIXES:
        raise DashboardError(
            f"{text!r} is not an SQLite study database (.db, .sqlite, .sqlite3); pass a "
            "storage URL, an SQLite file or a study's result directory"
        )
    return sqlite_url(path, absolute=True)


def _open_storage(url: str):
    """An RDBStorage on ``url`` that creates no table (a typo must not make a database)."""
    shown = redact_url(url)
    try:
        storage = open_for_reading(url, allow_memory=False)
    except ValueError as err:
        raise DashboardError(str(err)) from None
    names = [s.study_name for s in storage.get_all_studies()]
    if names:
        logger.info("%s holds %d stud%s: %s", shown, len(names), "y" if len(names) == 1 else
                    "ies", ", ".join(names))
    else:
        logger.info("%s holds no study yet; reload the page once one has started", shown)
    return storage


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    """No access log line per request (the page polls the API every few seconds)."""

    def log_message(self, format: str, *args) -> None:
        logger.debug("dashboard: " + format, *args)


def make_server(
    source: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
) -> wsgiref.simple_server.WSGIServer:
    """A WSGI server running Optuna Dashboard on ``source``, bound but not yet serving.

    Parameters
    ----------
    source : str or path-like
        A storage URL, an SQLite file or a result directory (see
        :func:`storage_url`).
    host : str, default="127.0.0.1"
        Address to bind; the default serves this machine only.
    port : int, default=8080
        Port to listen on; 0 picks a free one (read it from
        ``server.server_port``).

    Returns
    -------
    server : wsgiref.simple_server.WSGIServer
        Call ``serve_forever()`` (in a thread, if you like) and ``shutdown()``,
        then ``server_close()``.

    Raises
    ------
    ImportError
        If ``optuna-dashboard`` is not installed (``pip install 'tunekit[dashboard]'``).
    DashboardError
        If the source cannot be read or the port is in use.
    """
    dashboard = _import_dashboard()
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise DashboardError(f"port must be an integer in 0..65535 (0: any free one), got {port!r}")
    url = storage_url(source)
    app = dashboard.wsgi(_open_storage(url))
    try:
        return wsgiref.simple_server.make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as err:
        raise DashboardError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); pass another port "
            "(--port N, or 0 for any free one)"
        ) from None


def serve(
    source: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve Optuna Dashboard on ``source`` until Ctrl-C (or SIGTERM).

    Parameters
    ----------
    source, host, port
        See :func:`make_server`.
    announce : callable, default=print
        Called once with a line giving the dashboard's address.

    Examples
    --------
    >>> from tunekit.dashboard import serve
    >>> serve("results/tune", port=8080)  # doctest: +SKIP
    Optuna Dashboard for sqlite:///.../results/tune/study.db: http://127.0.0.1:8080/dashboard/
    """
    server = make_server(source, host=host, port=port)
    shown = "localhost" if host in ("127.0.0.1", "localhost", "::1") else host
    announce(
        f"Optuna Dashboard for {redact_url(storage_url(source))}: "
        f"http://{shown}:{server.server_port}/dashboard/ (Ctrl-C to stop)"
    )
    try:
        with _stopped_by_signals(server):
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextlib.contextmanager
def _stopped_by_signals(server) -> Iterator[None]:
    """SIGINT and SIGTERM stop ``serve_forever`` between requests, not inside one.

    A ``KeyboardInterrupt`` raised while a request is answered would be caught
    by wsgiref's error handler and the server would go on serving.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def command(source: str | os.PathLike) -> str:
    """The shell command that opens ``source`` in the dashboard (passwords masked).

    Examples
    --------
    >>> from tunekit.dashboard import command
    >>> command("sqlite:///results/tune/study.db")
    'tunekit dashboard sqlite:///results/tune/study.db'
    """
    return f"tunekit dashboard {shlex.quote(redact_url(os.fspath(source)))}"
