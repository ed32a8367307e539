"""Ensemble selection over a search's out-of-fold predictions (Caruana et al., 2004).

A search trains every (candidate, fold) and keeps each fold model's
predictions on its test rows (``SearchResult.oof_predictions_``). Greedy
forward selection with replacement blends them: start from the ``N`` best
candidates (sorted initialisation, ``N`` chosen on the same predictions, as
Caruana et al. do), then add, one at a time, the candidate whose addition
scores best with the search's own scorer, until the ensemble holds ``size``
picks. A candidate's weight is how often it was picked over ``size``, as in
auto-sklearn's ``EnsembleSelection``; of equal scores (frequent with
accuracy), the pick is the model that scores best on its own, not a random
one, so that a selection is reproducible.

The chosen members are refit on the whole search set (the chosen candidate's
refit is reused): neither engine keeps its fold models. After a search on the
engine the members train together, as one stack (one compilation, then all
members at once); after a standard-path search each costs one ``fit``.
Averaging the fold models instead would need every candidate's fold models
kept through the search (5 models per candidate, for the few the selection
picks at the end), and predict with five times the members.

The blend's CV score is optimistic, since it was selected on the very
predictions it is scored on; its held-out score is the
honest one (:func:`ensemble` compares it with the best single candidate and
the best baseline by a paired bootstrap over the held-out rows).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.utils import _safe_indexing

from tunekit.baselines import _named
from tunekit.evaluators import predictions_of
from tunekit.evaluators.fast_scores import fast_score
from tunekit.evaluators.refits import refit_together
from tunekit.record import COMPLETE

__all__ = ["EnsembleClassifier", "EnsembleRegressor", "Selection", "ensemble", "select"]

logger = logging.getLogger("tunekit")


# ------------------------------------------------------------------ scoring predictions
class _Fixed(BaseEstimator):
    """Predictions already made, as an estimator a scikit-learn scorer can score.

    ``X`` is a column of row positions into ``values``.
    """

    def __init__(self, values=None, classes=None):
        self.values = values
        self.classes = classes

    def _rows(self, X):
        return self.values[np.asarray(X, dtype=np.intp).ravel()]


class _FixedClassifier(ClassifierMixin, _Fixed):
    @property
    def classes_(self):
        return self.classes

    def predict_proba(self, X):
        return self._rows(X)

    def predict(self, X):
        return self.classes[np.argmax(self._rows(X), axis=1)]


class _FixedRegressor(RegressorMixin, _Fixed):
    def predict(self, X):
        return self._rows(X)


def _score_of(scorer, y, classes):
    """A function scoring an array of predictions over the rows of ``y`` with ``scorer``."""
    rows = np.arange(len(y))[:, None]
    kind = _FixedRegressor if classes is None else _FixedClassifier

    def score(values, subset=None) -> float:
        model = kind(values, classes)
        X, y_part = (rows, y) if subset is None else (subset[:, None], _safe_indexing(y, subset))
        return float(fast_score(scorer, model, X, y_part, lambda: scorer(model, X, y_part)))

    return score


# ------------------------------------------------------------------ greedy selection
@dataclass
class Selection:
    """What :func:`select` chose.

    Attributes
    ----------
    indices : list of int
        The picks in order (with repeats), the sorted initialisation first.
    weights : ndarray
        Per model, picks / ``size``.
    n_init : int
        How many of the best models started the ensemble.
    trajectory : list of float
        The ensemble's score after each pick.
    """

    indices: list
    weights: np.ndarray
    n_init: int
    trajectory: list


def select(predictions, score, size: int = 20, max_init: int = 5) -> Selection:
    """Greedy forward selection with replacement and sorted initialisation.

    Parameters
    ----------
    predictions : list of ndarray
        Per model, its predictions on the same rows (no NaN).
    score : callable
        ``score(blend) -> float``, higher is better.
    size : int, default=20
        Picks in the ensemble (repeats count).
    max_init : int, default=5
        The sorted initialisation starts from the ``N`` best models, ``N`` in
        ``1..max_init`` the one whose plain average scores best (the smallest
        on ties).

    Returns
    -------
    Selection
    """
    if not predictions:
        raise ValueError("select needs at least one model's predictions, got none")
    if size < 1 or max_init < 1:
        raise ValueError(f"size and max_init must be >= 1, got size={size}, max_init={max_init}")
    own = np.array([score(p) for p in predictions])
    order = [int(i) for i in np.argsort(-own, kind="stable")]
    best_n, best = 1, -np.inf
    for n in range(1, min(max_init, size, len(order)) + 1):
        value = score(np.mean([predictions[i] for i in order[:n]], axis=0))
        if value > best:
            best_n, best = n, value
    indices = order[:best_n]
    total = np.sum([predictions[i] for i in indices], axis=0, dtype=np.float64)
    trajectory = [best] * best_n
    while len(indices) < size:
        k = len(indices) + 1
        scores = np.array([score((total + p) / k) for p in predictions])
        # of equal scores, the model that scores best on its own (sorted order)
        top = np.nanmax(scores) if np.isfinite(scores).any() else None
        j = next((i for i in order if scores[i] == top), order[0])
        indices.append(j)
        total += predictions[j]
        trajectory.append(float(scores[j]))
    weights = np.zeros(len(predictions))
    for i, count in Counter(indices).items():
        weights[i] = count / size
    return Selection(indices, weights, best_n, trajectory)


# ------------------------------------------------------------------ the estimator
class _Ensemble(BaseEstimator):
    """A weighted average of fitted members (shared by both kinds)."""

    def __init__(self, estimators=None, weights=None):
        self.estimators = estimators
        self.weights = weights

    def fit(self, X, y):
        """Fit a clone of every member on ``(X, y)``."""
        self.estimators_ = [clone(e).fit(X, y) for e in self.estimators]
        if is_classifier(self):
            self.classes_ = self.estimators_[0].classes_
        return self

    def _average(self, X, method: str):
        weights = np.asarray(self.weights, dtype=float)
        total = None
        for w, member in zip(weights / weights.sum(), self.estimators_, strict=True):
            values = np.asarray(getattr(member, method)(X), dtype=float) * w
            total = values if total is None else total + values
        return total


class EnsembleClassifier(ClassifierMixin, _Ensemble):
    """A weighted average of fitted classifiers' probabilities (soft voting).

    Parameters
    ----------
    estimators : list of estimators
        The members; ``fit`` fits clones of them.
    weights : array-like
        One weight per member (normalised to sum to 1).

    Attributes
    ----------
    estimators_ : list of fitted estimators
    classes_ : ndarray
    names_ : list of str
        What each member is (set by :func:`ensemble`).
    """

    def predict_proba(self, X):
        """The weighted average of the members' ``predict_proba``."""
        return self._average(X, "predict_proba")

    def predict(self, X):
        """The class of highest averaged probability."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class EnsembleRegressor(RegressorMixin, _Ensemble):
    """A weighted average of fitted regressors' predictions; attributes as the classifier's."""

    def predict(self, X):
        """The weighted average of the members' ``predict``."""
        return self._average(X, "predict")


