"""Optuna storages: the one way tunekit opens, names, writes and watches a study's storage.

========================  ===============================================================
module                    job
========================  ===============================================================
:mod:`.urls`              a leaf: passwords masked, SQLite files and URLs, the default
                          ``tunekit-results/<study_name>.db``, the PostgreSQL driver
:mod:`.opening`           :func:`make_storage` (for writing: heartbeats, reconnects, one
                          creator of an SQLite file at a time), :func:`open_for_reading`
                          (reports, dashboard: creates nothing), :func:`study_lock`
:mod:`.heartbeats`        heartbeat settings, the heartbeat thread of a batch, the one
                          check that fails a dead worker's trials and queues their retries
:mod:`.reconnect`         waiting for a database server that restarted or went away
:mod:`.writes`            several trial attributes in one transaction
:mod:`.queue`             queued (WAITING) trials taken without losing a race to another
                          process
========================  ===============================================================

Database storages get heartbeats: a running trial records a heartbeat every
``heartbeat_interval`` seconds; a trial whose worker died (OOM, preemption,
``kill -9``) is marked FAIL once its heartbeat is ``grace_period`` seconds stale,
and retried ``max_retry`` time(s) with the same parameters (10 s, 30 s and 1 retry
by default; ``TUNEKIT_HEARTBEAT_INTERVAL``, ``TUNEKIT_GRACE_PERIOD`` and
``TUNEKIT_MAX_RETRY`` change them). A server database that restarts or drops its
connections is waited for up to ``TUNEKIT_RECONNECT_SECONDS`` (60 s); past that the
worker stops with :class:`StorageError` (exit status 75).
"""

from importlib import import_module
from typing import TYPE_CHECKING

# name -> the module that defines it, imported on first use (PEP 562): the leaf
# ``tunekit.storage.urls`` stays importable without Optuna and SQLAlchemy
_LAZY = {
    "StorageError": "tunekit.exceptions",
    **dict.fromkeys(
        (
            "DEFAULT_GRACE_PERIOD", "DEFAULT_HEARTBEAT_INTERVAL", "DEFAULT_MAX_RETRY",
            "Heartbeats", "RetryStaleTrial", "fail_stale_trials", "heartbeat_interval",
            "heartbeat_settings", "stale_wait_seconds",
        ),
        "tunekit.storage.heartbeats",
    ),
    **dict.fromkeys(("make_storage", "open_for_reading", "study_lock"), "tunekit.storage.opening"),
    **dict.fromkeys(
        (
            "DEFAULT_RECONNECT_SECONDS", "RECONNECT_ENV", "ReconnectingRDBStorage",
            "connection_lost", "reconnect_budget",
        ),
        "tunekit.storage.reconnect",
    ),
    **dict.fromkeys(
        (
            "DEFAULT_RESULTS_DIR", "default_storage_url", "redact_url", "resolve_url",
            "sqlite_url", "storage_label",
        ),
        "tunekit.storage.urls",
    ),
    **dict.fromkeys(
        ("report_all", "set_user_attrs", "suggest_in_one_transaction"), "tunekit.storage.writes"
    ),
    **dict.fromkeys(("asking_past_the_queue", "claim_queued_trials"), "tunekit.storage.queue"),
}  # fmt: skip


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tunekit.storage' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "DEFAULT_RECONNECT_SECONDS",
    "DEFAULT_RESULTS_DIR",
    "RECONNECT_ENV",
    "Heartbeats",
    "ReconnectingRDBStorage",
    "RetryStaleTrial",
    "StorageError",
    "asking_past_the_queue",
    "claim_queued_trials",
    "connection_lost",
    "default_storage_url",
    "fail_stale_trials",
    "heartbeat_interval",
    "heartbeat_settings",
    "make_storage",
    "open_for_reading",
    "reconnect_budget",
    "redact_url",
    "report_all",
    "resolve_url",
    "set_user_attrs",
    "sqlite_url",
    "stale_wait_seconds",
    "storage_label",
    "study_lock",
    "suggest_in_one_transaction",
]


if TYPE_CHECKING:  # pragma: no cover
    from tunekit.exceptions import StorageError
    from tunekit.storage.heartbeats import (
        DEFAULT_GRACE_PERIOD,
        DEFAULT_HEARTBEAT_INTERVAL,
        DEFAULT_MAX_RETRY,
        Heartbeats,
        RetryStaleTrial,
        fail_stale_trials,
        heartbeat_interval,
        heartbeat_settings,
        stale_wait_seconds,
    )
    from tunekit.storage.opening import make_storage, open_for_reading, study_lock
    from tunekit.storage.queue import asking_past_the_queue, claim_queued_trials
    from tunekit.storage.reconnect import (
        DEFAULT_RECONNECT_SECONDS,
        RECONNECT_ENV,
        ReconnectingRDBStorage,
        connection_lost,
        reconnect_budget,
    )
    from tunekit.storage.urls import (
        DEFAULT_RESULTS_DIR,
        default_storage_url,
        redact_url,
        resolve_url,
        sqlite_url,
        storage_label,
    )
    from tunekit.storage.writes import set_user_attrs, suggest_in_one_transaction
