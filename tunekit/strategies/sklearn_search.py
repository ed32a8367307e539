"""scikit-learn's searches, as strategies: grid, random and successive halving.

The classes here are scikit-learn's own searches with one addition: each
candidate's ``failure_reason`` (the last line of its first fold's traceback)
is kept in ``cv_results_``, so a failed candidate is explained in reports
rather than only in a warning.
"""

from __future__ import annotations

import numpy as np
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)

from tunekit.strategies._common import last_line

__all__ = [
    "TunekitGridSearchCV",
    "TunekitHalvingRandomSearchCV",
    "TunekitRandomizedSearchCV",
    "make_search",
]


class _FailureReasons:
    """Adds ``failure_reason`` to ``cv_results_`` (a hook on BaseSearchCV's formatter)."""

    def _format_results(self, candidate_params, n_splits, out, more_results=None):
        results = super()._format_results(candidate_params, n_splits, out, more_results)
        reasons = []
        for i in range(len(candidate_params)):
            errors = [o.get("fit_error") for o in out[i * n_splits : (i + 1) * n_splits]]
            errors = [e for e in errors if e]
            reasons.append(last_line(errors[0]) if errors else "")
        results["failure_reason"] = np.array(reasons, dtype=object)
        return results


class TunekitGridSearchCV(_FailureReasons, GridSearchCV):
    """:class:`~sklearn.model_selection.GridSearchCV` that keeps failure reasons."""


class TunekitRandomizedSearchCV(_FailureReasons, RandomizedSearchCV):
    """:class:`~sklearn.model_selection.RandomizedSearchCV` that keeps failure reasons."""


class TunekitHalvingRandomSearchCV(_FailureReasons, HalvingRandomSearchCV):
    """:class:`~sklearn.model_selection.HalvingRandomSearchCV` that keeps failure reasons."""


def make_search(
    strategy: str,
    estimator,
    space,
    *,
    scoring,
    cv,
    n_points: int,
    n_trials: int | None,
    n_jobs: int,
    random_state,
    resource: str,
    factor: float,
    min_resources,
    verbose: int,
    error_score,
    return_train_score: bool,
):
    """Build the scikit-learn search object for ``strategy`` over ``space``."""
    if getattr(scoring, "progress", None) is not None:
        scoring._two_calls = return_train_score  # the scorer also runs on training folds
    common = dict(
        scoring=scoring,
        cv=cv,
        n_jobs=n_jobs,
        refit="score",
        verbose=max(0, verbose - 1),
        error_score=error_score,
        return_train_score=return_train_score,
    )
    if strategy == "grid":
        return TunekitGridSearchCV(estimator, space.to_grid(n=n_points), **common)
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
        common.pop("refit")
        return TunekitHalvingRandomSearchCV(
            estimator,
            space.to_distributions(),
            n_candidates=n_trials or "exhaust",
            factor=factor,
            resource=resource_name,
            max_resources=max_resources,
            min_resources=min_resources if min_resources is not None else "exhaust",
            random_state=random_state,
            refit=_halving_refit,
            **common,
        )
    raise ValueError(f"unknown scikit-learn strategy {strategy!r}")


def _halving_refit(results):
    """Successive halving's own rule (best of the last round), for a dict-returning scorer."""
    return HalvingRandomSearchCV._select_best_index(None, None, results)


def _epochs_parameter(estimator) -> str:
    for name in estimator.get_params():
        if name == "epochs" or (name.endswith("__epochs") and name.count("__") == 1):
            return name
    raise ValueError(
        "halving with resource='epochs' needs an estimator with an 'epochs' parameter "
        f"(a tunekit KerasClassifier/KerasRegressor), got {type(estimator).__name__}."
    )
