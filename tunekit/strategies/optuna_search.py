"""The Optuna strategy: a study over a :class:`~tunekit.space.Space`, pruned inside CV.

Each trial cross-validates one candidate fold by fold. After every fold the
trial reports the mean score so far, and within a fold a Keras estimator
reports the score on the fold's test part a few times per fold through a
callback that the objective passes to ``fit``: the callback is never an
estimator parameter, so ``clone`` cannot cut it off from the study (a
pruning callback set as a parameter would be deep-copied and never reach the
study). A pruner can therefore stop a hopeless candidate after one fold, or
after a few epochs of its first fold.

Steps are aligned across trials: fold ``k``'s epoch ``e`` is step
``k * (max_epochs + 1) + e`` and the end of fold ``k`` is step
``k * (max_epochs + 1) + max_epochs``, where ``max_epochs`` is the largest
number of epochs the space allows.

Per-fold scores, times and epochs are stored in each trial's ``user_attrs``
(see :func:`tunekit.report.cv_results_from_study`), so ``cv_results_`` is
built from the study alone and a study resumed from its storage gives the
same results as one run in a single go.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
import traceback
import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import optuna
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import indexable
from sklearn.utils.validation import _num_samples

from tunekit import _signals
from tunekit._signals import WorkerTerminated, check_stop, stop_requested
from tunekit.evaluators import assemble, is_keras_estimator, predictions_of
from tunekit.evaluators.diagnosis import divergence_reason, non_finite_reason
from tunekit.evaluators.fast_scores import fast_score
from tunekit.evaluators.outer_folds import refit_elsewhere
from tunekit.exceptions import DivergedError, SearchFailedError
from tunekit.record import (
    CV_TEST_SCORES,
    ENGINE,
    FAILURE_TRACEBACK,
    N_SPLITS_ATTR,
    OOF_TARGET_ATTR,
    PARAMS,
    SCORING_ATTR,
    SPACE_ATTR,
    TEST_TRAIN_RATIO_ATTR,
    TrialRecord,
    check_resumable,
    curves_from_study,
    cv_results_from_study,
    oof_predictions_of,
    oof_target_attr,
    params_attr,
    stamp_layout,
)
from tunekit.space import Choice, Int, Space
from tunekit.storage import (
    claim_queued_trials,
    make_storage,
    set_user_attrs,
    suggest_in_one_transaction,
)
from tunekit.storage.urls import redact_url
from tunekit.strategies._search import engine_of
from tunekit.strategies.optuna_batch import check_trial_batch, run_batches, wants_batches
from tunekit.strategies.refit import record_refit, refit_best
from tunekit.strategies.scoring import EpochAwareScorer, final_estimator, scorer_name
from tunekit.strategies.shared_study import optimize, worker_seed  # FAIL + retry on signals

__all__ = ["OptunaSearchCV", "check_study_compatible", "space_signature"]

logger = logging.getLogger("tunekit")

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def space_signature(space: Space) -> str:
    """A JSON description of the space's Optuna distributions, stored on the study."""
    return json.dumps(
        {
            name: optuna.distributions.distribution_to_json(d)
            for name, d in space.to_optuna().items()
        },
        sort_keys=True,
    )


def check_study_compatible(study, space: Space, scoring: str, storage_label: str) -> None:
    """Refuse to mix trials of another space, scoring or direction into ``study``.

    Raises
    ------
    ValueError
        Naming what differs and how to start a separate study.
    """
    fix = "Use another study_name (--study-name) or run with the study's own settings."
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(
            f"study {study.study_name!r} in {storage_label} minimizes, but tunekit maximizes "
            f"scikit-learn scores (higher is better). {fix}"
        )
    attrs = study.user_attrs
    signature = space_signature(space)
    if SPACE_ATTR in attrs and attrs[SPACE_ATTR] != signature:
        raise ValueError(
            f"study {study.study_name!r} in {storage_label} was created with a different "
            f"search space: stored {attrs[SPACE_ATTR]}, given {signature}. {fix}"
        )
    if SCORING_ATTR in attrs and attrs[SCORING_ATTR] != scoring:
        raise ValueError(
            f"study {study.study_name!r} in {storage_label} was scored with "
            f"{attrs[SCORING_ATTR]!r}, but this search scores with {scoring!r}. {fix}"
        )


