"""Optuna trials in batches on the stacked engine: all folds of all trials in lockstep.

:func:`run_batches` asks the study for a batch of trials, trains every
(trial, fold) pair of the batch as members of one stack per structure
(:class:`tunekit.evaluators.StackedEvaluator`), and after every epoch reports
each trial's *mean over all its folds* to the pruner. A pruned trial's members
are frozen at once and the trial is told ``PRUNED``; a finished one is told
``COMPLETE`` with its CV score; each trial's record is one storage write.

Batches: the pruner compares a trial with *finished* ones, and nothing
finishes before its batch does, so the first batch is small
(:data:`FIRST_BATCH` trials) and later ones hold :data:`DEFAULT_BATCH` trials
(or ``trial_batch``). A batch never asks for more trials than the study still
needs, counting the trials other workers are running (and the queued ones,
which it runs first), so workers sharing a study overshoot ``n_trials`` by no
more than they do one trial at a time.

What it does not do (yet): a pruned or finished trial's slot is not refilled
with a new trial before its batch ends; pruning saves member-epochs, and wall
time only when every member of a stack stops.
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import optuna

from tunekit._signals import check_stop, stop_requested
from tunekit.evaluators import StackedEvaluator
from tunekit.evaluators._base import main_score
from tunekit.evaluators.standard import is_keras_estimator
from tunekit.storage import set_user_attrs
from tunekit.strategies._common import jsonable, last_line

__all__ = ["DEFAULT_BATCH", "FIRST_BATCH", "check_trial_batch", "run_batches", "wants_batches"]

logger = logging.getLogger("tunekit")

#: Trials of the first batch: small, so that the pruner soon has finished trials.
FIRST_BATCH = 4
#: Trials per batch after the first one.
DEFAULT_BATCH = 8

_RUNNING = optuna.trial.TrialState.RUNNING
_WAITING = optuna.trial.TrialState.WAITING
_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def check_trial_batch(trial_batch) -> None:
    """Reject a batch size that is not a positive integer (``None`` is the default)."""
    if trial_batch is None:
        return
    if isinstance(trial_batch, bool) or not isinstance(trial_batch, int | np.integer):
        raise TypeError(
            f"trial_batch must be a positive integer (trials trained side by side) or None "
            f"for the default, got {trial_batch!r}"
        )
    if trial_batch < 1:
        raise ValueError(
            f"trial_batch must be >= 1 (trials trained side by side), got {trial_batch}"
        )


def wants_batches(estimator, *, engine: str, n_jobs: int, fit_params) -> bool:
    """Whether an Optuna search runs its trials in batches on the engine."""
    return (
        engine != "sklearn" and n_jobs == 1 and not fit_params and is_keras_estimator(estimator)
    )


def _record(entries, return_train_score: bool) -> dict:
    """A trial's user attributes from its per-fold entries (the objective's layout)."""

    def num(value):
        value = main_score(value)
        return value if math.isfinite(value) else None

    record = {
        "cv_test_scores": [num(e["test_scores"]) for e in entries],
        "cv_train_scores": [
            num(e["train_scores"]) if return_train_score else None for e in entries
        ],
        "fit_times": [float(e["fit_time"]) for e in entries],
        "score_times": [float(e["score_time"]) for e in entries],
        "best_epochs": [num(e["best_epoch"]) for e in entries],
        "n_epochs": [num(e["n_epochs"]) for e in entries],
    }
    record["epochs_spent"] = int(sum(e or 0 for e in record["n_epochs"]))
    errors = [e["fit_error"] for e in entries if e["fit_error"]]
    if errors:
        record["failure_reason"] = last_line(errors[0])
        record["failure_traceback"] = errors[0][-4000:]
    return record


def _beat(study, trials) -> None:
    storage = study._storage
    if getattr(storage, "is_heartbeat_enabled", lambda: False)():
        for trial in trials:
            storage.record_heartbeat(trial._trial_id)


def run_batches(search, objective, *, remaining: int, timeout=None, progress=None) -> int:
    """Run ``remaining`` trials of ``search.study_`` in batches on the engine.

    Parameters
    ----------
    search : OptunaSearchCV
        The search (its study, space, estimator, scoring and ``trial_batch``).
    objective : object
        The search's objective, for its data: ``X``, ``y``, ``splits``.
    remaining : int
        Trials still to finish.
    timeout : float or None
        Start no batch after this many seconds.
    progress : tqdm-like or None
        Updated once per finished trial.

    Returns
    -------
    n_run : int
        Trials this call told the study about.
    """
    from sklearn.metrics import check_scoring

    study = search.study_
    if getattr(study._storage, "is_heartbeat_enabled", lambda: False)():
        optuna.storages.fail_stale_trials(study)  # a dead worker's trials: FAIL, then retried
    scorer = check_scoring(search.estimator, scoring=search.scoring)
    size = search.trial_batch or DEFAULT_BATCH
    first = min(FIRST_BATCH, size) if search.trial_batch is None else size
    start = time.perf_counter()
    total = search.n_trials
    n_run = 0
    while True:
        check_stop()  # a safe point: between batches, outside any storage transaction
        # trials other processes are running count as taken; queued ones (a plan's, retries)
        # are still to run, and study.ask() hands them out first
        taken = len(study.get_trials(deepcopy=False, states=(*_FINISHED, _RUNNING)))
        queued = len(study.get_trials(deepcopy=False, states=(_WAITING,)))
        left = min(remaining - n_run, total - taken + queued)
        if left <= 0 or (timeout is not None and time.perf_counter() - start > timeout):
            return n_run
        n = min(first if n_run == 0 else size, left)
        n_run += _run_batch(search, objective, study, scorer, n, progress)


def _run_batch(search, objective, study, scorer, n: int, progress) -> int:
    with warnings.catch_warnings():
        # Optuna's heartbeats run inside Study.optimize only: the batch keeps them itself
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trials = [study.ask() for _ in range(n)]
    params = [search.space.suggest(trial) for trial in trials]
    _beat(study, trials)
    prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)
    halted = []

    def on_epoch(epoch, scores):
        _beat(study, trials)
        if stop_requested() is not None:  # Ctrl-C: stop the stack at this epoch boundary
            halted.append(epoch)
            return list(scores)
        if not prunes:
            return []
        stop = []
        for c, values in scores.items():
            values = [v for v in values if math.isfinite(v)]
            if not values:
                continue
            trials[c].report(float(np.mean(values)), epoch)
            if trials[c].should_prune():
                stop.append(c)
        return stop

    evaluator = StackedEvaluator(
        return_train_score=search.return_train_score,
        random_state=search.random_state,
        on_epoch=on_epoch,
        verbose=max(0, search.verbose - 2),
    )
    done = evaluator.evaluate(
        search.estimator, params, objective.splits, objective.X, objective.y, scorers=scorer
    )
    if halted:  # unfinished trials are not results: FAIL them, to be run again on resume
        for trial in trials:
            set_user_attrs(trial, {"failure_reason": f"interrupted at epoch {halted[0]}"})
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        check_stop()
    for c, trial in enumerate(trials):
        record = _record(done.entries[c], search.return_train_score)
        record["params"] = {k: jsonable(v) for k, v in params[c].items()}
        record["engine"] = done.engines[c]
        set_user_attrs(trial, record)
        scores = record["cv_test_scores"]
        if c in done.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif any(s is None for s in scores):
            if "failure_reason" not in record:
                set_user_attrs(trial, {"failure_reason": "non-finite score in a fold"})
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("trial %d failed: %s", trial.number, record.get("failure_reason"))
        else:
            study.tell(trial, float(np.mean(scores)))
        if progress is not None:
            progress.update(1)
    return n


