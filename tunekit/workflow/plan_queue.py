"""The plan's queue in a shared study: which configurations to enqueue, and who runs them.

Each process tags what it enqueues and only starts as many trials as it has
enqueued (plus, in a normal run, the queued trials nobody else will run), so
that processes sharing a study never make Optuna sample a configuration off
the plan.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from optuna.trial import TrialState

from tunekit.record import FAIL, failed_in_the_model
from tunekit.space import Space
from tunekit.storage import study_lock
from tunekit.storage.queue import orphaned, owner_attrs
from tunekit.workflow.plans import Config, encode_params
from tunekit.workflow.summary import describe_params

__all__ = ["n_finished", "overfitted", "plan_labels", "plan_params", "run_plan"]

logger = logging.getLogger("tunekit")

_TOKEN, _LABEL, _PLAN = "tunekit_token", "tunekit_label", "tunekit_plan_params"


def plan_params(trial) -> dict:
    return dict(trial.user_attrs.get(_PLAN) or trial.params)


def plan_labels(study, space: Space, plan: Sequence[Config]) -> dict[int, str]:
    """Trial number -> the name of the plan configuration it ran (retries included)."""
    encoded = [(encode_params(space, c.params), c.label) for c in plan]
    labels = {}
    for trial in study.get_trials(deepcopy=False):
        params = plan_params(trial)
        for values, label in encoded:
            if all(params.get(k) == v for k, v in values.items()):
                labels[trial.number] = label
                break
    return labels


def _covered(encoded: Mapping, trials) -> bool:
    """A configuration is done or in progress: finished, running, waiting or truly failed."""
    for t in trials:
        if t.state.name == FAIL and not failed_in_the_model(t):
            continue  # interrupted or killed: run it again
        params = plan_params(t)
        if all(params.get(k) == v for k, v in encoded.items()):
            return True
    return False


def n_finished(study) -> int:

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_plan(job, entries: Sequence[Config], run: Callable[[int, int], None]) -> None:
    """Enqueue the plan's missing configurations and run them.

    Each process tags what it enqueues and only starts as many trials as it
    has enqueued (plus, in a normal run, the queued trials nobody else will
    run: retries of interrupted trials, trials of processes that are gone), so
    that processes sharing a study never make Optuna sample a configuration
    off the plan. Workers take one configuration at a time.

    Parameters
    ----------
    job : StudyRun
        The study run (:class:`tunekit.workflow.runner.StudyRun`): its study,
        store, storage URL, space, ``worker``, ``until_train_score``,
        ``refit_top`` and ``time_left()``.
    entries : list of Config
        The configurations to run.
    run : callable
        ``run(n_trials, refit)`` runs that many trials of the study.
    """
    study, store, url, space = job.study, job.store, job.storage, job.space
    until_train_score, time_left = job.until_train_score, job.time_left
    one_by_one = job.worker or until_train_score is not None
    final_refit = None if job.worker else job.refit_top
    token = uuid.uuid4().hex
    encoded = [encode_params(space, c.params) for c in entries]
    while True:
        if until_train_score is not None and overfitted(study, until_train_score):
            break
        left = time_left()
        if left is not None and left <= 0:
            logger.info("timeout reached: no more trials are started")
            break
        with study_lock(url, study.study_name, store):
            trials = study.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            mine = [t for t in waiting if t.user_attrs.get(_TOKEN) == token]
            todo = [i for i, e in enumerate(encoded) if not _covered(e, trials)]
            if one_by_one and not mine:
                todo = todo[:1]
            elif one_by_one:
                todo = []
            for i in todo:
                attrs = {_TOKEN: token, _LABEL: entries[i].label, _PLAN: encoded[i]}
                study.enqueue_trial(encoded[i], user_attrs={**attrs, **owner_attrs()})
            # a normal run also takes over queued trials nobody will run: retries of
            # interrupted or dead trials (no token), and those of processes that are gone
            orphans = [
                t for t in waiting if t.user_attrs.get(_TOKEN) != token and orphaned(t, trials)
            ]
            n_run = len(mine) + len(todo) + (0 if one_by_one else len(orphans))
        if n_run == 0:
            break
        if one_by_one:
            logger.info("running %s", ", ".join(entries[i].label for i in todo) or "a trial")
        run(n_run, 1)  # one refit only: Ctrl-C must not wait for the report's refits
        if not one_by_one:
            break
    if final_refit is not None:
        run(0, final_refit)


def overfitted(study, threshold: float) -> bool:

    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        scores = [s for s in trial.user_attrs.get("cv_train_scores") or [] if s is not None]
        if scores and float(np.mean(scores)) >= threshold:
            logger.info(
                "trial %d (%s) reached a training score of %.4f >= %g: the model overfits",
                trial.number,
                describe_params(trial.user_attrs.get("params") or trial.params),
                float(np.mean(scores)),
                threshold,
            )
            return True
    return False
