"""The one results schema: scikit-learn's ``cv_results_`` plus tunekit's extras.

Reports read only these keys. Besides scikit-learn's own (``params``,
``param_<name>``, ``split{i}_test_score``, ``mean_test_score``,
``std_test_score``, ``rank_test_score``, the ``*_train_score`` keys and the
fit/score times), a tunekit search may add arrays of length ``n_candidates``:

``state``
    ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"``.
``failure_reason``
    Why a candidate failed, ``""`` when it did not.
``heldout_test_score``
    Score on the held-out test set, NaN where the candidate was not refit.
``split{i}_best_epoch``
    1-based epoch whose weights early stopping kept, NaN when it did not run.
``split{i}_n_epochs``
    Epochs actually trained in fold ``i``.
``trial_number``
    The Optuna trial behind each candidate (studies only).

:func:`cv_results_from_study` builds that dict from an Optuna study that
tunekit ran; tunekit's Optuna strategy reuses it for its own ``cv_results_``.
"""

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.ma import MaskedArray

from tunekit.report._errors import ReportError

__all__ = [
    "COMPLETE",
    "FAIL",
    "PRUNED",
    "STATES",
    "cv_results_from_study",
    "rank_like_sklearn",
]

COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAIL = "FAIL"
#: ``state`` of a leaderboard row that is a baseline, not a candidate.
BASELINE = "BASELINE"
STATES = (COMPLETE, PRUNED, FAIL)


def rank_like_sklearn(means: np.ndarray) -> np.ndarray:
    """Rank mean scores the way scikit-learn's ``_format_results`` does.

    Higher is better; ties share the smallest rank (``method="min"``). NaN
    means (failed candidates) are ranked below the worst finite mean, tied
    with each other; when every mean is NaN, all ranks are 1.

    Parameters
    ----------
    means : ndarray of shape (n_candidates,)
        Mean test scores, NaN for failed candidates.

    Returns
    -------
    ranks : ndarray of shape (n_candidates,), dtype int32
        1 for the best candidate.
    """
    from scipy.stats import rankdata

    means = np.asarray(means, dtype=np.float64)
    if means.size == 0 or np.isnan(means).all():
        return np.ones(means.shape, dtype=np.int32)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(np.int32, copy=False)


def _as_param_value(value: Any) -> Any:
    """JSON decodes tuples as lists: turn lists back into (nested) tuples."""
    if isinstance(value, list):
        return tuple(_as_param_value(v) for v in value)
    return value


def _param_arrays(candidate_params: Sequence[Mapping[str, Any]]) -> dict[str, MaskedArray]:
    """``param_<name>`` masked arrays, as ``BaseSearchCV._format_results`` builds them."""
    n_candidates = len(candidate_params)
    by_name: dict[str, dict[int, Any]] = {}
    for index, params in enumerate(candidate_params):
        for name, value in params.items():
            by_name.setdefault(f"param_{name}", {})[index] = value
    arrays = {}
    for key, values in by_name.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inferred = np.array(list(values.values()))
        except ValueError:  # ragged sequences
            dtype = np.dtype(object)
        else:
            dtype = inferred.dtype if inferred.dtype.kind != "U" and inferred.ndim == 1 else object
        array = MaskedArray(np.empty(n_candidates, dtype=dtype), mask=True)
        for index, value in values.items():
            array[index] = value
        arrays[key] = array
    return arrays


