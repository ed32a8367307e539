"""The one reader of trial records: a trial, a study's cv_results_, curves, predictions."""

from __future__ import annotations

import base64
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.ma import MaskedArray

from tunekit.exceptions import ReportError
from tunekit.record.keys import (
    BEST_EPOCHS,
    COMPLETE,
    CURVE_COLUMNS,
    CURVE_VALUES,
    CURVES,
    CV_TEST_SCORES,
    CV_TRAIN_SCORES,
    FAIL,
    FAILURE_REASON,
    FAILURE_TRACEBACK,
    FIT_TIMES,
    HELDOUT_TEST_SCORE,
    N_EPOCHS,
    N_SPLITS_ATTR,
    OOF_PREDICTIONS,
    OOF_TARGET_ATTR,
    PARAMS,
    SCORE_TIMES,
    STATES,
    param_value,
)
from tunekit.record.layout import check_readable


def read_oof_predictions(trial: Any) -> np.ndarray | None:
    """A trial's (or its ``user_attrs``') ``oof_predictions`` as float32 (``None``: none);
    ``ReportError`` if the value is not an array :func:`encode_oof_predictions` wrote."""
    attrs = trial if isinstance(trial, Mapping) else trial.user_attrs
    stored = attrs.get(OOF_PREDICTIONS)
    if stored is None:
        return None
    try:
        data = base64.b64decode(stored["data"], validate=True)
        return np.frombuffer(data, "<f4").reshape([int(n) for n in stored["shape"]]).copy()
    except (KeyError, TypeError, ValueError) as err:
        raise ReportError(
            f"the trial's {OOF_PREDICTIONS!r} attribute is not a base64 float32 array with a "
            f"shape ({type(err).__name__}: {err})"
        ) from None


def read_oof_target(study: Any) -> np.ndarray | None:
    """The searched rows' targets a study stored (``None`` when it stored none)."""
    stored = dict(getattr(study, "user_attrs", {}) or {}).get(OOF_TARGET_ATTR)
    values = read_oof_predictions({OOF_PREDICTIONS: stored}) if stored else None
    if values is None or stored.get("classes") is None:
        return values
    return np.asarray(stored["classes"])[values.astype(np.intp)]


def oof_predictions_of(trials: Sequence[Any], n_rows: int | None = None) -> list | None:
    """Every trial's out-of-fold predictions (``None``: none stored), NaN for a trial that
    is not COMPLETE or stored them over other than ``n_rows`` rows (``None``: the first's).
    """
    stored = [read_oof_predictions(t) if t.state.name == COMPLETE else None for t in trials]
    known = [a for a in stored if a is not None and (n_rows is None or len(a) == n_rows)]
    if not known:
        return None
    shape = known[0].shape
    return [a if a is not None and a.shape == shape else np.full(shape, np.nan, "f4")
            for a in stored]  # fmt: skip


def failed_in_the_model(trial: Any) -> bool:
    """Whether a FAIL trial failed in the candidate itself, not because it was stopped.

    A candidate failed when a fit or a score raised (the record keeps the
    traceback) or a fold's score was not finite (the record keeps None for it).
    A trial that a signal interrupted or whose worker died recorded neither:
    only the folds it finished, with their scores. Decided from the record's
    fields, never from the wording of its reason.
    """
    attrs = trial.user_attrs
    if FAILURE_TRACEBACK in attrs:
        return True
    return any(score is None for score in attrs.get(CV_TEST_SCORES) or ())


# ------------------------------------------------------------------ reader
@dataclass
class TrialRow:
    """One finished trial, read back: a ``cv_results_`` row.

    Per-fold arrays have ``n_splits`` entries, NaN for folds never run; the
    ``has_*`` flags say whether the trial recorded that kind at all.
    """

    number: int
    params: dict
    state: str
    reason: str
    test: np.ndarray
    train: np.ndarray
    fit: np.ndarray
    score: np.ndarray
    best_epochs: np.ndarray
    n_epochs: np.ndarray
    heldout: float
    has_train: bool
    has_best: bool
    has_epochs: bool


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


