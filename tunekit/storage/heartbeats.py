"""Heartbeats of running trials and the one check for the trials of dead workers.

Database storages opened by :func:`tunekit.storage.make_storage` keep
heartbeats: a running trial records one every ``heartbeat_interval`` seconds;
a trial whose worker died (OOM, preemption, ``kill -9``) is marked FAIL once
its heartbeat is ``grace_period`` seconds stale and queued again
``max_retry`` time(s) with the same parameters. The settings default to 10 s,
30 s and 1 retry; ``TUNEKIT_HEARTBEAT_INTERVAL``, ``TUNEKIT_GRACE_PERIOD`` and
``TUNEKIT_MAX_RETRY`` change them for every storage a process opens
(``TUNEKIT_HEARTBEAT_INTERVAL=0`` turns heartbeats off).
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import threading
import time
import warnings

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tunekit.storage.reconnect import rdb_backend

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "Heartbeats",
    "RetryStaleTrial",
    "fail_stale_trials",
    "heartbeat_interval",
    "heartbeat_settings",
    "stale_wait_seconds",
]

logger = logging.getLogger("tunekit")

DEFAULT_HEARTBEAT_INTERVAL = 10
DEFAULT_GRACE_PERIOD = 30
DEFAULT_MAX_RETRY = 1

_ENV = {
    "heartbeat_interval": "TUNEKIT_HEARTBEAT_INTERVAL",
    "grace_period": "TUNEKIT_GRACE_PERIOD",
    "max_retry": "TUNEKIT_MAX_RETRY",
}
_DEFAULTS = {
    "heartbeat_interval": DEFAULT_HEARTBEAT_INTERVAL,
    "grace_period": DEFAULT_GRACE_PERIOD,
    "max_retry": DEFAULT_MAX_RETRY,
}
# what a retried trial inherits from the trial it replaces: its parameters only
# (fold scores, failure reasons and the worker are written again when it runs)
_INHERITED_USER_ATTRS = ("params",)
_RUNNING = TrialState.RUNNING


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Queue a dead trial again with the same parameters, at most ``max_retry`` times.

    Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`
    copies every user attribute into the retry; tunekit's objective keeps
    per-fold scores and failure reasons there, so the retry would inherit the
    dead trial's partial folds and its failure reason. This callback keeps
    only the ``params`` attribute, and a trial that died before it chose its
    parameters is not retried (there is nothing to redo). The retry records the original trial's
    number in ``system_attrs["failed_trial"]`` and the chain in
    ``system_attrs["retry_history"]``, as Optuna's callback does.

    Parameters
    ----------
    max_retry : int or None, default=1
        Retries of one original trial; ``None`` retries forever.
    """

    def __init__(self, max_retry: int | None = DEFAULT_MAX_RETRY) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(max_retry=max_retry, inherit_intermediate_values=False)
        self.max_retry = max_retry
        self.failed: list[int] = []  # numbers of the trials this process failed as dead

    def __call__(self, study, trial) -> None:
        self.failed.append(trial.number)
        if not trial.params:  # it died before choosing its parameters: nothing to redo
            return
        if _retried_already(study, trial.number):  # two processes failed it at once (SQLite)
            return
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in _INHERITED_USER_ATTRS}
        super().__call__(study, trial)


def _setting(name: str, value):
    """A heartbeat setting: the argument, else its environment variable, else the default."""
    source = f"{name}={value!r}"
    if value is None:
        raw = os.environ.get(_ENV[name], "").strip()
        if not raw:
            return _DEFAULTS[name]
        source = f"{_ENV[name]}={raw!r}"
        if name == "max_retry" and raw.lower() == "none":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(
                f"{source} is not an integer; set it to a whole number of "
                f"{'retries' if name == 'max_retry' else 'seconds'} (e.g. {_DEFAULTS[name]}) "
                "or unset it"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{name} must be an integer >= 0, got {source}; e.g. {name}={_DEFAULTS[name]}"
        )
    return value