def _max_epochs(estimator, space: Space) -> int | None:
    params = estimator.get_params()
    names = [n for n in params if n == "epochs" or (n.endswith("__epochs") and n.count("__") == 1)]
    if not names:
        return None
    name = names[0]
    dim = space.get(name)
    if isinstance(dim, Int):
        return int(dim.high)
    if isinstance(dim, Choice):
        return int(max(dim.values))
    value = params[name]
    return int(value) if isinstance(value, (int, np.integer)) else None


def _index(data, idx):
    if hasattr(data, "iloc"):
        return data.iloc[idx]
    return data[idx]


@functools.cache
def _epoch_reporter_class():
    """The Keras callback class, defined on first use so that Keras loads lazily."""
    import keras

    class EpochReporter(keras.callbacks.Callback):
        """Records the fold's per-epoch curve rows in ``rows``; reports the score every ``every``.

        ``every=None`` reports nothing to the trial (no pruning): the rows are
        still recorded. A score taken for the curve alone that fails is NaN.
        """

        def __init__(self, trial, estimator, scorer, test, done, base, every, rows):
            super().__init__()
            self.trial, self.estimator, self.scorer = trial, estimator, scorer
            self.X_test, self.y_test = test
            self.done, self.base = list(done), base
            self.every = None if every is None else max(1, int(every))
            self.rows = rows  # the fold's rows in the trial's record, filled epoch by epoch
            self.epochs_done = 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.epochs_done = epoch + 1
            due = self.every is not None and (epoch + 1) % self.every == 0
            score = self._score(epoch, logs) if due else self._curve_score()
            self.rows.append({
                "epoch": epoch + 1,
                "train_loss": float(logs.get("loss", math.nan)),
                "test_score": score,
                "val_loss": float(logs.get("val_loss", math.nan)),
            })  # fmt: skip
            if not due or not math.isfinite(score):
                return
            self.trial.report(float(np.mean([*self.done, score])), self.base + epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

        def _curve_score(self) -> float:
            return fast_score(self.scorer, self.estimator, self.X_test, self.y_test,
                               self._scored_or_nan)  # fmt: skip

        def _scored_or_nan(self) -> float:
            try:
                return float(self.scorer(self.estimator, self.X_test, self.y_test))
            except (ValueError, TypeError):  # NaN predictions: the fold's own score says why
                return math.nan

        def _score(self, epoch, logs) -> float:
            try:
                return float(self.scorer(self.estimator, self.X_test, self.y_test))
            except ValueError as err:  # NaN or infinite predictions: say how training diverged
                diverged = divergence_reason(
                    self.estimator, self.X_test, scored=False, epoch=epoch + 1,
                    loss=logs.get("loss"),
                )  # fmt: skip
                if diverged is None:
                    raise
                raise DivergedError(diverged) from err

    return EpochReporter


@functools.cache
def _stop_callback_class():
    """The Keras callback that stops training at an epoch's end once a signal came."""
    import keras

    class StopOnSignal(keras.callbacks.Callback):
        """Raises :class:`tunekit._signals.WorkerInterrupted` at the first epoch end after
        SIGINT or SIGTERM: a safe point, outside any storage transaction."""

        def on_epoch_end(self, epoch, logs=None):
            check_stop()

    return StopOnSignal


class _Objective:
    """Cross-validates one candidate per trial and stores everything on the trial."""

    def __init__(self, search, X, y, splits, fit_params, max_epochs):
        self.search = search
        self.X, self.y = X, y
        self.splits = splits
        self.fit_params = fit_params
        self.max_epochs = max_epochs
        self.stride = (max_epochs or 0) + 1
        self.score = EpochAwareScorer(search.estimator, search.scoring)

    def _fit_kwargs(self, estimator, trial, X_test, y_test, record, fold):
        """``fit`` arguments that add the Keras callbacks, and the epoch reporter (or None).

        A Keras estimator always gets a callback that stops it at an epoch's
        end after a signal, and the reporter, which records the fold's
        per-epoch curves and reports to the trial when pruning needs it.
        """
        search = self.search
        final = final_estimator(estimator)
        if not is_keras_estimator(final):  # found without importing TensorFlow
            return {}, None
        callbacks = [_stop_callback_class()()]
        every = None
        reports = search.reports_per_fold
        study = getattr(search, "study_", None)
        if study is not None and isinstance(study.pruner, optuna.pruners.NopPruner):
            reports = 0  # nothing would ever be pruned: don't pay for the reports
        if reports and self.max_epochs is not None:
            epochs = int(final.get_params().get("epochs", self.max_epochs))
            every = max(1, math.ceil(epochs / reports))
        callback = _epoch_reporter_class()(
            trial, estimator, self.score.scorer, (X_test, y_test), record.test_scores,
            fold * self.stride, every, record.add_curves(fold, []),
        )  # fmt: skip
        callbacks.append(callback)
        key = "callbacks"
        if estimator is not final:
            key = f"{estimator.steps[-1][0]}__callbacks"
        return {key: callbacks}, callback

    def _predict(self, record, predicted: list, estimator, X_test, test, fold: int) -> None:
        """Keep the fold model's predictions on its test rows when the search keeps them;
        after the last fold, hand them all to the trial's record."""
        if not self.search.oof_predictions:
            return
        values = predictions_of(estimator, X_test)
        if values is not None:
            predicted.append((np.asarray(test), values))
        if fold == len(self.splits) - 1 and len(predicted) == len(self.splits):
            record.set_predictions(assemble(predicted, _num_samples(self.X)))

    def __call__(self, trial: optuna.Trial) -> float:
        search = self.search
        params = suggest_in_one_transaction(search.space, trial)
        trial.set_user_attr(PARAMS, params_attr(params))
        record, predicted = TrialRecord(), []  # predicted: (test rows, values) per fold
        save = functools.partial(_save, trial, record)

        for fold, (train, test) in enumerate(self.splits):
            check_stop()  # a safe point: between folds, outside any storage transaction
            X_train, y_train = _index(self.X, train), _index(self.y, train)
            X_test, y_test = _index(self.X, test), _index(self.y, test)
            estimator = clone(search.estimator).set_params(**params)
            fit_kwargs = {
                k: (_index(v, train) if _num_samples(v) == _num_samples(self.X) else v)
                for k, v in self.fit_params.items()
            }
            extra, reporter = self._fit_kwargs(estimator, trial, X_test, y_test, record, fold)
            fit_kwargs.update(extra)
            start = time.perf_counter()
            try:
                estimator.fit(X_train, y_train, **fit_kwargs)
                fit_time = time.perf_counter() - start
                start = time.perf_counter()
                scored = self.score(estimator, X_test, y_test)
                score_time = time.perf_counter() - start
                train_scored = (
                    self.score(estimator, X_train, y_train) if search.return_train_score else None
                )
            except optuna.TrialPruned:
                save(partial=getattr(reporter, "epochs_done", 0))
                raise
            except Exception as err:  # the candidate failed: keep why, go on with the search
                reason = _fold_failure(err, estimator, X_test)
                save(traceback_text=traceback.format_exc(), reason=reason)
                logger.warning("trial %d failed in fold %d: %s", trial.number, fold, reason or err)
                return float("nan")
            record.add_fold(
                test_score=scored["score"],
                train_score=train_scored["score"] if train_scored else None,
                fit_time=fit_time,
                score_time=score_time,
                best_epoch=scored["best_epoch"],
                n_epochs=scored["n_epochs"],
            )
            if record.test_scores[-1] is None:
                reason = non_finite_reason(estimator, X_test, scored["score"], None)
                save(reason=f"non-finite score in fold {fold}: {reason}")
                logger.warning("trial %d failed in fold %d: %s", trial.number, fold, reason)
                return float("nan")
            self._predict(record, predicted, estimator, X_test, test, fold)
            running = float(np.mean(record.test_scores))
            trial.report(running, fold * self.stride + (self.max_epochs or 0))
            last = fold == len(self.splits) - 1
            prune = not last and trial.should_prune()
            save(last=last or prune)
            if prune:
                raise optuna.TrialPruned(f"pruned after fold {fold + 1}")
        return float(np.mean(record.test_scores))


def _save(trial, record: TrialRecord, partial=0, last=True, **failure) -> None:
    """A trial's record in one storage write (per fold); the curves with its last write only."""
    spent = record.epochs_spent() + partial
    set_user_attrs(trial, record.attrs(epochs_spent=spent, curves=last, **failure))


def _name_objective(study, scoring_name: str) -> None:
    """Name the study's value after the scorer, as Optuna Dashboard shows it."""
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore")
        study.set_metric_names([f"{scoring_name} (mean over CV folds)"])


def _fold_failure(err: Exception, estimator, X_test) -> str | None:
    """How training diverged, when a fold's fit or scoring raised because it did.

    A scorer (of the fold, or of an epoch for pruning) fails on a diverged
    model's NaN predictions with a bare ``ValueError``; ``None`` leaves the
    traceback's last line as the reason.
    """
    if isinstance(err, DivergedError):
        return f"DivergedError: {err}"
    diverged = divergence_reason(estimator, X_test, scored=False)
    return f"DivergedError: {diverged}" if diverged else None


def resumed_seed(seed: int | None, study) -> int | None:
    """The sampler's seed for a study that already holds trials.

    A seeded sampler replays the same sequence of random start-up
    candidates in every run: a resumed study would propose its first
    candidates again. The seed is therefore mixed with the number of trials
    already there; a new study keeps ``seed`` itself (reproducible results).
    """
    n_existing = len(study.get_trials(deepcopy=False))
    if seed is None or n_existing == 0:
        return seed
    return zlib.crc32(f"{seed}:{n_existing}".encode())


def run_worker(search: OptunaSearchCV, objective, worker: int) -> int:
    """One worker process: load the shared study and optimize until it holds ``n_trials``.

    Returns the number of trials this worker ran.
    """
    seed = None if search.random_state is None else search.random_state + worker
    pruner = search.pruner or optuna.pruners.MedianPruner(n_startup_trials=5)
    study = optuna.load_study(
        study_name=search.study_.study_name,
        storage=make_storage(search.storage),
        sampler=search.sampler,
        pruner=pruner,
    )
    claim_queued_trials(study)
    stamp_layout(study)
    if search.sampler is None:
        study.sampler = optuna.samplers.TPESampler(seed=resumed_seed(seed, study))
    before = len(study.get_trials(deepcopy=False))
    # at most the missing trials each (as with n_jobs=1): failing candidates never count as
    # finished, so without the cap a study whose candidates all fail would never end
    optimize(
        study,
        objective,
        n_trials=max(0, search.n_trials - OptunaSearchCV.n_finished(study)),
        timeout=search.timeout,
        callbacks=[optuna.study.MaxTrialsCallback(search.n_trials, states=FINISHED)],
    )
    return len(study.get_trials(deepcopy=False)) - before


class OptunaSearchCV:
    """Cross-validated Optuna search over a :class:`~tunekit.space.Space`.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn estimator or pipeline; per-epoch pruning needs a
        tunekit Keras estimator as the final step.
    space : Space
        The search space.
    scoring : str, callable or None, default=None
        The score to maximize (scikit-learn convention: higher is better).
    cv : int, cross-validation generator or iterable, default=5
        As in scikit-learn (stratified for classifiers when an int).
    n_trials : int, default=20
        Total number of finished (complete or pruned) trials the study should
        hold. A resumed study only runs what is missing.
    timeout : float or None, default=None
        Stop starting new trials after this many seconds.
    storage : str, optuna storage or None, default=None
        Where trials are kept (see :mod:`tunekit.storage`).
    study_name : str or None, default=None
        Name of the study in the storage; an existing study is continued.
    sampler : optuna.samplers.BaseSampler or None, default=None
        ``None`` gives a TPE sampler seeded with ``random_state``.
    pruner : optuna.pruners.BasePruner or None, default=None
        ``None`` gives ``MedianPruner(n_startup_trials=5)``; pass
        ``optuna.pruners.NopPruner()`` to disable pruning.
    reports_per_fold : int, default=5
        How many times per fold a Keras estimator reports its score while
        training; 0 reports only at the end of each fold.
    refit : bool, default=True
        Refit the best candidate on all of ``X`` as ``best_estimator_``.
    return_train_score : bool, default=True
        Also score each fold's training part (the overfitting signal).
    random_state : int or None, default=0
        Seeds the default sampler.
    verbose : int, default=1
        0 is silent; 1 shows a progress bar over trials.
    n_jobs : int, default=1
        Worker processes sharing the study (needs a storage that several
        processes can use: any database URL, or the default SQLite file).
    engine : {"auto", "sklearn", "stacked"}, default="auto"
        ``"auto"`` and ``"stacked"`` run the trials of a tunekit Keras
        estimator (or a pipeline ending in one) in batches on the stacked
        engine, all folds in lockstep, pruned per epoch on the mean over the
        folds (:mod:`tunekit.strategies.optuna_batch`); with ``n_jobs > 1``
        or ``fit_params``, and with ``"sklearn"``, one trial at a time.
    trial_batch : int or None, default=None
        Trials trained side by side; ``None`` starts with a batch of 4 (so the
        pruner soon has finished trials to compare with) and goes on with 8.
        A batch larger than ``memory_budget`` allows in one stack is reduced
        (logged), so that a batch's trials train, and are pruned, in lockstep.
    refill_slots : bool, default=True
        Where one stack holds a batch (on ``mlp()``'s trainer or any
        builder's): a pruned or finished trial is told at once and the study's next trial takes its
        members' slots at the next epoch boundary, so that the stack never
        idles while trials are left (:mod:`tunekit.evaluators.stacked.refill`).
        ``False`` trains whole batches (each batch's stack runs until its last
        trial ends), for comparison.
    memory_budget : float, int, str or None, default=None
        The stacked engine's memory per stack
        (:class:`~tunekit.evaluators.StackedEvaluator`).
    oof_predictions : bool, default=False
        Store every complete trial's out-of-fold predictions in the study
        (``oof_predictions``, see :mod:`tunekit.record`) and read them back
        as ``oof_predictions_``.

    Attributes
    ----------
    study_ : optuna.study.Study
    cv_results_ : dict
        scikit-learn's schema plus ``state``, ``failure_reason`` and epochs.
    best_index_, best_score_, best_params_, best_estimator_, n_splits_
        As in scikit-learn's searches.
    interrupted_ : bool
        True when the search was stopped by Ctrl-C; results hold every
        finished trial.
    oof_predictions_ : list of ndarray or None
        Per ``cv_results_`` row, the trial's stored out-of-fold predictions
        over the rows of ``X``; all NaN for a trial that did not complete or
        stored none. ``None`` with ``oof_predictions=False``.
    epoch_curves_ : pandas.DataFrame
        Per-epoch curves of every fold of every candidate (columns
        :data:`tunekit.record.CURVE_COLUMNS`), read from the trials' records;
        a pruned trial's end at the epoch it stopped after.
    """

    def __init__(
        self,
        estimator,
        space: Space,
        *,
        scoring=None,
        cv=5,
        n_trials: int = 20,
        timeout: float | None = None,
        storage=None,
        study_name: str | None = None,
        sampler=None,
        pruner=None,
        reports_per_fold: int = 5,
        refit: bool = True,
        return_train_score: bool = True,
        random_state: int | None = 0,
        verbose: int = 1,
        n_jobs: int = 1,
        engine: str = "auto",
        trial_batch: int | None = None,
        memory_budget: float | int | str | None = None,
        oof_predictions: bool = False,
        refill_slots: bool = True,
    ):
        self.estimator = estimator
        self.space = space
        self.scoring = scoring
        self.cv = cv
        self.n_trials = n_trials
        self.timeout = timeout
        self.storage = storage
        self.study_name = study_name
        self.sampler = sampler
        self.pruner = pruner
        self.reports_per_fold = reports_per_fold
        self.refit = refit
        self.return_train_score = return_train_score
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.engine = engine
        self.trial_batch = trial_batch
        self.memory_budget = memory_budget
        self.oof_predictions = oof_predictions
        self.refill_slots = refill_slots

    # ---------------------------------------------------------------- study
    def _create_study(self, scoring_name: str, n_splits: int, ratio: float):
        storage = make_storage(self.storage)
        label = redact_url(self.storage) if isinstance(self.storage, str) else "memory"
        pruner = self.pruner or optuna.pruners.MedianPruner(n_startup_trials=5)
        study = optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            sampler=self.sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )
        claim_queued_trials(study)
        if self.sampler is None:
            seed = resumed_seed(worker_seed(self.random_state), study)
            study.sampler = optuna.samplers.TPESampler(seed=seed)
        check_resumable(study)  # before anything stored is read as this layout
        check_study_compatible(study, self.space, scoring_name, label)
        stamp_layout(study)
        if SPACE_ATTR not in study.user_attrs:
            _name_objective(study, scoring_name)
            study.set_user_attr(SPACE_ATTR, space_signature(self.space))
            study.set_user_attr(SCORING_ATTR, scoring_name)
            study.set_user_attr(N_SPLITS_ATTR, n_splits)
            study.set_user_attr(TEST_TRAIN_RATIO_ATTR, ratio)
        return study

    @staticmethod
    def n_finished(study) -> int:
        return len(study.get_trials(deepcopy=False, states=FINISHED))

    def fit(self, X, y=None, **fit_params):
        """Run (or continue) the study, then build ``cv_results_`` from it.

        Returns
        -------
        self : OptunaSearchCV
        """
        check_trial_batch(self.trial_batch)
        X, y = indexable(X, y)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y))
        self.n_splits_ = len(splits)
        sizes = [(len(tr), len(te)) for tr, te in splits]
        ratio = float(np.mean([te / tr for tr, te in sizes]))
        scoring_name = scorer_name(self.estimator, self.scoring)
        verbosity = optuna.logging.get_verbosity()
        if self.verbose < 2:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self.study_ = self._create_study(scoring_name, self.n_splits_, ratio)
        finally:
            optuna.logging.set_verbosity(verbosity)
        if self.oof_predictions and y is not None:  # what tunekit report's diagnostics read
            target = oof_target_attr(y, is_classifier(self.estimator))
            self.study_.set_user_attr(OOF_TARGET_ATTR, target)
        objective = _Objective(
            self, X, y, splits, fit_params, _max_epochs(self.estimator, self.space)
        )
        self.interrupted_ = False
        start = time.perf_counter()
        verbosity = optuna.logging.get_verbosity()
        if self.verbose < 2:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self._optimize(objective)
        except KeyboardInterrupt:
            self.interrupted_ = True
            if self.n_finished(self.study_) == 0:
                raise  # nothing to return: the caller reports the interruption
            logger.warning(
                "interrupted: %d finished trials are kept in the study %r",
                self.n_finished(self.study_),
                self.study_.study_name,
            )
        finally:
            optuna.logging.set_verbosity(verbosity)
        # a signal that came after the last trial: return what finished, refit nothing
        self.interrupted_ = self.interrupted_ or stop_requested() is not None
        self.search_time_ = time.perf_counter() - start
        self._collect(X, y, fit_params)
        return self

    def _optimize(self, objective) -> None:
        remaining = self.n_trials - self.n_finished(self.study_)
        if remaining <= 0:
            logger.info(
                "study %r already holds %d finished trials (n_trials=%d): nothing to run",
                self.study_.study_name,
                self.n_finished(self.study_),
                self.n_trials,
            )
            if self.n_jobs == 1:  # still fail dead workers' trials and run queued retries
                optimize(self.study_, objective, n_trials=0)
            return
        callbacks = [optuna.study.MaxTrialsCallback(self.n_trials, states=FINISHED)]
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(total=remaining, desc="trials", unit="trial", leave=False)
            callbacks.append(lambda study, trial: progress.update(1))
        batches = wants_batches(
            self.estimator, engine=self.engine, n_jobs=self.n_jobs, fit_params=objective.fit_params
        )
        try:
            if batches:
                self._run_batches(objective, remaining, progress)
            elif self.n_jobs == 1:
                optimize(
                    self.study_,
                    objective,
                    n_trials=remaining,
                    timeout=self.timeout,
                    callbacks=callbacks,
                )
            else:
                self._optimize_in_processes(objective)
        finally:
            if progress is not None:
                progress.close()

    def _run_batches(self, objective, remaining: int, progress) -> None:
        """The batched path, with the stop rules of the one-at-a-time path.

        A signal stops the running stack at its next epoch boundary (its
        trials FAIL, to run again on resume): Ctrl-C returns what finished,
        SIGTERM ends the process with status 143, as
        :func:`~tunekit.strategies.shared_study.optimize` does.
        """
        with _signals.handling():
            try:
                run_batches(
                    self, objective, remaining=remaining, timeout=self.timeout, progress=progress
                )
            except WorkerTerminated as stop:
                raise SystemExit(128 + stop.signum) from stop

    def _optimize_in_processes(self, objective) -> None:
        if not isinstance(self.storage, str):
            raise ValueError(
                f"n_jobs={self.n_jobs} with the Optuna strategy runs worker processes that "
                "share the study through its storage, so storage must be a URL (e.g. "
                "'sqlite:///study.db' or 'postgresql://...') or None with a study_name; "
                "an in-memory study cannot be shared."
            )
        from joblib import Parallel, delayed

        Parallel(n_jobs=self.n_jobs, backend="loky")(
            delayed(run_worker)(self, objective, worker) for worker in range(self.n_jobs)
        )

    def _collect(self, X, y, fit_params) -> None:
        results = cv_results_from_study(self.study_)
        self.cv_results_ = results
        self.epoch_curves_ = curves_from_study(self.study_)
        trials = {t.number: t for t in self.study_.get_trials(deepcopy=False)}
        self.oof_predictions_ = None
        if self.oof_predictions:
            rows = [trials[n] for n in results.get("trial_number", [])]
            self.oof_predictions_ = oof_predictions_of(rows, _num_samples(X))
        self._candidate_params = [
            self.space.decode(trials[n].params) for n in results.get("trial_number", [])
        ]
        means = np.asarray(results["mean_test_score"], dtype=float) if results["params"] else []
        if len(means) == 0 or np.all(np.isnan(means)):
            failures = [t for t in trials.values() if FAILURE_TRACEBACK in t.user_attrs]
            first = failures[0].user_attrs[FAILURE_TRACEBACK] if failures else "no trial ran"
            raise SearchFailedError(
                f"every one of the {len(means)} trials of study {self.study_.study_name!r} "
                f"failed or was pruned; the first failure was:\n{first}"
            )
        self.engine_ = engine_of(
            trials[n].user_attrs.get(ENGINE, "sklearn")
            for n in results.get("trial_number", [])
            if CV_TEST_SCORES in trials[n].user_attrs  # a dead worker's trial recorded nothing
        )
        self.best_index_ = int(np.nanargmax(means))
        self.best_score_ = float(means[self.best_index_])
        self.best_params_ = self._candidate_params[self.best_index_]
        self.scorer_ = EpochAwareScorer(self.estimator, self.scoring).scorer
        # in nested CV's lockstep studies, the nested search trains every fold's choice
        if self.refit and not self.interrupted_ and not refit_elsewhere():
            refit = refit_best(
                self.estimator, self._candidate_params, means, self.best_index_, X, y, fit_params
            )
            self.best_estimator_, self.refit_time_ = refit.estimator, refit.seconds
            self.best_index_ = refit.index
            self.best_score_ = float(means[refit.index])
            self.best_params_ = self._candidate_params[refit.index]
            record_refit(results, refit)

    def candidate_params(self) -> Sequence[dict]:
        """The estimator parameters of each row of ``cv_results_`` (decoded from Optuna)."""
        return list(self._candidate_params)
