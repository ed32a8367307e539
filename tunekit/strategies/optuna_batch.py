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
(or ``trial_batch``, reduced when its trials' folds do not fit one stack of
the memory budget). A batch never asks for more trials than the study still
needs, counting the trials other workers are running (and the queued ones,
which it runs first), so workers sharing a study overshoot ``n_trials`` by no
more than they do one trial at a time.

Refilled slots: where one stack holds the batch (on either trainer), a trial that is
pruned or finishes is told at once, and the study's next trials take its
members' slots at the next epoch boundary (:mod:`tunekit.evaluators.stacked.refill`),
so the stack does not idle until the batch ends and the member-epochs that
pruning saves are saved wall time. Such a "batch" runs until the study has
its trials. A trial the running stack cannot seat (another structure, other
random knobs or penalties; for any builder, another built structure) starts the
next batch. Nested cross-validation's lockstep studies train whole batches.

Dead workers: on a storage with heartbeats every trial of a batch records a
heartbeat when it is asked and then from a background thread (also during a
long first epoch or compilation), and before every batch the study's stale
trials are failed (:func:`tunekit.storage.fail_stale_trials`) and queued
again with the same parameters. A process with nothing left to ask while
other processes' trials are RUNNING does not leave: it waits until those
trials finish, or until they are failed as dead and their retries have run,
so that the study reaches ``n_trials`` as long as one process lives.
"""

from __future__ import annotations

import logging
import math
import time
import warnings

import numpy as np
import optuna
from sklearn.metrics import check_scoring
from sklearn.utils.validation import _num_samples

from tunekit._signals import WORKER_ATTR, check_stop, stop_requested, worker_id
from tunekit.evaluators import (
    StackedEvaluator,
    assemble,
    is_keras_estimator,
    main_score,
    pop_predictions,
)
from tunekit.evaluators.outer_folds import evaluate_batch
from tunekit.record import (
    CV_TEST_SCORES,
    ENGINE,
    FAILURE_REASON,
    PARAMS,
    TrialRecord,
    params_attr,
)
from tunekit.storage import (
    Heartbeats,
    asking_past_the_queue,
    fail_stale_trials,
    heartbeat_interval,
    report_all,
    set_user_attrs,
    stale_wait_seconds,
    suggest_in_one_transaction,
)

__all__ = ["DEFAULT_BATCH", "FIRST_BATCH", "check_trial_batch", "run_batches", "wants_batches"]

logger = logging.getLogger("tunekit")

#: Trials of the first batch: small, so that the pruner soon has finished trials.
FIRST_BATCH = 4
#: Trials per batch after the first one.
DEFAULT_BATCH = 8

_RUNNING = optuna.trial.TrialState.RUNNING
_WAITING = optuna.trial.TrialState.WAITING
_COMPLETE = optuna.trial.TrialState.COMPLETE
_FINISHED = (_COMPLETE, optuna.trial.TrialState.PRUNED)


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
    return engine != "sklearn" and n_jobs == 1 and not fit_params and is_keras_estimator(estimator)


def _record(entries, return_train_score: bool, oof=None, curves=(), **extra) -> dict:
    """A trial's user attributes from its per-fold entries and curve rows (one storage write).

    ``oof`` is ``(test rows of each fold, n_rows)`` when the search keeps
    out-of-fold predictions: a trial whose every fold predicted stores them.
    """
    record = TrialRecord()
    for fold in range(len(entries)):
        record.add_curves(fold, [row for row in curves if row["fold"] == fold])
    if oof is not None:
        tests, n_rows = oof
        folds = pop_predictions(entries, tests)
        if len(folds) == len(tests):
            record.set_predictions(assemble(folds, n_rows))
    for e in entries:
        record.add_fold(
            test_score=main_score(e["test_scores"]),
            train_score=main_score(e["train_scores"]) if return_train_score else None,
            fit_time=e["fit_time"],
            score_time=e["score_time"],
            best_epoch=main_score(e["best_epoch"]),
            n_epochs=main_score(e["n_epochs"]),
        )
    errors = [e["fit_error"] for e in entries if e["fit_error"]]
    return record.attrs(
        epochs_spent=int(record.epochs_spent()),
        traceback_text=errors[0] if errors else None,
        **extra,
    )


def _oof_rows(search, objective):
    """``_record``'s ``oof``: every fold's test rows and the rows searched, or ``None``."""
    if not search.oof_predictions:
        return None
    return [te for _, te in objective.splits], _num_samples(objective.X)


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
    batches = _Batches(search, objective, remaining, timeout, progress)
    size, first = batches.size, batches.first
    while True:
        check_stop()  # a safe point: between batches, outside any storage transaction
        n = batches.wanted()
        if batches.timed_out():
            return batches.n_run
        if n > 0 or batches.held:
            batches.run(min(first if batches.n_run == 0 else size, max(n, len(batches.held))))
        elif not batches.waiting.wait():
            return batches.n_run


def _fitting_batch(search, objective, size: int) -> int:
    """``size`` trials, or as many as one stack of the memory budget holds (logged)."""
    budget = getattr(search, "memory_budget", None)
    evaluator = StackedEvaluator(memory_budget=budget)
    fit = evaluator.candidates_per_stack(
        search.estimator, objective.X, objective.y, objective.splits
    )
    if fit is None or fit >= size:
        return size
    reduced = max(fit, 1)
    logger.info(
        "trial_batch: %d trials x %d folds do not fit one stack of the memory budget of "
        "%.1f MiB (%s); batches of %d trial(s) instead",
        size, len(objective.splits), evaluator.budget_.budget / 2**20, evaluator.budget_.source,
        reduced,
    )  # fmt: skip
    return reduced


class _Waiting:
    """How many trials to ask next, and the wait for other processes' trials.

    The study needs ``n_trials`` finished trials; the trials other processes
    are running count as taken, and queued ones (a plan's, retries) are run
    whatever the count, :meth:`optuna.Study.ask` handing them out first. When
    nothing is left to ask but trials of other processes are RUNNING, the
    caller waits (:meth:`wait`): they finish, or their worker is dead and
    they are failed and queued again once their heartbeat is stale. A retry
    that another process queued is left to that process for two polls, so
    that two waiting processes rarely both take it.
    """

    def __init__(self, study) -> None:
        self.study = study
        self.interval = heartbeat_interval(study._storage)
        self.poll = max(0.2, min(1.0, (self.interval or 1) / 2))
        self.mine: set[int] = set()  # trials this process failed as dead
        self.first_seen: dict[int, float] = {}
        self.announced: set[int] = set()
        self.running: list[int] = []
        self.held: list[int] = []
        self.queued = True  # whether the last read found WAITING trials (before any: maybe)

    def batch(self, n_trials: int, budget: int, failed=()) -> int:
        """Trials to ask now (0: none; then :meth:`wait` says whether to wait).

        ``budget`` caps new trials (a study whose candidates all fail ends);
        ``failed`` are the trials this process has just failed as dead.
        """
        self.mine.update(failed)
        trials = self.study.get_trials(deepcopy=False, states=(*_FINISHED, _RUNNING, _WAITING))
        queued = [t for t in trials if t.state == _WAITING]
        self.queued = bool(queued)
        self.running = [t.number for t in trials if t.state == _RUNNING]
        now = time.monotonic()
        self.held = [
            t.number
            for t in queued
            if _retry_of(t) is not None
            and _retry_of(t) not in self.mine
            and now - self.first_seen.setdefault(t.number, now) < 2 * self.poll
        ]
        if self.held:
            return 0
        taken = len(trials) - len(queued)
        return max(0, min(budget, max(n_trials - taken, len(queued))))

    def wait(self) -> bool:
        """Wait one poll if other processes' trials may still need this one; else False."""
        if not self.held and (not self.running or self.interval is None):
            return False  # without heartbeats a dead worker's trial is never failed
        new = [n for n in self.running if n not in self.announced]
        if new:
            self.announced.update(new)
            logger.info(
                "study %r: waiting for trial(s) %s of other processes; a dead worker's trial "
                "is failed and run again here after at most %.0f s without a heartbeat",
                self.study.study_name,
                ", ".join(map(str, self.running)),
                stale_wait_seconds(self.study._storage),
            )
        time.sleep(self.poll)
        return True


class _Pruning:
    """An epoch's reports in one write, and the pruner's verdicts with one read a batch.

    ``trial.report`` commits one transaction per trial and epoch, and
    ``trial.should_prune()`` reads the trial and the study's trials from
    storage each time: on SQLite that was most of a pruned study's wall time.
    An epoch's reports are written in one transaction
    (:func:`tunekit.storage.report_all`), as they come: the pruners of other
    processes, and of later batches, read them. The median and percentile
    pruners compare with COMPLETE trials only: those are read once, at the
    batch's first report, and each trial this process completes meanwhile
    (with refilled slots, while the batch runs) is added as it is told
    (:meth:`completed_now`), so the verdicts are the ones ``should_prune``
    gives in a process of its own (trials that other processes complete
    meanwhile count from the next batch on). Every other pruner is asked
    through ``should_prune``, as before.
    """

    def __init__(self, study) -> None:
        self.study = study
        self.pruner = study.pruner
        self.direct = type(self.pruner).prune is optuna.pruners.PercentilePruner.prune and (
            len(study.directions) == 1
        )
        self.values: dict[int, dict] = {}
        self.completed: list | None = None

    def judge(self, reports: dict, trials: list) -> list[int]:
        """Write ``reports`` (trial -> (step, value)); the positions in ``trials`` to prune."""
        report_all([(trial, step, value) for trial, (step, value) in reports.items()])
        return [
            c
            for c, trial in enumerate(trials)
            if trial in reports and self._prunes(trial, reports[trial][1], reports[trial][0])
        ]

    def completed_now(self, trial) -> None:
        """``trial`` (a FrozenTrial) was just told COMPLETE here: later verdicts count it.

        With refilled slots a batch's trials complete while it runs; the
        verdicts stay those of ``should_prune`` in a process of its own.
        """
        if self.completed is not None:
            self.completed.append(trial)

    def _prunes(self, trial, value: float, step: int) -> bool:
        """Whether the pruner stops ``trial`` after its report of ``value`` at ``step``."""
        if not self.direct:
            return trial.should_prune()
        self.values.setdefault(trial.number, {}).setdefault(step, value)  # as Optuna keeps it
        if self.completed is None:
            self.completed = self.study.get_trials(deepcopy=False, states=(_COMPLETE,))
        return self.pruner.prune(self, _Reported(self.values[trial.number]))

    # what a percentile pruner reads of the study
    @property
    def direction(self):
        return self.study.direction

    def get_trials(self, deepcopy: bool = False, states=None) -> list:
        return [t for t in self.completed or () if states is None or t.state in states]


class _Reported:
    """A trial as a percentile pruner reads it: its reported values."""

    def __init__(self, values: dict) -> None:
        self.intermediate_values = values

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate_values) if self.intermediate_values else None


