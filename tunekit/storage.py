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

PostgreSQL URLs without a driver (``postgresql://`` or ``postgres://``) get
the driver that is installed: psycopg 3 (``pip install 'tunekit[postgres]'``)
or else psycopg2. SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3
only, so a psycopg2-only environment would otherwise fail with "Failed to
import DB access module".
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import time
import warnings
from pathlib import Path

from optuna.storages import RetryHeartbeatStaleTrialCallback

from tunekit.exceptions import TunekitError
from tunekit.report import redact_url

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_RESULTS_DIR",
    "RetryStaleTrial",
    "StorageError",
    "default_storage_url",
    "heartbeat_settings",
    "make_storage",
    "redact_url",
    "resolve_url",
]

logger = logging.getLogger("tunekit")

DEFAULT_RESULTS_DIR = "tunekit-results"
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
        from optuna.exceptions import ExperimentalWarning

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
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

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
            for attempt in range(_SCHEMA_ATTEMPTS):
                try:
                    return RDBStorage(driver_url, engine_kwargs=engine_kwargs, **kwargs)
                except Exception as err:
                    if attempt + 1 == _SCHEMA_ATTEMPTS or not _schema_race(err):
                        raise
                    # workers started together on an empty database all create Optuna's
                    # tables; the losers fail with "already exists": the tables are there now
                    time.sleep(0.2 * (attempt + 1))
    except Exception as err:  # sqlalchemy / driver errors carry the URL: never show it raw
        from tunekit.report._redact import scrub

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
