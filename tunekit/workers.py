"""Workers that share one Optuna study, and scikit-learn searches on a Dask cluster.

Several processes, on one machine or many, can run the same study: each one
calls :func:`tunekit.search` with ``strategy="optuna"``, the same
``storage`` URL (PostgreSQL for several machines) and the same
``study_name``. This module gives those workers their guarantees:

* **Signals.** SIGTERM and SIGINT only set a flag (:mod:`tunekit._signals`);
  the running trial stops at its next safe point (an epoch's end, a fold's
  end, or between trials: never inside a storage transaction) by raising
  :class:`WorkerTerminated` / :class:`WorkerInterrupted`, so Optuna records
  it as FAIL before the worker stops; with a persistent storage the trial is
  queued again with the same parameters (once, by default). A trial that
  finished before the safe point is kept. SIGTERM then ends the process as
  its default action would, but cleanly: ``SystemExit(143)``, with no partial
  result and hence no report. SIGINT keeps the Ctrl-C behaviour:
  :func:`tunekit.search` returns what finished, marked ``interrupted_``. A
  second signal within 2 s quits at once. Handlers are only installed in the
  main thread (and not over a signal that is ignored, as in ``nohup``).
* **Dead workers.** With heartbeats on (every database storage, see
  :mod:`tunekit.storage`), a trial whose worker was killed (``kill -9``, OOM,
  preemption) is failed once its heartbeat is ``grace_period`` seconds stale
  and retried with the same parameters.
* **Nothing left behind.** A worker that has reached the study's target does
  not leave at once: it runs queued retries and waits until no trial of the
  study is RUNNING (live trials of other workers finish, dead ones go stale
  and are failed and retried). A new worker started on a study whose workers
  all died continues it without redoing finished trials.
* **Storage loss.** A database that goes away mid-run ends the worker with
  :class:`tunekit.storage.StorageError` (no password in the message, no
  result, hence no half-written report); the study keeps every finished trial.

``python -m tunekit.workers [-n N] [--gpus 0,1] SCRIPT [ARGS...]`` runs a study
script (one that calls :func:`tunekit.search`) as one worker, or as ``N``
worker processes with signals forwarded to them. Exit status: 0 done, 130
after SIGINT, 143 after SIGTERM, 75 when the storage was lost, 1 for other
errors.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence

from tunekit import _signals
from tunekit._signals import WORKER_ATTR, WorkerInterrupted, WorkerTerminated, worker_id

__all__ = [
    "BACKENDS",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_STORAGE",
    "WorkerInterrupted",
    "WorkerTerminated",
    "check_backend",
    "dask_backend",
    "launch",
    "main",
    "optimize",
    "parallel_backend",
    "recover_stale_trials",
    "retry_trial",
    "run_script",
    "start_child",
    "worker_id",
    "worker_seed",
]

logger = logging.getLogger("tunekit")

EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_STORAGE = 75  # EX_TEMPFAIL: try again once the database is back


def worker_seed(random_state: int | None) -> int | None:
    """``random_state`` made distinct per worker: offset by ``TUNEKIT_WORKER``.

    Workers that share a study with the same sampler seed would propose the
    same candidates. :func:`launch` (and ``tunekit run --workers N``) number
    their workers ``TUNEKIT_WORKER=0..N-1``; on several machines give each
    worker its own value (a number or any name, e.g. ``box2-0``). Without the
    variable, or with ``random_state=None``, the seed is returned unchanged.

    Examples
    --------
    >>> import os
    >>> from tunekit.workers import worker_seed
    >>> os.environ["TUNEKIT_WORKER"] = "3"
    >>> worker_seed(0)
    3
    >>> del os.environ["TUNEKIT_WORKER"]
    """
    tag = os.environ.get("TUNEKIT_WORKER", "").strip()
    if random_state is None or not tag:
        return random_state
    offset = int(tag) if tag.isdigit() else zlib.crc32(tag.encode())
    return (int(random_state) + offset) % 2**32


# ------------------------------------------------------------------ retries
def _persistent(study) -> bool:
    from optuna.storages import InMemoryStorage

    return not isinstance(study._storage, InMemoryStorage)


def _retry_callback(study):
    """The storage's retry callback, or tunekit's with the configured ``max_retry``."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from tunekit.storage import RetryStaleTrial, heartbeat_settings

    getter = getattr(study._storage, "get_heartbeat_stale_trial_callback", None)
    callback = getter() if getter is not None else None
    if isinstance(callback, RetryHeartbeatStaleTrialCallback):
        return callback
    return RetryStaleTrial(max_retry=heartbeat_settings()["max_retry"])


