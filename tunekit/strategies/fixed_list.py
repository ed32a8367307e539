"""Cross-validated search on the stacked engine, in scikit-learn's schema.

:class:`StackedSearchCV` evaluates a fixed list of candidates over CV folds like
:class:`sklearn.model_selection.GridSearchCV` does, with the stacked evaluator
(:class:`tunekit.evaluators.StackedEvaluator`): every (candidate, fold) pair
that can be stacked is one *member* of a stacked model, and the rest go
through the ordinary path; both land in the same ``cv_results_``.

:func:`can_stack` and :func:`stack_plan` tell beforehand whether, and how, a
search would stack.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection._search import BaseSearchCV

from tunekit.evaluators import StackedEvaluator, candidate_list
from tunekit.evaluators.stacked import (
    MAX_STACK_MEMBERS,
    CandidateGroup,
    StackedMemberClassifier,
    StackedMemberRegressor,
    can_stack,
    stack_plan,
)
from tunekit.exceptions import SearchFailedError
from tunekit.strategies._search import EvaluatorSearchCV

__all__ = [
    "MAX_STACK_MEMBERS",
    "CandidateGroup",
    "StackedMemberClassifier",
    "StackedMemberRegressor",
    "StackedSearchCV",
    "can_stack",
    "stack_plan",
]


class StackedSearchCV(EvaluatorSearchCV):
    """Cross-validated search over candidates, trained on the stacked engine.

    Every (candidate, fold) pair becomes a member; members whose candidates
    share an architecture, optimizer and batch size train side by side as one
    Keras model with a member axis on every weight (see
    ``docs/performance.md``). Candidates the engine cannot reproduce are fit
    the ordinary way. ``cv_results_`` has exactly the keys of
    :class:`~sklearn.model_selection.GridSearchCV`'s, plus
    ``split{i}_best_epoch`` and ``split{i}_n_epochs``.

    Parameters
    ----------
    estimator : estimator object
        A :class:`tunekit.KerasClassifier` or :class:`tunekit.KerasRegressor`
        built on :func:`tunekit.builders.mlp`; it is also what ``refit``
        fits, the ordinary way.
    candidates : dict of lists, or iterable of dicts
        A parameter grid (expanded with
        :class:`~sklearn.model_selection.ParameterGrid`), or the candidates
        themselves: one dict of parameter values each (e.g. a
        ``ParameterSampler``).
    scoring : str, callable, list, tuple, dict or None, default=None
        As for ``GridSearchCV``; ``None`` uses the estimator's ``score``
        (accuracy or R^2).
    cv : int, cross-validation generator or iterable, default=5
        As for ``GridSearchCV`` (stratified for classifiers).
    refit : bool, str or callable, default=True
        Refit ``clone(estimator).set_params(**best_params_)`` on the whole
        data, as ``GridSearchCV`` does.
    return_train_score : bool, default=True
        Score every member on its training fold too.
    error_score : "raise" or float, default=np.nan
        Score of a failed fit (a member whose weights became non-finite, or a
        standard fit that raised).
    verbose : int, default=0
        Print the plan and one line per stack (and per epoch when > 1).
    random_state : int, RandomState or None, default=None
        Seeds the members when the estimator has no integer
        ``random_state``. An estimator's own integer seed always wins: every
        member then starts from it, as every standard fit would.
    memory_budget : None, float, int or str, default=None
        The most memory one stack may take; bigger groups train as several
        stacks, with the same scores (see ``docs/performance.md``, "Memory
        budget"). ``None`` is half of the available memory.
    oof_predictions : bool, default=True
        Keep every (candidate, fold)'s predictions on the fold's test rows as
        ``oof_predictions_`` (one float32 array per candidate over the rows of
        ``X``, NaN where a fold failed).

    Attributes
    ----------
    cv_results_ : dict of ndarray
        GridSearchCV's keys, plus ``split{i}_best_epoch`` (1-based epoch
        whose weights a member kept) and ``split{i}_n_epochs`` (epochs it
        trained). Fit time of a stacked member is its stack's wall time
        divided by the stack's members (compilation included); score time
        is measured per member.
    best_estimator_ : estimator
        Refit on the whole data (when ``refit``).
    best_score_ : float
    best_params_ : dict
    best_index_ : int
    scorer_ : callable or dict
    n_splits_ : int
    refit_time_ : float
    multimetric_ : bool
    groups_ : list of CandidateGroup
        The stacks and standard-path candidates of the last ``fit``, with
        their wall times.
    engines_, epoch_curves_, n_trained_, n_epochs_trained_
        As for every tunekit search (:class:`~tunekit.strategies._search.EvaluatorSearchCV`).

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The same search, one fit at a time.

    Examples
    --------
    >>> import numpy as np, tunekit as tk
    >>> from tunekit.strategies.fixed_list import StackedSearchCV
    >>> X = np.random.RandomState(0).normal(size=(80, 4)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(8,), epochs=2)
    >>> search = StackedSearchCV(clf, {"model__l2": [0.0, 0.01]}, cv=3,
    ...                          refit=False, random_state=0).fit(X, y)
    >>> search.cv_results_["mean_test_score"].shape
    (2,)
    """

    _parameter_constraints: dict = {
        **{
            k: v
            for k, v in BaseSearchCV._parameter_constraints.items()
            if k not in ("n_jobs", "pre_dispatch")
        },
        "candidates": [dict, list, tuple, Iterable],
        "random_state": ["random_state"],
        "memory_budget": [None, numbers.Real, str],
        "oof_predictions": ["boolean"],
    }

    def __init__(
        self,
        estimator: BaseEstimator,
        candidates: Mapping[str, Sequence] | Iterable[Mapping[str, Any]],
        *,
        scoring: Any = None,
        cv: Any = 5,
        refit: bool | str | Any = True,
        return_train_score: bool = True,
        error_score: float | str = np.nan,
        verbose: int = 0,
        random_state: int | np.random.RandomState | None = None,
        memory_budget: float | int | str | None = None,
        oof_predictions: bool = True,
    ):
        self.estimator = estimator
        self.candidates = candidates
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.return_train_score = return_train_score
        self.error_score = error_score
        self.verbose = verbose
        self.random_state = random_state
        self.memory_budget = memory_budget
        self.oof_predictions = oof_predictions

    n_jobs = 1

    def _evaluator(self):
        self._stacked = StackedEvaluator(
            random_state=self.random_state,
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            verbose=self.verbose,
            memory_budget=self.memory_budget,
            oof_predictions=self.oof_predictions,
        )
        return self._stacked

    def fit(self, X, y, *, groups=None):
        """Run the search: every candidate on every split, stacked where possible.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target.
        groups : array-like of shape (n_samples,), default=None
            Group labels for group-aware splitters.

        Returns
        -------
        self : object
            The fitted search.
        """
        self._validate_params()
        try:
            super().fit(X, y, groups=groups)
        except ValueError as err:
            if "fits failed" not in str(err):
                raise
            raise SearchFailedError(
                f"{err}\nCheck the candidates' parameters, or set error_score='raise' to see "
                "the traceback."
            ) from err
        self.groups_ = getattr(self._stacked, "groups_", [])
        return self

    def _run_search(self, evaluate_candidates):
        evaluate_candidates(candidate_list(self.candidates))