def _retry_of(trial) -> int | None:
    """The number of the failed trial that ``trial`` runs again, or None."""
    history = trial.system_attrs.get("retry_history") or [None]
    return history[-1]


class _Batches:
    """A study's batches on the engine: what to ask, and each batch's training and telling.

    ``n_run`` counts the trials asked so far; ``held`` are trials asked
    during a batch with refilled slots that its stack could not seat: the next
    batch starts with them.
    """

    def __init__(self, search, objective, remaining: int, timeout, progress) -> None:
        self.search, self.objective, self.study = search, objective, search.study_
        self.scorer = check_scoring(search.estimator, scoring=search.scoring)
        self.size = _fitting_batch(search, objective, search.trial_batch or DEFAULT_BATCH)
        self.first = min(FIRST_BATCH, self.size) if search.trial_batch is None else self.size
        self.remaining, self.timeout, self.progress = remaining, timeout, progress
        self.start = time.perf_counter()
        self.waiting = _Waiting(self.study)
        self.n_run = 0
        self.held: list = []
        self.checked = -math.inf  # when dead workers' trials were last looked for

    def timed_out(self) -> bool:
        """Whether no batch, and no refill, may start any more."""
        return self.timeout is not None and time.perf_counter() - self.start > self.timeout

    def wanted(self) -> int:
        """Trials to ask now (0: none), after failing dead workers' trials for a retry."""
        # a dead worker's trials: FAIL, then queued again; each retry replaces a trial that
        # never finished, so it does not count against this call's budget. A trial is dead
        # after a grace period of seconds: refilled slots, which ask many times a second,
        # look at most once per poll (0.2 s to 1 s), each look a read of the running trials
        failed = []
        if time.monotonic() - self.checked >= self.waiting.poll:
            failed = fail_stale_trials(self.study)
            self.checked = time.monotonic()
        self.remaining += len(failed)
        return self.waiting.batch(self.search.n_trials, self.remaining - self.n_run, failed)

    def ask(self, n: int) -> list:
        """``n`` new trials of the study."""
        with warnings.catch_warnings():
            # Optuna's heartbeats run inside Study.optimize only: the batch keeps them itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            # wanted() has just read the study: with no trial queued, no ask reads the queue
            with asking_past_the_queue(self.study, skip=not self.waiting.queued):
                trials = [self.study.ask() for _ in range(n)]
        self.n_run += n
        return trials

    def run(self, n: int) -> None:
        """Ask, train and tell one batch of ``n`` trials (the held ones first)."""
        trials, self.held = self.held[:n], self.held[n:]
        trials += self.ask(n - len(trials))
        with Heartbeats(self.study._storage) as beats:
            _Batch(self, trials, beats).train()


