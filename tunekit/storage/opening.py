"""The one way to open an Optuna storage: for writing (searches, workers) or for reading.

``storage=None`` with a ``study_name`` gives an SQLite file
``tunekit-results/<study_name>.db`` (:func:`tunekit.storage.urls.default_storage_url`);
any Optuna storage URL (``sqlite:///...``, ``postgresql://...``,
``mysql://...``) or storage object works too. A storage opened for writing
has heartbeats (:mod:`tunekit.storage.heartbeats`) and, on a server database,
waits for lost connections (:mod:`tunekit.storage.reconnect`); one opened for
reading (reports, the dashboard) never creates a table or a file.

An SQLite file opened for writing runs in write-ahead-log mode (``PRAGMA
journal_mode=WAL``, ``synchronous=NORMAL``): a commit appends to
``<database>-wal`` and syncs the disk at checkpoints only, so a trial's many
small writes cost a fraction of what the rollback journal's syncs did, and
readers (reports, the dashboard, other workers) do not wait for a writer. The
mode is SQLite's own and stays with the file. A crash loses no committed write
(a power cut at most the last ones; the file stays consistent); the log is
folded back into the database file when the last connection closes, which
tunekit does for its storages when the process ends. ``TUNEKIT_SQLITE_WAL=0``
keeps the rollback journal (for a file on a network file system, where SQLite's
shared memory does not work).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import time
import warnings
import weakref
from collections.abc import Iterator

from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage
from sqlalchemy import event, text

from tunekit.storage.heartbeats import RetryStaleTrial, heartbeat_settings
from tunekit.storage.reconnect import ReconnectingRDBStorage
from tunekit.storage.urls import (
    check_sqlite_file,
    describe_error,
    redact_url,
    resolve_url,
    scrub,
    sqlite_file,
)

__all__ = ["make_storage", "open_for_reading", "study_lock"]

_SCHEMA_ATTEMPTS = 5


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
            opened = _create(cls, driver_url, engine_kwargs, kwargs)
            if sqlite_file(url) is not None and write_ahead_log():
                _write_ahead(opened.engine)
            return opened
    except Exception as err:  # sqlalchemy / driver errors carry the URL: never show it raw
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = scrub(scrub(reason, driver_url), url)
        raise ValueError(
            f"cannot open the Optuna storage {redact_url(url)}: {type(err).__name__}: {reason}. "
            "Check the URL, that the database server is running and reachable, and that "
            "its driver is installed (pip install 'tunekit[postgres]' for PostgreSQL)."
        ) from None


def _schema_race(err: BaseException) -> bool:
    """Whether ``err`` comes from another process creating Optuna's tables at the same time."""
    text = f"{type(err).__name__} {err} {err.__cause__ or ''}".lower()
    return any(
        sign in text
        for sign in ("already exists", "duplicate key", "uniqueviolation", "integrityerror")
    )


#: Engines of the SQLite files opened in write-ahead-log mode, closed when the process ends.
_WAL_ENGINES: weakref.WeakSet = weakref.WeakSet()


def write_ahead_log() -> bool:
    """Whether SQLite files are opened in write-ahead-log mode: ``TUNEKIT_SQLITE_WAL``, 1 or 0
    (default 1)."""
    value = os.environ.get("TUNEKIT_SQLITE_WAL", "1").strip().lower()
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
        raise ValueError(f"TUNEKIT_SQLITE_WAL must be 1 or 0, got {value!r}")
    return value in ("1", "true", "yes", "on")


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # another process may hold the lock: waits
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _write_ahead(engine) -> None:
    """Every connection of ``engine`` in write-ahead-log mode (see the module's docstring)."""
    event.listen(engine, "connect", _set_pragmas)
    engine.dispose()  # the connections Optuna opened to create its tables: new ones from now
    _WAL_ENGINES.add(engine)


def _close_wal_engines() -> None:
    """Close the pooled connections: the last one folds the log into the database file."""
    for engine in list(_WAL_ENGINES):
        with contextlib.suppress(Exception):
            engine.dispose()


atexit.register(_close_wal_engines)


def _create(cls, driver_url: str, engine_kwargs, kwargs):
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            return cls(driver_url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as err:
            if attempt + 1 == _SCHEMA_ATTEMPTS or not _schema_race(err):
                raise
            # workers started together on an empty database all create Optuna's
            # tables; the losers fail with "already exists": the tables are there now
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def open_for_reading(url: str, *, allow_memory: bool = True) -> RDBStorage:
    """An :class:`optuna.storages.RDBStorage` on ``url`` that creates no table and no file.

    For reports and the dashboard: a mistyped SQLite path must not create an
    empty database, and reading must never change a study's tables.

    Parameters
    ----------
    url : str
        A storage URL.
    allow_memory : bool, default=True
        Whether an in-memory SQLite URL is accepted.

    Raises
    ------
    ValueError
        For a missing SQLite file, a malformed URL, an unreachable server, a
        missing driver or a database without Optuna's tables; the message
        never shows the password.
    """
    check_sqlite_file(url, allow_memory=allow_memory)
    try:
        storage = RDBStorage(resolve_url(url), skip_table_creation=True)
        storage.get_all_studies()  # a database without Optuna's tables fails here
    except Exception as err:
        message = describe_error(err, url)
        hint = ""
        if any(k in message for k in ("No module named", "DB access module")):
            scheme = url.split("://", 1)[0]
            hint = f" Install the database driver for {scheme!r}" + (
                ": pip install 'tunekit[postgres]'." if scheme.startswith("postgres") else "."
            )
        raise ValueError(
            f"cannot read an Optuna storage at {redact_url(url)}: {message} Check the URL, "
            f"that the database is reachable and holds Optuna studies.{hint}"
        ) from None
    return storage


@contextlib.contextmanager
def study_lock(url: str, study_name: str = "", storage=None) -> Iterator[None]:
    """Serialize work on one study (or on creating a database) between processes.

    SQLite: an exclusive ``flock`` on ``<database>.lock`` (one machine);
    PostgreSQL with ``storage`` given: a session advisory lock keyed by the
    study's name (several machines); otherwise nothing.
    """
    handle = _lock_file(sqlite_file(url))
    if handle is not None:
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif str(url).startswith("postgres") and hasattr(storage, "engine"):
        digest = hashlib.sha1(f"tunekit:{study_name}".encode()).digest()[:8]
        key = int.from_bytes(digest, "big", signed=True)
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
    else:
        yield


def _lock_file(database):
    """``<database>.lock`` opened for a lock; None without a folder to put it in."""
    if database is None or not database.parent.is_dir():  # opening the database fails clearly
        return None
    try:
        return open(f"{database}.lock", "a")  # closed by study_lock
    except OSError:  # a read-only folder: the database is opened without the lock
        return None
