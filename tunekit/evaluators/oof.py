"""Out-of-fold predictions: what each (candidate, fold) predicts on its fold's test rows.

An evaluator that keeps predictions (``oof_predictions=True``) adds a
``"predictions"`` value to each entry: the fitted fold model's
``predict_proba`` for a classifier, its ``predict`` for anything else, as
float32, one row per test row of the fold (in the fold's order). A strategy
pops them off the entries (:func:`pop_predictions`) and lays each candidate's
folds into one array over the rows of the data it searched
(:func:`assemble`), NaN where a fold failed or predicted nothing.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import is_classifier

__all__ = ["PREDICTIONS", "assemble", "pop_predictions", "predictions_of"]

#: The entry key that holds a (candidate, fold)'s predictions on its test rows.
PREDICTIONS = "predictions"


def predictions_of(estimator, X) -> np.ndarray | None:
    """``estimator``'s predictions on ``X`` as float32; ``None`` when it cannot predict.

    Classifiers give their class probabilities (``predict_proba``, shape
    ``(n_rows, n_classes)``), other estimators ``predict`` (shape
    ``(n_rows,)`` for one target).
    """
    try:
        if is_classifier(estimator) and hasattr(estimator, "predict_proba"):
            values = estimator.predict_proba(X)
        else:
            values = estimator.predict(X)
        return np.asarray(values, dtype=np.float32)
    except Exception:  # a model that cannot predict has no predictions: NaN rows, not a failure
        return None


def pop_predictions(entries, tests) -> list:
    """Take ``"predictions"`` off the entries of one candidate: ``[(test_rows, values)]``.

    ``entries[s]`` is fold ``s``'s entry and ``tests[s]`` its test rows; a
    failed fold (``fit_error`` set) or an entry without predictions adds
    nothing.
    """
    folds = []
    for entry, test in zip(entries, tests, strict=True):
        values = entry.pop(PREDICTIONS, None)
        if values is not None and not entry.get("fit_error") and len(values) == len(test):
            folds.append((np.asarray(test), values))
    return folds


def assemble(folds, n_rows: int, shape=None) -> np.ndarray | None:
    """One array over ``n_rows`` rows from ``[(test_rows, values)]``; NaN where none.

    ``shape`` (the trailing shape of a row's predictions) is taken from the
    folds when not given; ``None`` is returned when neither says it.
    """
    if shape is None:
        shape = folds[0][1].shape[1:] if folds else None
    if shape is None:
        return None
    out = np.full((n_rows, *shape), np.nan, dtype=np.float32)
    for rows, values in folds:
        if values.shape[1:] == tuple(shape):
            out[rows] = values
    return out


def common_shape(per_candidate) -> tuple | None:
    """The trailing shape shared by the candidates' fold predictions (the first seen)."""
    for folds in per_candidate:
        if folds:
            return folds[0][1].shape[1:]
    return None
