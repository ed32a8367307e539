"""Turn whatever the user hands us into one normalized :class:`LoadedResult`."""

import logging
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import (
    BASELINES_ATTR,
    CURVE_COLUMNS,
    SCORING_ATTR,
    TEST_TRAIN_RATIO_ATTR,
    curves_from_study,
    cv_results_from_study,
)
from tunekit.report._nested import nested_rows

__all__ = ["LoadedResult", "baseline_scores", "is_study", "resolve"]

logger = logging.getLogger("tunekit.report")


@dataclass
class LoadedResult:
    """A search result read back from disk or normalized from another object.

    It quacks like tunekit's ``SearchResult`` for reporting: every function
    of :mod:`tunekit.report` accepts it.

    Attributes
    ----------
    cv_results_ : dict
        scikit-learn's ``cv_results_`` schema plus tunekit's optional extras.
    study_ : optuna.study.Study or None
        The study behind the result, when there is one.
    histories_ : dict of int to dict
        Per-epoch Keras histories by candidate index (may be empty).
    strategy : str or None
        ``"grid"``, ``"random"``, ``"halving"``, ``"optuna"``, or a class name.
    scoring : str or None
        Name of the scorer; scores are always "higher is better".
    n_splits_ : int or None
        Number of CV splits (all repeats included).
    test_train_ratio_ : float or None
        ``n_test / n_train`` of one fold, for the corrected t-test.
    wall_time_ : float or None
        Seconds the search took.
    n_fits_ : int or None
        Fits done.
    n_epochs_ : int or None
        Epochs trained in total.
    source : str or None
        Where it was read from, with any password masked.
    nested_ : list of dict or None
        Nested cross-validation's outer folds (:data:`tunekit.report._nested.NESTED_KEYS`).
    baselines_ : dict or None
        Baselines scored on the same folds and held-out set, in
        ``cv_results_``'s schema with their names under ``baseline``.
    epoch_curves_ : pandas.DataFrame or None
        Per-epoch curves of every fold (columns
        :data:`tunekit.record.CURVE_COLUMNS`), when recorded.
    """

    cv_results_: dict
    study_: Any = None
    histories_: dict = field(default_factory=dict)
    strategy: str | None = None
    scoring: str | None = None
    n_splits_: int | None = None
    test_train_ratio_: float | None = None
    wall_time_: float | None = None
    n_fits_: int | None = None
    n_epochs_: int | None = None
    source: str | None = None
    metric: str = "score"
    test_train_ratio_source: str | None = None
    baselines_: dict | None = None
    nested_: list | None = None
    epoch_curves_: pd.DataFrame | None = None


def is_study(obj: Any) -> bool:
    """Whether ``obj`` is an Optuna study (checked without importing Optuna)."""
    module = type(obj).__module__ or ""
    return module.startswith("optuna") and hasattr(obj, "get_trials")


def _ratio_from_cv(cv: Any) -> float | None:
    """``n_test / n_train`` of one split of a scikit-learn ``cv`` argument, if knowable."""
    if cv is None:
        return 1 / 4  # scikit-learn's default 5-fold
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return 1 / (int(cv) - 1) if cv > 1 else None
    cvargs = getattr(cv, "cvargs", None)
    if isinstance(cvargs, Mapping):  # RepeatedKFold, RepeatedStratifiedKFold
        k = cvargs.get("n_splits", 5)
        return 1 / (k - 1) if k > 1 else None
    test_size = getattr(cv, "test_size", None)
    if hasattr(cv, "train_size") and isinstance(test_size, float):  # ShuffleSplit family
        train_size = getattr(cv, "train_size", None)
        train = train_size if isinstance(train_size, float) else 1 - test_size
        return test_size / train if train > 0 else None
    if type(cv).__name__ in {"TimeSeriesSplit", "PredefinedSplit", "LeaveOneOut", "LeavePOut"}:
        return None
    k = getattr(cv, "n_splits", None)
    if isinstance(k, numbers.Integral) and k > 1:
        return 1 / (k - 1)
    return None


