"""The learning curve as a study: one trial per training-set size, scored on the same folds."""

from __future__ import annotations

import time
import traceback

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, train_test_split
from sklearn.utils import indexable

from tunekit._signals import check_stop
from tunekit.record import (
    CV_TEST_SCORES,
    CV_TRAIN_SCORES,
    FIT_TIMES,
    N_EPOCHS,
    PARAMS,
    SCORE_TIMES,
    TrialRecord,
)
from tunekit.storage import set_user_attrs
from tunekit.strategies.scoring import final_estimator, scorer_name
from tunekit.workflow.overfit import take
from tunekit.workflow.plans import Config

__all__ = ["curve_objective", "curve_plan", "prepare_curve_study"]

# what a learning curve's trial records per fold (no best epochs: it trains to the end)
_CURVE_KEYS = (CV_TEST_SCORES, CV_TRAIN_SCORES, FIT_TIMES, SCORE_TIMES, N_EPOCHS)


def curve_plan(estimator, X, y, train_sizes, cv):

    X, y = indexable(X, y)
    splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
    smallest = min(len(train) for train, _ in splits)
    sizes = []
    for fraction in train_sizes:
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(
                f"train_sizes must be fractions of the training fold in (0, 1], got {fraction!r}"
            )
        size = max(2, round(float(fraction) * smallest))
        if size not in sizes:
            sizes.append(size)
    return [Config(f"n_train={n}", {"n_train": n}) for n in sizes], splits


def prepare_curve_study(study, estimator, scoring, splits) -> None:

    if "scoring" not in study.user_attrs:
        study.set_user_attr("scoring", scorer_name(estimator, scoring))
        study.set_user_attr("n_splits", len(splits))
        ratio = float(np.mean([len(te) / len(tr) for tr, te in splits]))
        study.set_user_attr("test_train_ratio", ratio)


def curve_objective(estimator, X, y, splits, sizes, scoring, random_state):
    """The learning curve's objective: a trial trains every fold on ``n_train`` of its rows.

    The training score is measured on the rows trained on, the validation score on
    the fold's test part; the trial's record is one storage write.
    """
    scorer = check_scoring(estimator, scoring=scoring)
    classifier = is_classifier(estimator)

    def rows(train, size):
        """``size`` rows of a training fold (stratified where the classes allow)."""
        if size >= len(train):  # folds differ by a row or so: the smallest sets the size
            return train
        n_classes = len(np.unique(take(y, train))) if classifier else 0
        stratified = n_classes and min(size, len(train) - size) >= n_classes
        train, _ = train_test_split(
            train,
            train_size=size,
            stratify=take(y, train) if stratified else None,
            random_state=random_state,
        )
        return train

    def fold(record: TrialRecord, train, test, size) -> None:
        model = clone(estimator)
        train = rows(train, size)
        start = time.perf_counter()
        model.fit(take(X, train), take(y, train))
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        val = float(scorer(model, take(X, test), take(y, test)))
        score_time = time.perf_counter() - start
        record.add_fold(
            test_score=val,
            train_score=float(scorer(model, take(X, train), take(y, train))),
            fit_time=fit_time,
            score_time=score_time,
            n_epochs=getattr(final_estimator(model), "n_epochs_", None),
        )

    def objective(trial) -> float:
        size = int(trial.suggest_categorical("n_train", list(sizes)))
        trial.set_user_attr(PARAMS, {"n_train": size})
        record = TrialRecord(keys=_CURVE_KEYS)
        for train, test in splits:
            check_stop()  # a safe point: between folds, outside any storage transaction
            try:
                fold(record, train, test, size)
            except Exception as err:
                reason = f"{type(err).__name__}: {err}"[:300]
                set_user_attrs(trial, record.attrs(traceback_text=traceback.format_exc(),
                                                   reason=reason))  # fmt: skip
                return float("nan")
        set_user_attrs(trial, record.attrs())  # one storage write
        scores = [s for s in record.test_scores if s is not None]
        return float(np.mean(scores)) if len(scores) == len(splits) else float("nan")

    return objective