def read_trial(trial: Any, n_splits: int, sign: float = 1.0) -> TrialRow:
    """Read one finished trial's record.

    Parameters
    ----------
    trial : optuna.trial.FrozenTrial
        A COMPLETE, PRUNED or FAIL trial.
    n_splits : int
        Folds of the study.
    sign : float, default=1.0
        ``-1.0`` for a minimized study: a trial without ``cv_test_scores``
        (not run by tunekit) scores its value times ``sign`` in its first fold.

    Returns
    -------
    row : TrialRow
        A COMPLETE trial with a non-finite value or fold score becomes FAIL
        with the reason ``"non-finite score"``; its non-finite fold scores
        become NaN. A FAIL trial without a reason gets ``"trial failed"``.
    """
    attrs = trial.user_attrs
    raw_params = attrs.get(PARAMS)
    if not isinstance(raw_params, Mapping):
        raw_params = trial.params
    state = trial.state.name
    reason = str(attrs.get(FAILURE_REASON) or "")
    test = np.full(n_splits, np.nan)
    if CV_TEST_SCORES in attrs:
        test = _float_list(attrs.get(CV_TEST_SCORES), n_splits)
    elif trial.value is not None:
        test[0] = sign * float(trial.value)
    value_bad = trial.value is not None and not math.isfinite(trial.value)
    if np.isinf(test).any() or (state == COMPLETE and value_bad):
        state = FAIL
        reason = reason or "non-finite score"
    test[~np.isfinite(test)] = np.nan
    if state == FAIL and not reason:
        reason = "trial failed"
    heldout = attrs.get(HELDOUT_TEST_SCORE)
    return TrialRow(
        number=trial.number,
        params={k: param_value(v) for k, v in raw_params.items()},
        state=state,
        reason=reason,
        test=test,
        train=_float_list(attrs.get(CV_TRAIN_SCORES), n_splits),
        fit=_float_list(attrs.get(FIT_TIMES), n_splits),
        score=_float_list(attrs.get(SCORE_TIMES), n_splits),
        best_epochs=_float_list(attrs.get(BEST_EPOCHS), n_splits),
        n_epochs=_float_list(attrs.get(N_EPOCHS), n_splits),
        heldout=np.nan if heldout is None else float(heldout),
        # scikit-learn has train keys only with return_train_score
        has_train=any(v is not None for v in attrs.get(CV_TRAIN_SCORES) or []),
        has_best=attrs.get(BEST_EPOCHS) is not None,
        has_epochs=attrs.get(N_EPOCHS) is not None,
    )


# ------------------------------------------------------------ cv_results_
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
    from scipy.stats import rankdata  # SciPy: imported when a study is ranked

    means = np.asarray(means, dtype=np.float64)
    if means.size == 0 or np.isnan(means).all():
        return np.ones(means.shape, dtype=np.int32)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(np.int32, copy=False)


def param_arrays(candidate_params: Sequence[Mapping[str, Any]]) -> dict[str, MaskedArray]:
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


def fold_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """``split{i}_<name>`` columns from an ``(n_candidates, n_splits)`` array."""
    values = np.asarray(values, dtype=float)
    return {f"split{i}_{name}": values[:, i].copy() for i in range(values.shape[1])}


def _nan_stat(func, rows: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(rows, axis=1)


def _direction_sign(study: Any) -> float:
    """1.0 for a maximized study, -1.0 for a minimized one; refuses several objectives."""
    directions = getattr(study, "directions", None)
    if directions is not None and len(directions) > 1:
        raise ReportError(
            f"a leaderboard ranks one score, but study {getattr(study, 'study_name', '?')!r} "
            f"has {len(directions)} objectives; report a single-objective study"
        )
    if directions is not None and directions[0].name == "MINIMIZE":
        return -1.0
    return 1.0


def _finished_trials(study: Any) -> list:
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in STATES]
    return sorted(trials, key=lambda t: t.number)


def _count_splits(study: Any, trials: Iterable[Any]) -> int:
    declared = dict(getattr(study, "user_attrs", {}) or {}).get(N_SPLITS_ATTR)
    longest = max((len(t.user_attrs.get(CV_TEST_SCORES) or []) for t in trials), default=0)
    return max(int(declared or 0), longest) or 1


