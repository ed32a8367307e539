"""Optuna storages: the embedded SQLite default, database URLs with heartbeats, and retries.

``storage=None`` with a ``study_name`` gives an SQLite file
``tunekit-results/<study_name>.db`` (created on demand); any Optuna storage URL
(``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or storage object
works too. Database storages get heartbeats: a running trial records a
heartbeat every ``heartbeat_interval`` seconds; a trial whose worker died
(OOM, preemption, ``kill -9``) is marked FAIL once its heartbeat is
``grace_period`` seconds stale, and retried ``max_retry`` time(s) with the same
parameters. The three settings default to 10 s, 30 s and 1 retry and can be
changed for every storage a process opens through the environment variables
``TUNEKIT_HEARTBEAT_INTERVAL``, ``TUNEKIT_GRACE_PERIOD`` and
``TUNEKIT_MAX_RETRY`` (``TUNEKIT_HEARTBEAT_INTERVAL=0`` turns heartbeats off).

A database server that restarts or drops its connections is waited for:
every storage call of a server database (PostgreSQL, MySQL) that fails for a
lost connection is retried with a bounded exponential backoff (0.5 s, doubling,
at most 8 s apart) for up to ``TUNEKIT_RECONNECT_SECONDS`` seconds (60 by
default; 0 fails at once). Past that budget the error propagates and the
worker stops with :class:`StorageError` (exit status 75).

PostgreSQL URLs without a driver (``postgresql://`` or ``postgres://``) get
the driver that is installed: psycopg 3 (``pip install 'tunekit[postgres]'``)
or else psycopg2. SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3
only, so a psycopg2-only environment would otherwise fail with "Failed to
import DB access module".
"""

from __future__ import annotations

import copy
import datetime
import functools
import importlib.util
import logging
import os
import threading
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tunekit.exceptions import TunekitError
from tunekit.storage.urls import redact_url, scrub

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_RECONNECT_SECONDS",
    "DEFAULT_RESULTS_DIR",
    "Heartbeats",
    "ReconnectingRDBStorage",
    "RetryStaleTrial",
    "StorageError",
    "connection_lost",
    "default_storage_url",
    "fail_stale_trials",
    "heartbeat_interval",
    "heartbeat_settings",
    "make_storage",
    "reconnect_budget",
    "redact_url",
    "resolve_url",
    "set_user_attrs",
    "stale_wait_seconds",
]

logger = logging.getLogger("tunekit")

DEFAULT_RESULTS_DIR = "tunekit-results"
DEFAULT_HEARTBEAT_INTERVAL = 10
DEFAULT_GRACE_PERIOD = 30
DEFAULT_MAX_RETRY = 1
DEFAULT_RECONNECT_SECONDS = 60
RECONNECT_ENV = "TUNEKIT_RECONNECT_SECONDS"

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


class StorageError(TunekitError, RuntimeError):
    """The Optuna storage was lost while a study ran (server stopped, network cut).

    Finished trials are safe in the storage; the trial that was running is
    failed and retried by the next worker once its heartbeat is stale. The
    message never shows the URL's password.
    """


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

    def __call__(self, study, trial) -> None:
        if not trial.params:  # it died before choosing its parameters: nothing to redo
            return
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in _INHERITED_USER_ATTRS}
        super().__call__(study, trial)


