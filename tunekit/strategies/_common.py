"""Pieces every strategy shares: the epoch-aware scorer and the results clean-up."""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.metrics import check_scoring

from tunekit.evaluators._base import final_estimator

__all__ = [
    "EpochAwareScorer",
    "clean_cv_results",
    "final_estimator",
    "last_line",
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
    counts for Keras estimators (NaN for others). :func:`clean_cv_results`
    turns the extra metrics into ``split{i}_best_epoch`` / ``split{i}_n_epochs``.

    Parameters
    ----------
    estimator : estimator
        Used to resolve ``scoring=None`` to the estimator's default score.
    scoring : str, callable or None
        Anything :func:`sklearn.metrics.check_scoring` accepts.
    """

    def __init__(self, estimator, scoring=None, progress=None, error_score=math.nan):
        self.scoring = scoring
        self.scorer = check_scoring(estimator, scoring=scoring)
        self.progress = progress
        self.error_score = error_score

    def __getstate__(self):
        state = dict(self.__dict__)
        state["progress"] = None  # a progress bar stays in the process that shows it
        return state

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
        if self.progress is not None:
            self.progress.update(0.5 if getattr(self, "_two_calls", False) else 1)
        final = final_estimator(estimator)
        return {
            "score": score,
            "best_epoch": _as_float(getattr(final, "best_epoch_", None)),
            "n_epochs": _as_float(getattr(final, "n_epochs_", None)),
        }


_AUX = ("best_epoch", "n_epochs")


def clean_cv_results(raw: dict, n_splits: int) -> dict:
    """Turn a search's ``cv_results_`` (scored by :class:`EpochAwareScorer`) into tunekit's schema.

    Keeps scikit-learn's keys for the main score, moves the per-fold epoch
    counts to ``split{i}_best_epoch`` / ``split{i}_n_epochs`` and adds
    ``state`` (``"COMPLETE"`` or ``"FAIL"``) and ``failure_reason``.
    """
    out = {}
    for key, value in raw.items():
        if any(key.endswith(f"_{aux}") for aux in _AUX):
            continue
        out[key] = value
    for aux in _AUX:
        for i in range(n_splits):
            key = f"split{i}_test_{aux}"
            if key in raw:
                out[f"split{i}_{aux}"] = np.asarray(raw[key], dtype=float)
    means = np.asarray(out["mean_test_score"], dtype=float)
    out["state"] = np.where(np.isnan(means), "FAIL", "COMPLETE").astype(object)
    if "failure_reason" not in out:
        out["failure_reason"] = np.array([""] * len(means), dtype=object)
    return out


def last_line(traceback_text: str) -> str:
    """The exception line of a formatted traceback."""
    lines = [line for line in str(traceback_text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
