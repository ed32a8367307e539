"""The corrected resampled t-test and the one-standard-error rule."""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    ShuffleSplit,
    StratifiedKFold,
    TimeSeriesSplit,
)

from tunekit.report import (
    DEFAULT_REGULARIZATION,
    ReportError,
    corrected_ttest,
    leaderboard,
)
from tunekit.report._source import _ratio_from_cv


def _example_corrected_std(differences, n_train, n_test):
    """scikit-learn's gallery example ``corrected_std``, as a reference implementation.

    examples/model_selection/plot_grid_search_stats.py: the variance of the
    differences times ``1 / kr + n_test / n_train``, ``kr`` the number of folds.
    """
    kr = len(differences)
    return np.sqrt(np.var(differences, ddof=1) * (1 / kr + n_test / n_train))


def test_reproduces_scikit_learn_grid_search_stats_example():
    """Reproduce the published numbers of scikit-learn's gallery example.

    Source: scikit-learn, examples/model_selection/plot_grid_search_stats.py
    ("Statistical comparison of models using grid search"). SVC kernels on
    make_moons(noise=0.352, random_state=1, n_samples=100), 10 x 10
    RepeatedStratifiedKFold(random_state=0), ROC AUC. The example compares the
    best model ('rbf') with the second ('linear') by Nadeau and Bengio's
    corrected t-test and states, for the posterior t(df, mean, corrected_std):
    "there is a 50% probability that the true mean difference between models
    will be between 0.000977 and 0.019023 [...] and 95% probability that it
    will be between -0.016445 and 0.036445"; its printed corrected t-value is
    0.750 with a right-tailed p-value of 0.227 (not significant, whereas the
    uncorrected test gives p = 0.005).
    """
    from sklearn.datasets import make_moons
    from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
    from sklearn.svm import SVC

    X, y = make_moons(noise=0.352, random_state=1, n_samples=100)
    param_grid = [
        {"kernel": ["linear"]},
        {"kernel": ["poly"], "degree": [2, 3]},
        {"kernel": ["rbf"]},
    ]
    cv = RepeatedStratifiedKFold(n_splits=10, n_repeats=10, random_state=0)
    search = GridSearchCV(SVC(random_state=0), param_grid, scoring="roc_auc", cv=cv).fit(X, y)

    lb = leaderboard(search)  # n_test / n_train is read from the RepeatedStratifiedKFold
    assert lb.attrs["test_train_ratio"] == pytest.approx(10 / 90)
    assert list(lb["param_kernel"].iloc[:2]) == ["rbf", "linear"]
    linear = lb.iloc[1]
    assert linear["t_stat"] == pytest.approx(0.750, abs=5e-4)
    assert linear["p_value"] == pytest.approx(0.227, abs=5e-4)
    assert bool(linear["tied_with_best"])  # the corrected test cannot separate them

    scores = lb.attrs["n_splits"]
    assert scores == 100
    cvr = search.cv_results_
    rbf = np.array([cvr[f"split{i}_test_score"][3] for i in range(100)])
    lin = np.array([cvr[f"split{i}_test_score"][0] for i in range(100)])
    res = corrected_ttest(rbf, lin, test_train_ratio=10 / 90)
    assert res.std == pytest.approx(_example_corrected_std(rbf - lin, 90, 10))
    posterior = student_t(res.df, loc=res.mean_difference, scale=res.std)
    assert posterior.interval(0.50) == pytest.approx((0.000977, 0.019023), abs=5e-7)
    assert posterior.interval(0.95) == pytest.approx((-0.016445, 0.036445), abs=5e-7)


@pytest.mark.parametrize("n_folds, ratio", [(5, 0.25), (10, 1 / 9), (30, 1 / 9), (2, 1.0)])
def test_corrected_ttest_matches_the_example_formula(n_folds, ratio):
    rng = np.random.RandomState(n_folds)
    a = 0.8 + rng.normal(0, 0.03, n_folds)
    b = a - 0.01 + rng.normal(0, 0.02, n_folds)
    res = corrected_ttest(a, b, test_train_ratio=ratio)
    d = a - b
    n_train = 1.0
    expected_std = _example_corrected_std(d, n_train, ratio * n_train)
    assert res.std == pytest.approx(expected_std)
    assert res.statistic == pytest.approx(d.mean() / expected_std)
    assert res.pvalue == pytest.approx(student_t.sf(d.mean() / expected_std, n_folds - 1))
    assert res.df == n_folds - 1


