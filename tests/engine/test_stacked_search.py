"""StackedSearchCV: GridSearchCV's schema, comparable scores, fallbacks, failures."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid, StratifiedKFold

import tunekit as tk
from tunekit.evaluators import carve_validation as _carve
from tunekit.exceptions import SearchFailedError
from tunekit.strategies.fixed_list import StackedSearchCV

# Two sub-grids: each candidate leaves one parameter unset (masked in cv_results_).
GRID = [{"model__l2": [0.01]}, {"model__dropout": [0.3]}]


def _clf(**kw):
    params = dict(
        model__hidden=(8,),
        epochs=15,
        batch_size=16,
        optimizer="rmsprop",
        optimizer__learning_rate=0.01,
        random_state=0,
    )
    params.update(kw)
    return tk.KerasClassifier(tk.builders.mlp, **params)


@pytest.fixture(scope="module")
def searches():
    """The same grid searched both ways on a small, learnable binary problem."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 6)).astype("float32")
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")  # string labels
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = GridSearchCV(_clf(), GRID, cv=cv, return_train_score=True, refit=False)
        grid.fit(X, y)
    stacked = StackedSearchCV(_clf(), list(ParameterGrid(GRID)), cv=cv, random_state=0)
    stacked.fit(X, y)
    return X, y, grid, stacked


def test_cv_results_have_gridsearchcv_keys_in_order(searches):
    _, _, grid, stacked = searches
    ours, theirs = list(stacked.cv_results_), list(grid.cv_results_)
    assert ours[: len(theirs)] == theirs
    extra = {f"split{i}_{k}" for i in range(3) for k in ("best_epoch", "n_epochs")}
    assert set(ours[len(theirs) :]) == extra | {"state", "failure_reason"}
    for key in theirs:
        a, b = stacked.cv_results_[key], grid.cv_results_[key]
        if key == "params":
            assert a == b
        elif key.startswith("param_"):
            assert isinstance(a, np.ma.MaskedArray) and a.dtype == b.dtype
            assert a.tolist() == b.tolist() and (a.mask == b.mask).all() and a.mask.any()
        else:
            assert (
                np.asarray(a).shape == np.asarray(b).shape
                and np.asarray(a).dtype == np.asarray(b).dtype
            ), key


def test_scores_are_close_to_separately_trained_models(searches):
    _, _, grid, stacked = searches
    ours, theirs = stacked.cv_results_["mean_test_score"], grid.cv_results_["mean_test_score"]
    assert np.all(ours > 0.8) and np.all(theirs > 0.8)
    # different initial weights and batch order: agreement within fold noise
    np.testing.assert_allclose(ours, theirs, atol=0.08)
    assert np.all(stacked.cv_results_["split0_n_epochs"] == 15)


def test_best_attributes_and_refit(searches):
    X, _y, _, stacked = searches
    assert stacked.best_index_ == int(np.argmin(stacked.cv_results_["rank_test_score"]))
    assert stacked.best_params_ == stacked.cv_results_["params"][stacked.best_index_]
    assert stacked.best_score_ == stacked.cv_results_["mean_test_score"][stacked.best_index_]
    assert stacked.n_splits_ == 3 and stacked.refit_time_ > 0
    assert set(stacked.predict(X[:5])) <= {"yes", "no"}
    params = stacked.best_estimator_.get_params()
    assert all(params[k] == v for k, v in stacked.best_params_.items())
    assert stacked.scorer_ is not None and not stacked.multimetric_
    assert [g.stacked for g in stacked.groups_] == [True]
    assert stacked.groups_[0].n_members == 6


@pytest.mark.parametrize("scoring", ["accuracy", "roc_auc", "neg_log_loss", "balanced_accuracy"])
def test_classification_scorers(scoring, searches):
    X, y, _, _ = searches
    s = StackedSearchCV(
        _clf(epochs=3), {"model__l2": [0.0]}, cv=2, scoring=scoring, refit=False, random_state=0
    ).fit(X, y)
    scores = s.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    if scoring != "neg_log_loss":
        assert 0.0 <= scores[0] <= 1.0


