"""The learning curve as a study: one trial per training-set size, scored on the same folds."""

from __future__ import annotations

import math
import time
import traceback

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, train_test_split
from sklearn.utils import indexable

from tunekit._signals import check_stop
from tunekit.storage import set_user_attrs
from tunekit.strategies.scoring import final_estimator, scorer_name
from tunekit.workflow.overfit import take
from tunekit.workflow.plans import Config

__all__ = ["curve_objective", "curve_plan", "prepare_curve_study"]


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


    scorer = check_scoring(estimator, scoring=scoring)
    classifier = is_classifier(estimator)

    def objective(trial) -> float:

        size = int(trial.suggest_categorical("n_train", list(sizes)))
        trial.set_user_attr("params", {"n_train": size})
        record = {k: [] for k in ("cv_test_scores", "cv_train_scores", "fit_times")}
        record |= {"score_times": [], "n_epochs": []}
        for train, test in splits:
            check_stop()  # a safe point: between folds, outside any storage transaction
            model = clone(estimator)
            try:
                if size < len(train):  # folds differ by a row or so: the smallest sets the size
                    n_classes = len(np.unique(take(y, train))) if classifier else 0
                    stratified = n_classes and min(size, len(train) - size) >= n_classes
                    train, _ = train_test_split(
                        train,
                        train_size=size,
                        stratify=take(y, train) if stratified else None,
                        random_state=random_state,
                    )
                start = time.perf_counter()
                model.fit(take(X, train), take(y, train))
                fit_time = time.perf_counter() - start
                start = time.perf_counter()
                val = float(scorer(model, take(X, test), take(y, test)))
                score_time = time.perf_counter() - start
                tr = float(scorer(model, take(X, train), take(y, train)))
            except Exception as err:
                set_user_attrs(
                    trial,
                    {
                        **record,
                        "failure_reason": f"{type(err).__name__}: {err}"[:300],
                        "failure_traceback": traceback.format_exc()[-4000:],
                    },
                )
                return float("nan")
            record["cv_test_scores"].append(val if math.isfinite(val) else None)
            record["cv_train_scores"].append(tr if math.isfinite(tr) else None)
            record["fit_times"].append(fit_time)
            record["score_times"].append(score_time)
            n_epochs = getattr(final_estimator(model), "n_epochs_", None)
            record["n_epochs"].append(None if n_epochs is None else float(n_epochs))
        set_user_attrs(trial, record)  # one storage write
        scores = [s for s in record["cv_test_scores"] if s is not None]
        return float(np.mean(scores)) if len(scores) == len(splits) else float("nan")

    return objective