def retry_trial(study, trial) -> None:
    """Queue ``trial`` again with the same parameters (a WAITING trial).

    The retry's ``system_attrs`` name the original trial (``failed_trial``)
    and the chain of retries (``retry_history``), as Optuna's
    :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` does, and its
    ``max_retry`` limit applies.

    Parameters
    ----------
    study : optuna.study.Study
    trial : optuna.trial.FrozenTrial
        A failed trial.
    """
    _retry_callback(study)(study, trial)


def recover_stale_trials(study) -> list[int]:
    """Fail the trials of dead workers and queue their retries.

    Optuna does this at the start of every trial; tunekit also does it when
    a worker starts and while it waits for the study to settle, so that a
    study whose workers all died is repaired by the next worker even when
    the study already holds enough trials. Besides trials whose heartbeat is
    stale, a RUNNING trial that never sent a heartbeat (its worker died right
    after creating it) counts as dead three grace periods after its start.

    Returns
    -------
    numbers : list of int
        The trials this call failed (each is queued again while it has
        retries left). Empty without heartbeats.
    """
    from tunekit.storage import fail_stale_trials  # the launcher starts without optuna

    return fail_stale_trials(study)


# ------------------------------------------------------------------ signals
class _Guard:
    """Wraps the objective: records the running trial; a signal becomes FAIL + retry.

    The handlers only record a signal (see :mod:`tunekit._signals`); the
    guard stops before a trial starts, the objective at its epoch and fold
    boundaries (:func:`tunekit._signals.check_stop`), and a callback between
    trials. Nothing is ever raised inside a storage transaction.
    """

    def __init__(self, objective: Callable) -> None:
        self.objective = objective
        self.last_trial_id: int | None = None
        self.worker = worker_id()

    def __call__(self, trial) -> float:
        self.last_trial_id = trial._trial_id
        try:
            _signals.check_stop()  # the signal came while Optuna set this trial up
            trial.set_user_attr(WORKER_ATTR, self.worker)
            return self.objective(trial)
        except WorkerInterrupted as err:
            with contextlib.suppress(Exception):
                trial.set_user_attr(
                    "failure_reason", f"{err}; the trial is queued again with the same parameters"
                )
            raise

    @staticmethod
    def stop_if_signalled(study, trial) -> None:
        if _signals.stop_requested() is not None:
            study.stop()

    @staticmethod
    def check() -> None:
        _signals.check_stop()

    def retry_interrupted(self, study, interrupt: WorkerInterrupted) -> None:
        """Queue the trial a signal interrupted again (persistent storages only)."""
        from optuna.trial import TrialState

        logger.warning("%s", interrupt)
        if self.last_trial_id is None or not _persistent(study):
            return
        trial = study._storage.get_trial(self.last_trial_id)
        if trial.state != TrialState.FAIL:
            return
        retry_trial(study, trial)
        logger.warning(
            "trial %d of study %r: %s; marked FAIL and queued again with the same parameters",
            trial.number,
            study.study_name,
            interrupt,
        )


def _poll_interval(study) -> float:
    from tunekit.storage import heartbeat_interval  # the launcher starts without optuna

    return max(0.2, min(1.0, (heartbeat_interval(study._storage) or 1) / 2))


def _settle(study, guard: _Guard, callbacks) -> None:
    """Run queued retries and wait until no trial of the study is RUNNING.

    A worker runs a queued (WAITING) trial at once when it queued it itself,
    and otherwise once it has been waiting for two polls, so that two
    settling workers rarely race for one retry (the loser would start a new
    trial instead).
    """
    from optuna.trial import TrialState

    from tunekit.storage import heartbeat_interval  # the launcher starts without optuna

    waits = heartbeat_interval(study._storage) is not None  # else dead trials never end
    poll = _poll_interval(study)
    seen: dict[int, float] = {}
    announced = False
    while True:
        guard.check()
        mine = set(recover_stale_trials(study))
        pending = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        now = time.monotonic()
        ready = False
        for trial in pending:
            if trial.state != TrialState.WAITING:
                continue
            first = seen.setdefault(trial._trial_id, now)
            history = trial.system_attrs.get("retry_history") or [None]
            ready = ready or history[-1] in mine or now - first >= 2 * poll
        if ready:
            study.optimize(guard, n_trials=1, callbacks=callbacks)
            continue
        if not pending or not (waits or any(t.state == TrialState.WAITING for t in pending)):
            return
        if not announced:
            logger.info(
                "study %r: waiting for %d running or queued trial(s) to finish (trials of "
                "dead workers are failed and retried once their heartbeat is stale)",
                study.study_name,
                len(pending),
            )
            announced = True
        time.sleep(poll)