# ------------------------------------------------------------------ the pool of models
@dataclass
class _Model:
    """A model the selection may pick: a candidate (its row) or a baseline (its estimator)."""

    name: str
    oof: np.ndarray
    cv_score: float
    row: int | None = None
    baseline: object = None


def _candidates(result) -> list[_Model]:
    """The candidates that completed every fold with predictions on every row."""
    states = np.asarray(result.cv_results_.get("state", []), dtype=object)
    means = np.asarray(result.cv_results_["mean_test_score"], dtype=float)
    pool = []
    for i, oof in enumerate(result.oof_predictions_ or []):
        complete = states.size == 0 or states[i] == COMPLETE
        if complete and oof is not None and np.isfinite(oof).all():
            pool.append(_Model(f"candidate {i}", oof, float(means[i]), row=i))
    return pool


def _baseline_pool(result, data) -> list[_Model]:
    """The baselines, cross-validated on the search's folds (2-D inputs only)."""
    if not data.baselines or result.baselines_ is None or _ndim(data.X_search) != 2:
        return []
    pool = []
    named = dict(_named(data.estimator, data.baselines, _is_sparse(data.X_search)))
    means = dict(zip(result.baselines_["baseline"], result.baselines_["mean_test_score"],
                     strict=True))  # fmt: skip
    for name in result.baselines_["baseline"]:
        model, folds = named.get(name), []
        if model is None:
            continue
        for train, test in data.folds:
            fitted = clone(model).fit(
                _safe_indexing(data.X_search, train), _safe_indexing(data.y_search, train)
            )
            folds.append((test, predictions_of(fitted, _safe_indexing(data.X_search, test))))
        if all(values is not None for _, values in folds):
            oof = np.full((len(data.y_search), *folds[0][1].shape[1:]), np.nan, np.float32)
            for test, values in folds:
                oof[test] = values
            pool.append(_Model(f"baseline {name}", oof, float(means[name]), baseline=model))
    return pool


