"""Honest comparisons of CV scores: the corrected resampled t-test and the one-SE rule."""

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from tunekit.exceptions import ReportError

__all__ = [
    "DEFAULT_REGULARIZATION",
    "CorrectedTTest",
    "corrected_ttest",
    "one_standard_error_pick",
    "regularization_keys",
]

#: The default "most regularized" order of the one-standard-error rule.
#: Keys are parameter names, matched against the full name (``model__l2``) or
#: its last ``__`` part (``l2``); ``+1`` means a larger value regularizes more,
#: ``-1`` a smaller one. Earlier keys take priority, later ones break ties.
DEFAULT_REGULARIZATION: Mapping[str, int] = MappingProxyType(
    {
        # explicit penalties on the weights
        "l2": +1,
        "l1": +1,
        "weight_decay": +1,
        "alpha": +1,  # scikit-learn's penalty strength (Ridge, MLP, SGD)
        "C": -1,  # scikit-learn's inverse penalty strength (SVC, LogisticRegression)
        # dropping and jittering
        "dropout": +1,
        "recurrent_dropout": +1,
        "noise": +1,
        "weight_noise": +1,
        "label_smoothing": +1,
        # capacity: fewer units, fewer layers
        "hidden": -1,
        "hidden_layer_sizes": -1,
        "units": -1,
        "n_layers": -1,
        # training length: stop earlier
        "epochs": -1,
        "max_iter": -1,
        "patience": -1,
        # small batches add gradient noise, a regularizer (Goodfellow et al. 8.1.3)
        "batch_size": -1,
    }
)


class CorrectedTTest(NamedTuple):
    """Result of :func:`corrected_ttest`."""

    statistic: float
    pvalue: float
    df: int
    mean_difference: float
    std: float


def corrected_ttest(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    *,
    test_train_ratio: float,
    alternative: str = "greater",
) -> CorrectedTTest:
    """Nadeau and Bengio's corrected resampled t-test, paired over CV folds.

    The folds of a (repeated) cross-validation share training data, so the
    fold-wise differences are correlated and the plain paired t-test is far
    too confident. Nadeau and Bengio (2003) inflate the variance by the
    overlap of the training sets::

        t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d, ddof=1))

    with ``d`` the per-fold differences ``scores_a - scores_b``, ``J`` the
    number of folds with both scores (all repeats included, as in Bouckaert
    and Frank's corrected repeated k-fold test) and ``J - 1`` degrees of
    freedom.

    Parameters
    ----------
    scores_a, scores_b : array-like of shape (n_splits,)
        Scores of two candidates on the same folds, higher is better. Folds
        where either is NaN are dropped.
    test_train_ratio : float
        ``n_test / n_train`` of one fold, e.g. ``1 / (k - 1)`` for k-fold.
    alternative : {"greater", "two-sided", "less"}, default="greater"
        ``"greater"`` tests whether ``a`` scores higher than ``b`` (the
        right-tailed test of scikit-learn's example).

    Returns
    -------
    result : CorrectedTTest
        ``statistic``, ``pvalue``, ``df``, ``mean_difference`` and the
        corrected ``std`` of the mean difference. NaN when fewer than two
        folds pair up.

    References
    ----------
    C. Nadeau and Y. Bengio, "Inference for the generalization error",
    Machine Learning 52, 239-281, 2003.

    R. Bouckaert and E. Frank, "Evaluating the replicability of significance
    tests for comparing learning algorithms", PAKDD 2004.

    Examples
    --------
    >>> from tunekit.report import corrected_ttest
    >>> res = corrected_ttest([0.9, 0.8, 0.85], [0.8, 0.8, 0.8], test_train_ratio=0.5)
    >>> round(res.statistic, 3), round(res.pvalue, 3)
    (1.095, 0.194)
    """
    from scipy.stats import t as student_t

    if alternative not in {"greater", "two-sided", "less"}:
        raise ReportError(
            f"alternative must be 'greater', 'two-sided' or 'less', got alternative={alternative!r}"
        )
    if not (test_train_ratio is not None and math.isfinite(test_train_ratio)) or (
        test_train_ratio < 0
    ):
        raise ReportError(
            "test_train_ratio must be a finite n_test / n_train >= 0 (1 / (k - 1) for "
            f"k-fold), got test_train_ratio={test_train_ratio!r}"
        )
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ReportError(
            f"paired scores need the same folds; got {a.shape[0]} and {b.shape[0]} scores"
        )
    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    n = int(d.size)
    nan = CorrectedTTest(math.nan, math.nan, max(n - 1, 0), math.nan, math.nan)
    if n < 2:
        return nan
    mean = float(d.mean())
    std = math.sqrt(float(np.var(d, ddof=1)) * (1 / n + test_train_ratio))
    if std == 0.0:
        if mean == 0.0:
            # identical fold scores: t = 0 by continuity
            return CorrectedTTest(0.0, 1.0 if alternative == "two-sided" else 0.5, n - 1, 0.0, 0.0)
        stat = math.copysign(math.inf, mean)
    else:
        stat = mean / std
    if alternative == "greater":
        p = float(student_t.sf(stat, n - 1))
    elif alternative == "less":
        p = float(student_t.cdf(stat, n - 1))
    else:
        p = float(2 * student_t.sf(abs(stat), n - 1))
    return CorrectedTTest(float(stat), min(p, 1.0), n - 1, mean, std)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _strength(value: Any) -> float:
    """A number for "how much" a parameter value is: sizes of tuples are summed."""
    if value is None:
        return math.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, list | tuple | np.ndarray):
        parts = [_strength(v) for v in value]
        parts = [p for p in parts if not math.isnan(p)]
        return float(sum(parts)) if parts else math.nan
    numbers_ = _NUMBER.findall(str(value))
    return float(sum(float(x) for x in numbers_)) if numbers_ else math.nan


