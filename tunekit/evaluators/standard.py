"""The standard evaluator: clone, set_params, fit, score, one (candidate, fold) at a time.

It follows scikit-learn's ``_fit_and_score`` semantics (``error_score``,
per-fold ``fit_params``, train scores) and adds what Keras models allow:
a callback scores the fold's test part after every epoch (the per-epoch
curves), and candidates that differ only in ``epochs`` are read from one
run to the largest count (see :func:`~tunekit.evaluators._base.epoch_families`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
import traceback

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples

from tunekit.evaluators._base import (
    Evaluation,
    Evaluator,
    Family,
    Fold,
    Scoring,
    _curve_point,
    epoch_families,
    fail_entry,
    final_estimator,
    main_score,
    score_entry,
)

__all__ = ["StandardEvaluator", "epoch_callback_key", "is_keras_estimator"]


def is_keras_estimator(estimator) -> bool:
    """Whether ``estimator`` (or a pipeline's last step) is a tunekit Keras estimator.

    Looked up without importing TensorFlow: a process that never loaded
    :mod:`tunekit.estimators` has no such estimator.
    """
    module = sys.modules.get("tunekit.estimators")
    base = getattr(module, "KerasEstimator", None)
    return base is not None and isinstance(final_estimator(estimator), base)


def epoch_callback_key(estimator) -> str:
    """The ``fit`` argument that hands Keras callbacks to the (last step's) model."""
    names = []
    while hasattr(estimator, "steps"):
        name, estimator = estimator.steps[-1]
        names.append(name)
    return "__".join([*names, "callbacks"])


@contextlib.contextmanager
def _direct_predict(estimator):
    """Within the block, the Keras model predicts with direct calls, not ``model.predict``.

    ``model.predict`` builds a data pipeline per call, which costs more than a
    small model's whole epoch; scoring after every epoch calls the model
    directly instead (in chunks, in inference mode: the same numbers).
    """
    model = getattr(final_estimator(estimator), "model_", None)
    if model is None:
        yield
        return
    from keras import ops

    keras_predict = model.predict

    def predict(x, batch_size=None, **kwargs):
        if sp.issparse(x):  # Keras's own pipeline takes sparse X a batch at a time
            return keras_predict(x, batch_size=batch_size, **kwargs)
        size = 4096
        parts = [
            ops.convert_to_numpy(model(x[i : i + size], training=False))
            for i in range(0, len(x), size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0,))

    model.predict = predict
    try:
        yield
    finally:
        del model.predict


@functools.cache
def _recorder_class():
    """The Keras callback class, defined on first use so that Keras loads lazily."""
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        """Scores a fold's test part after each epoch; full entries at ``wanted`` epochs."""

        def __init__(self, est, scoring: Scoring, fold: Fold, wanted, curves):
            super().__init__()
            self.est, self.scoring, self.fold = est, scoring, fold
            self.X_test = _safe_indexing(fold.X, fold.test)
            self.y_test = _safe_indexing(fold.y, fold.test)
            self.wanted, self.curves = set(wanted), curves
            self.snapshots, self.rows = {}, []
            self.scoring_time = 0.0
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            tick = time.perf_counter()
            n = epoch + 1
            score = math.nan
            with _direct_predict(self.est):
                score = self._score(n, tick)
            if self.curves:
                self.rows.append(
                    {
                        "epoch": n,
                        "train_loss": float(logs.get("loss", math.nan)),
                        "test_score": score,
                        "val_loss": float(logs.get("val_loss", math.nan)),
                    }
                )
            self.scoring_time += time.perf_counter() - tick

        def _score(self, n, tick):
            score = math.nan
            if n in self.wanted:
                fit_time = tick - self.start - self.scoring_time
                entry = score_entry(
                    self.scoring, self.est, self.fold, fit_time, best_epoch=n, n_epochs=n,
                    snapshot=True,
                )  # fmt: skip
                self.snapshots[n] = entry
                score = main_score(entry["test_scores"])
            elif self.curves:
                score = _curve_point(self.scoring.scorers, self.est, self.X_test, self.y_test)
            return score

    return EpochRecorder


def _fold_params(fit_params: dict, X, train) -> dict:
    """Index per-sample ``fit`` arguments by the fold's training rows."""
    n = _num_samples(X)
    out = {}
    for key, value in fit_params.items():
        try:
            per_sample = _num_samples(value) == n
        except TypeError:
            per_sample = False
        out[key] = _safe_indexing(value, train) if per_sample else value
    return out


def _fit_family(est, params, family, fold: Fold, fit_params, scoring: Scoring, curves: bool):
    """Train ``family``'s leader on one fold; entries for every member, curve rows."""
    X, y, train, test = fold.X, fold.y, fold.train, fold.test
    est = est.set_params(**clone(params, safe=False))
    kwargs = _fold_params(fit_params, X, train)
    lead_epochs = family.epochs[family.leader]
    wanted = {e for c, e in family.epochs.items() if c != family.leader and e != lead_epochs}
    recorder = None
    if curves or wanted:
        recorder = _recorder_class()(est, scoring, fold, wanted, curves)
        key = epoch_callback_key(est)
        kwargs[key] = [*(kwargs.get(key) or []), recorder]
    start = time.perf_counter()
    try:
        est.fit(_safe_indexing(X, train), _safe_indexing(y, train), **kwargs)
        failure = None
    except Exception:
        if isinstance(scoring.error_score, str) and scoring.error_score == "raise":
            raise
        failure = traceback.format_exc()
    fit_time = time.perf_counter() - start - (recorder.scoring_time if recorder else 0.0)
    final = final_estimator(est)
    entries = {}
    for c, epochs in family.epochs.items():
        if c == family.leader or epochs == lead_epochs:
            if failure is not None:
                entries[c] = fail_entry(scoring, len(test), fit_time, failure)
                continue
            n_epochs = getattr(final, "n_epochs_", None)
            best = getattr(final, "best_epoch_", None)
            entries[c] = score_entry(
                scoring,
                est,
                fold,
                fit_time,
                best_epoch=best if best is not None else n_epochs,
                n_epochs=n_epochs,
            )
        elif recorder is not None and epochs in recorder.snapshots:
            entries[c] = recorder.snapshots[epochs]
        else:  # the run failed before reaching this candidate's epochs
            entries[c] = fail_entry(scoring, len(test), fit_time, failure or "")
    rows = recorder.rows if recorder is not None else []
    trained = getattr(final, "n_epochs_", None) if failure is None else None
    if trained is None and recorder is not None:
        trained = len(recorder.rows) or None
    return entries, rows, trained


def _return_as() -> str:
    """``"generator"`` (progress as fits come back) where the active joblib backend has it.

    Ray's joblib backend has not: its results come back as a list.
    """
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return "generator" if getattr(backend, "supports_return_generator", False) else "list"


class StandardEvaluator(Evaluator):
    """Fit and score each (candidate, fold) the way scikit-learn's searches do.

    Parameters
    ----------
    n_jobs : int, default=1
        Parallel fits through joblib (its active backend: processes, Dask,
        Ray). Progress is counted here as fits come back.
    pre_dispatch : int or str, default="2*n_jobs"
        As for scikit-learn's searches.
    **kwargs
        :class:`~tunekit.evaluators.Evaluator`'s settings.
    """

    name = "sklearn"

    def __init__(self, *, n_jobs: int | None = 1, pre_dispatch="2*n_jobs", **kwargs):
        super().__init__(**kwargs)
        self.n_jobs = n_jobs
        self.pre_dispatch = pre_dispatch

    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None):
        fit_params = dict(fit_params or {})
        keras = is_keras_estimator(estimator)
        if keras:
            families = epoch_families(estimator, candidates)
        else:
            families = [Family(c, {c: None}) for c in range(len(candidates))]
        scoring, curves = self.scoring(scorers), self.epoch_curves and keras
        tasks = [(family, s) for family in families for s in range(len(splits))]
        parallel = Parallel(
            n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch, return_as=_return_as()
        )
        results = parallel(
            delayed(_fit_family)(
                clone(estimator),
                candidates[family.leader],
                family,
                Fold(X, y, *splits[s]),
                fit_params,
                scoring,
                curves,
            )
            for family, s in tasks
        )
        evaluation = Evaluation(
            entries=[[None] * len(splits) for _ in candidates],
            engines=[self.name] * len(candidates),
        )
        for (family, s), (entries, rows, trained) in zip(tasks, results, strict=True):
            for c, entry in entries.items():
                evaluation.entries[c][s] = entry
                limit = family.epochs[c]
                evaluation.curves.extend(
                    {"candidate": c, "fold": s, **row}
                    for row in rows
                    if limit is None or row["epoch"] <= limit
                )
            evaluation.n_trained += 1
            evaluation.n_epochs += int(trained or 0)
            self._tick(len(entries))
        return evaluation
