"""Dask and Ray for scikit-learn searches: where ``tunekit.search(..., backend=)`` fits.

``tunekit.search(..., backend="dask", scheduler=ADDRESS)`` and
``backend="ray"`` run the grid, random and halving searches' fits
(candidates x folds) through joblib on a cluster (:func:`parallel_backend`).
An Optuna study scales out through its shared storage instead
(:func:`check_backend` says so before any work); ``tunekit run --ray`` runs
a study's workers as Ray tasks (:mod:`tunekit.launch`), connected through
:func:`connect`.

Reaching a cluster is checked first: an address that does not answer is a
:class:`ConnectionError` after :data:`DASK_CONNECT_TIMEOUT` or
:data:`RAY_CONNECT_TIMEOUT` seconds, not a hang (``ray.init`` itself retries
an unreachable address for minutes). Dask and Ray are optional: ``pip install
'tunekit[dask]'`` or ``'tunekit[ray]'``; they are imported on first use.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

__all__ = [
    "BACKENDS",
    "DASK_CONNECT_TIMEOUT",
    "DEFAULT_CLIENT_PORT",
    "DEFAULT_GCS_PORT",
    "RAY_CONNECT_TIMEOUT",
    "check_backend",
    "check_reachable",
    "connect",
    "dask_backend",
    "parallel_backend",
    "ray_backend",
]

BACKENDS = (None, "dask", "ray")
DASK_CONNECT_TIMEOUT = 10.0  # seconds to wait for a Dask scheduler


def check_backend(backend, strategy: str, engine: str = "auto") -> None:
    """Refuse a parallel backend that cannot run ``strategy``, before any work.

    Raises
    ------
    ValueError
        For an unknown backend, for ``backend="dask"`` or ``"ray"`` with the
        Optuna strategy (Optuna scales out through a shared storage) or with
        ``engine="stacked"``.
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"backend must be None (joblib on this machine) or 'dask' / 'ray' (a "
            f"dask.distributed or Ray cluster), got backend={backend!r}"
        )
    if backend is not None and strategy == "optuna":
        launcher = "--ray ADDRESS" if backend == "ray" else "--workers N"
        raise ValueError(
            f"backend={backend!r} runs the grid, random and halving searches; an Optuna study "
            "scales out through its storage instead: pass storage='postgresql://...' and "
            f"start one worker per machine (python -m tunekit.workers, or tunekit run "
            f"{launcher})"
        )
    if backend is not None and engine == "stacked":
        raise ValueError(
            "engine='stacked' trains every candidate in one model on this machine, so it "
            f"cannot use backend={backend!r}; pass engine='sklearn' (or 'auto') to spread "
            "the fits"
        )


@contextlib.contextmanager
def dask_backend(scheduler=None, *, timeout: float | None = None) -> Iterator:
    """Run joblib's parallel loops (scikit-learn's searches) on a Dask cluster.

    Parameters
    ----------
    scheduler : str, distributed.Client or None
        The scheduler's address (``"tcp://host:8786"``), a client, or ``None``
        for the client already made in this process.
    timeout : float or None, default=None
        Seconds to wait for the scheduler (``None``: ``DASK_CONNECT_TIMEOUT``,
        10).

    Yields
    ------
    client : distributed.Client

    Raises
    ------
    ImportError
        If ``dask.distributed`` is not installed.
    ConnectionError
        If the scheduler cannot be reached.
    ValueError
        If ``scheduler`` is ``None`` and no client exists.
    """
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "backend='dask' needs dask.distributed, which is not installed: "
            "pip install 'tunekit[dask]'"
        ) from None
    from joblib import parallel_config

    timeout = DASK_CONNECT_TIMEOUT if timeout is None else timeout
    own = False
    if isinstance(scheduler, distributed.Client):
        client = scheduler
    elif scheduler is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError(
                "backend='dask' needs a scheduler: pass scheduler='tcp://HOST:8786' (the "
                "address `dask scheduler` prints) or create a distributed.Client first"
            ) from None
    else:
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
                f"({type(err).__name__}: {_first_line(err)}). Start one with `dask scheduler` "
                "and workers with `dask worker ADDRESS`, and check the address and port."
            ) from None
        own = True
    try:
        with parallel_config(backend="dask", client=client):
            yield client
    finally:
        if own:
            client.close()


def parallel_backend(backend: str | None, scheduler=None):
    """The context :func:`tunekit.search` fits under: Dask's, Ray's, or nothing for ``None``.

    With ``backend="ray"``, ``scheduler`` is the Ray cluster's address (or
    ``None`` for the cluster this process is connected to); see
    :func:`ray_backend`.
    """
    if backend is None:
        return contextlib.nullcontext()
    check_backend(backend, "grid")
    if backend == "ray":
        return ray_backend(scheduler)
    return dask_backend(scheduler)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


# ------------------------------------------------------------------ ray
RAY_CONNECT_TIMEOUT = 10.0  # seconds to wait for a Ray cluster's address to answer
DEFAULT_GCS_PORT = 6379  # ``ray start --head`` listens here
DEFAULT_CLIENT_PORT = 10001  # Ray Client (``ray://HOST``)
INSTALL = "pip install 'tunekit[ray]'"
_LOCAL_ADDRESSES = ("auto", "local")
_START_HINT = (
    "Start a cluster with `ray start --head` (it prints the address, HOST:6379) and "
    "`ray start --address HOST:6379` on the other machines"
)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(
            f"backend='ray' and tunekit run --ray need Ray, which is not installed: {INSTALL}"
        ) from None
    return ray