def _float_list(values: Any, length: int) -> np.ndarray:
    """A list of numbers (None meaning missing) padded with NaN to ``length``."""
    out = np.full(length, np.nan)
    if values is None:
        return out
    if isinstance(values, numbers.Real):
        values = [values]
    for i, value in enumerate(list(values)[:length]):
        if value is None:
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _nan_stat(func, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(rows, axis=1)


def cv_results_from_study(study: Any) -> dict[str, Any]:
    """Convert an Optuna study that tunekit ran into a ``cv_results_`` dict.

    Each finished trial becomes one candidate: COMPLETE, PRUNED and FAIL
    trials are kept (in trial-number order), RUNNING and WAITING trials are
    skipped. Per-fold scores come from the trial's ``user_attrs``
    (``cv_test_scores``, ``cv_train_scores``, ``fit_times``, ``score_times``,
    ``best_epochs``, ``n_epochs``, ``heldout_test_score``, ``failure_reason``,
    ``params``); folds a pruned trial never ran are NaN.

    Parameters
    ----------
    study : optuna.study.Study
        A single-objective study. Its ``user_attrs`` may give ``n_splits``.
        A study not run by tunekit (no ``cv_test_scores``) is accepted too:
        each trial's value is then its only "fold", negated when the study
        minimizes, so that higher is better as in scikit-learn.

    Returns
    -------
    cv_results : dict
        scikit-learn's schema (``params``, ``param_<name>`` masked arrays,
        ``split{i}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, train scores when recorded, ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time``) plus
        ``state``, ``failure_reason``, ``heldout_test_score``,
        ``trial_number`` and, when recorded, ``split{i}_best_epoch`` and
        ``split{i}_n_epochs``.

    Raises
    ------
    ReportError
        If the study has several objectives.

    Notes
    -----
    Means follow scikit-learn's rule: a candidate that is not COMPLETE (pruned
    or failed, whatever folds it scored) has a NaN ``mean_test_score`` and is
    ranked below every complete candidate; its fold scores are kept. A trial
    that Optuna recorded as COMPLETE with a non-finite value or fold score
    (Optuna stores ``inf`` as COMPLETE) is reported as FAIL with the reason
    ``"non-finite score"``; its non-finite fold scores become NaN. Lists in
    ``user_attrs["params"]`` become tuples, since JSON cannot store tuples
    such as ``hidden=(16, 16)``.

    Examples
    --------
    >>> import optuna
    >>> from tunekit.report import cv_results_from_study
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.add_trial(optuna.trial.create_trial(
    ...     params={"C": 1.0},
    ...     distributions={"C": optuna.distributions.FloatDistribution(0.1, 10)},
    ...     value=0.8, user_attrs={"cv_test_scores": [0.7, 0.9]}))
    >>> cv_results_from_study(study)["mean_test_score"]
    array([0.8])
    """
    directions = getattr(study, "directions", None)
    if directions is not None and len(directions) > 1:
        raise ReportError(
            f"a leaderboard ranks one score, but study {getattr(study, 'study_name', '?')!r} "
            f"has {len(directions)} objectives; report a single-objective study"
        )
    sign = 1.0
    if directions is not None and directions[0].name == "MINIMIZE":
        sign = -1.0

    wanted = {COMPLETE, PRUNED, FAIL}
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in wanted]
    trials.sort(key=lambda t: t.number)

    user_attrs = dict(getattr(study, "user_attrs", {}) or {})
    declared = user_attrs.get("n_splits")
    longest = max((len(t.user_attrs.get("cv_test_scores") or []) for t in trials), default=0)
    n_splits = max(int(declared or 0), longest) or 1

    n = len(trials)
    params: list[dict[str, Any]] = []
    test = np.full((n, n_splits), np.nan)
    train = np.full((n, n_splits), np.nan)
    fit = np.full((n, n_splits), np.nan)
    score = np.full((n, n_splits), np.nan)
    best_epochs = np.full((n, n_splits), np.nan)
    n_epochs = np.full((n, n_splits), np.nan)
    states = np.empty(n, dtype=object)
    reasons = np.empty(n, dtype=object)
    heldout = np.full(n, np.nan)
    numbers_ = np.empty(n, dtype=np.int64)
    has_train = has_best = has_epochs = False

    for row, trial in enumerate(trials):
        attrs = trial.user_attrs
        raw_params = attrs.get("params")
        if not isinstance(raw_params, Mapping):
            raw_params = trial.params
        params.append({k: _as_param_value(v) for k, v in raw_params.items()})
        numbers_[row] = trial.number
        state = trial.state.name
        reason = str(attrs.get("failure_reason") or "")

        if "cv_test_scores" in attrs:
            test[row] = _float_list(attrs.get("cv_test_scores"), n_splits)
        elif trial.value is not None:
            test[row, 0] = sign * float(trial.value)
        if any(v is not None for v in attrs.get("cv_train_scores") or []):
            has_train = True  # scikit-learn has train keys only with return_train_score
            train[row] = _float_list(attrs.get("cv_train_scores"), n_splits)
        fit[row] = _float_list(attrs.get("fit_times"), n_splits)
        score[row] = _float_list(attrs.get("score_times"), n_splits)
        if attrs.get("best_epochs") is not None:
            has_best = True
            best_epochs[row] = _float_list(attrs.get("best_epochs"), n_splits)
        if attrs.get("n_epochs") is not None:
            has_epochs = True
            n_epochs[row] = _float_list(attrs.get("n_epochs"), n_splits)
        if attrs.get("heldout_test_score") is not None:
            heldout[row] = float(attrs["heldout_test_score"])

        value_bad = trial.value is not None and not math.isfinite(trial.value)
        if np.isinf(test[row]).any() or (state == COMPLETE and value_bad):
            state = FAIL
            reason = reason or "non-finite score"
        test[row][~np.isfinite(test[row])] = np.nan
        if state == FAIL and not reason:
            reason = "trial failed"
        states[row] = state
        reasons[row] = reason

    results: dict[str, Any] = {}
    for key, times in (("fit_time", fit), ("score_time", score)):
        results[f"mean_{key}"] = _nan_stat(np.nanmean, times)
        results[f"std_{key}"] = _nan_stat(np.nanstd, times)
    results.update(_param_arrays(params))
    results["params"] = params
    for i in range(n_splits):
        results[f"split{i}_test_score"] = test[:, i].copy()
    complete = states == COMPLETE
    means = np.where(complete, test.mean(axis=1), np.nan) if n else np.empty(0)
    results["mean_test_score"] = means
    results["std_test_score"] = np.where(complete, test.std(axis=1), np.nan) if n else np.empty(0)
    results["rank_test_score"] = rank_like_sklearn(means)
    if has_train:
        for i in range(n_splits):
            results[f"split{i}_train_score"] = train[:, i].copy()
        results["mean_train_score"] = train.mean(axis=1)
        results["std_train_score"] = train.std(axis=1)
    results["state"] = states
    results["failure_reason"] = reasons
    results["heldout_test_score"] = heldout
    results["trial_number"] = numbers_
    if has_best:
        for i in range(n_splits):
            results[f"split{i}_best_epoch"] = best_epochs[:, i].copy()
    if has_epochs:
        for i in range(n_splits):
            results[f"split{i}_n_epochs"] = n_epochs[:, i].copy()
    return results
