"""The seam: scikit-learn's searches, with an evaluator in place of their fold loop.

A strategy only proposes candidates: scikit-learn's ``_run_search`` hands
batches to ``evaluate_candidates`` (all at once for a grid or random search,
one rung at a time for successive halving). :class:`EvaluatorSearchCV`
implements ``fit`` so that ``evaluate_candidates`` calls an evaluator
(:mod:`tunekit.evaluators`) instead of scikit-learn's ``_fit_and_score``
loop, then formats the entries with scikit-learn's own ``_format_results``.
Whatever trained the candidates, ``cv_results_`` has the same keys:
scikit-learn's, plus ``split{i}_best_epoch``, ``split{i}_n_epochs``,
``state`` and ``failure_reason``.
"""

from __future__ import annotations

import copy
import inspect
from collections import defaultdict

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import indexable
from sklearn.utils.validation import _check_method_params, _num_samples

from tunekit.evaluators import (
    CURVE_COLUMNS,
    StandardEvaluator,
    assemble,
    common_shape,
    pop_predictions,
)
from tunekit.record import COMPLETE, FAIL, fold_columns, last_line
from tunekit.strategies.refit import record_refit, refit_best

__all__ = ["EvaluatorSearchCV", "engine_of"]


def engine_of(engines) -> str:
    """``"stacked"``, ``"sklearn"`` or ``"mixed"``: what trained a search's candidates."""
    kinds = set(engines)
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed" if kinds else "sklearn"


def _oof(per_candidate: list, n_rows: int, kept: bool = True) -> list | None:
    """Every candidate's out-of-fold predictions over the ``n_rows`` searched rows."""
    shape = common_shape(per_candidate) if kept else None
    if shape is None:
        return None
    return [assemble(folds, n_rows, shape) for folds in per_candidate]


class _Collected:
    """What the batches of one ``fit`` add up to."""

    def __init__(self):
        self.params: list = []
        self.out: list = []
        self.more = defaultdict(list)
        self.engines: list = []
        self.curves: list = []
        self.n_trained = 0
        self.n_epochs = 0
        self.oof: list = []  # per candidate: [(test rows, predictions)] of its folds

    def add(self, candidate_params: list, out: list, done) -> None:
        """Add a batch: its candidates, their entries and the evaluation's extras."""
        offset = len(self.params)
        self.params.extend(candidate_params)
        self.out.extend(out)
        self.engines.extend(done.engines)
        self.curves.extend({**r, "candidate": r["candidate"] + offset} for r in done.curves)
        self.n_trained += done.n_trained
        self.n_epochs += done.n_epochs