def _ndim(X) -> int:
    return 2 if _is_sparse(X) else np.ndim(X)


def _is_sparse(X) -> bool:
    return hasattr(X, "tocsr")


def _fitted_members(result, data, models: list[_Model]) -> list:
    """The models refit on the whole search set (the chosen candidate's refit reused).

    After a search on the engine, the candidates train together as members of
    one stack (:func:`~tunekit.evaluators.refits.refit_together`); a candidate
    the stack gives no model for (a pipeline, a failed refit) is refit alone.
    """
    fitted: dict[int, object] = {}
    params = result.cv_results_["params"]
    rows = [m.row for m in models if m.baseline is None and m.row is not None]
    if result.best_estimator_ is not None and result.best_index_ in rows:
        fitted[result.best_index_] = result.best_estimator_
    rows = [r for r in dict.fromkeys(rows) if r not in fitted]
    if rows and getattr(result, "engine_", "sklearn") != "sklearn":
        done = refit_together(data.estimator, [params[r] for r in rows], data.X_search,
                              data.y_search, scoring=data.scoring)  # fmt: skip
        fitted.update({r: d.model for r, d in zip(rows, done, strict=True) if d.model is not None})
    out = []
    for m in models:
        if m.baseline is not None:
            out.append(clone(m.baseline).fit(data.X_search, data.y_search))
        elif m.row in fitted:
            out.append(fitted[m.row])
        else:
            estimator = clone(data.estimator).set_params(**params[m.row])
            out.append(estimator.fit(data.X_search, data.y_search))
    return out


def _unfitted(result, data, model: _Model):
    """What ``fit`` of the ensemble refits for ``model``: its estimator, unfitted."""
    if model.baseline is not None:
        return clone(model.baseline)
    return clone(data.estimator).set_params(**result.cv_results_["params"][model.row])


# ------------------------------------------------------------------ held-out comparison
def _bootstrap(score, ens: np.ndarray, other: np.ndarray, n: int, seed) -> tuple:
    """Mean, 95% interval and one-sided p (share <= 0) of ``score(ens) - score(other)``."""
    rng = np.random.default_rng(seed)
    rows = len(ens)
    diffs = np.empty(n)
    for b in range(n):
        idx = rng.integers(0, rows, rows)
        diffs[b] = score(ens, idx) - score(other, idx)
    finite = diffs[np.isfinite(diffs)]
    if not finite.size:
        return np.nan, np.nan, np.nan, np.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(finite.mean()), float(low), float(high), float(np.mean(finite <= 0))


def _comparison(result, data, scorer, est, cv_score: float, n_bootstrap: int, seed):
    """Held-out scores of the ensemble, the best candidate and the best baseline, side by side."""
    rows = [("ensemble", cv_score, True, est)]
    if result.best_estimator_ is not None:
        rows.append(("best candidate", float(result.best_score_), False, result.best_estimator_))
    base = result.baselines_
    if base is not None and data.baselines and _ndim(data.X_search) == 2:
        k = int(np.nanargmax(base["mean_test_score"]))
        name = base["baseline"][k]
        model = dict(_named(data.estimator, data.baselines, _is_sparse(data.X_search)))[name]
        fitted = clone(model).fit(data.X_search, data.y_search)
        rows.append((f"best baseline ({name})", float(base["mean_test_score"][k]), False, fitted))
    table = pd.DataFrame(
        [{"model": r[0], "cv_score": r[1], "cv_optimistic": r[2]} for r in rows]
    ).set_index("model")
    for column in ("heldout_score", "difference", "ci_low", "ci_high", "p_value"):
        table[column] = np.nan
    if data.X_test is None:
        return table
    score = _score_of(scorer, data.y_test, getattr(est, "classes_", None))
    held = [predictions_of(r[3], data.X_test) for r in rows]
    for (name, *_), values in zip(rows, held, strict=True):
        table.loc[name, "heldout_score"] = np.nan if values is None else score(values)
        if name != "ensemble" and values is not None and held[0] is not None:
            diff = _bootstrap(score, held[0], values, n_bootstrap, seed)
            table.loc[name, ["difference", "ci_low", "ci_high", "p_value"]] = diff
    return table