def optimize(
    study,
    objective: Callable,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callable] | None = None,
    settle: bool = True,
) -> None:
    """``study.optimize`` with the guarantees a shared study needs.

    Parameters
    ----------
    study : optuna.study.Study
        The study (possibly shared with other processes through its storage).
    objective : callable
        ``objective(trial) -> float``.
    n_trials : int or None, default=None
        Trials this call may start (``None``: until a callback stops it);
        0 only repairs the study: stale trials are failed and retried, queued
        retries are run.
    timeout : float or None, default=None
        Stop starting new trials after this many seconds.
    callbacks : sequence of callables or None
        Optuna callbacks, e.g. ``MaxTrialsCallback``.
    settle : bool, default=True
        Afterwards, run queued retries and wait until no trial of the study is
        RUNNING (see the module docstring).

    Raises
    ------
    SystemExit
        Status 143 after SIGTERM; the trial that ran is FAIL and queued again.
    WorkerInterrupted
        After SIGINT (a :class:`KeyboardInterrupt`); the same for the trial.
    tunekit.storage.StorageError
        If the storage is lost mid-run.
    """
    guard = _Guard(objective)
    callbacks = [*(callbacks or ()), guard.stop_if_signalled]
    with _signals.handling():
        try:
            recover_stale_trials(study)
            if n_trials is None or n_trials > 0:
                study.optimize(guard, n_trials=n_trials, timeout=timeout, callbacks=callbacks)
            guard.check()
            if settle:
                _settle(study, guard, callbacks)
        except WorkerInterrupted as interrupt:
            try:
                guard.retry_interrupted(study, interrupt)
            except Exception as err:  # the database is gone too: the heartbeat will tell
                logger.warning(
                    "could not queue the interrupted trial again: %s",
                    _scrubbed(_database_error(err) or err),
                )
            if isinstance(interrupt, WorkerTerminated):
                # SIGTERM's default action ends the process: do so now that the trial is
                # recorded, with the status a shell gives it (143), and no partial result
                raise SystemExit(128 + interrupt.signum) from interrupt
            raise
        except Exception as err:
            cause = _database_error(err)
            if cause is None:
                raise
            raise _storage_error(study, cause) from None


def _database_error(err: BaseException) -> BaseException | None:
    """The database error behind ``err``, if any (Optuna sometimes masks it).

    When the database goes away, Optuna may raise ``StorageInternalError``
    or even an ``AssertionError`` ("Should not reach") while handling the
    driver's error; the driver's error is then in the exception's chain.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    found, seen = None, set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, SQLAlchemyError):
            return err
        if isinstance(err, StorageInternalError) and found is None:
            found = err
        err = err.__cause__ or err.__context__
    return found


def _scrubbed(err: BaseException, url: str | None = None) -> str:
    from tunekit.storage.urls import scrub

    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return scrub(text, url) if url else text


def _storage_error(study, err: BaseException):
    from tunekit.storage import StorageError, storage_label

    backend = getattr(study._storage, "_backend", study._storage)
    url = getattr(backend, "url", None)
    grace = getattr(backend, "grace_period", None)
    retry = (
        f"failed and retried once its heartbeat is {grace} s stale"
        if grace
        else "left RUNNING (heartbeats are off)"
    )
    return StorageError(
        f"lost the Optuna storage {storage_label(backend)} while study {study.study_name!r} "
        f"ran: {type(err).__name__}: {_scrubbed(err, url)}. Finished trials are kept in the "
        f"storage; the trial that was running is {retry}. Run the worker again once the "
        "database is reachable to resume the study."
    )


# ------------------------------------------------------------------ dask
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
                f"({type(err).__name__}: {_scrubbed(err)}). Start one with `dask scheduler` "
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
    :func:`tunekit._ray.ray_backend`.
    """
    if backend is None:
        return contextlib.nullcontext()
    check_backend(backend, "grid")
    if backend == "ray":
        from tunekit._ray import ray_backend

        return ray_backend(scheduler)
    return dask_backend(scheduler)


