"""Database storages that wait for a server that restarts or drops its connections.

Every storage call of a server database (PostgreSQL, MySQL) that fails for a
lost connection is retried with a bounded exponential backoff (0.5 s,
doubling, at most 8 s apart) for up to ``TUNEKIT_RECONNECT_SECONDS`` seconds
(60 by default; 0 fails at once). Past that budget the error propagates and
the worker stops with :class:`tunekit.exceptions.StorageError` (exit status 75).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

from optuna.storages import RDBStorage

from tunekit.storage.urls import storage_label

__all__ = [
    "DEFAULT_RECONNECT_SECONDS",
    "RECONNECT_ENV",
    "ReconnectingRDBStorage",
    "connection_lost",
    "rdb_backend",
    "reconnect_budget",
    "with_reconnects",
]

logger = logging.getLogger("tunekit")

DEFAULT_RECONNECT_SECONDS = 60
RECONNECT_ENV = "TUNEKIT_RECONNECT_SECONDS"


def rdb_backend(storage):
    """The :class:`optuna.storages.RDBStorage` behind ``storage`` (Optuna caches it), or None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


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
            return with_reconnects(lambda: method(self, *args, **kwargs), method.__name__, self)
        finally:
            _calls.depth = 0

    return call


def with_reconnects(action, what: str, storage):
    """Run ``action()``, again after a lost connection, within :func:`reconnect_budget`."""
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
