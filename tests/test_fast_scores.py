"""Curve points computed without scikit-learn's per-call checks equal the scorer's own numbers."""

import math

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import fbeta_score, get_scorer, make_scorer

from tunekit.evaluators.fast_scores import fast_metric, fast_score


def _fitted_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(size=80)
    return LinearRegression().fit(X[:40], y[:40]), X[40:], y[40:]


def _fitted_classifier(labels):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3))
    y = np.asarray(labels)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)]
    return LogisticRegression().fit(X[:45], y[:45]), X[45:], y[45:]


@pytest.mark.parametrize(
    "name", ["r2", "neg_mean_squared_error", "neg_root_mean_squared_error",
             "neg_mean_absolute_error"],
)  # fmt: skip
def test_regression_points_equal_the_scorer(name):
    est, X, y = _fitted_regression()
    scorer = get_scorer(name)
    assert fast_metric(scorer) is not None

    def fails():
        raise AssertionError("the direct formula should cover this scorer")

    assert fast_score(scorer, est, X, y, fails) == pytest.approx(scorer(est, X, y), rel=1e-12)


@pytest.mark.parametrize("labels", [[0, 1, 2], ["cat", "dog", "eel"], [0.0, 1.0, 2.0]])
def test_accuracy_points_are_exactly_the_scorer(labels):
    est, X, y = _fitted_classifier(labels)
    scorer = get_scorer("accuracy")
    assert fast_score(scorer, est, X, y, lambda: math.nan) == scorer(est, X, y)


def test_scoring_none_is_the_estimators_own_accuracy_or_r2():
    from sklearn.metrics._scorer import _PassthroughScorer

    from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor

    def fails():
        raise AssertionError("the direct formula should cover this estimator's own score")

    for est, X, y in (_fitted_classifier(["a", "b", "c"]), _fitted_regression()):
        scorer = _PassthroughScorer(est)
        assert fast_score(scorer, est, X, y, fails) == pytest.approx(est.score(X, y), rel=1e-12)
    assert fast_metric(_PassthroughScorer(None), StackedMemberClassifier())[2] is False
    assert fast_metric(_PassthroughScorer(None), StackedMemberRegressor())[2] is True
    assert fast_metric(_PassthroughScorer(None), object()) is None


def test_anything_else_goes_through_the_scorer():
    est, X, y = _fitted_classifier([0, 1, 2])
    calls = []

    def through_scorer():
        calls.append(1)
        return 0.25

    f2 = make_scorer(fbeta_score, beta=2, average="macro")
    for scorer in (get_scorer("balanced_accuracy"), get_scorer("neg_log_loss"), f2,
                   make_scorer(get_scorer("accuracy")._score_func, normalize=False)):  # fmt: skip
        assert fast_metric(scorer) is None
        assert fast_score(scorer, est, X, y, through_scorer) == 0.25
    # labels the model cannot compare with: strings predicted against numbers
    dummy = DummyClassifier(strategy="constant", constant="a").fit(X, np.resize(["a", "b"], len(X)))
    assert fast_score(get_scorer("accuracy"), dummy, X, y, through_scorer) == 0.25
    # a multi-output target and a constant target (R^2 undefined) are the scorer's to handle
    reg, Xr, yr = _fitted_regression()
    two = LinearRegression().fit(Xr, np.c_[yr, yr])
    assert fast_score(get_scorer("r2"), two, Xr, np.c_[yr, yr], through_scorer) == 0.25
    assert fast_score(get_scorer("r2"), reg, Xr, np.ones_like(yr), through_scorer) == 0.25
    assert len(calls) == 7
