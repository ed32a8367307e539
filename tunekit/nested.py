"""Nested cross-validation: the honest estimate of "tune, then fit".

Each outer fold runs an inner search on its training part; the candidate it
chooses is trained on that whole part and scored on the outer test part. The
outer scores estimate the whole procedure; the gap between a fold's inner
best CV score and its outer score is the optimism of the selection.

Grid search, and random search and halving with an integer ``random_state``,
propose the same candidates in every outer fold, so every outer fold's inner
folds train as one evaluation and the chosen candidates as one more
(:mod:`tunekit.evaluators.outer_folds`): on the stacked engine, two stacks
instead of one search per outer fold. Optuna studies adapt to each fold's own
scores: on the engine they run side by side, one thread each, and every round
of their batches trains as one evaluation
(:mod:`tunekit.evaluators.outer_studies`); elsewhere each outer fold's study
runs after the other.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing

from tunekit.evaluators import main_score
from tunekit.evaluators.outer_folds import OuterFolds, lockstep
from tunekit.evaluators.outer_studies import OuterStudies
from tunekit.exceptions import SearchFailedError
from tunekit.record import last_line
from tunekit.strategies.optuna_batch import wants_batches
from tunekit.strategies.scoring import EpochAwareScorer

__all__ = ["nested_search", "shared_outer_folds"]

logger = logging.getLogger("tunekit")


def shared_outer_folds(estimator, X, y, splits, options: dict) -> OuterFolds | None:
    """The outer folds whose inner searches train together, or ``None``.

    Grid search, and random search and halving with an integer ``random_state``,
    propose the same candidates in every outer fold; Optuna studies that run
    their trials in batches on the engine share each round of batches
    (``studies``). A parallel backend trains fits one by one, and per-sample
    fit parameters follow the rows: each outer fold then runs alone, as
    Optuna studies off the engine and unseeded random searches do.
    """
    strategy = options["strategy"]
    seeded = isinstance(options.get("random_state"), numbers.Integral)
    if options["backend"] is not None or options["fit_params"]:
        return None
    trains = [np.asarray(train) for train, _ in splits]
    folds = OuterFolds(X, y, trains, options["cv"], is_classifier(estimator))
    if strategy == "optuna":  # one study per outer fold, their batches in shared stacks
        batches = wants_batches(estimator, engine=options.get("engine", "auto"),
                                n_jobs=options.get("n_jobs", 1), fit_params=None)  # fmt: skip
        folds.studies = OuterStudies(folds) if batches else None
        return folds if batches else None
    return folds if strategy == "grid" or seeded else None


def nested_search(search: Callable, estimator, X, y, options: dict, start: float) -> Any:
    """Run ``search`` once per outer fold and score each choice on its outer test part.

    Returns the last outer fold's search result, with ``outer_scores_`` and
    ``nested_`` (one row per outer fold) covering them all.
    """
    kwargs = dict(options)
    outer_cv, random_state = kwargs.pop("outer_cv"), kwargs.pop("random_state")
    verbose, study_name = kwargs.pop("verbose"), kwargs.pop("study_name")
    outer = check_cv(outer_cv, y, classifier=is_classifier(estimator))
    if outer.get_n_splits(X, y) < 2:
        raise ValueError(f"outer_cv needs at least 2 folds, got {outer_cv!r}")
    splits = list(outer.split(X, y))
    shared = shared_outer_folds(estimator, X, y, splits, options)
    scorer = EpochAwareScorer(estimator, kwargs["scoring"])

    def inner_search(k: int, row: dict, refit: bool = False):
        train, test = splits[k]
        try:
            with lockstep(shared, k, refit=refit):
                inner = search(
                    estimator, _take(X, train), _take(y, train), test_size=None,
                    random_state=random_state, verbose=max(0, verbose - 1),
                    study_name=None if study_name is None else f"{study_name}-outer{k}", **kwargs,
                )  # fmt: skip
        except SearchFailedError as err:  # this fold's search failed: the others stand
            reason = f"SearchFailedError: {_first_and_last_line(err)}"
            row.update(params=None, failure_reason=reason)
            logger.warning("outer fold %d failed: %s", k, row["failure_reason"])
            return None
        row.update(params=dict(inner.best_params_), inner_best_score=float(inner.best_score_),
                   failure_reason="")  # fmt: skip
        if getattr(inner, "best_estimator_", None) is not None:
            score = scorer(inner.best_estimator_, _take(X, test), _take(y, test))["score"]
            _outer_score(row, float(score), verbose)
        return inner

    rows, results = [_row(k, *split) for k, split in enumerate(splits)], {}
    if shared is not None and shared.studies is not None:
        results = shared.studies.run(lambda k: inner_search(k, rows[k]), len(splits))
    for k in range(len(splits)):
        if k not in results:
            results[k] = inner_search(k, rows[k])
    if shared is not None and shared.shared:
        pending = [k for k in results if results[k] is not None and rows[k]["params"] is not None
                   and not np.isfinite(rows[k]["outer_score"])]  # fmt: skip
        for k in _score_together(shared, rows, results, splits, pending, verbose):
            results[k] = inner_search(k, rows[k], refit=True)  # its refit says why, as alone
    results = {k: r for k, r in results.items() if r is not None}
    if not results:
        reasons = "; ".join(f"fold {r['outer_fold']}: {r['failure_reason']}" for r in rows)
        raise SearchFailedError(f"every outer fold of nested cross-validation failed: {reasons}")
    return _summary(rows, results, start, verbose)


def _row(k: int, train, test) -> dict:
    return {"outer_fold": k, "n_train": len(train), "n_test": len(test), "params": None,
            "inner_best_score": np.nan, "outer_score": np.nan, "optimism": np.nan,
            "failure_reason": ""}  # fmt: skip


def _outer_score(row: dict, score: float, verbose: int) -> None:
    row.update(outer_score=score, optimism=row["inner_best_score"] - score)
    if verbose:
        logger.info("outer fold %d: held-out score %.4f with %s", row["outer_fold"], score,
                    row["params"])  # fmt: skip


def _score_together(shared: OuterFolds, rows: list, results: dict, splits, pending: list,
                    verbose: int) -> list[int]:  # fmt: skip
    """The ``pending`` outer folds' choices trained on their training parts, as one evaluation.

    Returns the folds whose training failed: their inner search runs again with
    its refit, which moves to the next best candidate or says why none fits.
    """
    chosen = {k: dict(results[k].best_params_) for k in pending}
    if not chosen:
        return []
    entries = shared.outer_entries(chosen, {k: splits[k][1] for k in chosen})
    failed = []
    for k, entry in entries.items():
        if entry.get("fit_error"):
            logger.info("outer fold %d: the chosen candidate failed to train: %s", k,
                        last_line(entry["fit_error"]))  # fmt: skip
            failed.append(k)
            continue
        _outer_score(rows[k], float(main_score(entry["test_scores"])), verbose)
    return failed


def _summary(rows: list, results: dict, start: float, verbose: int):
    last = results[max(results)]
    last.nested_ = pd.DataFrame(rows).set_index("outer_fold")
    last.outer_scores_ = [float(r["outer_score"]) for r in rows]
    last.wall_time_ = time.perf_counter() - start
    last.n_fits_ = sum(r.n_fits_ for r in results.values()) + len(results)
    if verbose:
        scores = last.nested_["outer_score"].dropna()
        logger.info("nested CV: %.4f +/- %.4f over %d outer folds", scores.mean(), scores.std(),
                    len(scores))  # fmt: skip
    return last


def _first_and_last_line(err: Exception) -> str:
    """What a multi-line error says first and last: what failed, and why."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
    return " ... ".join(dict.fromkeys([lines[0], lines[-1]]))


def _take(data, idx):
    return None if data is None else _safe_indexing(data, idx)
