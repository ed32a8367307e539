"""Several candidates refit on one split, trained together: the engine's refits.

A search refits its chosen candidate with Keras (``best_estimator_``, a real
Keras model that users save and call). The other refits a search makes only
need scores and predictions: the next best candidates scored on the held-out
part (``refit_top``), and the members an ensemble picks. On the engine these
train as members of one stack on the whole search part, instead of one Keras
``fit`` each, and the evaluator's own rules apply: a candidate the engine
cannot reproduce trains the standard way, and a training that diverges is a
failure with its reason, not an exception.

An engine member is the same kind of model as the cross-validation's: the
same network, optimizer and epochs, from its own initial weights (so its
score differs from a Keras refit's as two seeds do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import check_scoring
from sklearn.utils.validation import _num_samples

from tunekit.evaluators._base import MODEL, main_score
from tunekit.evaluators.stacked import StackedEvaluator
from tunekit.evaluators.stacked.data import end_to_end

__all__ = ["Refitted", "refit_together"]


@dataclass
class Refitted:
    """One candidate refit on the search part.

    Attributes
    ----------
    model : estimator or None
        The fitted model: an engine member or a fitted estimator; ``None``
        when the refit failed, or for a pipeline trained on the engine (its
        member reads the pipeline's transformed rows, not ``X``).
    score : float
        Its score on the test part; NaN without one, or when it failed.
    history : dict
        Per-epoch ``loss`` (and ``val_loss`` with early stopping) on the
        search part, as a Keras history has them; empty for models without
        epochs.
    error : str or None
        Why the refit failed.
    engine : str
        ``"stacked"`` or ``"sklearn"``: what trained it.
    """

    model: Any
    score: float
    history: dict = field(default_factory=dict)
    error: str | None = None
    engine: str = "sklearn"


def _history(curves: list, candidate: int) -> dict:
    rows = sorted(
        (r for r in curves if r["candidate"] == candidate and r["fold"] == 0),
        key=lambda r: r["epoch"],
    )
    history = {"loss": [float(r["train_loss"]) for r in rows]}
    val = [float(r["val_loss"]) for r in rows]
    if val and all(math.isfinite(v) for v in val):
        history["val_loss"] = val
    return history if rows else {}


def refit_together(
    estimator, candidates: list, X, y, X_test=None, y_test=None, *, scoring=None,
    memory_budget=None, fit_params=None,
) -> list[Refitted]:  # fmt: skip
    """Refit ``candidates`` on ``(X, y)`` on the engine, all in one stack where they fit.

    Parameters
    ----------
    estimator : estimator
        The search's unfitted estimator; each candidate is
        ``clone(estimator).set_params(**candidate)``.
    candidates : list of dict
    X, y : indexable
        The search part.
    X_test, y_test : indexable or None
        The held-out part: each refit is scored on it (:attr:`Refitted.score`).
    scoring : str, callable or None
        The search's scoring.
    memory_budget : optional
        As :class:`~tunekit.evaluators.StackedEvaluator`'s.
    fit_params : dict or None
        Extra ``fit`` arguments (per-sample ones over ``X``'s rows); with any,
        the candidates train the standard way, as in the search.

    Returns
    -------
    list of Refitted
        One per candidate, in order.
    """
    n = _num_samples(X)
    train = np.arange(n)
    if X_test is None:
        X_all, y_all, test = X, y, train
    else:
        X_all, y_all = end_to_end([X, X_test]), None if y is None else end_to_end([y, y_test])
        test = np.arange(n, n + _num_samples(X_test))
    pipeline = hasattr(estimator, "steps")
    evaluator = StackedEvaluator(
        memory_budget=memory_budget, keep_models=not pipeline, return_train_score=False,
        epoch_curves=True,
    )  # fmt: skip
    evaluation = evaluator.evaluate(
        estimator, list(candidates), [(train, test)], X_all, y_all,
        scorers=check_scoring(estimator, scoring=scoring), fit_params=fit_params,
    )  # fmt: skip
    out = []
    for c, (entry,) in enumerate(evaluation.entries):
        error = entry.get("fit_error")
        score = main_score(entry["test_scores"]) if X_test is not None and not error else math.nan
        model = None if pipeline and evaluation.engines[c] == "stacked" else entry.get(MODEL)
        out.append(Refitted(model, score, _history(evaluation.curves, c), error,
                            evaluation.engines[c]))  # fmt: skip
    return out