def ensemble(result, size: int = 20, *, max_init: int = 5, n_best: int = 50,
             n_bootstrap: int = 200, random_state: int | None = 0):  # fmt: skip
    """Blend a search's candidates by ensemble selection over their out-of-fold predictions.

    Sets ``result.ensemble_`` (an :class:`EnsembleClassifier` or
    :class:`EnsembleRegressor`, its members refit on the whole search set),
    ``result.ensemble_weights_`` (one row per picked model: ``weight``,
    ``cv_score``, the candidate's ``row``) and ``result.ensemble_scores_``
    (the ensemble, the best candidate and the best baseline: ``cv_score``,
    ``cv_optimistic``, ``heldout_score``, and the ensemble's ``difference``
    from each with a paired bootstrap's 95% interval ``ci_low``/``ci_high``
    and ``p_value``, the share of resamples where the ensemble does not win).

    Parameters
    ----------
    result : SearchResult
        A search run with ``oof_predictions=True`` (the default).
    size : int, default=20
        Picks in the ensemble (with replacement, so weights are multiples of
        ``1 / size``).
    max_init : int, default=5
        The sorted initialisation starts from up to this many best models.
    n_best : int, default=50
        Only the ``n_best`` candidates of best mean CV score enter the
        selection (as auto-sklearn's ``ensemble_nbest``): each greedy step
        scores every model in the pool once.
    n_bootstrap : int, default=200
        Resamples of the held-out rows for the paired bootstrap (each scores
        two models with the search's scorer: about 1.7 ms per score for
        accuracy and 6 ms for ROC AUC on 300 rows).
    random_state : int or None, default=0
        Seeds the bootstrap.

    Returns
    -------
    EnsembleClassifier or EnsembleRegressor
        ``result.ensemble_``.

    Raises
    ------
    ValueError
        If the search kept no out-of-fold predictions, or no candidate
        completed every fold with predictions on every row.
    """
    data = getattr(result, "data_", None)
    if result.oof_predictions_ is None or data is None:
        raise ValueError(
            "ensemble selection needs the candidates' out-of-fold predictions, but this search "
            "kept none: run tk.search(..., oof_predictions=True) (the default)"
        )
    start = time.perf_counter()
    classifier = is_classifier(data.estimator)
    classes = np.unique(data.y_search) if classifier else None
    scorer = check_scoring(data.estimator, scoring=data.scoring)
    candidates = _candidates(result)
    if not candidates:
        n = len(result.cv_results_["params"])
        raise ValueError(
            f"ensemble selection needs at least one candidate that completed every fold with "
            f"out-of-fold predictions on every row, but none of the {n} did (failed, pruned, "
            "or successive halving on n_samples, whose rungs predict on a subsample)"
        )
    candidates.sort(key=lambda m: (not np.isfinite(m.cv_score), -m.cv_score))
    pool = candidates[:n_best] + _baseline_pool(result, data)
    chosen = select([m.oof for m in pool], _score_of(scorer, data.y_search, classes), size,
                    max_init)  # fmt: skip
    picked = [k for k in np.flatnonzero(chosen.weights)]
    members = _fitted_members(result, data, [pool[k] for k in picked])
    kind = EnsembleClassifier if classifier else EnsembleRegressor
    est = kind(estimators=[_unfitted(result, data, pool[k]) for k in picked],
               weights=chosen.weights[picked].tolist())  # fmt: skip
    est.estimators_, est.names_ = members, [pool[k].name for k in picked]
    if classifier:
        est.classes_ = classes
    result.ensemble_ = est
    result.ensemble_weights_ = pd.DataFrame(
        {"weight": chosen.weights[picked], "cv_score": [pool[k].cv_score for k in picked],
         "row": [pool[k].row for k in picked]}, index=pd.Index(est.names_, name="model"),
    )  # fmt: skip
    result.ensemble_scores_ = _comparison(
        result, data, scorer, est, chosen.trajectory[-1], n_bootstrap, random_state
    )
    logger.info("ensemble of %d models in %.1f s", len(picked), time.perf_counter() - start)
    return est
