"""The leaderboard: every candidate ranked by its honest out-of-sample score."""

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError
from tunekit.record import BASELINE, COMPLETE, FAIL, PRUNED, finite_or_none
from tunekit.report._nested import nested_summary
from tunekit.report._source import LoadedResult, resolve
from tunekit.report._stats import corrected_ttest, one_standard_error_pick, regularization_keys
from tunekit.report._table import Leaderboard

__all__ = [
    "STAT_COLUMNS",
    "baseline_rows",
    "baseline_summary",
    "candidate_rows",
    "compare",
    "is_leaderboard",
    "leaderboard",
]

logger = logging.getLogger("tunekit.report")

#: Columns of every leaderboard, after ``rank`` and the ``param_<name>`` columns.
STAT_COLUMNS = (
    "mean_val_score",
    "std_val_score",
    "se_val_score",
    "ci95_low",
    "ci95_high",
    "mean_train_score",
    "train_val_gap",
    "heldout_test_score",
    "median_best_epoch",
    "mean_fit_time",
    "n_folds",
    "n_failed_folds",
    "n_pruned_folds",
    "state",
    "delta_vs_best",
    "t_stat",
    "p_value",
    "tied_with_best",
    "one_se_pick",
    "failure_reason",
)
_STATE_ORDER = {COMPLETE: 0, PRUNED: 1, FAIL: 2}


def is_leaderboard(obj: Any) -> bool:
    """Whether ``obj`` is a DataFrame made by :func:`leaderboard`."""
    return isinstance(obj, pd.DataFrame) and {"rank", "mean_val_score", "state"} <= set(obj.columns)


