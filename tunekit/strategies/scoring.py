"""Pieces every strategy shares: the epoch-aware scorer and the scorer's name."""

from __future__ import annotations

import math
import numbers
import warnings

from sklearn.metrics import check_scoring

from tunekit.evaluators import final_estimator

__all__ = [
    "EpochAwareScorer",
    "final_estimator",
    "scorer_name",
]


def scorer_name(estimator, scoring) -> str:
    """A readable name for ``scoring`` (``"accuracy"``, ``"r2"``, ``"roc_auc"``, ...)."""
    if isinstance(scoring, str):
        return scoring
    if scoring is None:
        from sklearn.base import is_classifier

        return "accuracy" if is_classifier(estimator) else "r2"
    return getattr(scoring, "__name__", None) or getattr(
        getattr(scoring, "_score_func", None), "__name__", "score"
    )


def _as_float(value) -> float:
    return float(value) if isinstance(value, numbers.Real) else math.nan


class EpochAwareScorer:
    """A scikit-learn scoring callable that also reports how long the model trained.

    It returns ``{"score": s, "best_epoch": b, "n_epochs": n}``, so a search's
    ``cv_results_`` holds the usual ``*_test_score`` keys plus per-fold epoch
    counts for Keras estimators (NaN for others).

    Parameters
    ----------
    estimator : estimator
        Used to resolve ``scoring=None`` to the estimator's default score.
    scoring : str, callable or None
        Anything :func:`sklearn.metrics.check_scoring` accepts.
    """

    def __init__(self, estimator, scoring=None, error_score=math.nan):
        self.scoring = scoring
        self.scorer = check_scoring(estimator, scoring=scoring)
        self.error_score = error_score

    def __call__(self, estimator, X, y, **kwargs):
        try:
            score = self.scorer(estimator, X, y, **kwargs)
        except Exception as err:
            # scikit-learn replaces a failing *callable* scorer's result by a bare float,
            # which breaks its own dict-of-metrics bookkeeping: keep the dict shape here
            if isinstance(self.error_score, str) and self.error_score == "raise":
                raise
            warnings.warn(
                f"scoring failed; the score is set to {self.error_score}: "
                f"{type(err).__name__}: {err}",
                UserWarning,
                stacklevel=2,
            )
            score = self.error_score
        final = final_estimator(estimator)
        return {
            "score": score,
            "best_epoch": _as_float(getattr(final, "best_epoch_", None)),
            "n_epochs": _as_float(getattr(final, "n_epochs_", None)),
        }