def _stack(rows: Sequence[TrialRow], field: str, n_splits: int) -> np.ndarray:
    if not rows:
        return np.full((0, n_splits), np.nan)
    return np.vstack([getattr(row, field) for row in rows])


def _rows_to_cv_results(rows: Sequence[TrialRow], n_splits: int) -> dict[str, Any]:
    """scikit-learn's ``cv_results_`` keys, then tunekit's, from the trials' rows."""
    n = len(rows)
    test, train = _stack(rows, "test", n_splits), _stack(rows, "train", n_splits)
    states = np.array([row.state for row in rows], dtype=object)
    results: dict[str, Any] = {}
    for key, field in (("fit_time", "fit"), ("score_time", "score")):
        times = _stack(rows, field, n_splits)
        results[f"mean_{key}"] = _nan_stat(np.nanmean, times)
        results[f"std_{key}"] = _nan_stat(np.nanstd, times)
    params = [row.params for row in rows]
    results.update(param_arrays(params))
    results["params"] = params
    results.update(fold_columns("test_score", test))
    # scikit-learn's rule: a candidate that is not COMPLETE has no mean and ranks last
    complete = states == COMPLETE
    means = np.where(complete, test.mean(axis=1), np.nan) if n else np.empty(0)
    results["mean_test_score"] = means
    results["std_test_score"] = np.where(complete, test.std(axis=1), np.nan) if n else np.empty(0)
    results["rank_test_score"] = rank_like_sklearn(means)
    if any(row.has_train for row in rows):
        results.update(fold_columns("train_score", train))
        results["mean_train_score"] = train.mean(axis=1)
        results["std_train_score"] = train.std(axis=1)
    results["state"] = states
    results["failure_reason"] = np.array([row.reason for row in rows], dtype=object)
    results["heldout_test_score"] = np.array([row.heldout for row in rows], dtype=float)
    results["trial_number"] = np.array([row.number for row in rows], dtype=np.int64)
    if any(row.has_best for row in rows):
        results.update(fold_columns("best_epoch", _stack(rows, "best_epochs", n_splits)))
    if any(row.has_epochs for row in rows):
        results.update(fold_columns("n_epochs", _stack(rows, "n_epochs", n_splits)))
    return results


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
    LayoutError
        If the study was written in a stored layout newer than this tunekit reads.

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
    check_readable(study)
    sign = _direction_sign(study)
    trials = _finished_trials(study)
    n_splits = _count_splits(study, trials)
    rows = [read_trial(trial, n_splits, sign) for trial in trials]
    return _rows_to_cv_results(rows, n_splits)


# ------------------------------------------------------------ per-epoch curves
def curves_rows(attrs: Mapping[str, Any], candidate: int) -> list[tuple]:
    """A trial's stored curves as ``(candidate, fold, epoch, *curves)`` rows, NaN where
    unreadable; none without ``epoch_curves`` (layout 1, no epochs)."""
    raw = attrs.get(CURVES)
    raw = raw if isinstance(raw, Mapping) else {}
    columns = [raw.get(name) if isinstance(raw.get(name), list) else [] for name in CURVE_VALUES]
    rows = []
    for fold in range(max(len(c) for c in columns)):
        per = [c[fold] if fold < len(c) and isinstance(c[fold], list) else [] for c in columns]
        for k in range(max(len(p) for p in per)):
            rows.append((candidate, fold, k + 1, *(_float_list(p[k : k + 1], 1)[0] for p in per)))
    return rows


def curves_from_study(study: Any) -> pd.DataFrame:
    """A study's stored per-epoch curves as a DataFrame of :data:`CURVE_COLUMNS`.

    The same frame as a search's ``epoch_curves_``: ``candidate`` is the trial's
    row in :func:`cv_results_from_study`; trials without curves (layout 1,
    estimators without epochs) add no rows, so the frame may be empty.
    """
    check_readable(study)
    rows = []
    for candidate, trial in enumerate(_finished_trials(study)):
        rows.extend(curves_rows(trial.user_attrs, candidate))
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return frame.astype({"candidate": np.int64, "fold": np.int64, "epoch": np.int64})
