"""scikit-learn's searches, as strategies: grid, random and successive halving.

Each class is scikit-learn's own search for the choice of candidates (its
``_run_search``: the whole grid, a random sample, or halving's rungs) with
tunekit's seam for their evaluation (:class:`~tunekit.strategies._search.EvaluatorSearchCV`):
an ``evaluator`` trains every batch, on the stacked engine or the standard
path, and ``cv_results_`` keeps scikit-learn's schema plus ``failure_reason``,
``state`` and the per-fold epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)

from tunekit.evaluators import EpochRungs, StackedEvaluator
from tunekit.strategies._search import EvaluatorSearchCV

__all__ = [
    "TunekitGridSearchCV",
    "TunekitHalvingRandomSearchCV",
    "TunekitRandomizedSearchCV",
    "make_search",
]


def _forwarded(arguments: dict) -> dict:
    """An ``__init__``'s arguments for scikit-learn's own class: all but ``evaluator``.

    scikit-learn reads an estimator's parameters from its ``__init__`` signature,
    so each class spells its parameters out, and hands them on from ``locals()``.
    """
    own = ("self", "evaluator", "continue_rungs", "__class__")
    return {k: v for k, v in arguments.items() if k not in own}


class TunekitGridSearchCV(GridSearchCV, EvaluatorSearchCV):
    """:class:`~sklearn.model_selection.GridSearchCV` whose fits an ``evaluator`` runs.

    ``evaluator=None`` is the standard path (scikit-learn's semantics).
    """

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        evaluator=None,
    ):
        super().__init__(**_forwarded(locals()))
        self.evaluator = evaluator


class TunekitRandomizedSearchCV(RandomizedSearchCV, EvaluatorSearchCV):
    """:class:`~sklearn.model_selection.RandomizedSearchCV` whose fits an ``evaluator`` runs."""

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_iter=10,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        random_state=None,
        error_score=np.nan,
        return_train_score=False,
        evaluator=None,
    ):
        super().__init__(**_forwarded(locals()))
        self.evaluator = evaluator


class TunekitHalvingRandomSearchCV(HalvingRandomSearchCV, EvaluatorSearchCV):
    """:class:`~sklearn.model_selection.HalvingRandomSearchCV` whose rungs an ``evaluator`` runs.

    Each rung is one batch: with the stacked evaluator, one stack per rung;
    on epochs (``resource`` an ``epochs`` parameter) one stack for all the
    rungs, whose survivors train on from their weights
    (:class:`~tunekit.evaluators.EpochRungs`).

    Parameters (besides scikit-learn's)
    -----------------------------------
    evaluator : Evaluator or None, default=None
        What trains each rung (``None``: the standard evaluator).
    continue_rungs : bool, default=True
        On epochs with the stacked evaluator: run the rungs as one run where
        it is exact (see :class:`~tunekit.evaluators.EpochRungs`, which logs
        why where it is not). ``False`` trains every rung from scratch, one
        stack each, for comparison.
    """

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_candidates="exhaust",
        factor=3,
        resource="n_samples",
        max_resources="auto",
        min_resources="smallest",
        aggressive_elimination=False,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
        evaluator=None,
        continue_rungs=True,
    ):
        super().__init__(**_forwarded(locals()))
        self.evaluator = evaluator
        self.continue_rungs = continue_rungs

    def _evaluator(self):
        evaluator = super()._evaluator()
        on_epochs = self.resource == "epochs" or self.resource.endswith("__epochs")
        if self.continue_rungs and on_epochs and isinstance(evaluator, StackedEvaluator):
            return EpochRungs(evaluator, self.resource)
        return evaluator


@dataclass(frozen=True)
class SearchSettings:
    """What the grid, random and halving searches take from :func:`tunekit.search`."""

    scoring: Any = None
    cv: Any = 5
    n_points: int = 3
    n_trials: int | None = None
    n_jobs: int = 1
    random_state: Any = 0
    resource: str = "n_samples"
    factor: float = 3
    min_resources: Any = None
    verbose: int = 0
    error_score: Any = np.nan
    return_train_score: bool = True


def make_search(strategy: str, estimator, space, settings: SearchSettings, evaluator=None):
    """Build the search object for ``strategy`` over ``space``, trained by ``evaluator``."""
    common = dict(
        scoring=settings.scoring,
        cv=settings.cv,
        n_jobs=settings.n_jobs,
        verbose=max(0, settings.verbose - 1),
        error_score=settings.error_score,
        return_train_score=settings.return_train_score,
        evaluator=evaluator,
    )
    n_trials, random_state, resource = settings.n_trials, settings.random_state, settings.resource
    if strategy == "grid":
        return TunekitGridSearchCV(estimator, space.to_grid(n=settings.n_points), **common)
    if strategy == "random":
        return TunekitRandomizedSearchCV(
            estimator,
            space.to_distributions(),
            n_iter=n_trials or 10,
            random_state=random_state,
            **common,
        )
    if strategy == "halving":
        resource_name = resource
        max_resources = "auto"
        if resource == "epochs":
            resource_name = _epochs_parameter(estimator)
            if resource_name in space:
                raise ValueError(
                    "halving with resource='epochs' grows the epochs itself, so 'epochs' "
                    "cannot also be a searched parameter; remove it from the space or use "
                    "resource='n_samples'."
                )
            max_resources = int(estimator.get_params()[resource_name])
        return TunekitHalvingRandomSearchCV(
            estimator,
            space.to_distributions(),
            n_candidates=n_trials or "exhaust",
            factor=settings.factor,
            resource=resource_name,
            max_resources=max_resources,
            # "exhaust" on both sides is refused by scikit-learn: without n_trials, the
            # candidates fill the budget from the smallest resource up
            min_resources=settings.min_resources
            if settings.min_resources is not None
            else ("exhaust" if n_trials else "smallest"),
            random_state=random_state,
            **common,
        )
    raise ValueError(f"unknown scikit-learn strategy {strategy!r}")


def _epochs_parameter(estimator) -> str:
    for name in estimator.get_params():
        if name == "epochs" or (name.endswith("__epochs") and name.count("__") == 1):
            return name
    raise ValueError(
        "halving with resource='epochs' needs an estimator with an 'epochs' parameter "
        f"(a tunekit KerasClassifier/KerasRegressor), got {type(estimator).__name__}."
    )
