"""leaderboard() and compare() over tunekit results, scikit-learn searches and studies."""

import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

from tunekit.report import STAT_COLUMNS, ReportError, compare, leaderboard


def test_columns_order_and_index(result):
    lb = leaderboard(result)
    params = ["param_model__l2", "param_model__dropout", "param_batch_size"]
    assert list(lb.columns) == ["rank", *params, *STAT_COLUMNS]
    assert lb.index.name == "candidate"
    assert list(lb["rank"]) == sorted(lb["rank"])


def test_best_first_pruned_then_failed_last(result):
    lb = leaderboard(result)
    # candidate 4 has the highest partial score but was pruned: it follows every complete one
    assert list(lb.index) == [1, 2, 0, 3, 4, 5]
    assert list(lb["state"]) == ["COMPLETE"] * 4 + ["PRUNED", "FAIL"]
    assert list(lb["rank"]) == [1, 2, 3, 4, 5, 6]
    assert lb.attrs["best_candidate"] == 1
    assert lb.loc[5, "failure_reason"] == "DivergedError: loss became NaN"
    assert lb.loc[4, "n_pruned_folds"] == 2 and lb.loc[4, "n_failed_folds"] == 0
    assert lb.loc[5, "n_failed_folds"] == 3 and lb.loc[5, "n_folds"] == 0


@pytest.mark.parametrize("failed_first", [True, False])
def test_failed_candidates_never_rank_first(make_result, failed_first):
    """Even with higher partial scores, failures rank last and tie with each other."""
    test = np.array([[0.99, np.nan, 0.99], [0.7, 0.7, 0.71], [0.6, 0.61, 0.6], [np.nan] * 3])
    if not failed_first:
        test = test[::-1].copy()
    lb = leaderboard(make_result(test))
    assert lb["state"].iloc[0] == "COMPLETE"
    failed = lb[lb["state"] == "FAIL"]
    assert len(failed) == 2
    assert set(failed["rank"]) == {3}
    assert failed["failure_reason"].str.contains("folds failed").all()


def test_statistics_of_one_row(result):
    lb = leaderboard(result)
    cv = result.cv_results_
    folds = np.array([cv[f"split{i}_test_score"][2] for i in range(3)])
    row = lb.loc[2]
    assert row["mean_val_score"] == pytest.approx(folds.mean())
    assert row["std_val_score"] == pytest.approx(folds.std())
    assert row["se_val_score"] == pytest.approx(folds.std(ddof=1) / math.sqrt(3))
    half = student_t.ppf(0.975, 2) * math.sqrt((1 / 3 + 0.5) * folds.var(ddof=1))
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(
        (folds.mean() - half, folds.mean() + half)
    )
    assert row["mean_train_score"] == pytest.approx(folds.mean() + 0.1)
    assert row["train_val_gap"] == pytest.approx(0.1)
    assert row["median_best_epoch"] == 5.0  # median of (4, NaN, 6)
    assert row["mean_fit_time"] == 0.5
    assert lb.loc[1, "heldout_test_score"] == 0.83
    best = np.array([cv[f"split{i}_test_score"][1] for i in range(3)])
    assert row["delta_vs_best"] == pytest.approx((best - folds).mean())
    assert lb.loc[1, "tied_with_best"] and math.isnan(lb.loc[1, "p_value"])


def test_tied_with_best_follows_alpha(make_result):
    rng = np.random.RandomState(0)
    test = 0.8 + rng.normal(0, 0.01, (2, 10))
    test[1] -= 0.012
    strict = leaderboard(make_result(test, ratio=1 / 9), alpha=0.001)
    loose = leaderboard(make_result(test, ratio=1 / 9), alpha=0.5)
    p = strict.loc[1, "p_value"]
    assert 0.001 < p < 0.5
    assert bool(strict.loc[1, "tied_with_best"]) and not bool(loose.loc[1, "tied_with_best"])
    assert strict.attrs["alpha"] == 0.001