def _floats(values: Any, n: int) -> np.ndarray:
    """A float array of length ``n`` from arrays, masked arrays or lists holding None."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, np.ma.MaskedArray):
        values = values.astype(object).filled(None)
    series = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce")
    out = series.to_numpy(dtype=np.float64, na_value=np.nan)
    if out.shape[0] != n:
        raise ReportError(
            f"every cv_results_ array must have one entry per candidate ({n}); got {out.shape[0]}"
        )
    return out


def _matrix(cv: Mapping, pattern: str, n: int, n_splits: int) -> np.ndarray | None:
    keys = [pattern.format(i) for i in range(n_splits)]
    if not keys or keys[0] not in cv:
        return None
    return np.column_stack([_floats(cv.get(k), n) if k in cv else np.full(n, np.nan) for k in keys])


def _row_stat(func: Callable, matrix: np.ndarray, **kwargs) -> np.ndarray:
    if matrix.shape[1] == 0:
        return np.full(matrix.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(matrix, axis=1, **kwargs)


def _param_column(values: list[Any]) -> pd.Series:
    present = [v for v in values if v is not None]
    numeric = present and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        for v in present
    )
    if numeric:
        if len(present) == len(values) and all(isinstance(v, int | np.integer) for v in present):
            return pd.Series(values, dtype=np.int64)
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return pd.Series(values, dtype=object)


def _states(cv: Mapping, test: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = test.shape[0]
    given = cv.get("state")
    reasons_given = cv.get("failure_reason")
    states = np.empty(n, dtype=object)
    reasons = np.empty(n, dtype=object)
    for i in range(n):
        state = str(given[i]).upper() if given is not None else None
        reason = "" if reasons_given is None else str(reasons_given[i] or "")
        if reason in {"nan", "None"}:
            reason = ""
        row = test[i]
        n_missing = int(np.isnan(row).sum())
        if state not in _STATE_ORDER:  # plain scikit-learn: judge by the scores
            state = COMPLETE
        if state == COMPLETE and (np.isinf(row).any() or np.isinf(means[i])):
            state, reason = FAIL, reason or "non-finite score"
        elif state == COMPLETE and (n_missing or not math.isfinite(means[i])):
            state = FAIL
            reason = reason or f"{n_missing} of {test.shape[1]} folds failed (NaN score)"
        if state == FAIL and not reason:
            reason = "failed"
        states[i] = state
        reasons[i] = reason
    if "iter" in cv:  # successive halving: earlier iterations used fewer resources
        iters = _floats(cv["iter"], n)
        early = (iters < np.nanmax(iters)) & (states == COMPLETE)
        states[early] = PRUNED
    return states, reasons


def _ranks(order_keys: list[tuple], states: np.ndarray) -> np.ndarray:
    """1-based ranks in sort order; equal keys and all failures share a rank."""
    ranks = np.zeros(len(order_keys), dtype=np.int64)
    previous = None
    current = 0
    for position, (row, key) in enumerate(order_keys):
        comparable = (key[0], key[1]) if states[row] != FAIL else (key[0],)
        if comparable != previous:
            current = position + 1
            previous = comparable
        ranks[row] = current
    return ranks


def _ratio(src: LoadedResult, given: float | None, n_splits: int) -> tuple[float, str]:
    if given is not None:
        return float(given), "given"
    if src.test_train_ratio_ is not None and math.isfinite(src.test_train_ratio_):
        return float(src.test_train_ratio_), src.test_train_ratio_source or "result"
    if n_splits > 1:
        logger.warning(
            "test_train_ratio unknown for %s: assuming plain %d-fold CV (n_test/n_train = "
            "1/%d); pass test_train_ratio= for repeated or shuffled splits",
            src.source or src.strategy or "this result",
            n_splits,
            n_splits - 1,
        )
        return 1 / (n_splits - 1), "assumed k-fold"
    return math.nan, "unknown"


def leaderboard(
    obj: Any,
    *,
    metric: str | None = None,
    alpha: float = 0.05,
    test_train_ratio: float | None = None,
    regularization: Mapping[str, int] | Callable[[pd.DataFrame], Any] | None = None,
    top: int | None = None,
    baselines: bool = True,
) -> pd.DataFrame:
    """Rank every candidate of a search by its out-of-sample score, best first.

    Parameters
    ----------
    obj : object
        A tunekit search result, any fitted scikit-learn ``*SearchCV``
        (anything with ``cv_results_``), an Optuna study that tunekit ran, a
        ``cv_results_`` dict, a :class:`~tunekit.report.LoadedResult` from
        :func:`~tunekit.report.load`, or a leaderboard (returned as a copy).
    metric : str, default=None
        Scorer to rank by when the search used several (``refit``'s by
        default).
    alpha : float, default=0.05
        Level of the corrected t-test behind ``tied_with_best``.
    test_train_ratio : float, default=None
        ``n_test / n_train`` of one fold for the Nadeau-Bengio correction.
        By default it is read from the result (``test_train_ratio_``, the
        study's ``user_attrs`` or the search's ``cv``), else ``1 / (k - 1)``
        for ``k`` splits, with a logged warning.
    regularization : dict or callable, default=None
        The "most regularized" order of the one-standard-error rule; see
        :data:`~tunekit.report.DEFAULT_REGULARIZATION` (used when None).
    top : int, default=None
        Keep only the first ``top`` candidates (the baselines stay).
    baselines : bool, default=True
        Add the result's baselines (``baselines_``, or an Optuna study's
        stored ones) after the candidates, as rows whose ``state`` is
        ``"BASELINE"`` and index ``"baseline:<name>"``. They are never ranked
        (``rank`` is missing) nor chosen as best; they get the same
        statistics, and ``delta_vs_best``, ``t_stat`` and ``p_value`` compare
        the best candidate with each of them (two-sided there: a baseline may
        beat the best candidate). ``attrs["baseline_summary"]``
        says in one line whether the best candidate beats the best baseline.

    Returns
    -------
    leaderboard : pandas.DataFrame
        One row per candidate, indexed by candidate number (the position in
        ``cv_results_``), best first. Columns: ``rank``, one
        ``param_<name>`` per hyperparameter, then
        :data:`~tunekit.report.STAT_COLUMNS`. ``DataFrame.attrs`` holds
        ``scoring``, ``n_splits``, ``test_train_ratio``, ``alpha``,
        ``best_candidate``, ``one_se_candidate`` and friends.

    Raises
    ------
    ReportError
        If ``obj`` is not something a leaderboard can be built from, or an
        argument is out of range.

    See Also
    --------
    tunekit.report.write : Write a leaderboard as Markdown, HTML, CSV or JSON.
    tunekit.report.corrected_ttest : The test behind ``p_value``.

    Notes
    -----
    Candidates are ordered COMPLETE first (by mean validation score), then
    PRUNED (by their partial mean), then FAIL. Failed candidates are never
    ranked first: like scikit-learn's ``_format_results`` they share one rank
    below every scored candidate.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> from tunekit.report import leaderboard
    >>> X, y = make_classification(n_samples=60, random_state=0)
    >>> search = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3,
    ...                       return_train_score=True).fit(X, y)
    >>> leaderboard(search)[["rank", "param_C", "mean_val_score"]].shape
    (2, 3)
    """
    _check_arguments(alpha, top)
    if is_leaderboard(obj):
        out = Leaderboard(obj.copy())
        out.attrs = dict(obj.attrs)
        if not baselines:
            out = candidate_rows(out)
        return _head(out, top)

    src = resolve(obj, metric)
    cv, m = src.cv_results_, src.metric
    params = [dict(p) for p in cv["params"]]
    stats = _validation_stats(cv, m, len(params))
    ratio, ratio_source = _ratio(src, test_train_ratio, stats.n_splits)
    order, ranks = _order(stats)
    refit_failures = _refit_failures(cv)
    # the chosen model: the best complete candidate that could be refitted on all the data
    best = next((i for i in order if stats.complete[i] and i not in refit_failures), None)
    versus = _versus_best(stats, best, ratio, alpha)
    pick = one_standard_error_pick(
        stats.mean_val, stats.se_val, stats.complete, params, regularization
    )
    frame = _frame(cv, m, params, stats, ratio, ranks, versus, pick).loc[order]
    frame.index.name = "candidate"
    frame.attrs = {
        "scoring": src.scoring or m,
        "metric": m,
        "strategy": src.strategy,
        "source": src.source,
        "n_candidates": len(params),
        "n_splits": stats.n_splits,
        "test_train_ratio": finite_or_none(ratio),
        "test_train_ratio_source": ratio_source,
        "alpha": float(alpha),
        "best_candidate": None if best is None else int(best),
        "one_se_candidate": None if pick is None else int(pick),
        "regularization": _regularization_attr(params, regularization),
        "n_complete": int((stats.states == COMPLETE).sum()),
        "n_pruned": int((stats.states == PRUNED).sum()),
        "n_failed": int((stats.states == FAIL).sum()),
        "refit_summary": _refit_summary(refit_failures, best),
        "nested_summary": nested_summary(src.nested_),
    }
    if baselines and src.baselines_ is not None:
        frame = _with_baselines(
            frame, src.baselines_, m, stats.n_splits, stats.test, best, ratio, alpha
        )
    return _head(frame, top)


def _refit_failures(cv: dict) -> dict[int, str]:
    """Candidates whose refit on all the search data failed, with why (``refit_failure``)."""
    column = cv.get("refit_failure")
    if column is None:
        return {}
    return {i: str(why) for i, why in enumerate(column) if isinstance(why, str) and why}


def _refit_summary(failures: dict[int, str], best: int | None) -> str | None:
    if not failures:
        return None
    failed = "; ".join(f"candidate {i}: {why}" for i, why in failures.items())
    chosen = "no candidate could be refitted"
    if best is not None:
        chosen = f"candidate {best}, the next best by CV, is the chosen model"
    return f"could not be refitted on all the search data ({failed}); {chosen}"


def _check_arguments(alpha: Any, top: Any) -> None:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise ReportError(f"alpha must be a level in (0, 1), e.g. 0.05; got alpha={alpha!r}")
    if top is not None and (not isinstance(top, int) or top < 1):
        raise ReportError(f"top must be a positive integer or None, got top={top!r}")


@dataclass
class _Stats:
    """Each candidate's validation statistics over its folds (arrays of ``n_candidates``)."""

    n_splits: int
    test: np.ndarray  # (n_candidates, n_splits), NaN where a fold has no finite score
    states: np.ndarray
    reasons: np.ndarray
    n_folds: np.ndarray
    mean_val: np.ndarray
    std_val: np.ndarray
    var1: np.ndarray
    se_val: np.ndarray

    @property
    def complete(self) -> np.ndarray:
        return (self.states == COMPLETE) & np.isfinite(self.mean_val)


