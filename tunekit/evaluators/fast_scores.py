"""Scores of many small predictions, without scikit-learn's per-call checks.

Every fold's test part is scored after every epoch for the curves: a search
of 400 members over 15 epochs makes 6,000 scorer calls, and scikit-learn's
checks (target types, array validation, response-method dispatch) cost
about 2 ms a call, many times the member's own prediction. For the built-in
scorers whose metric is a one-line formula (accuracy, R², mean squared,
root mean squared and mean absolute error, each without extra arguments, and
``scoring=None`` on an estimator whose ``score`` is scikit-learn's accuracy or
R²: engine members, scikit-learn's own models),
:func:`fast_score` predicts once and computes the formula with NumPy;
anything else (other metrics, multi-output targets, several metrics, label
types that do not compare) goes through the scorer itself.

Curve points use this, and so does ensemble selection (thousands of scores of
candidate blends and bootstrap resamples). The scores a search records per
fold come from the scorer, except accuracy (:func:`exact_score`): the mean of
the matches is the very number ``accuracy_score`` computes, and its checks
were most of a small fold's scoring time. The other formulas may differ from
their metric in the last bits (a float32 sum against a float64 one), so they
serve curves only.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import (
    accuracy_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)
from sklearn.metrics._scorer import _PassthroughScorer, _Scorer

__all__ = ["exact_score", "fast_metric", "fast_score"]


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    total = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if total == 0.0:
        return math.nan  # scikit-learn's special case: let the scorer decide
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / total


def _mse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean((y_true - y_pred) ** 2))


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return math.sqrt(_mse(y_true, y_pred))


def _mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true - y_pred)))


_FORMULAS = {
    accuracy_score: (_accuracy, False),
    r2_score: (_r2, True),
    mean_squared_error: (_mse, True),
    root_mean_squared_error: (_rmse, True),
    mean_absolute_error: (_mae, True),
}


def fast_metric(scorer, est=None):
    """``(formula, sign, numeric)`` for a built-in scorer with a one-line metric, else ``None``.

    ``scoring=None`` scores with the estimator's own ``score``: scikit-learn's
    classifier and regressor mixins (engine members among them) are accuracy
    and R².
    """
    if type(scorer) is _PassthroughScorer:
        own = getattr(type(est), "score", None)
        if own is ClassifierMixin.score:
            return _accuracy, 1, False
        return (_r2, 1, True) if own is RegressorMixin.score else None
    if type(scorer) is not _Scorer or scorer._kwargs or scorer._response_method != "predict":
        return None
    found = _FORMULAS.get(scorer._score_func)
    return None if found is None else (found[0], scorer._sign, found[1])


def _comparable(y_true: np.ndarray, y_pred: np.ndarray, numeric: bool) -> bool:
    if y_true.ndim != 1 or y_pred.shape != y_true.shape or not len(y_true):
        return False
    kinds = {y_true.dtype.kind, y_pred.dtype.kind}
    if numeric:
        return kinds <= set("biuf")
    return kinds <= set("biu") or len(kinds) == 1


def fast_score(scorers, est, X, y, fallback, predicted=None) -> float:
    """``est``'s score on ``(X, y)``: the scorer's number, computed directly where it can be.

    Parameters
    ----------
    scorers : callable
        The search's scorer.
    est : estimator
        The fitted model (or engine member) to score.
    X, y : array-like
        The rows to score (a fold's test part).
    fallback : callable
        ``fallback()`` scores through the scorer itself, for whatever the
        direct formula does not cover.
    predicted : ndarray or None, default=None
        ``est.predict(X)`` when the caller has it already (many members
        predicted in one pass).

    Returns
    -------
    float
    """
    fast = fast_metric(scorers, est)
    if fast is not None:
        formula, sign, numeric = fast
        y_true = np.asarray(y)
        try:
            y_pred = np.asarray(est.predict(X) if predicted is None else predicted)
        except (ValueError, TypeError):  # the scorer's own path says why
            return fallback()
        if _comparable(y_true, y_pred, numeric):
            value = formula(y_true, y_pred)
            if math.isfinite(value):
                return sign * value
    return fallback()


def exact_score(scorers, est, X, y) -> float | None:
    """``est``'s accuracy on ``(X, y)`` when ``scorers`` is accuracy; else ``None``.

    The same number as the scorer (the mean of the matches, in float64),
    without scikit-learn's per-call checks. ``None`` for every other scorer,
    for labels that do not compare, and where ``predict`` fails (the scorer's
    own path then says why).
    """
    fast = fast_metric(scorers, est)
    if fast is None or fast[0] is not _accuracy:
        return None
    y_true = np.asarray(y)
    try:
        y_pred = np.asarray(est.predict(X))
    except (ValueError, TypeError):
        return None
    if not _comparable(y_true, y_pred, numeric=False):
        return None
    return fast[1] * _accuracy(y_true, y_pred)