def heartbeat_settings(
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
) -> dict:
    """Resolve and check the heartbeat settings.

    Parameters
    ----------
    heartbeat_interval, grace_period, max_retry : int or None
        ``None`` reads ``TUNEKIT_HEARTBEAT_INTERVAL``, ``TUNEKIT_GRACE_PERIOD``
        and ``TUNEKIT_MAX_RETRY`` (``TUNEKIT_MAX_RETRY=none`` retries
        forever), falling back to 10, 30 and 1.

    Returns
    -------
    settings : dict
        ``{"heartbeat_interval": int, "grace_period": int, "max_retry": int or None}``;
        a ``heartbeat_interval`` of 0 means no heartbeats.

    Raises
    ------
    ValueError
        If a setting is not a non-negative integer, or if the grace period is
        not longer than the heartbeat interval (live trials would be failed).
    """
    interval = _setting("heartbeat_interval", heartbeat_interval)
    grace = _setting("grace_period", grace_period)
    retries = _setting("max_retry", max_retry)
    if interval and grace <= interval:
        raise ValueError(
            f"grace_period must be longer than heartbeat_interval, or live trials would be "
            f"failed as dead; got grace_period={grace} and heartbeat_interval={interval}. "
            f"Use a grace period of at least two intervals (e.g. {2 * interval + 1})."
        )
    return {"heartbeat_interval": interval, "grace_period": grace, "max_retry": retries}


def heartbeat_interval(storage) -> int | None:
    """Seconds between the heartbeats of ``storage``'s running trials; None without heartbeats.

    The one heartbeat check of tunekit. Storages that keep heartbeats
    (:class:`optuna.storages.RDBStorage`, and Optuna's cache in front of it
    that ``study._storage`` holds) answer Optuna's public
    ``get_heartbeat_interval()``; the others (in-memory, journal) have no
    such method and keep no heartbeats.

    Examples
    --------
    >>> from tunekit.storage import heartbeat_interval, make_storage
    >>> heartbeat_interval(make_storage("sqlite:///:memory:", heartbeat_interval=2,
    ...                                 grace_period=5))
    2
    >>> heartbeat_interval(make_storage("sqlite:///:memory:", heartbeat_interval=0)) is None
    True
    """
    getter = getattr(storage, "get_heartbeat_interval", None)  # absent: no heartbeats at all
    return (getter() or None) if getter is not None else None


def _grace_period(storage) -> float:
    """Seconds without a heartbeat after which a running trial counts as dead."""
    backend = rdb_backend(storage)
    grace = getattr(backend, "grace_period", None)
    return float(grace or 2 * (heartbeat_interval(storage) or DEFAULT_HEARTBEAT_INTERVAL))


def stale_wait_seconds(storage) -> float:
    """How long a dead worker's trial may stay RUNNING before it is failed: grace + interval."""
    return _grace_period(storage) + float(heartbeat_interval(storage) or 0)


def _retried_already(study, number: int) -> bool:
    """Whether a retry of trial ``number`` is already queued (or ran).

    On SQLite, two processes can both read a dead trial as RUNNING and both
    fail it (SQLite has no row locks); the second then finds the first's
    retry here instead of queueing another.
    """
    return any(
        number in (t.system_attrs.get("retry_history") or ())
        for t in study.get_trials(deepcopy=False)
    )