class _Batch:
    """One batch: its trials, their pruning and telling, and the refill of their slots."""

    def __init__(self, batches: _Batches, trials: list, beats) -> None:
        self.batches, self.study, self.search = batches, batches.study, batches.search
        self.trials, self.beats = [], beats
        self.params: list = []
        nop = isinstance(self.study.pruner, optuna.pruners.NopPruner)
        self.pruning = None if nop else _Pruning(self.study)
        self.halted: list = []
        self.worker = worker_id()
        for trial in trials:
            self.add(trial, self.suggest(trial))

    def suggest(self, trial) -> dict:
        """The trial's parameters, and whose it is, written after them in one transaction."""
        return suggest_in_one_transaction(self.search.space, trial, {WORKER_ATTR: self.worker})

    def add(self, trial, params: dict) -> None:
        """A trial of the batch, with its heartbeat."""
        self.trials.append(trial)
        self.params.append(params)
        self.beats.add(trial)

    def train(self) -> None:
        """Train the batch, report, prune, tell (each trial as it ends, with refilled slots)."""
        search, objective = self.search, self.batches.objective
        evaluator = StackedEvaluator(
            memory_budget=getattr(search, "memory_budget", None),
            oof_predictions=search.oof_predictions,
            return_train_score=search.return_train_score,
            random_state=search.random_state,
            on_epoch=self.on_epoch,
            verbose=max(0, search.verbose - 2),
            pad_to=self.batches.size * len(objective.splits),  # one compiled shape
        )
        evaluation = evaluate_batch(
            evaluator,
            search.estimator,
            list(self.params),
            objective.splits,
            objective.X,
            objective.y,
            scorers=self.batches.scorer,
            refill=self if getattr(search, "refill_slots", True) else None,
        )  # alone, or with the other outer folds' batches in nested cross-validation
        if self.halted:  # unfinished trials are not results: FAIL them, to be run again on resume
            for trial in [t for t in self.trials if t is not None] + self.batches.held:
                set_user_attrs(trial, {FAILURE_REASON: f"interrupted at epoch {self.halted[0]}"})
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.batches.held = []
            check_stop()
        if not evaluation.refilled:
            for c in range(len(self.trials)):
                self.tell(c, evaluation)

    # ------------------------------------------------------------ the evaluator's hooks
    def on_epoch(self, epoch: int, scores: dict) -> list:
        """A whole batch's epoch: every trial at ``epoch``."""
        return self.epoch_end({c: (epoch, values) for c, values in scores.items()})

    def epoch_end(self, scores: dict) -> list:
        """Report each trial's mean over its folds at its own epoch; the trials to stop."""
        if stop_requested() is not None:  # Ctrl-C: stop the stack at this epoch boundary
            self.halted.append(max((e for e, _ in scores.values()), default=0))
            return list(scores)
        if self.pruning is None:
            return []
        reports = {}
        for c, (epoch, values) in scores.items():
            values = [v for v in values if math.isfinite(v)]
            if values:
                reports[self.trials[c]] = (epoch, float(np.mean(values)))
        return self.pruning.judge(reports, self.trials)

    def done(self, c: int, evaluation) -> None:
        """Refilled slots: trial ``c`` has every fold's entry in ``evaluation``; tell it now."""
        if not self.halted:
            self.tell(c, evaluation)

    def more(self, n: int, fits) -> list[dict]:
        """Refilled slots: up to ``n`` trials the study still needs; a misfit waits."""
        batches = self.batches
        if self.halted or stop_requested() is not None or batches.timed_out() or batches.held:
            return []
        new = []
        for trial in batches.ask(min(n, batches.wanted())):
            params = self.suggest(trial)  # a misfit waits for this worker's next batch
            if batches.held or not fits(params):
                batches.held.append(trial)  # the next batch starts with it
                continue
            self.add(trial, params)
            new.append(params)
        if new:
            logger.debug(
                "trial(s) %s take free slots of the running stack",
                ", ".join(str(t.number) for t in self.trials[-len(new) :]),
            )
        return new

    def tell(self, c: int, evaluation) -> None:
        """Record trial ``c``'s folds and tell the study: COMPLETE, PRUNED or FAIL."""
        search, objective, study = self.search, self.batches.objective, self.study
        trial = self.trials[c]
        record = _record(
            evaluation.entries[c],
            search.return_train_score,
            _oof_rows(search, objective) if c not in evaluation.pruned else None,
            evaluation.curves_of(c),
            **{PARAMS: params_attr(self.params[c]), ENGINE: evaluation.engines[c]},
        )
        set_user_attrs(trial, record)
        scores = record[CV_TEST_SCORES]
        if c in evaluation.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif any(s is None for s in scores):
            if FAILURE_REASON not in record:
                set_user_attrs(trial, {FAILURE_REASON: "non-finite score in a fold"})
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            logger.warning("trial %d failed: %s", trial.number, record.get(FAILURE_REASON))
        else:
            frozen = study.tell(trial, float(np.mean(scores)))
            if self.pruning is not None:
                self.pruning.completed_now(frozen)
        self.trials[c] = None  # told
        self.beats.discard(trial)
        if self.batches.progress is not None:
            self.batches.progress.update(1)
