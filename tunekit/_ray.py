"""Ray: scikit-learn searches on a Ray cluster, and Optuna workers as Ray tasks.

Two things run on Ray, each the Ray form of what tunekit already does on one
machine:

* ``tunekit.search(..., backend="ray", scheduler=ADDRESS)`` runs the grid,
  random and halving searches' fits (candidates x folds) through Ray's joblib
  backend (:func:`ray.util.joblib.register_ray`), as ``backend="dask"`` does on
  Dask (:func:`ray_backend`).
* ``tunekit run STUDY --ray ADDRESS [--workers N]`` runs ``N`` study workers as
  Ray tasks, one CPU each, sharing the study's storage (:func:`run_workers`).
  Each task runs the study script in a child process with the same
  guarantees as a worker of ``tunekit run --workers N``: signals stop it at a
  safe point, a killed worker's trial is failed and retried once its
  heartbeat is stale, and the child dies with the task's Ray worker.

Reaching the cluster is checked first: an address that does not answer is a
:class:`ConnectionError` after :data:`RAY_CONNECT_TIMEOUT` seconds, not a hang
(``ray.init`` itself retries an unreachable address for minutes). Ray is
optional: ``pip install 'tunekit[ray]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tunekit import _signals
from tunekit.workers import start_child

__all__ = [
    "DEFAULT_CLIENT_PORT",
    "DEFAULT_GCS_PORT",
    "FORWARDED_ENV_PREFIXES",
    "RAY_CONNECT_TIMEOUT",
    "check_reachable",
    "connect",
    "ray_backend",
    "run_workers",
]

logger = logging.getLogger("tunekit")

RAY_CONNECT_TIMEOUT = 10.0  # seconds to wait for a Ray cluster's address to answer
DEFAULT_GCS_PORT = 6379  # ``ray start --head`` listens here
DEFAULT_CLIENT_PORT = 10001  # Ray Client (``ray://HOST``)
FORWARDED_ENV_PREFIXES = ("TUNEKIT_", "TF_", "KERAS_")  # the driver's settings a task gets
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


# ------------------------------------------------------------------ study workers
def _forwarded_env(env: Mapping[str, str]) -> dict[str, str]:
    """The driver's tunekit/TensorFlow/Keras settings, plus ``env``: what a task gets."""
    own = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    own.pop("TUNEKIT_PARENT_PID", None)  # the driver's own launcher, not the task's
    return {**own, **env}


def _study_worker(script: str, args: list[str], cwd: str, env: dict[str, str]) -> dict:
    """One study worker, run inside a Ray task: the script in a child process.

    The child dies with this Ray worker (``TUNEKIT_PARENT_PID``); a cancelled
    task (``ray.cancel``) stops it at its next safe point.
    """
    node = socket.gethostname()
    if not os.path.isfile(script):
        return {
            "code": 2,
            "node": node,
            "error": f"no study script {script!r} on node {node}: every node of the cluster "
            "needs the project at the same path (and tunekit installed)",
        }
    workdir = cwd if os.path.isdir(cwd) else os.path.dirname(script)
    child_env = {**os.environ, **env, **_signals.child_env()}
    proc = start_child(_signals.child_command(script, args), env=child_env, cwd=workdir)
    try:
        while proc.poll() is None:  # not proc.wait(): ray.cancel's interrupt needs Python code
            time.sleep(0.2)
    except KeyboardInterrupt:  # ray.cancel(): stop the study at its next safe point
        proc.send_signal(signal.SIGINT)
    code = proc.wait()
    return {"code": 128 - code if code < 0 else code, "node": node, "error": None}


def run_workers(
    script: str | os.PathLike,
    args: Sequence[str],
    *,
    address: str,
    n_workers: int | None = None,
    env: Mapping[str, str] | None = None,
    tag: Callable[[int], str] = str,
    stop_requested: Callable[[], int | None] | None = None,
    timeout: float | None = None,
) -> list[int]:
    """Run a study script as ``n_workers`` Ray tasks sharing its storage; wait for them.

    Parameters
    ----------
    script : str or path-like
        The study script; every node needs it at the same absolute path.
    args : sequence of str
        The script's arguments (``--worker`` included): the storage they name
        must be reachable from every node (PostgreSQL for several machines).
    address : str
        The Ray cluster's address (see :func:`check_reachable`).
    n_workers : int or None, default=None
        Tasks to start, one CPU each; ``None``: one per CPU of the cluster.
    env : mapping or None
        Environment entries for every worker, on top of the driver's
        ``TUNEKIT_*``, ``TF_*`` and ``KERAS_*`` variables.
    tag : callable, default=str
        ``tag(i)`` is worker ``i``'s ``TUNEKIT_WORKER`` (its sampler seed
        offset, see :func:`tunekit.workers.worker_seed`).
    stop_requested : callable or None
        Polled while waiting; when it returns a signal number the tasks are
        cancelled, which stops each study at its next safe point.
    timeout : float or None, default=None
        Seconds to wait for the address to answer.

    Returns
    -------
    codes : list of int
        Each worker's exit status (0 done, 130 interrupted or cancelled, 143
        terminated, 75 storage lost, 1 failed; 2 when the script is missing
        on its node).

    Raises
    ------
    ImportError, ConnectionError, ValueError
        See :func:`connect`.
    """
    # every worker's lines, not one of each: Ray's deduplication takes lines that differ
    # only in numbers (trial 3 / trial 4, worker 0 / worker 1) for repeats
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # read when ray is first imported
    with connect(address, timeout=timeout, log_to_driver=True) as ray:
        count = n_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of workers must be an integer >= 1, got {n_workers!r}")
        task = ray.remote(num_cpus=1, max_retries=3)(_study_worker)
        path, cwd = str(Path(script).resolve()), os.getcwd()
        refs = [
            task.remote(
                path, list(args), cwd, _forwarded_env({**(env or {}), "TUNEKIT_WORKER": tag(i)})
            )
            for i in range(count)
        ]
        logger.info("%s: %d worker task(s) on the Ray cluster share the study", script, count)
        return _collect(ray, refs, stop_requested)


def _collect(ray, refs: list, stop_requested) -> list[int]:
    """Wait for the worker tasks; cancel them once a stop is requested."""
    from ray.exceptions import RayError, TaskCancelledError

    pending, cancelled = list(refs), False
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        if not cancelled and stop_requested is not None and stop_requested() is not None:
            for ref in pending:
                ray.cancel(ref)
            cancelled = True
    codes = []
    for i, ref in enumerate(refs):
        try:
            done = ray.get(ref)
        except TaskCancelledError:
            codes.append(128 + signal.SIGINT)
            continue
        except RayError as err:  # the task's worker or node died and its retries ran out
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            print(f"worker {i}: its Ray task failed: {first}", file=sys.stderr)
            codes.append(1)
            continue
        if done["error"]:
            print(f"worker {i}: {done['error']}", file=sys.stderr)
        codes.append(done["code"])
    return codes