def test_multiclass_and_multimetric(multiclass_data):
    X, y = multiclass_data
    y = y + 3  # labels 3, 4, 5: not zero-based
    s = StackedSearchCV(
        _clf(epochs=5, model__label_smoothing=0.1),
        {"model__label_smoothing": [0.0, 0.1]},
        scoring={"acc": "accuracy", "nll": "neg_log_loss"},
        refit="acc",
        cv=3,
        random_state=0,
    ).fit(X, y)
    res = s.cv_results_
    assert s.multimetric_ and {"mean_test_acc", "rank_test_nll", "split2_train_nll"} <= set(res)
    assert np.all(res["mean_test_acc"] > 0.5)
    assert set(s.best_estimator_.predict(X)) <= {3, 4, 5}


@pytest.mark.parametrize("scoring", ["r2", "neg_mean_squared_error"])
def test_regression(regression_data, scoring):
    X, y = regression_data
    reg = tk.KerasRegressor(
        tk.builders.mlp,
        model__hidden=(8,),
        epochs=20,
        batch_size=16,
        optimizer="adam",
        optimizer__learning_rate=0.02,
    )
    s = StackedSearchCV(
        reg, {"model__l1": [0.0, 0.001]}, cv=KFold(3), scoring=scoring, refit=False, random_state=0
    ).fit(X, y)
    scores = s.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    if scoring == "r2":
        assert np.all(scores > 0.5)


def test_unstackable_candidates_fall_back_transparently(binary_data):
    X, y = binary_data
    cands = [{"optimizer": "rmsprop"}, {"optimizer": "adagrad"}]
    s = StackedSearchCV(_clf(epochs=2), cands, cv=2, refit=False, random_state=0).fit(X, y)
    assert [g.stacked for g in s.groups_] == [True, False]
    assert "adagrad" in s.groups_[1].reason.lower()
    assert np.isfinite(s.cv_results_["mean_test_score"]).all()
    assert s.cv_results_["split0_n_epochs"].tolist() == [2, 2]
    assert list(s.cv_results_["param_optimizer"]) == ["rmsprop", "adagrad"]


def test_early_stopping_uses_part_of_the_training_fold(binary_data):
    X, y = binary_data
    s = StackedSearchCV(
        _clf(epochs=40, early_stopping=2, optimizer__learning_rate=0.05),
        {"model__hidden": [(32,)]},
        cv=2,
        refit=False,
        random_state=0,
    ).fit(X, y)
    best, ran = s.cv_results_["split0_best_epoch"], s.cv_results_["split0_n_epochs"]
    assert np.all(best <= ran) and np.all(ran <= 40)
    train, test = np.arange(0, 90), np.arange(90, 120)
    codes = (y > 0).astype(int)
    fit_rows, val_rows = _carve(train, codes, 0.1, seed=0, classifier=True)
    assert len(val_rows) == 9 and len(fit_rows) == 81
    assert set(val_rows) <= set(train) and not set(val_rows) & set(test)
    assert not set(val_rows) & set(fit_rows)


@pytest.mark.filterwarnings("ignore:One or more of the .* scores are non-finite")
def test_diverging_candidate_scores_error_score(binary_data):
    X, y = binary_data
    cands = [{"optimizer__learning_rate": 1e30}, {"optimizer__learning_rate": 1e-2}]
    est = _clf(epochs=2, optimizer="sgd", model__hidden=(64, 64))
    with pytest.warns(FitFailedWarning, match="2 fits failed"):
        s = StackedSearchCV(est, cands, cv=2, refit=False, random_state=0).fit(X, y)
    assert np.isnan(s.cv_results_["mean_test_score"][0])
    assert s.cv_results_["rank_test_score"].tolist() == [2, 1]
    with pytest.raises(SearchFailedError, match="All the 2 fits failed"):
        StackedSearchCV(est, cands[:1], cv=2, refit=False).fit(X, y)
