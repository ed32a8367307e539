"""Optuna's queue of WAITING trials, taken without losing a race to another process.

``Study.ask`` pops a queued trial by reading the WAITING trials once and
claiming them in turn. When another process claims the last of them between
that read and the claim, Optuna samples a new trial instead, although other
trials may have been queued in the meantime. For processes that share a plan
that is a trial off the plan; for a retry it is one more trial than asked.

:func:`claim_queued_trials` makes a study read the queue again after a claim
it lost, and take the next queued trial that is still there.
"""

from __future__ import annotations

import logging
import types

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

__all__ = ["claim_queued_trials"]

logger = logging.getLogger("tunekit")

_MAX_READS = 50  # each lost claim is a trial another process took: the queue empties


def _pop_waiting_trial_id(study) -> int | None:
    tried: set[int] = set()
    for _ in range(_MAX_READS):
        waiting = study._storage.get_all_trials(
            study._study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        fresh = [t for t in waiting if t._trial_id not in tried]
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