def _validation_stats(cv: Mapping, m: str, n: int) -> _Stats:
    """Means, spreads and states from the per-fold test scores of ``cv_results_``."""
    n_splits = 0
    while f"split{n_splits}_test_{m}" in cv:
        n_splits += 1
    test = _matrix(cv, "split{}_test_" + m, n, n_splits)
    if test is None:
        test = np.empty((n, 0))
    mean_cv = _floats(cv.get(f"mean_test_{m}"), n)
    if n_splits and f"mean_test_{m}" not in cv:
        mean_cv = test.mean(axis=1)
    states, reasons = _states(cv, test, mean_cv)
    test = np.where(np.isfinite(test), test, np.nan)

    n_folds = np.isfinite(test).sum(axis=1) if n_splits else np.zeros(n, dtype=int)
    partial = _row_stat(np.nanmean, test)
    mean_val = np.where((states == COMPLETE) & np.isfinite(mean_cv), mean_cv, partial)
    if not n_splits:
        mean_val = np.where(np.isfinite(mean_cv), mean_cv, np.nan)
    std_val = _row_stat(np.nanstd, test)
    if not n_splits:
        std_val = _floats(cv.get(f"std_test_{m}"), n)
    var1 = np.where(n_folds >= 2, _row_stat(np.nanvar, test, ddof=1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        se_val = np.sqrt(var1 / n_folds)
    return _Stats(n_splits, test, states, reasons, n_folds, mean_val, std_val, var1, se_val)


def _half_width(stats: _Stats, ratio: float) -> np.ndarray:
    """Half the corrected 95% interval of each mean validation score."""
    from scipy.stats import t as student_t  # SciPy: imported when a leaderboard is built

    n_folds = stats.n_folds
    with np.errstate(divide="ignore", invalid="ignore"):
        tcrit = student_t.ppf(0.975, np.maximum(n_folds - 1, 1))
        return np.where(
            n_folds >= 2, tcrit * np.sqrt((1 / n_folds + ratio) * stats.var1), np.nan
        )


def _order(stats: _Stats) -> tuple[list[int], np.ndarray]:
    """Row order (COMPLETE by mean, then PRUNED, then FAIL) and each candidate's rank."""
    mean_val = stats.mean_val
    keys = [
        (i, (_STATE_ORDER[stats.states[i]], -mean_val[i] if np.isfinite(mean_val[i]) else math.inf))
        for i in range(len(mean_val))
    ]
    keys.sort(key=lambda item: (item[1][0], item[1][1], item[0]))
    return [i for i, _ in keys], _ranks(keys, stats.states)


def _versus_best(stats: _Stats, best: int | None, ratio: float, alpha: float) -> dict:
    """``delta_vs_best``, ``t_stat``, ``p_value`` and ``tied_with_best`` of every candidate."""
    n = len(stats.mean_val)
    out = {
        "delta_vs_best": np.full(n, np.nan),
        "t_stat": np.full(n, np.nan),
        "p_value": np.full(n, np.nan),
        "tied_with_best": np.zeros(n, dtype=bool),
    }
    if best is None:
        return out
    complete, test = stats.complete, stats.test
    out["tied_with_best"][best] = True
    out["delta_vs_best"][best] = 0.0
    if not math.isfinite(ratio):
        out["delta_vs_best"][complete] = stats.mean_val[best] - stats.mean_val[complete]
        return out
    for i in np.flatnonzero(complete):
        if i == best:
            continue
        res = corrected_ttest(test[best], test[i], test_train_ratio=ratio)
        out["t_stat"][i], out["p_value"][i] = res.statistic, res.pvalue
        out["delta_vs_best"][i] = res.mean_difference
        out["tied_with_best"][i] = bool(np.isfinite(res.pvalue) and res.pvalue >= alpha)
    return out


def _frame(cv, m, params, stats: _Stats, ratio, ranks, versus, pick) -> Leaderboard:
    """The leaderboard's columns, in candidate order (sorted by the caller)."""
    n, n_splits = len(params), stats.n_splits
    half = _half_width(stats, ratio)
    train = _matrix(cv, "split{}_train_" + m, n, n_splits)
    if train is not None:
        train = np.where(np.isfinite(train), train, np.nan)
        mean_train = _row_stat(np.nanmean, train)
    else:
        mean_train = _floats(cv.get(f"mean_train_{m}"), n)
    best_epochs = _matrix(cv, "split{}_best_epoch", n, n_splits)
    median_best = (
        _row_stat(np.nanmedian, best_epochs) if best_epochs is not None else np.full(n, np.nan)
    )
    missing = n_splits - stats.n_folds
    pruned = stats.states == PRUNED
    one_se = np.zeros(n, dtype=bool)
    if pick is not None:
        one_se[pick] = True

    columns: dict[str, Any] = {"rank": ranks}
    names: list[str] = []
    for p in params:
        names.extend(k for k in p if k not in names)
    for name in names:
        columns[f"param_{name}"] = _param_column([p.get(name) for p in params]).to_numpy()
    mean_val = stats.mean_val
    columns.update(
        {
            "mean_val_score": mean_val,
            "std_val_score": stats.std_val,
            "se_val_score": stats.se_val,
            "ci95_low": mean_val - half,
            "ci95_high": mean_val + half,
            "mean_train_score": mean_train,
            "train_val_gap": mean_train - mean_val,
            "heldout_test_score": _floats(cv.get("heldout_test_score"), n),
            "median_best_epoch": median_best,
            "mean_fit_time": _floats(cv.get("mean_fit_time"), n),
            "n_folds": stats.n_folds.astype(np.int64),
            "n_failed_folds": np.where(pruned, 0, missing).astype(np.int64),
            "n_pruned_folds": np.where(pruned, missing, 0).astype(np.int64),
            "state": stats.states,
            **versus,
            "one_se_pick": one_se,
            "failure_reason": stats.reasons,
        }
    )
    for extra in ("iter", "n_resources"):
        if extra in cv:
            columns[extra] = _floats(cv[extra], n)
    frame = Leaderboard(columns, index=pd.RangeIndex(n, name="candidate"))
    for name in ("state", "failure_reason"):
        frame[name] = frame[name].astype(object)
    return frame


def _regularization_attr(params, regularization) -> Any:
    if callable(regularization) and not isinstance(regularization, Mapping):
        return "callable"
    return [list(u) for u in regularization_keys(params, regularization)[0]]


def _head(frame: pd.DataFrame, top: int | None) -> pd.DataFrame:
    """The first ``top`` candidates, and every baseline."""
    if not top:
        return frame
    marked = is_baseline(frame)
    keep = np.flatnonzero(~marked)[:top].tolist() + np.flatnonzero(marked).tolist()
    out = frame.iloc[keep]
    out.attrs = dict(frame.attrs)
    return out


def is_baseline(lb: pd.DataFrame) -> np.ndarray:
    """A boolean mask of a leaderboard's baseline rows."""
    return (lb["state"] == BASELINE).to_numpy(dtype=bool)


def candidate_rows(lb: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard without its baseline rows (``attrs`` kept)."""
    out = lb[~is_baseline(lb)]
    out.attrs = dict(lb.attrs)
    return out


def baseline_rows(lb: pd.DataFrame) -> pd.DataFrame:
    """Only a leaderboard's baseline rows (``attrs`` kept)."""
    out = lb[is_baseline(lb)]
    out.attrs = dict(lb.attrs)
    return out


def _with_baselines(
    frame: pd.DataFrame,
    scores: Mapping,
    m: str,
    n_splits: int,
    test: np.ndarray,
    best: int | None,
    ratio: float,
    alpha: float,
) -> pd.DataFrame:
    """``frame`` with one row per baseline appended, and the one-line comparison in attrs."""
    names = list(scores["baseline"])
    k = len(names)
    if f"split0_test_{m}" not in scores and n_splits:
        logger.info("baselines not shown: they have no %r scores", m)
        return frame
    base = np.column_stack(
        [_floats(scores.get(f"split{i}_test_{m}"), k) for i in range(n_splits)]
    ) if n_splits else np.empty((k, 0))
    n_folds = np.isfinite(base).sum(axis=1)
    mean = _row_stat(np.nanmean, base)
    var1 = np.where(n_folds >= 2, _row_stat(np.nanvar, base, ddof=1), np.nan)
    from scipy.stats import t as student_t

    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var1 / n_folds)
        tcrit = student_t.ppf(0.975, np.maximum(n_folds - 1, 1))
        half = np.where(n_folds >= 2, tcrit * np.sqrt((1 / n_folds + ratio) * var1), np.nan)
    train = _floats(scores.get(f"mean_train_{m}"), k)
    delta, t_stat, p_value = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    if best is not None and math.isfinite(ratio):
        for j in range(k):  # two-sided: a baseline may well beat the best candidate
            res = corrected_ttest(
                test[best], base[j], test_train_ratio=ratio, alternative="two-sided"
            )
            t_stat[j], p_value[j], delta[j] = res.statistic, res.pvalue, res.mean_difference
    elif best is not None:
        delta = frame.loc[best, "mean_val_score"] - mean
    rows = pd.DataFrame(index=pd.Index([f"baseline:{n}" for n in names], name="candidate"))
    for column in frame.columns:
        if column.startswith("param_") or column in ("iter", "n_resources"):
            rows[column] = None if frame[column].dtype == object else np.nan
    rows = rows.assign(
        mean_val_score=mean,
        std_val_score=_row_stat(np.nanstd, base),
        se_val_score=se,
        ci95_low=mean - half,
        ci95_high=mean + half,
        mean_train_score=train,
        train_val_gap=train - mean,
        heldout_test_score=_floats(scores.get("heldout_test_score"), k),
        median_best_epoch=np.nan,
        mean_fit_time=_floats(scores.get("mean_fit_time"), k),
        n_folds=n_folds.astype(np.int64),
        n_failed_folds=(n_splits - n_folds).astype(np.int64),
        n_pruned_folds=np.zeros(k, dtype=np.int64),
        state=BASELINE,
        delta_vs_best=delta,
        t_stat=t_stat,
        p_value=p_value,
        tied_with_best=np.isfinite(p_value) & (p_value >= alpha),
        one_se_pick=False,
        failure_reason="",
    )
    ranks = frame["rank"].astype("Int64")
    out = pd.concat([frame.assign(rank=ranks), rows[[c for c in frame.columns if c != "rank"]]])
    out["rank"] = out["rank"].astype("Int64")
    out = out[list(frame.columns)]
    for name in ("state", "failure_reason"):
        out[name] = out[name].astype(object)
    for name in ("tied_with_best", "one_se_pick"):
        out[name] = out[name].astype(bool)
    out.index.name = "candidate"
    attrs = dict(frame.attrs)
    attrs["baselines"] = [f"baseline:{n}" for n in names]
    attrs["baseline_seconds"] = finite_or_none(scores.get("seconds"))
    attrs["baseline_summary"] = _comparison(out, attrs, p_value)
    out.attrs = attrs
    return out


def _comparison(lb: pd.DataFrame, attrs: Mapping, two_sided: np.ndarray) -> str | None:
    best = attrs.get("best_candidate")
    marked = baseline_rows(lb)
    means = marked["mean_val_score"].to_numpy(dtype=np.float64)
    if best is None or not np.isfinite(means).any():
        return None
    j = int(np.nanargmax(means))
    label = str(marked.index[j]).split(":", 1)[1]
    mine = float(lb.loc[best, "mean_val_score"])
    theirs = float(means[j])
    scoring = attrs.get("scoring") or "score"
    diff = mine - theirs
    verb = "beats" if diff > 0 else "does not beat" if diff < 0 else "ties with"
    text = (
        f"the chosen model (candidate {best}) {verb} the best baseline ({label}) in CV: "
        f"{mine:.4f} vs {theirs:.4f} {scoring} ({diff:+.4f})"
    )
    held_mine = float(lb.loc[best, "heldout_test_score"])
    held_theirs = float(marked["heldout_test_score"].iloc[j])
    if math.isfinite(held_mine) and math.isfinite(held_theirs):
        text += f"; held out {held_mine:.4f} vs {held_theirs:.4f} ({held_mine - held_theirs:+.4f})"
    p = float(two_sided[j])
    alpha = attrs.get("alpha", 0.05)
    if math.isfinite(p):
        separates = "separates them" if p < alpha else "does not separate them"
        text += f"; the corrected t-test {separates} (two-sided p = {p:.3g})"
    return text


def baseline_summary(lb: pd.DataFrame) -> str | None:
    """The one line saying whether the best candidate beats the best baseline, or None.

    Parameters
    ----------
    lb : pandas.DataFrame
        A leaderboard made by :func:`leaderboard`.

    Returns
    -------
    line : str or None
        E.g. ``"the chosen model (candidate 4) beats the best baseline (ridge)
        in CV: 0.5100 vs 0.4700 r2 (+0.0400); held out 0.3300 vs 0.3200
        (+0.0100); the corrected t-test does not separate them (two-sided
        p = 0.21)"``; None without baselines.
    """
    return lb.attrs.get("baseline_summary")


def _result_summary(obj: Any, metric: str | None) -> dict[str, Any]:
    if is_leaderboard(obj):
        lb, src = candidate_rows(obj), None
        attrs = dict(obj.attrs)
    else:
        src = resolve(obj, metric)
        lb = leaderboard(src, baselines=False)
        attrs = lb.attrs
    best_row = lb.iloc[0] if len(lb) and lb.iloc[0]["state"] == COMPLETE else None
    params = {}
    if best_row is not None:
        params = {
            c[len("param_") :]: best_row[c]
            for c in lb.columns
            if c.startswith("param_") and not _is_missing(best_row[c])
        }
    heldout = lb["heldout_test_score"].to_numpy(dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(heldout))
    n_fits = math.nan
    n_epochs = math.nan
    total_fit = math.nan
    wall = math.nan
    if src is not None:
        cv = src.cv_results_
        n_splits = int(attrs.get("n_splits") or 0)
        per_row = np.where(lb["state"] == PRUNED, lb["n_folds"], n_splits).astype(np.float64)
        n_fits = float(src.n_fits_) if src.n_fits_ is not None else float(per_row.sum())
        total_fit = float(np.nansum(lb["mean_fit_time"].to_numpy(np.float64) * per_row))
        if src.n_epochs_ is not None:
            n_epochs = float(src.n_epochs_)
        else:
            epochs = _matrix(cv, "split{}_n_epochs", len(cv["params"]), n_splits)
            if epochs is not None and np.isfinite(epochs).any():
                n_epochs = float(np.nansum(epochs))
        wall = src.wall_time_ if src.wall_time_ is not None else math.nan
    return {
        "strategy": attrs.get("strategy") or "?",
        "scoring": attrs.get("scoring"),
        "best_params": params,
        "best_cv_score": float(best_row["mean_val_score"]) if best_row is not None else math.nan,
        "best_cv_se": float(best_row["se_val_score"]) if best_row is not None else math.nan,
        "best_heldout_score": float(heldout[finite[0]]) if finite.size else math.nan,
        "n_candidates": len(lb),
        "n_fits": n_fits,
        "n_epochs": n_epochs,
        "total_fit_time": total_fit,
        "wall_time": wall,
    }


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def compare(
    *results: Any,
    names: list[str] | None = None,
    metric: str | None = None,
) -> pd.DataFrame:
    """Tabulate several searches run on the same data, best first.

    Parameters
    ----------
    *results : object
        Search results, fitted ``*SearchCV`` objects, Optuna studies, loaded
        results or leaderboards.
    names : list of str, default=None
        Row labels; by default each result's strategy (``grid``,
        ``GridSearchCV``, ``optuna``...), numbered when repeated.
    metric : str, default=None
        Scorer to compare in multi-metric searches.

    Returns
    -------
    table : pandas.DataFrame
        One row per search, sorted by ``best_cv_score``. Columns:
        ``strategy``, ``scoring``, ``best_params``, ``best_cv_score``,
        ``best_cv_se``, ``best_heldout_score``, ``n_candidates``, ``n_fits``,
        ``n_epochs``, ``total_fit_time`` (seconds, summed over fits),
        ``wall_time`` (seconds, NaN when the result did not record it).

    Raises
    ------
    ReportError
        If no result is given, or ``names`` does not match ``results``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    >>> from tunekit.report import compare
    >>> X, y = make_classification(n_samples=60, random_state=0)
    >>> grid = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    >>> rand = RandomizedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, n_iter=2,
    ...                           cv=3, random_state=0).fit(X, y)
    >>> compare(grid, rand).shape[0]
    2
    """
    if len(results) == 1 and isinstance(results[0], list | tuple):
        results = tuple(results[0])
    if not results:
        raise ReportError("compare() needs at least one search result, got none")
    if names is not None and len(names) != len(results):
        raise ReportError(
            f"names must label every result: got {len(names)} names for {len(results)} results"
        )
    rows = [_result_summary(r, metric) for r in results]
    scorings = {r["scoring"] for r in rows}
    if len(scorings) > 1:
        logger.warning(
            "compare(): the searches used different scorers %s; their scores are not comparable",
            sorted(map(str, scorings)),
        )
    if names is None:
        seen: dict[str, int] = {}
        names = []
        for row in rows:
            base = str(row["strategy"])
            seen[base] = seen.get(base, 0) + 1
            names.append(base if seen[base] == 1 else f"{base} #{seen[base]}")
    table = pd.DataFrame(rows, index=pd.Index(names, name="search"))
    table["best_params"] = table["best_params"].astype(object)
    return table.sort_values("best_cv_score", ascending=False, na_position="last", kind="stable")