class EvaluatorSearchCV(BaseSearchCV):
    """A ``BaseSearchCV`` whose (candidate, fold) pairs are trained by an evaluator.

    Subclasses combine it with a scikit-learn search that supplies
    ``_run_search`` (grid, random, successive halving) and add an
    ``evaluator`` parameter: ``None`` is the standard evaluator built from the
    search's own ``n_jobs``, ``error_score`` and ``return_train_score``.

    Attributes (besides scikit-learn's)
    -----------------------------------
    engines_ : list of str
        Per ``cv_results_`` row, ``"stacked"`` or ``"sklearn"``.
    epoch_curves_ : pandas.DataFrame
        One row per (candidate, fold, epoch): ``train_loss``, ``test_score``
        (the search's score on the fold's test part) and ``val_loss`` (the
        early-stopping split's loss, NaN without early stopping).
    n_trained_, n_epochs_trained_ : int
        Models (or engine members) and epochs actually trained.
    oof_predictions_ : list of ndarray or None
        Per ``cv_results_`` row, its folds' predictions on their test rows laid
        over the rows of ``X`` (float32, NaN where a fold failed or did not
        predict), when the evaluator keeps them (``oof_predictions=True``).
    """

    def _evaluator(self):
        settings = {
            "error_score": self.error_score,
            "return_train_score": self.return_train_score,
        }
        evaluator = getattr(self, "evaluator", None)
        if evaluator is None:
            return StandardEvaluator(
                n_jobs=self.n_jobs,
                pre_dispatch=getattr(self, "pre_dispatch", "2*n_jobs"),
                verbose=self.verbose,
                **settings,
            )
        evaluator = copy.copy(evaluator)
        for key, value in settings.items():
            setattr(evaluator, key, value)
        return evaluator

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        results = super()._format_results(candidate_params, n_splits, out, more_results)
        n = len(candidate_params)
        for key in ("best_epoch", "n_epochs"):
            values = np.array([o.get(key, np.nan) for o in out], dtype=float).reshape(n, n_splits)
            results.update(fold_columns(key, values))
        reasons = []
        for i in range(n):
            errors = [o.get("fit_error") for o in out[i * n_splits : (i + 1) * n_splits]]
            errors = [e for e in errors if e]
            reasons.append(last_line(errors[0]) if errors else "")
        results["failure_reason"] = np.array(reasons, dtype=object)
        means = np.asarray(results.get("mean_test_score", np.zeros(n)), dtype=float)
        results["state"] = np.where(np.isnan(means), FAIL, COMPLETE).astype(object)
        return results

    def fit(self, X, y=None, **params):
        """Run the search: the strategy proposes batches, the evaluator trains them.

        Parameters
        ----------
        X, y : array-like
            The data.
        **params : dict
            ``groups`` for group-aware splitters; the rest goes to the
            estimator's ``fit`` (per-sample values indexed per fold).

        Returns
        -------
        self : object
        """
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        groups = params.pop("groups", None)
        fit_params = _check_method_params(X, params=params)
        self._checked_cv_orig = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        split_params = {} if groups is None else {"groups": groups}
        self._check_input_parameters(X=X, y=y, split_params=split_params)
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **split_params)
        base = clone(self.estimator)
        evaluator = self._evaluator()
        seen = _Collected()
        results = {}

        def evaluate_candidates(candidate_params, cv=None, more_results=None, callback_ctx=None):
            nonlocal results
            cv = cv or self._checked_cv_orig
            candidate_params = list(candidate_params)
            splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(X, y, **split_params)]
            if len(splits) != self.n_splits_:
                raise ValueError(
                    "cv.split and cv.get_n_splits return inconsistent results. "
                    f"Expected {self.n_splits_} splits, got {len(splits)}"
                )
            if not candidate_params:
                raise ValueError("No fits were performed: there were no candidates.")
            if self.verbose > 0:
                print(
                    f"Fitting {len(splits)} folds for each of {len(candidate_params)} "
                    f"candidates, totalling {len(splits) * len(candidate_params)} fits"
                )
            progress = getattr(evaluator, "progress", None)
            if progress is not None and hasattr(progress, "total"):
                progress.total = (progress.total or 0) + len(candidate_params) * len(splits)
                progress.refresh()
            done = evaluator.evaluate(
                base, candidate_params, splits, X, y, scorers=scorers, fit_params=fit_params
            )
            seen.oof.extend(pop_predictions(row, [te for _, te in splits]) for row in done.entries)
            out = [entry for row in done.entries for entry in row]
            _warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                _insert_error_scores(out, self.error_score)
            seen.add(candidate_params, out, done)
            for key, value in (more_results or {}).items():
                seen.more[key].extend(value)
            results = self._format_results(seen.params, self.n_splits_, seen.out, seen.more)
            return results

        self._search(evaluate_candidates, X, y, evaluator)
        self.multimetric_ = isinstance(seen.out[0]["test_scores"], dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(seen.out[0]["test_scores"])
            refit_metric = self.refit
        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, results)
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
            self.best_params_ = results["params"][self.best_index_]
        if self.refit and not getattr(evaluator, "refit_elsewhere", False):
            self._refit(base, X, y, fit_params, results, refit_metric)
        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results
        self.engines_ = list(seen.engines)
        self.engine_ = engine_of(seen.engines)
        self.epoch_curves_ = pd.DataFrame(seen.curves, columns=list(CURVE_COLUMNS))
        self.n_trained_ = seen.n_trained
        self.n_epochs_trained_ = seen.n_epochs
        self.oof_predictions_ = _oof(seen.oof, _num_samples(X), evaluator.oof_predictions)
        return self

    def _search(self, evaluate_candidates, X, y, evaluator) -> None:
        """The strategy's batches; then the evaluator's ``close`` (a run across the batches)."""
        close = getattr(evaluator, "close", None)  # EpochRungs: the rungs of one run
        try:
            self._run_strategy(evaluate_candidates, X, y)
        except BaseException:
            if close is not None:
                close(stop=True)
            raise
        if close is not None:
            close()

    def _run_strategy(self, evaluate_candidates, X, y) -> None:
        """Call the strategy's ``_run_search`` (with scikit-learn's callback context if asked)."""
        wants_ctx = "callback_ctx" in inspect.signature(self._run_search).parameters
        if not wants_ctx or not hasattr(self, "_init_callback_context"):
            self._run_search(evaluate_candidates)
            return
        ctx = self._init_callback_context(max_subtasks=1).call_on_fit_task_begin(
            estimator=self, X=X, y=y
        )
        self._run_search(evaluate_candidates, callback_ctx=ctx)
        ctx.call_on_fit_task_end(estimator=self, X=X, y=y)

    def _refit(self, base, X, y, fit_params, results, metric) -> None:
        """The chosen candidate on all of ``X``, or the next best when its training fails."""
        means = results.get(f"mean_test_{metric}", np.full(len(results["params"]), np.nan))
        refit = refit_best(base, results["params"], means, self.best_index_, X, y, fit_params)
        self.best_estimator_, self.refit_time_ = refit.estimator, refit.seconds
        if refit.index != self.best_index_:
            self.best_index_ = refit.index
            self.best_params_ = results["params"][refit.index]
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{metric}"][refit.index]
        record_refit(results, refit)
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_
