"""Optuna's queue of WAITING trials, shared by processes without losing a race.

Two things go wrong with Optuna's own queue when several processes share a
study and each queues the trials it means to run (a plan's configurations):

- ``Study.ask`` reads the WAITING trials once and claims them in turn. When
  another process claims the last of them between that read and the claim,
  Optuna samples a new trial, although other trials may have been queued in
  the meantime.
- A process takes any WAITING trial, also one that another live process has
  just queued for itself and is about to ask for. That process then finds the
  queue empty and samples a new trial.

Either way a trial off the plan runs. Here a trial queued with
:func:`owner_attrs` in its user attributes belongs to the process that queued
it while that process lives; :func:`claim_queued_trials` makes a study read the
queue again after a lost claim and leave other live processes' trials alone.
Trials queued without an owner (a user's ``enqueue_trial``, the retries of
failed trials) are anyone's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import types

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

__all__ = [
    "OWNER_ATTR",
    "asking_past_the_queue",
    "claim_queued_trials",
    "held_by_another",
    "orphaned",
    "owner_attrs",
]

logger = logging.getLogger("tunekit")

OWNER_ATTR = "tunekit_enqueued_by"  # {"host", "pid", "time"} of the process that queued a trial
ORPHAN_AFTER = 120.0  # seconds after which another machine's queued trial is up for grabs
_MAX_READS = 50  # each lost claim is a trial another process took: the queue empties


def owner_attrs() -> dict:
    """The user attribute that makes a queued trial this process's own."""
    return {OWNER_ATTR: {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}}


def _owner(trial) -> tuple | None:
    owner = trial.user_attrs.get(OWNER_ATTR)
    if not isinstance(owner, dict):
        return None
    return owner.get("host"), owner.get("pid")


def orphaned(trial, trials) -> bool:
    """A queued trial whose process is gone, or that has no owner: anyone may run it.

    On this machine the process is looked up. A trial queued on another
    machine counts as orphaned once its process has shown no sign of life
    (queueing, running or finishing one of its trials) for ``ORPHAN_AFTER``
    seconds.
    """
    owner = trial.user_attrs.get(OWNER_ATTR)
    if not isinstance(owner, dict):
        return True
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OSError):
            return False
        return False
    last = float(owner.get("time", 0.0))
    for other in trials:
        if _owner(other) != _owner(trial):
            continue
        if other.state == TrialState.RUNNING:
            return False
        stamp = other.user_attrs.get(OWNER_ATTR, {}).get("time", 0.0)
        last = max(last, float(stamp or 0.0))
        if other.datetime_complete is not None:
            last = max(last, other.datetime_complete.timestamp())
    return time.time() - last > ORPHAN_AFTER


def held_by_another(trial, trials) -> bool:
    """A queued trial that another live process queued for itself."""
    owner = _owner(trial)
    if owner is None or owner == (socket.gethostname(), os.getpid()):
        return False
    return not orphaned(trial, trials)


def _pop_waiting_trial_id(study) -> int | None:
    tried: set[int] = set()
    for _ in range(_MAX_READS):
        waiting = study._storage.get_all_trials(
            study._study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        trials = waiting  # the whole study only to judge another machine's queued trials
        if any(_owner(t) and _owner(t)[0] != socket.gethostname() for t in waiting):
            trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        fresh = [t for t in waiting if t._trial_id not in tried and not held_by_another(t, trials)]
        if not fresh:
            return None
        for trial in fresh:
            tried.add(trial._trial_id)
            try:
                claimed = study._storage.set_trial_state_values(
                    trial._trial_id, state=TrialState.RUNNING
                )
            except UpdateFinishedTrialError:  # another process ran it to the end already
                continue
            if claimed:
                logger.debug("queued trial %d taken", trial.number)
                return trial._trial_id
    return None


def claim_queued_trials(study):
    """Make ``study`` take queued trials as described in the module docstring.

    Returns the study. Versions of Optuna without ``Study._pop_waiting_trial_id``
    keep their own behaviour.
    """
    if hasattr(study, "_pop_waiting_trial_id") and hasattr(study, "_study_id"):
        study._pop_waiting_trial_id = types.MethodType(_pop_waiting_trial_id, study)
    return study


@contextlib.contextmanager
def asking_past_the_queue(study, skip: bool = True):
    """``study.ask`` without reading the queue of WAITING trials, while ``skip``.

    For a caller that has just read the study and found no WAITING trial: each
    ask would read the queue again (on a database, every unfinished trial with
    its parameters and reports) to find it still empty. A trial queued in the
    meantime is taken by the next ask that reads the queue.
    """
    if not skip or not hasattr(study, "_pop_waiting_trial_id"):
        yield
        return
    own = study.__dict__.get("_pop_waiting_trial_id")  # claim_queued_trials's, if it is there
    study._pop_waiting_trial_id = lambda: None
    try:
        yield
    finally:
        if own is None:
            del study._pop_waiting_trial_id
        else:
            study._pop_waiting_trial_id = own