def test_corrected_ttest_hand_computed():
    # d = (0.1, 0, 0.05): mean 0.05, var 0.0025; std = sqrt(0.0025 * (1/3 + 1/2))
    res = corrected_ttest([0.9, 0.8, 0.85], [0.8, 0.8, 0.8], test_train_ratio=0.5)
    assert res.std == pytest.approx(math.sqrt(0.0025 * (1 / 3 + 0.5)))
    assert res.statistic == pytest.approx(0.05 / res.std)
    assert res.pvalue == pytest.approx(student_t.sf(res.statistic, 2))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_corrected_ttest_alternatives_agree(alternative):
    a, b = [0.9, 0.82, 0.85, 0.88], [0.8, 0.81, 0.8, 0.83]
    greater = corrected_ttest(a, b, test_train_ratio=1 / 3).pvalue
    res = corrected_ttest(a, b, test_train_ratio=1 / 3, alternative=alternative)
    expected = {"greater": greater, "less": 1 - greater, "two-sided": 2 * greater}
    assert res.pvalue == pytest.approx(expected[alternative])


def test_correction_is_more_conservative_than_the_plain_paired_test():
    from scipy.stats import ttest_rel

    rng = np.random.RandomState(0)
    a = 0.8 + rng.normal(0, 0.02, 10)
    b = a - 0.01 + rng.normal(0, 0.01, 10)
    plain = ttest_rel(a, b, alternative="greater").pvalue
    corrected = corrected_ttest(a, b, test_train_ratio=1 / 9).pvalue
    assert corrected > plain
    # with no overlap correction (ratio 0) it is exactly the paired t-test
    assert corrected_ttest(a, b, test_train_ratio=0.0).pvalue == pytest.approx(plain)


@pytest.mark.parametrize(
    "a, b, expected_t, expected_p",
    [
        ([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], 0.0, 0.5),  # identical folds
        ([0.9, 0.9, 0.9], [0.8, 0.8, 0.8], math.inf, 0.0),  # constant positive difference
        ([0.9, np.nan, 0.8], [0.8, 0.7, np.nan], math.nan, math.nan),  # one paired fold
    ],
)
def test_corrected_ttest_degenerate_inputs(a, b, expected_t, expected_p):
    res = corrected_ttest(a, b, test_train_ratio=0.5)
    for got, want in ((res.statistic, expected_t), (res.pvalue, expected_p)):
        if math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == want


def test_corrected_ttest_drops_folds_missing_on_either_side():
    a = [0.9, 0.85, np.nan, 0.88]
    b = [0.8, 0.82, 0.81, np.nan]
    res = corrected_ttest(a, b, test_train_ratio=0.5)
    assert res.df == 1
    assert res.mean_difference == pytest.approx(np.mean([0.1, 0.03]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_train_ratio": -0.1}, r"test_train_ratio must be a finite n_test / n_train >= 0"),
        ({"test_train_ratio": math.nan}, r"got test_train_ratio=nan"),
        ({"test_train_ratio": 0.5, "alternative": "bigger"}, r"alternative must be 'greater'"),
    ],
)
def test_corrected_ttest_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ReportError, match=match):
        corrected_ttest([0.9, 0.8], [0.8, 0.7], **kwargs)


def test_corrected_ttest_rejects_unpaired_lengths():
    with pytest.raises(ReportError, match=r"paired scores need the same folds; got 3 and 2"):
        corrected_ttest([0.9, 0.8, 0.7], [0.8, 0.7], test_train_ratio=0.5)


@pytest.mark.parametrize(
    "cv, expected",
    [
        (RepeatedKFold(n_splits=5, n_repeats=3), 1 / 4),
        (RepeatedStratifiedKFold(n_splits=10, n_repeats=10), 1 / 9),
        (KFold(4), 1 / 3),
        (StratifiedKFold(3), 1 / 2),
        (ShuffleSplit(test_size=0.2), 0.25),
        (ShuffleSplit(test_size=0.2, train_size=0.4), 0.5),
        (5, 1 / 4),
        (None, 1 / 4),
        (TimeSeriesSplit(3), None),
    ],
    ids=repr,
)
def test_test_train_ratio_is_read_from_the_cv_argument(cv, expected):
    """Bouckaert & Frank's repeated k-fold: the ratio is that of one k-fold split."""
    got = _ratio_from_cv(cv)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_leaderboard_uses_all_repeats_as_folds(make_result):
    """Repeated k-fold: J = k * r paired folds, variance factor 1/J + 1/(k - 1)."""
    rng = np.random.RandomState(1)
    k, r = 3, 4
    test = 0.8 + rng.normal(0, 0.02, (2, k * r))
    test[1] -= 0.01
    lb = leaderboard(make_result(test, ratio=1 / (k - 1)))
    d = test[0] - test[1]
    expected = d.mean() / math.sqrt(np.var(d, ddof=1) * (1 / (k * r) + 1 / (k - 1)))
    assert lb.loc[1, "t_stat"] == pytest.approx(expected)