def default_storage_url(study_name: str, directory: str | os.PathLike | None = None) -> str:
    """The embedded SQLite URL used when ``storage=None`` and a study name is given."""
    folder = Path(directory or DEFAULT_RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{study_name}.db').as_posix()}"


def resolve_url(url: str) -> str:
    """Give a driver-less PostgreSQL URL the driver that is installed.

    Parameters
    ----------
    url : str
        A storage URL.

    Returns
    -------
    url : str
        ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``
        when psycopg 3 is importable, else ``postgresql+psycopg2://`` when
        psycopg2 is; every other URL is returned unchanged.

    Examples
    --------
    >>> from tunekit.storage import resolve_url
    >>> resolve_url("sqlite:///study.db")
    'sqlite:///study.db'
    """
    scheme, sep, rest = str(url).partition("://")
    if not sep or scheme.lower() not in {"postgresql", "postgres"}:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return f"postgresql://{rest}"


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


def make_storage(
    storage,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
):
    """Turn ``storage`` into an Optuna storage.

    Parameters
    ----------
    storage : str, os.PathLike, optuna.storages.BaseStorage or None
        ``None`` gives ``None`` (Optuna's in-memory storage); a URL gives an
        :class:`optuna.storages.RDBStorage` with heartbeats; a storage object is
        returned as it is.
    heartbeat_interval : int or None, default=None
        Seconds between a running trial's heartbeats; 0 turns them off.
        ``None``: ``TUNEKIT_HEARTBEAT_INTERVAL`` or 10.
    grace_period : int or None, default=None
        Seconds without a heartbeat after which a running trial counts as
        dead. ``None``: ``TUNEKIT_GRACE_PERIOD`` or 30.
    max_retry : int or None, default=None
        How many times a dead trial is re-run with the same parameters.
        ``None``: ``TUNEKIT_MAX_RETRY`` or 1.

    Returns
    -------
    storage : optuna.storages.BaseStorage or None

    Raises
    ------
    ValueError
        If the storage cannot be opened (bad URL, unreachable server, missing
        driver) or a heartbeat setting is invalid; the message never shows a
        password.

    Examples
    --------
    >>> from tunekit.storage import make_storage
    >>> storage = make_storage("sqlite:///:memory:", heartbeat_interval=1, grace_period=3)
    >>> storage.heartbeat_interval, storage.grace_period
    (1, 3)
    """
    if storage is None or not isinstance(storage, (str, os.PathLike)):
        return storage
    settings = heartbeat_settings(heartbeat_interval, grace_period, max_retry)
    url = os.fspath(storage)
    driver_url = resolve_url(url)
    engine_kwargs = None
    if url.startswith("sqlite"):
        # several worker processes share one file: wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "postgres")):
        # a connection the server dropped is replaced instead of failing the next query
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    kwargs = {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            if settings["heartbeat_interval"]:
                kwargs = dict(
                    heartbeat_interval=settings["heartbeat_interval"],
                    grace_period=settings["grace_period"],
                    heartbeat_stale_trial_callback=RetryStaleTrial(settings["max_retry"]),
                )
            cls = RDBStorage if url.startswith("sqlite") else ReconnectingRDBStorage
            for attempt in range(_SCHEMA_ATTEMPTS):
                try:
                    return cls(driver_url, engine_kwargs=engine_kwargs, **kwargs)
                except Exception as err:
                    if attempt + 1 == _SCHEMA_ATTEMPTS or not _schema_race(err):
                        raise
                    # workers started together on an empty database all create Optuna's
                    # tables; the losers fail with "already exists": the tables are there now
                    time.sleep(0.2 * (attempt + 1))
    except Exception as err:  # sqlalchemy / driver errors carry the URL: never show it raw

        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = scrub(scrub(reason, driver_url), url)
        raise ValueError(
            f"cannot open the Optuna storage {redact_url(url)}: {type(err).__name__}: {reason}. "
            "Check the URL, that the database server is running and reachable, and that "
            "its driver is installed (pip install 'tunekit[postgres]' for PostgreSQL)."
        ) from None


_SCHEMA_ATTEMPTS = 5


def _schema_race(err: BaseException) -> bool:
    """Whether ``err`` comes from another process creating Optuna's tables at the same time."""
    text = f"{type(err).__name__} {err} {err.__cause__ or ''}".lower()
    return any(
        sign in text
        for sign in ("already exists", "duplicate key", "uniqueviolation", "integrityerror")
    )


def storage_label(storage) -> str:
    """How ``storage`` is named in messages: its URL without the password."""
    if storage is None:
        return "memory"
    if isinstance(storage, (str, os.PathLike)):
        return redact_url(os.fspath(storage))
    url = getattr(storage, "url", None)
    return redact_url(url) if isinstance(url, str) else type(storage).__name__


# ------------------------------------------------------------------ heartbeats, dead workers
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
    backend = _rdb_backend(storage)
    grace = getattr(backend, "grace_period", None)
    return float(grace or 2 * (heartbeat_interval(storage) or DEFAULT_HEARTBEAT_INTERVAL))


def stale_wait_seconds(storage) -> float:
    """How long a dead worker's trial may stay RUNNING before it is failed: grace + interval."""
    return _grace_period(storage) + float(heartbeat_interval(storage) or 0)


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
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed = [
        running[t._trial_id]
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t._trial_id in running and not _failed_elsewhere(t)
    ]
    for trial_id in _never_beat(study, running):
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            continue
        callback = storage.get_heartbeat_stale_trial_callback()
        if callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial_id)))
        failed.append(running[trial_id])
    for number in failed:
        logger.warning(
            "trial %d of study %r: its worker stopped sending heartbeats; marked FAIL",
            number,
            study.study_name,
        )
    return sorted(failed)


def _failed_elsewhere(trial) -> bool:
    """A trial its own process failed (signal, error) while this check ran: not a dead one."""
    return "failure_reason" in trial.user_attrs


def _never_beat(study, running: dict) -> list[int]:
    """Ids of RUNNING trials that never recorded a heartbeat and started 3 grace periods ago."""
    backend = _rdb_backend(study._storage)
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