def test_plain_grid_search_over_a_pipeline(grid_search):
    lb = leaderboard(grid_search)
    assert lb.attrs["scoring"] == "accuracy"
    assert lb.attrs["strategy"] == "GridSearchCV"
    assert lb.attrs["test_train_ratio"] == pytest.approx(0.5)
    assert lb.attrs["test_train_ratio_source"] == "inferred from cv"
    ranks = grid_search.cv_results_["rank_test_score"]
    np.testing.assert_array_equal(lb["rank"].to_numpy(), np.sort(ranks))
    assert lb.index[0] == grid_search.best_index_
    assert lb["mean_train_score"].notna().all()
    assert lb["heldout_test_score"].isna().all() and lb["median_best_epoch"].isna().all()
    assert (lb["state"] == "COMPLETE").all()
    # one-SE: the smallest C within one SE of the best (C is an inverse penalty)
    pick = lb.attrs["one_se_candidate"]
    within = lb[lb["mean_val_score"] >= lb.iloc[0]["mean_val_score"] - lb.iloc[0]["se_val_score"]]
    assert (
        lb.loc[pick, "param_logisticregression__C"] == within["param_logisticregression__C"].min()
    )


def test_grid_search_with_failing_fits_ranks_them_last():
    X, y = make_classification(n_samples=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(
            LogisticRegression(), {"C": [-1.0, 1.0, 0.1]}, cv=3, error_score=np.nan
        ).fit(X, y)
    lb = leaderboard(search)
    assert lb.index[-1] == 0
    assert lb.loc[0, "state"] == "FAIL"
    assert lb.loc[0, "failure_reason"] == "3 of 3 folds failed (NaN score)"
    assert lb.loc[0, "n_failed_folds"] == 3
    assert lb.loc[0, "rank"] == 3


def test_randomized_and_halving_searches():
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    X, y = make_classification(n_samples=120, random_state=0)
    rand = RandomizedSearchCV(
        LogisticRegression(), {"C": [0.01, 0.1, 1.0]}, n_iter=3, cv=3, random_state=0
    ).fit(X, y)
    assert len(leaderboard(rand)) == 3
    halving = HalvingGridSearchCV(
        LogisticRegression(), {"C": [0.001, 0.01, 0.1, 1.0]}, cv=3, factor=2, min_resources=30
    ).fit(X, y)
    lb = leaderboard(halving)
    last = lb["iter"].max()
    # full-budget rows first; earlier, smaller-budget rows follow as PRUNED
    assert (lb.loc[lb["iter"] == last, "state"] == "COMPLETE").all()
    assert (lb.loc[lb["iter"] < last, "state"] == "PRUNED").all()
    assert lb.index[0] == halving.best_index_
    assert "n_resources" in lb.columns


def test_optuna_study(study):
    lb = leaderboard(study)
    assert lb.attrs["scoring"] == "accuracy"
    assert lb.attrs["strategy"] == "optuna"
    assert lb.attrs["test_train_ratio"] == 0.5
    assert lb.attrs["test_train_ratio_source"] == "study user_attrs"
    assert list(lb["state"].iloc[-2:]) == ["PRUNED", "FAIL"]
    assert lb.loc[8, "mean_val_score"] == pytest.approx(0.95)  # partial mean of a pruned trial
    assert lb.loc[8, "rank"] == 9
    assert (lb["median_best_epoch"].iloc[:8] == 5).all()
    assert lb["param_hidden"].iloc[0] == (16, 16)


def test_multi_metric_search_uses_refit_or_metric():
    X, y = make_classification(n_samples=60, random_state=0)
    scoring = {"acc": "accuracy", "bal": "balanced_accuracy"}
    search = GridSearchCV(
        LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, scoring=scoring, refit="bal"
    ).fit(X, y)
    assert leaderboard(search).attrs["scoring"] == "bal"
    assert leaderboard(search, metric="acc").attrs["scoring"] == "acc"
    with pytest.raises(ReportError, match=r"metric must name a scorer .* got metric='f1'"):
        leaderboard(search, metric="f1")
    with pytest.raises(ReportError, match=r"several scorers \['acc', 'bal'\]: pass metric=NAME"):
        leaderboard(search.cv_results_)


def test_cv_results_dict_and_dataframe_are_accepted(grid_search, caplog):
    with caplog.at_level(logging.WARNING, logger="tunekit.report"):
        from_dict = leaderboard(grid_search.cv_results_)
    assert "assuming plain 3-fold CV" in caplog.text
    from_frame = leaderboard(pd.DataFrame(grid_search.cv_results_), test_train_ratio=0.5)
    assert from_frame.attrs["test_train_ratio_source"] == "given"
    pd.testing.assert_series_equal(from_dict["mean_val_score"], from_frame["mean_val_score"])


def test_a_leaderboard_passes_through_and_top(result):
    lb = leaderboard(result)
    again = leaderboard(lb, top=2)
    assert list(again.index) == list(lb.index[:2])
    assert len(leaderboard(result, top=3)) == 3


@pytest.mark.parametrize(
    "obj, match",
    [
        (42, r"leaderboard\(\) reads a tunekit search result.*got int"),
        (GridSearchCV(LogisticRegression(), {"C": [1.0]}), r"call \.fit\(X, y\) first"),
        ({"mean_test_score": [0.5]}, r"needs the key 'params'"),
        (pd.DataFrame({"a": [1]}), r"must be a tunekit leaderboard .* got columns \['a'\]"),
    ],
)
def test_rejects_what_it_cannot_read(obj, match):
    with pytest.raises(ReportError, match=match):
        leaderboard(obj)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 0}, r"alpha must be a level in \(0, 1\), e.g. 0.05; got alpha=0"),
        ({"alpha": 1.5}, r"got alpha=1.5"),
        ({"top": 0}, r"top must be a positive integer or None, got top=0"),
    ],
)
def test_rejects_bad_arguments(result, kwargs, match):
    with pytest.raises(ReportError, match=match):
        leaderboard(result, **kwargs)