def _scoring_name(search: Any, metric: str) -> str:
    if metric != "score":
        return metric
    scoring = getattr(search, "scoring", None)
    if isinstance(scoring, str):
        return scoring
    if scoring is None:
        estimator = getattr(search, "estimator", None)
        try:
            from sklearn.base import is_classifier, is_regressor

            if estimator is not None and is_classifier(estimator):
                return "accuracy"
            if estimator is not None and is_regressor(estimator):
                return "r2"
        except Exception:
            pass
    return "score"


def _pick_metric(cv: Mapping, search: Any, metric: str | None) -> str:
    available = sorted(k[len("mean_test_") :] for k in cv if k.startswith("mean_test_"))
    if metric is not None:
        if metric not in available:
            raise ReportError(
                f"metric must name a scorer of the search; got metric={metric!r}, "
                f"available: {available}"
            )
        return metric
    if "score" in available:
        return "score"
    refit = getattr(search, "refit", None)
    if isinstance(refit, str) and refit in available:
        return refit
    if len(available) == 1:
        return available[0]
    raise ReportError(
        "cv_results_ needs 'mean_test_score' or one scorer to rank by; this search has "
        f"several scorers {available}: pass metric=NAME (one of them)"
    )


def _count_splits(cv: Mapping, metric: str) -> int:
    n = 0
    while f"split{n}_test_{metric}" in cv:
        n += 1
    return n


def _from_cv_frame(frame: pd.DataFrame) -> dict:
    """``pandas.DataFrame(cv_results_)`` back to a dict."""
    if "mean_test_score" not in frame.columns and not any(
        str(c).startswith("mean_test_") for c in frame.columns
    ):
        raise ReportError(
            "a DataFrame must be a tunekit leaderboard (columns 'rank' and "
            "'mean_val_score') or pandas.DataFrame(cv_results_) (column "
            f"'mean_test_score'); got columns {list(frame.columns)[:8]}"
        )
    cv = {key: frame[key].to_numpy() for key in frame.columns}
    if "params" in cv:
        cv["params"] = list(cv["params"])
    return cv


def resolve(obj: Any, metric: str | None = None) -> LoadedResult:
    """Normalize a result, fitted ``*SearchCV``, study or ``cv_results_`` dict.

    Parameters
    ----------
    obj : object
        Anything with ``cv_results_``, an Optuna study, a :class:`LoadedResult`,
        a ``cv_results_`` dict or ``pandas.DataFrame(cv_results_)``.
    metric : str, default=None
        Scorer to rank by in multi-metric searches.

    Returns
    -------
    result : LoadedResult
    """
    if isinstance(obj, LoadedResult):
        if metric is not None and metric != obj.metric:
            chosen = _pick_metric(obj.cv_results_, obj, metric)
            return LoadedResult(**{**obj.__dict__, "metric": chosen, "scoring": chosen})
        return obj
    if is_study(obj):
        return _from_study(obj)
    if isinstance(obj, pd.DataFrame):
        obj = _from_cv_frame(obj)
    if isinstance(obj, Mapping):
        return _from_cv_results(obj, metric)
    return _from_search(obj, metric)


def _from_study(study: Any) -> LoadedResult:
    cv = cv_results_from_study(study)
    attrs = dict(getattr(study, "user_attrs", {}) or {})
    wall = None
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if starts and ends:
        wall = max((max(ends) - min(starts)).total_seconds(), 0.0)
    ratio = attrs.get(TEST_TRAIN_RATIO_ATTR)
    return LoadedResult(
        cv_results_=cv,
        study_=study,
        strategy="optuna",
        scoring=attrs.get(SCORING_ATTR) or "objective",
        n_splits_=_count_splits(cv, "score"),
        test_train_ratio_=ratio,
        test_train_ratio_source="study user_attrs" if ratio else None,
        wall_time_=wall,
        source=f"study {getattr(study, 'study_name', '?')!r}",
        baselines_=baseline_scores(attrs.get(BASELINES_ATTR)),
        epoch_curves_=_curves(curves_from_study(study)),
    )


