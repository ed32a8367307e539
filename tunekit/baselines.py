"""Baselines: what a tuned network has to beat, scored on the search's own folds.

A dummy predictor (the score of knowing nothing but the targets' distribution)
and a linear model behind a ``StandardScaler`` are cross-validated on the very
folds the search used and scored on the same held-out set, so that the
leaderboard can say whether the chosen network beats them, by how much, and
whether the corrected t-test separates them.

Their scores live beside the candidates (``SearchResult.baselines_``), never
among them: ``cv_results_``, ``rank_test_score`` and ``best_index_`` do not
change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.utils import _safe_indexing

__all__ = ["check_baselines", "default_baselines", "evaluate_baselines", "to_jsonable"]

logger = logging.getLogger("tunekit")


class _CannotFlatten(ValueError):
    """The inputs cannot be given to a linear model as a 2-D numeric table."""


def default_baselines(estimator, sparse: bool = False) -> list[tuple[str, Any]]:
    """The baselines for ``estimator``: a dummy predictor and a scaled linear model.

    Parameters
    ----------
    estimator : estimator
        The estimator being tuned; a classifier gets classifier baselines.
    sparse : bool, default=False
        Whether X is a scipy sparse matrix: the scaler then scales without
        centering (centering would densify X).

    Returns
    -------
    baselines : list of (str, estimator)
        ``[("dummy", DummyClassifier(strategy="prior")), ("logistic",
        StandardScaler + LogisticRegression)]`` for a classifier,
        ``[("dummy", DummyRegressor()), ("ridge", StandardScaler + RidgeCV)]``
        otherwise.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler(with_mean=not sparse)
    if is_classifier(estimator):
        return [
            ("dummy", DummyClassifier(strategy="prior")),
            ("logistic", make_pipeline(scaler, LogisticRegression(max_iter=1000))),
        ]
    return [
        ("dummy", DummyRegressor()),
        ("ridge", make_pipeline(scaler, RidgeCV(alphas=np.logspace(-3, 3, 13)))),
    ]


def check_baselines(baselines) -> None:
    """Reject a ``baselines=`` argument that is not True, False or a list of estimators.

    Raises
    ------
    ValueError
        Before any training, with the rule, the value and the fix.
    """
    if baselines is not True and baselines is not False:
        _named(None, baselines)


def _named(estimator, baselines, sparse: bool = False) -> list[tuple[str, Any]]:
    if baselines is True:
        return default_baselines(estimator, sparse)
    if not isinstance(baselines, Sequence) or isinstance(baselines, str) or not baselines:
        raise ValueError(
            "baselines must be True (a dummy and a linear model), False (none) or a non-empty "
            f"list of scikit-learn estimators or (name, estimator) pairs; got {baselines!r}"
        )
    named, seen = [], set()
    for item in baselines:
        name, model = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
        if not hasattr(model, "fit"):
            raise ValueError(
                "each baseline must be a scikit-learn estimator (with fit) or a (name, "
                f"estimator) pair; got {item!r}"
            )
        name = str(name) if name else _default_name(model)
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        named.append((name, model))
    return named


def _default_name(model) -> str:
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    return type(last).__name__.lower()


def _as_table(X):
    """``X`` as a 2-D numeric table (samples by features); inputs of 3-D and more are flattened."""
    if sp.issparse(X):
        return X
    if hasattr(X, "dtypes"):  # a DataFrame: every column must be numeric
        kinds = {np.dtype(d).kind if isinstance(d, np.dtype) else "O" for d in X.dtypes}
        if not kinds <= set("biuf"):
            raise _CannotFlatten("the inputs have non-numeric columns")
        return X
    try:
        array = np.asarray(X)
    except (ValueError, TypeError) as err:
        raise _CannotFlatten(f"the inputs are not an array ({err})") from None
    if array.dtype.kind not in "biuf":
        raise _CannotFlatten(f"the inputs are not numeric (dtype {array.dtype})")
    if array.ndim < 2:
        raise _CannotFlatten(f"the inputs are {array.ndim}-D, not samples by features")
    return array.reshape(len(array), -1) if array.ndim > 2 else array


def _has_embedding(fitted) -> bool:
    """Whether a fitted Keras estimator (or a pipeline ending in one) reads token ids."""
    final = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
    model = getattr(final, "model_", None)
    layers = getattr(model, "layers", None) or []
    return any(type(layer).__name__ == "Embedding" for layer in layers)