def test_report_error_is_a_value_error():
    from tunekit.exceptions import TunekitError

    assert issubclass(ReportError, ValueError) and issubclass(ReportError, TunekitError)


# ----------------------------------------------------------------- compare
def test_compare_strategies(grid_search, study, result):
    table = compare(grid_search, study, result)
    assert list(table.columns) == [
        "strategy",
        "scoring",
        "best_params",
        "best_cv_score",
        "best_cv_se",
        "best_heldout_score",
        "n_candidates",
        "n_fits",
        "n_epochs",
        "total_fit_time",
        "wall_time",
    ]
    assert list(table["best_cv_score"]) == sorted(table["best_cv_score"], reverse=True)
    assert set(table.index) == {"GridSearchCV", "optuna", "grid"}
    grid_row = table.loc["GridSearchCV"]
    assert grid_row["n_fits"] == 4 * 3
    assert math.isnan(grid_row["wall_time"]) and math.isnan(grid_row["n_epochs"])
    assert grid_row["best_params"] == grid_search.best_params_
    optuna_row = table.loc["optuna"]
    assert optuna_row["n_fits"] == 8 * 3 + 1 + 3  # pruned trial ran one fold
    assert optuna_row["n_epochs"] == 8 * 40 + 0
    assert table.loc["grid", "best_heldout_score"] == 0.83
    assert table.loc["grid", "wall_time"] == 12.5


def test_compare_names_and_repeats(grid_search):
    assert list(compare(grid_search, grid_search).index) == ["GridSearchCV", "GridSearchCV #2"]
    assert list(compare([grid_search], names=["mine"]).index) == ["mine"]
    with pytest.raises(ReportError, match=r"got 1 names for 2 results"):
        compare(grid_search, grid_search, names=["one"])
    with pytest.raises(ReportError, match=r"compare\(\) needs at least one search result"):
        compare()


def test_compare_warns_about_different_scorers(grid_search, caplog):
    X, y = make_classification(n_samples=60, random_state=0)
    auc = GridSearchCV(LogisticRegression(), {"C": [1.0, 0.1]}, cv=3, scoring="roc_auc").fit(X, y)
    with caplog.at_level(logging.WARNING, logger="tunekit.report"):
        compare(grid_search, auc)
    assert "different scorers" in caplog.text


def test_public_names():
    import tunekit
    import tunekit.report as report

    assert tunekit.report is report
    for name in report.__all__:
        assert getattr(report, name) is not None, name
    assert report.leaderboard.__doc__ and report.write_report.__doc__