# ------------------------------------------------------------------ entry points
def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_script(path: str | os.PathLike, argv: Sequence[str] = ()) -> int:
    """Run a study script as ``__main__`` in this process, as one worker.

    Returns
    -------
    status : int
        0 when the script finished, 143 after SIGTERM, 130 after SIGINT, 75
        when the storage was lost (the message goes to stderr, without the
        password). Other exceptions propagate.
    """
    from tunekit.storage import StorageError

    saved = sys.argv
    sys.argv = [os.fspath(path), *argv]
    before = len(_signals.received())
    try:
        try:
            runpy.run_path(os.fspath(path), run_name="__main__")
        finally:
            received = _signals.received()[before:]
    except WorkerInterrupted as err:
        print(f"tunekit worker: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except SystemExit as done:  # sys.exit() in the script, or SIGTERM (143)
        if done.code is None or isinstance(done.code, int):
            return done.code or (128 + received[0] if received else 0)
        print(done.code, file=sys.stderr)
        return 1
    except StorageError as err:
        print(f"tunekit worker: error: {err}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        sys.argv = saved
    return 128 + received[0] if received else 0


def start_child(argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start one study process in its own session, with the guarantees of a worker.

    Its own session: a terminal's Ctrl-C reaches it once, from its launcher.
    SIGINT and SIGTERM are blocked until its handlers are in place, so none
    is lost during its start-up (:mod:`tunekit._signals`); ``kwargs`` go to
    :class:`subprocess.Popen` (``env`` should include
    :func:`tunekit._signals.child_env` for the child to die with us).
    """
    with _signals.blocked_for_children():
        return subprocess.Popen(list(argv), start_new_session=True, **kwargs)


def launch(
    argv: Sequence[str],
    n_workers: int,
    *,
    gpus: Sequence[str] | None = None,
    env: dict | None = None,
) -> int:
    """Start ``n_workers`` processes running ``argv`` and wait for them.

    Each worker gets ``TUNEKIT_WORKER=<i>`` and, with ``gpus``, its own
    ``CUDA_VISIBLE_DEVICES`` (round robin). SIGTERM and SIGINT received by
    this process are passed on to every worker (which stop at their next
    safe point: the running trial is failed and queued again), and the
    workers stop when this process dies (even by ``kill -9``).

    Returns
    -------
    status : int
        0 when every worker succeeded, else the first non-zero status
        (128 + signal for a worker killed by a signal).
    """
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"the number of workers must be an integer >= 1, got {n_workers!r}")
    procs: list[subprocess.Popen] = []

    def forward(signum):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    with _signals.handling(), _signals.forwarding(forward):
        for i in range(n_workers):
            if _signals.stop_requested() is not None:
                break  # stopped while starting: start no more
            worker_env = {**os.environ, **(env or {}), **_signals.child_env()}
            worker_env["TUNEKIT_WORKER"] = str(i)
            if gpus:
                worker_env["CUDA_VISIBLE_DEVICES"] = str(gpus[i % len(gpus)])
            procs.append(start_child(list(argv), env=worker_env))
        codes = [_exit_code(proc.wait()) for proc in procs]
        if not procs:
            return 128 + _signals.stop_requested()
    failed = [c for c in codes if c]
    return failed[0] if failed else 0


def _parse_gpus(text: str | None) -> list[str] | None:
    if not text:
        return None
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus:
        raise argparse.ArgumentTypeError(f"--gpus takes a list like 0,1; got {text!r}")
    return gpus


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tunekit.workers [-n N] [--gpus 0,1] SCRIPT [ARGS...]``."""
    try:
        _signals.prepare()  # first: signals of the start-up window are honoured
    except WorkerInterrupted as err:  # one held back while this process started
        print(f"tunekit worker: {err}", file=sys.stderr)
        return 128 + err.signum
    parser = argparse.ArgumentParser(
        prog="python -m tunekit.workers",
        description="Run a study script as one or several workers sharing its Optuna study.",
    )
    parser.add_argument("-n", "--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--gpus", type=_parse_gpus, default=None, help="e.g. 0,1 (round robin)")
    parser.add_argument("script", help="a Python file that calls tunekit.search")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the script")
    opts = parser.parse_args(argv)
    if opts.workers < 1:
        parser.error(f"--workers must be >= 1, got {opts.workers}")
    if not os.path.isfile(opts.script):
        parser.error(f"no such study script: {opts.script!r}")
    if opts.workers == 1 and not opts.gpus:
        return run_script(opts.script, opts.args)
    command = [sys.executable, "-m", "tunekit.workers", opts.script, *opts.args]
    return launch(command, opts.workers, gpus=opts.gpus)


if __name__ == "__main__":
    # run the imported module, not this ``__main__`` copy: its exception classes are the
    # ones tunekit raises
    from tunekit.workers import main as _main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(_main())
