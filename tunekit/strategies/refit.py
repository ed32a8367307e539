"""The refit of the chosen candidate on all the search data, and what happens when it fails.

Cross-validation trains each candidate on part of the data; the refit trains
the chosen one on all of it, and can diverge where the folds did not (more
rows, another scale). The refit then moves to the next best candidate by mean
CV score, and the result records which candidates could not be refitted and
why (``cv_results_["refit_failure"]``). When none of the
:data:`MAX_REFIT_TRIES` best can be, :class:`~tunekit.exceptions.SearchFailedError`
names them and their errors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from tunekit.exceptions import SearchFailedError

__all__ = ["MAX_REFIT_TRIES", "Refit", "record_refit", "refit_best", "refit_order"]

logger = logging.getLogger("tunekit")

#: How many candidates, best first, a refit tries before the search fails.
MAX_REFIT_TRIES = 5


@dataclass
class Refit:
    """The refitted estimator, its candidate and the candidates that could not be refitted."""

    estimator: Any
    index: int
    seconds: float
    failures: dict[int, str] = field(default_factory=dict)


def refit_order(means, params: list, chosen: int) -> list[int]:
    """The chosen candidate, then the others with a finite mean, best first, distinct.

    Halving lists a candidate once per round and picks the best of the last round,
    which need not have the best mean overall: the chosen one always comes first.
    """
    means = np.asarray(means, dtype=float)
    order, seen = [chosen], [params[chosen]]
    for i in np.argsort(-np.where(np.isfinite(means), means, -np.inf), kind="stable"):
        if np.isfinite(means[i]) and params[i] not in seen:
            order.append(int(i))
            seen.append(params[i])
    return order


def refit_best(base, params: list, means, chosen: int, X, y, fit_params: dict) -> Refit:
    """Fit the chosen candidate on all of ``X``; if its training fails, the next best.

    Raises
    ------
    SearchFailedError
        When none of the :data:`MAX_REFIT_TRIES` best candidates could be
        refitted: each is named, with its error.
    """
    means = np.asarray(means, dtype=float)
    failures: dict[int, str] = {}
    for i in refit_order(means, params, chosen)[:MAX_REFIT_TRIES]:
        model = clone(base).set_params(**clone(params[i], safe=False))
        start = time.perf_counter()
        try:
            model.fit(X, **fit_params) if y is None else model.fit(X, y, **fit_params)
        except Exception as err:  # a training failure of this candidate, not of the search
            failures[i] = f"{type(err).__name__}: {err}"
            logger.warning("the refit of candidate %d on all the search data failed: %s", i, err)
            continue
        if failures:
            logger.warning(
                "candidate %d could not be refitted on all the search data; candidate %d, the "
                "next best by CV that could, is the chosen model", chosen, i,
            )  # fmt: skip
        return Refit(model, i, time.perf_counter() - start, failures)
    tried = "; ".join(f"candidate {i} ({params[i]}): {why}" for i, why in failures.items())
    others = (
        f"nor could the next {len(failures) - 1} best" if len(failures) > 1
        else "and no other candidate has a CV score to fall back on"
    )  # fmt: skip
    raise SearchFailedError(
        f"the chosen candidate {chosen} could not be refitted on all the search data, "
        f"{others}: {tried}"
    )


def record_refit(results: dict, refit: Refit) -> None:
    """Write the refit failures into ``cv_results_`` (``""`` where the refit was not tried)."""
    if not refit.failures:
        return
    column = np.full(len(results["params"]), "", dtype=object)
    for i, why in refit.failures.items():
        column[i] = why
    results["refit_failure"] = column