def _score_one(model, scorer, X_search, y_search, folds, X_test, y_test) -> dict[str, Any]:
    tests, trains, fit_times, score_times = [], [], [], []
    for train, test in folds:
        X_tr, y_tr = _safe_indexing(X_search, train), _safe_indexing(y_search, train)
        fold_model = clone(model)
        t0 = time.perf_counter()
        fold_model.fit(X_tr, y_tr)
        t1 = time.perf_counter()
        X_te, y_te = _safe_indexing(X_search, test), _safe_indexing(y_search, test)
        tests.append(float(scorer(fold_model, X_te, y_te)))
        score_times.append(time.perf_counter() - t1)
        fit_times.append(t1 - t0)
        trains.append(float(scorer(fold_model, X_tr, y_tr)))
    heldout = np.nan
    if X_test is not None:
        refit = clone(model).fit(X_search, y_search)
        heldout = float(scorer(refit, X_test, y_test))
    return {
        "test": tests,
        "train": trains,
        "heldout": heldout,
        "fit_time": float(np.mean(fit_times)),
        "score_time": float(np.mean(score_times)),
    }


def evaluate_baselines(
    estimator,
    X_search,
    y_search,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    X_test=None,
    y_test=None,
    *,
    scoring=None,
    baselines: bool | Sequence = True,
) -> dict[str, Any] | None:
    """Cross-validate baselines on the search's folds and score them on its held-out set.

    Parameters
    ----------
    estimator : estimator
        The estimator being tuned, or the chosen candidate fitted: it picks
        classifier or regressor baselines, and a fitted network that reads
        token ids through an ``Embedding`` layer skips them.
    X_search, y_search : array-like
        The search part of the data (the folds index into it).
    folds : list of (train, test) index arrays
        The very splits the search used.
    X_test, y_test : array-like or None
        The held-out set; ``None`` skips the held-out score.
    scoring : str, callable or None, default=None
        The search's scoring; ``None`` is each baseline's default score
        (accuracy, R²), the same as the Keras estimators'.
    baselines : bool or list, default=True
        ``True``: :func:`default_baselines`; a list of scikit-learn estimators
        or ``(name, estimator)`` pairs: those; ``False``: none.

    Returns
    -------
    baselines_ : dict or None
        ``cv_results_``'s schema with one entry per baseline: ``baseline``
        (names), ``params`` (empty dicts), ``split{i}_test_score``,
        ``split{i}_train_score``, ``mean/std_test_score``,
        ``mean/std_train_score``, ``mean_fit_time``, ``mean_score_time``,
        ``heldout_test_score``; and ``seconds``, the time all of it took.
        ``None`` when skipped (``baselines=False``, inputs that a linear model
        cannot read, or every baseline failing), with one log line saying why.

    Raises
    ------
    ValueError
        If ``baselines`` is neither a bool nor a list of estimators.
    """
    if baselines is False or baselines is None:
        return None
    if _has_embedding(estimator):
        logger.info(
            "baselines skipped: the network reads token sequences through an Embedding layer; "
            "a linear model cannot read them"
        )
        return None
    named = _named(estimator, baselines, sp.issparse(X_search))
    start = time.perf_counter()
    try:
        X_flat = _as_table(X_search)
        X_test_flat = None if X_test is None else _as_table(X_test)
    except _CannotFlatten as err:
        logger.info("baselines skipped: %s; a linear model cannot read them", err)
        return None
    scored: dict[str, dict[str, Any]] = {}
    for name, model in named:
        try:
            scorer = check_scoring(model, scoring=scoring)
            scored[name] = _score_one(model, scorer, X_flat, y_search, folds, X_test_flat, y_test)
        except Exception as err:  # a baseline must never sink the search
            logger.info("baseline %r skipped: %s: %s", name, type(err).__name__, err)
    if not scored:
        return None
    out = _as_cv_results(scored, len(folds))
    out["seconds"] = time.perf_counter() - start
    return out


def _as_cv_results(scored: dict[str, dict[str, Any]], n_splits: int) -> dict[str, Any]:
    names = list(scored)
    test = np.array([scored[n]["test"] for n in names], dtype=float).reshape(len(names), n_splits)
    train = np.array([scored[n]["train"] for n in names], dtype=float).reshape(test.shape)
    out: dict[str, Any] = {"baseline": names, "params": [{} for _ in names]}
    for i in range(n_splits):
        out[f"split{i}_test_score"] = test[:, i]
    out["mean_test_score"] = test.mean(axis=1)
    out["std_test_score"] = test.std(axis=1)
    for i in range(n_splits):
        out[f"split{i}_train_score"] = train[:, i]
    out["mean_train_score"] = train.mean(axis=1)
    out["std_train_score"] = train.std(axis=1)
    out["mean_fit_time"] = np.array([scored[n]["fit_time"] for n in names])
    out["mean_score_time"] = np.array([scored[n]["score_time"] for n in names])
    out["heldout_test_score"] = np.array([scored[n]["heldout"] for n in names], dtype=float)
    return out


def to_jsonable(scores: dict[str, Any]) -> dict[str, Any]:
    """``baselines_`` as plain JSON (lists, floats, None for NaN), e.g. for a study's attributes."""
    out: dict[str, Any] = {}
    for key, value in scores.items():
        if isinstance(value, np.ndarray | list | tuple):
            out[key] = [
                v if isinstance(v, str | dict) else (float(v) if np.isfinite(v) else None)
                for v in value
            ]
        else:
            out[key] = float(value)
    return out