def fail_stale_trials(study) -> list[int]:
    """Fail the running trials of dead workers; the storage's callback queues their retries.

    The one dead-worker check, for every way tunekit runs trials (one at a
    time and in batches). A trial whose heartbeat is ``grace_period`` seconds
    stale is failed by Optuna's :func:`optuna.storages.fail_stale_trials`,
    which then runs the storage's stale-trial callback (:class:`RetryStaleTrial`
    on storages opened by :func:`make_storage`: a WAITING retry with the same
    parameters). A RUNNING trial that never recorded a heartbeat (its worker
    died between creating it and its first heartbeat) is failed the same way
    three grace periods after it started. Several processes may call this at
    once: each trial is failed, and retried, once.

    Parameters
    ----------
    study : optuna.study.Study

    Returns
    -------
    numbers : list of int
        The trials this call failed. Empty on storages without heartbeats,
        where a dead worker's trial cannot be told from a live one.
    """
    storage = study._storage
    if heartbeat_interval(storage) is None:
        return []
    running = {t._trial_id: t.number for t in study.get_trials(deepcopy=False, states=(_RUNNING,))}
    if not running:
        return []
    own = storage.get_heartbeat_stale_trial_callback()
    retry = own if isinstance(own, RetryStaleTrial) else RetryStaleTrial(_max_retry())
    start = len(retry.failed)
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if retry is not own:  # Optuna does not say what it failed: read it back
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if t._trial_id in running and not _failed_elsewhere(t):
                if own is None:  # a storage without a retry callback: queue it here
                    retry(study, copy.deepcopy(t))
                else:  # the storage's own callback has queued it
                    retry.failed.append(t.number)
    for trial_id in _never_beat(study, running):
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                retry(study, copy.deepcopy(storage.get_trial(trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            continue
    failed = retry.failed[start:]
    for number in failed:
        logger.warning(
            "trial %d of study %r: its worker stopped sending heartbeats; marked FAIL",
            number,
            study.study_name,
        )
    return sorted(failed)


def _max_retry():
    return heartbeat_settings()["max_retry"]


def _failed_elsewhere(trial) -> bool:
    """A trial its own process failed (signal, error) while this check ran: not a dead one."""
    return "failure_reason" in trial.user_attrs


def _never_beat(study, running: dict) -> list[int]:
    """Ids of RUNNING trials that never recorded a heartbeat and started 3 grace periods ago."""
    backend = rdb_backend(study._storage)
    if backend is None:
        return []
    try:
        from optuna.storages._rdb import models  # no public query for "no heartbeat yet"
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(backend.scoped_session) as session:
            rows = (
                session.query(models.TrialModel.trial_id)
                .filter(models.TrialModel.study_id == study._study_id)
                .filter(models.TrialModel.state == _RUNNING)
                .filter(~models.TrialModel.heartbeats.any())
                .all()
            )
    except Exception as err:  # Optuna's tables changed: rely on heartbeats alone
        logger.debug("cannot look for trials without heartbeats: %s", type(err).__name__)
        return []
    limit = 3 * _grace_period(study._storage)
    orphans = []
    for (trial_id,) in rows:
        start = study._storage.get_trial(trial_id).datetime_start if trial_id in running else None
        if start is None:
            continue
        now = datetime.datetime.now(start.tzinfo) if start.tzinfo else datetime.datetime.now()
        if (now - start).total_seconds() > limit:
            orphans.append(trial_id)
    return orphans


class Heartbeats:
    """Heartbeats of running trials, recorded from a background thread.

    Optuna records a trial's heartbeats inside ``Study.optimize`` only; a
    batch of asked trials keeps its own here. Every trial added is beaten at
    once and then at least every ``heartbeat_interval`` seconds until it is
    discarded or the block ends, also while the main thread is inside one long
    epoch or a long compilation. Nothing happens on storages without
    heartbeats.

    Examples
    --------
    >>> import optuna
    >>> from tunekit.storage import Heartbeats, make_storage
    >>> storage = make_storage("sqlite:///:memory:", heartbeat_interval=1, grace_period=3)
    >>> optuna.logging.set_verbosity(optuna.logging.ERROR)
    >>> study = optuna.create_study(storage=storage)
    >>> with Heartbeats(study._storage) as beats:
    ...     trial = study.ask()
    ...     beats.add(trial)
    ...     study.tell(trial, 1.0)
    ...     beats.discard(trial)
    """

    def __init__(self, storage) -> None:
        self.storage = storage
        self.interval = heartbeat_interval(storage)
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial) -> None:
        """Beat ``trial`` now and keep beating it."""
        if self.interval is None:
            return
        self.storage.record_heartbeat(trial._trial_id)
        with self._lock:
            self._ids.add(trial._trial_id)

    def discard(self, trial) -> None:
        """Stop beating ``trial`` (it finished, or failed)."""
        with self._lock:
            self._ids.discard(trial._trial_id)

    def __enter__(self) -> Heartbeats:
        if self.interval is not None:
            self._thread = threading.Thread(
                target=self._run, name="tunekit-heartbeats", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        wait = float(self.interval)
        while not self._stop.wait(wait):
            began = time.monotonic()
            with self._lock:
                ids = sorted(self._ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as err:  # the main thread meets a lost storage itself
                    logger.debug("heartbeat of trial id %d failed: %s", trial_id, err)
            wait = max(0.05, float(self.interval) - (time.monotonic() - began))
