"""cv_results_from_study: an Optuna study in scikit-learn's cv_results_ schema."""

import math

import numpy as np
import optuna
import pytest

from tunekit.record import rank_like_sklearn
from tunekit.report import ReportError, cv_results_from_study

SKLEARN_KEYS = {
    "params",
    "mean_test_score",
    "std_test_score",
    "rank_test_score",
    "mean_train_score",
    "std_train_score",
    "mean_fit_time",
    "std_fit_time",
    "mean_score_time",
    "std_score_time",
}


def test_reproduces_grid_search_cv_results(grid_search, add_cv_trial):
    """A study holding GridSearchCV's fold scores yields GridSearchCV's cv_results_."""
    cv = grid_search.cv_results_
    n_splits = grid_search.n_splits_
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("n_splits", n_splits)
    for i, params in enumerate(cv["params"]):
        add_cv_trial(
            study,
            params,
            [cv[f"split{k}_test_score"][i] for k in range(n_splits)],
            train=[cv[f"split{k}_train_score"][i] for k in range(n_splits)],
        )
    ours = cv_results_from_study(study)
    assert set(cv) - set(ours) == set()
    for key in cv:
        if key == "params":
            assert ours[key] == cv[key]
        elif key.startswith("param_"):
            assert ours[key].dtype == cv[key].dtype
            np.testing.assert_array_equal(ours[key], cv[key])
        elif key in {"rank_test_score"}:
            np.testing.assert_array_equal(ours[key], cv[key])
            assert ours[key].dtype == np.int32
        elif "time" not in key:
            np.testing.assert_allclose(ours[key], cv[key], err_msg=key)


def test_states_missing_folds_and_extras(study):
    cv = cv_results_from_study(study)
    n = len(study.trials)
    assert SKLEARN_KEYS <= set(cv)
    assert list(cv["state"]) == ["COMPLETE"] * 8 + ["PRUNED", "FAIL"]
    assert cv["failure_reason"][-1] == "DivergedError: loss became NaN at epoch 3"
    assert list(cv["failure_reason"][:-1]) == [""] * (n - 1)
    # the pruned trial ran one fold of three: the others are NaN, and so is its mean
    assert cv["split0_test_score"][8] == pytest.approx(0.95)
    assert math.isnan(cv["split1_test_score"][8]) and math.isnan(cv["split2_test_score"][8])
    assert math.isnan(cv["mean_test_score"][8]) and math.isnan(cv["mean_test_score"][9])
    # ... and it ranks below every complete trial, tied with the failure (sklearn's rule)
    assert cv["rank_test_score"][8] == cv["rank_test_score"][9] == 9
    assert sorted(cv["rank_test_score"][:8]) == list(range(1, 9))
    # early-stopping extras: None becomes NaN
    assert cv["split0_best_epoch"][0] == 4 and math.isnan(cv["split1_best_epoch"][0])
    assert cv["split1_n_epochs"][0] == 20
    assert np.isnan(cv["heldout_test_score"]).all()
    assert list(cv["trial_number"]) == list(range(n))
    for key, value in cv.items():
        assert len(value) == n, key


def test_params_come_from_user_attrs_with_tuples_restored(study):
    cv = cv_results_from_study(study)
    assert cv["params"][0]["hidden"] == (16, 16)  # stored as a JSON list
    assert cv["param_hidden"][0] == (16, 16)
    # the trials that lack "hidden" are masked, as scikit-learn masks absent params
    assert list(cv["param_hidden"].mask) == [False] * 8 + [True, True]
    assert cv["param_batch_size"].dtype.kind == "i"


def test_running_trials_are_skipped(study):
    running = study.ask()
    running.set_user_attr("cv_test_scores", [0.99])
    cv = cv_results_from_study(study)
    assert running.number not in list(cv["trial_number"])
    assert len(cv["params"]) == 10


@pytest.mark.parametrize("value, folds", [(math.inf, [0.8, 0.9, 0.7]), (0.8, [0.8, math.inf, 0.7])])
def test_non_finite_complete_trials_are_failures(add_cv_trial, value, folds):
    """Optuna records inf as COMPLETE; a report must not rank it first."""
    study = optuna.create_study(direction="maximize")
    add_cv_trial(study, {"batch_size": 32}, [0.7, 0.7, 0.7])
    add_cv_trial(study, {"batch_size": 64}, folds, value=value)
    cv = cv_results_from_study(study)
    assert list(cv["state"]) == ["COMPLETE", "FAIL"]
    assert cv["failure_reason"][1] == "non-finite score"
    assert list(cv["rank_test_score"]) == [1, 2]
    assert not np.isinf([cv[f"split{k}_test_score"][1] for k in range(3)]).any()


@pytest.mark.parametrize("direction, sign", [("maximize", 1.0), ("minimize", -1.0)])
def test_study_not_run_by_tunekit_uses_trial_values(direction, sign):
    study = optuna.create_study(direction=direction)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    cv = cv_results_from_study(study)
    values = np.array([t.value for t in study.trials])
    np.testing.assert_allclose(cv["mean_test_score"], sign * values)
    assert cv["rank_test_score"][np.argmax(sign * values)] == 1
    assert "split1_test_score" not in cv


def test_multi_objective_studies_are_refused():
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="two")
    with pytest.raises(ReportError, match=r"study 'two' has 2 objectives"):
        cv_results_from_study(study)


def test_empty_study():
    cv = cv_results_from_study(optuna.create_study())
    assert cv["params"] == [] and len(cv["mean_test_score"]) == 0


@pytest.mark.parametrize(
    "means, ranks",
    [
        ([0.5, np.nan, 0.7, 0.7], [3, 4, 1, 1]),
        ([np.nan, np.nan], [1, 1]),
        ([0.9, 0.1, np.nan, np.nan], [1, 2, 3, 3]),
    ],
)
def test_rank_like_sklearn(means, ranks):
    assert list(rank_like_sklearn(np.array(means))) == ranks


def test_rank_matches_grid_search_with_failing_fits():
    """Failed fits (error_score=nan) rank exactly as scikit-learn ranks them."""
    import warnings

    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = make_classification(n_samples=60, random_state=0)
    grid = {"C": [1.0, -1.0, 0.01]}  # C=-1 fails
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(LogisticRegression(), grid, cv=3, error_score=np.nan).fit(X, y)
    means = search.cv_results_["mean_test_score"]
    np.testing.assert_array_equal(rank_like_sklearn(means), search.cv_results_["rank_test_score"])


def test_train_keys_only_when_train_scores_were_recorded(add_cv_trial):
    """tunekit records None per fold without return_train_score: no train keys then."""
    study = optuna.create_study(direction="maximize")
    add_cv_trial(study, {"batch_size": 32}, [0.8, 0.7], train=None, cv_train_scores=[None, None])
    assert "mean_train_score" not in cv_results_from_study(study)
    add_cv_trial(study, {"batch_size": 64}, [0.8, 0.7], train=[0.9, 0.8])
    cv = cv_results_from_study(study)
    assert math.isnan(cv["mean_train_score"][0])
    assert cv["mean_train_score"][1] == pytest.approx(0.85)


def test_a_trial_that_returned_nan_is_a_failure(add_cv_trial):
    """tunekit's objective returns NaN when a fold raises; Optuna stores it as FAIL."""
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: float("nan"), n_trials=1)
    add_cv_trial(study, {"batch_size": 32}, [0.8, 0.7])
    cv = cv_results_from_study(study)
    assert list(cv["state"]) == ["FAIL", "COMPLETE"]
    assert list(cv["rank_test_score"]) == [2, 1]