def _endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` to probe for ``address``; None for ``"auto"`` and ``"local"``."""
    text = str(address).strip()
    if text.lower() in _LOCAL_ADDRESSES:
        return None
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme.lower() != "ray":
        raise ValueError(
            f"a Ray address is HOST:PORT (the GCS, port {DEFAULT_GCS_PORT} by default), "
            f"ray://HOST:PORT (Ray Client) or 'auto', got {address!r}"
        )
    rest = rest.split("/", 1)[0]
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit():
        host, port = rest, ""
    host = host.strip("[]")
    if not host:
        raise ValueError(
            f"a Ray address needs a host, e.g. 10.0.0.5:{DEFAULT_GCS_PORT}, got {address!r}"
        )
    default = DEFAULT_CLIENT_PORT if scheme else DEFAULT_GCS_PORT
    return host, int(port) if port else default


def check_reachable(address: str, timeout: float | None = None) -> None:
    """Fail fast when nothing answers at a Ray cluster's address.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` (the cluster's GCS address, as ``ray start --head``
        prints it; port 6379 when omitted), ``ray://HOST:PORT`` (Ray Client;
        port 10001 when omitted), or ``"auto"`` / ``"local"`` (not probed).
    timeout : float or None, default=None
        Seconds to wait for a TCP connection (``None``: :data:`RAY_CONNECT_TIMEOUT`).

    Raises
    ------
    ConnectionError
        If no connection can be made within ``timeout``.
    ValueError
        If ``address`` is not a Ray address.
    """
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    timeout = RAY_CONNECT_TIMEOUT if timeout is None else float(timeout)
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address!r} within {timeout:g} s ({reason}). "
            f"{_START_HINT}, and check the address and port."
        ) from None


def _same_cluster(address: str, gcs_address: str) -> bool:
    endpoint = _endpoint(address)
    if endpoint is None or str(address).startswith("ray://"):
        return True  # 'auto', or a client address: the connection made is the one asked for
    return endpoint[1] == int(gcs_address.rpartition(":")[2] or 0)


@contextlib.contextmanager
def connect(
    address: str | None = None, *, timeout: float | None = None, log_to_driver: bool = False
) -> Iterator:
    """Be connected to a Ray cluster for the duration of the block.

    Parameters
    ----------
    address : str or None
        The cluster's address (see :func:`check_reachable`), or ``None`` for
        the cluster this process is already connected to (``ray.init()``).
    timeout : float or None, default=None
        Seconds to wait for the address to answer.
    log_to_driver : bool, default=False
        For a connection made here: print the tasks' output in this process
        (the study workers' progress), or leave it in Ray's log files (the
        fits of a search, whose progress tunekit reports itself).

    Yields
    ------
    ray : module
        The ``ray`` module, connected. A connection made here is closed
        (``ray.shutdown()``) afterwards; one made before is left open.

    Raises
    ------
    ImportError
        If Ray is not installed.
    ConnectionError
        If the address does not answer within ``timeout``.
    ValueError
        If ``address`` is None and the process is not connected, or names
        another cluster than the one the process is connected to.
    """
    ray = _import_ray()
    if address is not None:
        check_reachable(address, timeout)
    if ray.is_initialized():
        gcs = ray.get_runtime_context().gcs_address
        if address is not None and not _same_cluster(address, gcs):
            raise ValueError(
                f"this process is already connected to the Ray cluster at {gcs!r}, not "
                f"{address!r}: pass scheduler=None to use it, or call ray.shutdown() first"
            )
        yield ray
        return
    if address is None:
        raise ValueError(
            "backend='ray' needs a cluster: pass scheduler='HOST:6379' (the address "
            "`ray start --head` prints), scheduler='auto' on a machine of the cluster, or "
            "call ray.init() first"
        )
    try:
        ray.init(address=address, log_to_driver=log_to_driver)
    except ConnectionError as err:  # 'auto' with no cluster running here
        raise ConnectionError(
            f"cannot connect to the Ray cluster at {address!r}: {err}. {_START_HINT}."
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ray_backend(address: str | None = None, *, timeout: float | None = None) -> Iterator:
    """Run joblib's parallel loops (scikit-learn's searches) on a Ray cluster.

    Parameters
    ----------
    address : str or None
        The cluster's address, or ``None`` for the cluster this process is
        connected to (see :func:`connect`).
    timeout : float or None, default=None
        Seconds to wait for the address to answer (``None``: 10).

    Yields
    ------
    ray : module

    Raises
    ------
    ImportError, ConnectionError, ValueError
        See :func:`connect`.
    """
    from joblib import parallel_config

    with connect(address, timeout=timeout) as ray, _quiet_pool():
        from ray.util.joblib import register_ray

        register_ray()
        with parallel_config(backend="ray"):
            yield ray


@contextlib.contextmanager
def _quiet_pool() -> Iterator[None]:
    """Hide the pool's warning that joblib's ``context`` argument is unused (every search)."""
    pool_logger = logging.getLogger("ray.util.multiprocessing.pool")
    level = pool_logger.level
    pool_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool_logger.setLevel(level)