# ------------------------------------------------------------------ batched writes
def _rdb_backend(storage):
    """The :class:`optuna.storages.RDBStorage` behind ``storage`` (Optuna caches it), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def set_user_attrs(trial, attrs: dict) -> None:
    """Set several user attributes of a running trial in one storage transaction.

    ``trial.set_user_attr`` commits each attribute on its own (a transaction
    and a few round trips each); a database storage gets them all in one
    transaction here, as one multi-row upsert on SQLite and PostgreSQL. The
    stored layout is the same as with ``set_user_attr`` one by one.

    Parameters
    ----------
    trial : optuna.Trial
        A running trial.
    attrs : dict
        Attribute names and JSON-serializable values.
    """
    if not attrs:
        return
    backend = _rdb_backend(trial.storage)
    if backend is None:
        for key, value in attrs.items():
            trial.storage.set_trial_user_attr(trial._trial_id, key, value)
    elif isinstance(backend, ReconnectingRDBStorage):
        _with_reconnects(
            lambda: _upsert_user_attrs(backend, trial._trial_id, attrs), "set_user_attrs", backend
        )
    else:
        _upsert_user_attrs(backend, trial._trial_id, attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


def _upsert_user_attrs(backend, trial_id: int, attrs: dict) -> None:
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    model = models.TrialUserAttributeModel
    dialect = backend.engine.name
    with _create_scoped_session(backend.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        backend.check_trial_is_updatable(trial_id, trial.state)
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            rows = [
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                for key, value in attrs.items()
            ]
            statement = insert(model).values(rows)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=[model.trial_id, model.key],
                    set_={"value_json": statement.excluded.value_json},
                )
            )
        else:  # other databases: Optuna's own statement per attribute, still one transaction
            for key, value in attrs.items():
                backend._set_trial_attr_without_commit(session, model, trial_id, key, value)


# ------------------------------------------------------------------ reconnecting
def reconnect_budget() -> float:
    """Seconds a lost database connection is retried: ``TUNEKIT_RECONNECT_SECONDS`` or 60."""
    raw = os.environ.get(RECONNECT_ENV, "").strip()
    if not raw:
        return float(DEFAULT_RECONNECT_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(
            f"{RECONNECT_ENV}={raw!r} is not a number of seconds >= 0; set it to e.g. "
            f"{DEFAULT_RECONNECT_SECONDS} (0 fails at once) or unset it"
        )
    return value


def connection_lost(err: BaseException) -> bool:
    """Whether ``err`` (or an error in its chain) says the database connection went away."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (OperationalError, InterfaceError)):
            return True
        if isinstance(err, DBAPIError) and err.connection_invalidated:
            return True
        # ``raise ... from None`` (e.g. "cannot open the storage") ends the chain
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return False


_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 8.0
_calls = threading.local()  # nested storage calls: only the outermost one retries
_last_warning = [-float("inf")]


def _reconnecting(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if getattr(_calls, "depth", 0):
            return method(self, *args, **kwargs)
        _calls.depth = 1
        try:
            return _with_reconnects(lambda: method(self, *args, **kwargs), method.__name__, self)
        finally:
            _calls.depth = 0

    return call


def _with_reconnects(action, what: str, storage):
    budget = reconnect_budget()
    deadline = time.monotonic() + budget
    delay, attempt = _BACKOFF_FIRST, 0
    while True:
        try:
            return action()
        except Exception as err:
            if not connection_lost(err) or time.monotonic() + delay > deadline:
                raise
            attempt += 1
            if attempt == 1 and time.monotonic() - _last_warning[0] > 10:
                _last_warning[0] = time.monotonic()  # once per outage, not once per call
                logger.warning(
                    "the Optuna storage %s is unreachable (%s); retrying for up to %g s",
                    storage_label(storage),
                    type(err).__name__,
                    budget,
                )
            time.sleep(delay)
            delay = min(2 * delay, _BACKOFF_MAX)


class ReconnectingRDBStorage(RDBStorage):
    """An :class:`optuna.storages.RDBStorage` that waits for a server that went away.

    Each storage call that fails because the connection was lost (the server
    restarted, a network cut, a dropped idle connection) is run again after
    0.5 s, 1 s, 2 s... (at most 8 s apart), for up to
    :func:`reconnect_budget` seconds; the engine's ``pool_pre_ping`` replaces
    the dead connections. Any other error, or a server still down at the end
    of the budget, propagates unchanged.
    """


for _name in (
    "_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials",
    "_set_trial_param", "create_new_study", "delete_study", "get_all_studies", "get_all_trials",
    "get_best_trial", "get_n_trials", "get_study_directions", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_system_attrs", "get_study_user_attrs", "get_trial",
    "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
    "get_trial_params", "get_trial_system_attrs", "get_trial_user_attrs", "record_heartbeat",
    "set_study_system_attr", "set_study_user_attr", "set_trial_intermediate_value",
    "set_trial_param", "set_trial_state_values", "set_trial_system_attr", "set_trial_user_attr",
    "create_new_trial",
):  # fmt: skip
    setattr(ReconnectingRDBStorage, _name, _reconnecting(getattr(RDBStorage, _name)))
del _name