def _from_cv_results(cv: Mapping, metric: str | None) -> LoadedResult:
    if "params" not in cv:
        raise ReportError(
            "a cv_results_ dict needs the key 'params' (one dict per candidate); "
            f"got keys {sorted(cv)[:8]}"
        )
    chosen = _pick_metric(cv, None, metric)
    return LoadedResult(
        cv_results_=dict(cv),
        scoring=chosen if chosen != "score" else "score",
        n_splits_=_count_splits(cv, chosen),
        metric=chosen,
    )


def _from_search(obj: Any, metric: str | None) -> LoadedResult:
    """A tunekit result or a fitted ``*SearchCV``: anything with ``cv_results_``."""
    cv = getattr(obj, "cv_results_", None)
    if not isinstance(cv, Mapping):
        raise ReportError(
            "leaderboard() reads a tunekit search result, a fitted scikit-learn *SearchCV "
            "(anything with cv_results_), an optuna.Study, a cv_results_ dict or a "
            f"LoadedResult from tunekit.report.load(); got {type(obj).__name__}. "
            "If this is a SearchCV, call .fit(X, y) first"
        )
    search = getattr(obj, "search_", None)
    if search is None:
        search = obj
    chosen = _pick_metric(cv, search, metric)
    scoring = getattr(obj, "scoring", None)
    if not isinstance(scoring, str) or chosen != "score":
        scoring = _scoring_name(search, chosen)
    n_splits = getattr(obj, "n_splits_", None) or _count_splits(cv, chosen)
    ratio = getattr(obj, "test_train_ratio_", None)
    ratio_source = "result"
    if ratio is None and hasattr(search, "cv"):
        ratio = _ratio_from_cv(getattr(search, "cv", None))
        ratio_source = "inferred from cv"
    histories = getattr(obj, "histories_", None)
    strategy = getattr(obj, "strategy", None)
    if not isinstance(strategy, str):
        strategy = type(obj).__name__
    return LoadedResult(
        cv_results_=dict(cv),
        study_=getattr(obj, "study_", None),
        histories_=dict(histories) if isinstance(histories, Mapping) else {},
        strategy=strategy,
        scoring=scoring,
        n_splits_=int(n_splits) if n_splits else None,
        test_train_ratio_=float(ratio) if ratio is not None else None,
        wall_time_=_maybe_float(getattr(obj, "wall_time_", None)),
        n_fits_=_maybe_int(getattr(obj, "n_fits_", None)),
        n_epochs_=_maybe_int(getattr(obj, "n_epochs_", None)),
        metric=chosen,
        test_train_ratio_source=ratio_source if ratio is not None else None,
        baselines_=baseline_scores(getattr(obj, "baselines_", None)),
        nested_=nested_rows(getattr(obj, "nested_", None)),
        epoch_curves_=_curves(getattr(obj, "epoch_curves_", None)),
    )


def _curves(frame: Any) -> pd.DataFrame | None:
    """A search's ``epoch_curves_`` when it is a non-empty frame of the curve columns."""
    if isinstance(frame, pd.DataFrame) and len(frame) and set(CURVE_COLUMNS) <= set(frame):
        return frame
    return None


def _maybe_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _maybe_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def baseline_scores(raw: Any) -> dict | None:
    """Baselines' scores as float arrays (from a result, a study's attributes or JSON).

    Anything without a ``baseline`` list of names and a ``params`` list of the
    same length is ignored (``None``): baselines are context, never a reason
    for a report to fail.
    """
    if not isinstance(raw, Mapping):
        return None
    names = raw.get("baseline")
    if not isinstance(names, list | tuple | np.ndarray) or not len(names):
        return None
    out: dict[str, Any] = {"baseline": [str(n) for n in names], "params": [{} for _ in names]}
    for key, value in raw.items():
        if key in out:
            continue
        if isinstance(value, list | tuple | np.ndarray) and len(value) == len(names):
            out[key] = np.array([np.nan if v is None else v for v in value], dtype=np.float64)
        elif key == "seconds":
            out[key] = _maybe_float(value)
    return out