# ------------------------------------------------------------- one-SE rule
def _one_se(make_result, params, means, se=0.02, **kwargs):
    """Leaderboard of candidates with given means and (about) equal standard errors."""
    offsets = np.array([-1.0, 0.0, 1.0]) * se * math.sqrt(3) / math.sqrt(2)
    test = np.asarray(means, dtype=float)[:, None] + offsets[None, :]
    return leaderboard(make_result(test, params=params), **kwargs)


@pytest.mark.parametrize(
    "name, values, expected",
    [
        ("model__l2", [1e-4, 1e-3, 1e-2], 2),  # larger penalty
        ("model__l1", [1e-4, 1e-3, 1e-2], 2),
        ("model__dropout", [0.0, 0.2, 0.5], 2),
        ("model__noise", [0.0, 0.1, 0.3], 2),
        ("C", [10.0, 1.0, 0.1], 2),  # scikit-learn's inverse penalty: smaller
        ("model__hidden", [(64, 64), (32, 32), (16,)], 2),  # fewer units
        ("epochs", [50, 20, 10], 2),  # stop earlier
        ("batch_size", [256, 64, 16], 2),  # small batches regularize (lecture, Goodfellow)
    ],
)
def test_one_se_rule_picks_the_most_regularized_within_one_se(make_result, name, values, expected):
    params = [{name: v} for v in values]
    lb = _one_se(make_result, params, [0.85, 0.845, 0.84])  # all within one SE of the best
    assert lb.attrs["best_candidate"] == 0
    assert lb.attrs["one_se_candidate"] == expected
    assert lb["one_se_pick"].sum() == 1
    assert bool(lb.loc[expected, "one_se_pick"])


def test_one_se_rule_ignores_candidates_beyond_one_se(make_result):
    params = [{"model__l2": v} for v in (1e-4, 1e-3, 1e-1)]
    lb = _one_se(make_result, params, [0.85, 0.845, 0.70])
    assert lb.attrs["one_se_candidate"] == 1


def test_one_se_rule_never_picks_failed_or_pruned_candidates(result):
    lb = leaderboard(result)
    assert lb.loc[lb["one_se_pick"], "state"].tolist() == ["COMPLETE"]


def test_one_se_priority_order_and_tie_breaks(make_result):
    # l2 comes before dropout in the default order: the larger l2 wins even with less dropout
    params = [
        {"model__l2": 1e-4, "model__dropout": 0.5},
        {"model__l2": 1e-2, "model__dropout": 0.0},
        {"model__l2": 1e-2, "model__dropout": 0.3},
    ]
    lb = _one_se(make_result, params, [0.85, 0.848, 0.846])
    assert lb.attrs["one_se_candidate"] == 2  # l2 ties, dropout breaks the tie
    assert list(DEFAULT_REGULARIZATION).index("l2") < list(DEFAULT_REGULARIZATION).index("dropout")
    # an explicit order puts dropout first
    lb = _one_se(make_result, params, [0.85, 0.848, 0.846], regularization={"dropout": 1, "l2": 1})
    assert lb.attrs["one_se_candidate"] == 0


def test_one_se_order_can_be_a_callable(make_result):
    params = [{"units": u, "depth": d} for u, d in ((8, 3), (32, 1), (16, 1))]

    def n_weights(frame):  # fewer weights = more regularized
        return -(frame["units"] ** 2) * frame["depth"]

    lb = _one_se(make_result, params, [0.85, 0.848, 0.846], regularization=n_weights)
    assert lb.attrs["one_se_candidate"] == 0
    assert lb.attrs["regularization"] == "callable"


def test_one_se_without_known_parameters_picks_the_best(make_result):
    params = [{"activation": a} for a in ("relu", "tanh", "gelu")]
    lb = _one_se(make_result, params, [0.845, 0.85, 0.84])
    assert lb.attrs["one_se_candidate"] == 1


@pytest.mark.parametrize("direction", [0, 2, "up", True])
def test_one_se_order_rejects_bad_directions(make_result, direction):
    params = [{"model__l2": v} for v in (1e-4, 1e-3)]
    with pytest.raises(ReportError, match=r"regularization directions must be \+1 .* or -1"):
        _one_se(make_result, params, [0.85, 0.84], regularization={"l2": direction})


def test_one_se_callable_must_return_one_number_per_row(make_result):
    params = [{"model__l2": v} for v in (1e-4, 1e-3)]
    with pytest.raises(ReportError, match=r"one number per candidate row; got 1 numbers for 2"):
        _one_se(make_result, params, [0.85, 0.849], regularization=lambda frame: [1.0])
