"""What a study shared by several workers needs in each worker: seeds, retries, signals.

Several processes, on one machine or many, can run the same Optuna study:
each one calls :func:`tunekit.search` with ``strategy="optuna"``, the same
``storage`` URL (PostgreSQL for several machines) and the same
``study_name``. The Optuna strategies run their trials through
:func:`optimize`, which gives those workers their guarantees:

* **Distinct seeds.** :func:`worker_seed` offsets the sampler's seed by the
  worker's ``TUNEKIT_WORKER`` tag (set by the launcher, :mod:`tunekit.launch`).
* **Signals.** SIGTERM and SIGINT only set a flag (:mod:`tunekit._signals`);
  the running trial stops at its next safe point (an epoch's end, a fold's
  end, or between trials: never inside a storage transaction) by raising
  ``WorkerTerminated`` / ``WorkerInterrupted``, so Optuna records it as FAIL
  before the worker stops; with a persistent storage the trial is queued
  again with the same parameters (once, by default). A trial that finished
  before the safe point is kept. SIGTERM then ends the process as its default
  action would, but cleanly: ``SystemExit(143)``, with no partial result and
  hence no report. SIGINT keeps the Ctrl-C behaviour: :func:`tunekit.search`
  returns what finished, marked ``interrupted_``. A second signal within 2 s
  quits at once. Handlers are only installed in the main thread (and not
  over a signal that is ignored, as in ``nohup``).
* **Dead workers.** With heartbeats on (every database storage, see
  :mod:`tunekit.storage`), a trial whose worker was killed (``kill -9``, OOM,
  preemption) is failed once its heartbeat is ``grace_period`` seconds stale
  (:func:`tunekit.storage.fail_stale_trials`) and retried with the same
  parameters.
* **Nothing left behind.** A worker that has reached the study's target does
  not leave at once: it runs queued retries and waits until no trial of the
  study is RUNNING (live trials of other workers finish, dead ones go stale
  and are failed and retried). A new worker started on a study whose workers
  all died continues it without redoing finished trials.
* **Storage loss.** A database that goes away mid-run ends the worker with
  :class:`tunekit.storage.StorageError` (no password in the message, no
  result, hence no half-written report); the study keeps every finished trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence

from optuna.exceptions import StorageInternalError
from optuna.storages import InMemoryStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from tunekit import _signals
from tunekit._signals import WORKER_ATTR, WorkerInterrupted, WorkerTerminated, worker_id
from tunekit.storage import (
    RetryStaleTrial,
    StorageError,
    fail_stale_trials,
    heartbeat_interval,
    heartbeat_settings,
    stale_wait_seconds,
    storage_label,
)
from tunekit.storage.queue import held_by_another
from tunekit.storage.urls import scrub

__all__ = [
    "optimize",
    "recover_stale_trials",
    "retry_trial",
    "worker_seed",
]

logger = logging.getLogger("tunekit")


def worker_seed(random_state: int | None) -> int | None:
    """``random_state`` made distinct per worker: offset by ``TUNEKIT_WORKER``.

    Workers that share a study with the same sampler seed would propose the
    same candidates. The launchers (``tunekit run --workers N``, ``python -m tunekit.workers
    -n N``) number their workers ``TUNEKIT_WORKER=0..N-1``; on several machines give each
    worker its own value (a number or any name, e.g. ``box2-0``). Without the
    variable, or with ``random_state=None``, the seed is returned unchanged.

    Examples
    --------
    >>> import os
    >>> from tunekit.strategies.shared_study import worker_seed
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
    return not isinstance(study._storage, InMemoryStorage)


def _retry_callback(study):
    """The storage's retry callback, or tunekit's with the configured ``max_retry``."""
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
    return fail_stale_trials(study)


# ------------------------------------------------------------------ signals
def _no_interrupt_traceback(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], WorkerInterrupted):
        record.exc_info, record.exc_text = None, None
    return True


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
    @contextlib.contextmanager
    def quiet_tracebacks():
        """Optuna logs a failed trial's exception with its traceback: for a stop by a signal
        its one line is enough (no traceback, as for a stop anywhere else)."""
        optuna_logger = logging.getLogger("optuna.study._optimize")
        optuna_logger.addFilter(_no_interrupt_traceback)
        try:
            yield
        finally:
            optuna_logger.removeFilter(_no_interrupt_traceback)

    @staticmethod
    def stop_if_signalled(study, trial) -> None:
        if _signals.stop_requested() is not None:
            study.stop()

    @staticmethod
    def check() -> None:
        _signals.check_stop()

    def retry_interrupted(self, study, interrupt: WorkerInterrupted) -> None:
        """Queue the trial a signal interrupted again (persistent storages only)."""
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
    return max(0.2, min(1.0, (heartbeat_interval(study._storage) or 1) / 2))


def _announce_wait(study, pending, heartbeats: bool) -> None:
    """One line: which trials this process waits for, and for how long at most."""
    if heartbeats:
        logger.info(
            "study %r: waiting for running or queued trial(s) %s; a dead worker's trial is "
            "failed and run again here after at most %.0f s without a heartbeat",
            study.study_name,
            ", ".join(str(t.number) for t in pending),
            stale_wait_seconds(study._storage),
        )
    else:  # no heartbeats: only queued trials are waited for, and run here
        queued = [t.number for t in pending if t.state == TrialState.WAITING]
        logger.info(
            "study %r: queued trial(s) %s run here unless another process takes them first",
            study.study_name,
            ", ".join(map(str, queued)),
        )


def _run_queued(study, guard: _Guard, callbacks) -> None:
    """Run one queued trial; losing it to another settling process is not an error.

    Two processes can claim the same queued trial (SQLite reads it WAITING in both
    before either marks it RUNNING): the first to finish it records it, and the
    other's result is dropped, with Optuna's "Cannot tell a COMPLETE trial".
    """
    try:
        study.optimize(guard, n_trials=1, callbacks=callbacks)
    except ValueError as err:
        if not str(err).startswith("Cannot tell a "):
            raise
        logger.info(
            "study %r: another process finished the queued trial first (%s)",
            study.study_name, err,
        )  # fmt: skip


def _settle(study, guard: _Guard, callbacks) -> None:
    """Run queued retries and wait until no trial of the study is RUNNING.

    A worker runs a queued (WAITING) trial at once when it queued it itself,
    and otherwise once it has been waiting for two polls, so that two
    settling workers rarely race for one retry (a loser that finds no other
    queued trial would start a new trial instead). A trial that another live
    process queued for itself (:mod:`tunekit.storage.queue`) is waited for,
    never taken.
    """
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
            if trial.state != TrialState.WAITING or held_by_another(trial, pending):
                continue  # running, or queued by a live process that will run it itself
            first = seen.setdefault(trial._trial_id, now)
            history = trial.system_attrs.get("retry_history") or [None]
            ready = ready or history[-1] in mine or now - first >= 2 * poll
        if ready:
            _run_queued(study, guard, callbacks)
            continue
        if not pending or not (waits or any(t.state == TrialState.WAITING for t in pending)):
            return
        if not announced:
            _announce_wait(study, pending, waits)
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
    with _signals.handling(), guard.quiet_tracebacks():
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
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return scrub(text, url) if url else text


def _storage_error(study, err: BaseException):
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