def _check_order(order: Mapping[str, int]) -> dict[str, int]:
    checked = {}
    for name, direction in order.items():
        if direction not in (1, -1) or isinstance(direction, bool):
            raise ReportError(
                "regularization directions must be +1 (larger is more regularized) or -1 "
                f"(smaller is more regularized); got {direction!r} for {name!r}"
            )
        checked[str(name)] = int(direction)
    return checked


def regularization_keys(
    params: Sequence[Mapping[str, Any]],
    regularization: Mapping[str, int] | None = None,
) -> tuple[list[tuple[str, int]], np.ndarray]:
    """Sort keys saying how regularized each candidate is (larger: more).

    Parameters
    ----------
    params : sequence of dict
        One parameter dict per candidate (``cv_results_["params"]``).
    regularization : dict of str to {+1, -1}, default=None
        Priority-ordered directions; None means :data:`DEFAULT_REGULARIZATION`.

    Returns
    -------
    used : list of (str, int)
        The parameters that matched, in priority order, with their direction.
    keys : ndarray of shape (n_candidates, len(used))
        ``direction * strength`` of each matched parameter; NaN where a
        candidate lacks it.
    """
    order = _check_order(DEFAULT_REGULARIZATION if regularization is None else regularization)
    names: list[str] = []
    for p in params:
        names.extend(n for n in p if n not in names)
    used: list[tuple[str, int]] = []
    for key, direction in order.items():
        for name in names:
            if (name == key or name.rsplit("__", 1)[-1] == key) and name not in dict(used):
                used.append((name, direction))
    keys = np.full((len(params), len(used)), np.nan)
    for row, p in enumerate(params):
        for col, (name, direction) in enumerate(used):
            keys[row, col] = direction * _strength(p.get(name))
    return used, keys


def one_standard_error_pick(
    means: np.ndarray,
    ses: np.ndarray,
    eligible: np.ndarray,
    params: Sequence[Mapping[str, Any]],
    regularization: Mapping[str, int] | Callable[[pd.DataFrame], Any] | None = None,
) -> int | None:
    """Index of the most regularized candidate within one SE of the best.

    Parameters
    ----------
    means, ses : ndarray of shape (n_candidates,)
        Mean validation scores (higher is better) and their standard errors.
    eligible : ndarray of bool, shape (n_candidates,)
        Candidates that may be picked (complete, finite score).
    params : sequence of dict
        ``cv_results_["params"]``.
    regularization : dict, callable or None, default=None
        A priority-ordered ``{name: +1 | -1}`` (see
        :data:`DEFAULT_REGULARIZATION`, used when None), or a callable that
        takes a DataFrame of the candidates' parameters (one column per
        parameter name, index = candidate index) and returns one number per
        row, larger meaning more regularized.

    Returns
    -------
    index : int or None
        None when no candidate is eligible.
    """
    means = np.asarray(means, dtype=np.float64)
    eligible = np.asarray(eligible, dtype=bool) & np.isfinite(means)
    if not eligible.any():
        return None
    best = int(np.flatnonzero(eligible)[np.argmax(means[eligible])])
    se = ses[best] if np.isfinite(ses[best]) else 0.0
    within = np.flatnonzero(eligible & (means >= means[best] - se))
    if callable(regularization) and not isinstance(regularization, Mapping):
        frame = pd.DataFrame([dict(params[i]) for i in within], index=within)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = np.asarray(regularization(frame), dtype=np.float64).reshape(-1)
        if score.shape[0] != within.size:
            raise ReportError(
                "a regularization callable must return one number per candidate row; "
                f"got {score.shape[0]} numbers for {within.size} rows"
            )
        keys = score.reshape(-1, 1)
    else:
        _, all_keys = regularization_keys(params, regularization)
        keys = all_keys[within]
    # lexsort: last key is primary. Order: regularization keys (descending, NaN
    # last), then mean score (descending), then candidate index (ascending).
    filled = np.where(np.isnan(keys), -np.inf, keys)
    sort_keys = [within, -means[within]]
    sort_keys += [-filled[:, col] for col in range(filled.shape[1] - 1, -1, -1)]
    order = np.lexsort(sort_keys)
    return int(within[order[0]])
