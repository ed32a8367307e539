"""Optuna storages: the embedded SQLite default, database URLs with heartbeats, and retries.

``storage=None`` with a ``study_name`` gives an SQLite file
``tunekit-results/<study_name>.db`` (created on demand); any Optuna storage URL
(``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or storage object
works too. Database storages get heartbeats: a trial whose worker died (OOM,
preemption, ``kill -9``) is marked FAIL once its heartbeat is ``grace_period``
seconds stale, and retried once with the same parameters.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tunekit.report import redact_url

__all__ = ["DEFAULT_RESULTS_DIR", "default_storage_url", "make_storage", "redact_url"]

logger = logging.getLogger("tunekit")

DEFAULT_RESULTS_DIR = "tunekit-results"


def default_storage_url(study_name: str, directory: str | os.PathLike | None = None) -> str:
    """The embedded SQLite URL used when ``storage=None`` and a study name is given."""
    folder = Path(directory or DEFAULT_RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{study_name}.db').as_posix()}"


def make_storage(
    storage,
    *,
    heartbeat_interval: int | None = 10,
    grace_period: int | None = 30,
    max_retry: int | None = 1,
):
    """Turn ``storage`` into an Optuna storage.

    Parameters
    ----------
    storage : str, optuna.storages.BaseStorage or None
        ``None`` gives ``None`` (Optuna's in-memory storage); a URL gives an
        :class:`optuna.storages.RDBStorage` with heartbeats; a storage object is
        returned as it is.
    heartbeat_interval : int or None, default=10
        Seconds between a running trial's heartbeats; ``None`` turns them off.
    grace_period : int or None, default=30
        Seconds without a heartbeat after which a running trial counts as dead.
    max_retry : int or None, default=1
        How many times a dead trial is re-run with the same parameters.

    Returns
    -------
    storage : optuna.storages.BaseStorage or None

    Raises
    ------
    ValueError
        If the storage cannot be reached; the message never shows a password.
    """
    if storage is None or not isinstance(storage, (str, os.PathLike)):
        return storage
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = os.fspath(storage)
    engine_kwargs = None
    if url.startswith("sqlite"):
        # several worker processes share one file: wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    kwargs = {}
    if heartbeat_interval:
        kwargs = dict(
            heartbeat_interval=int(heartbeat_interval),
            grace_period=int(grace_period) if grace_period else None,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        )
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as err:  # sqlalchemy / driver errors carry the URL: never show it raw
        reason = redact_url(str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise ValueError(
            f"cannot open the Optuna storage {redact_url(url)}: {type(err).__name__}: {reason}. "
            "Check the URL, that the database server is running and reachable, and that "
            "its driver is installed (pip install 'tunekit[postgres]' for PostgreSQL)."
        ) from None
