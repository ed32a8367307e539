"""Baselines beside the candidates: same folds, same held-out set, never ranked."""

import logging

import numpy as np
import optuna
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, cross_val_score, train_test_split

import tunekit as tk
from tunekit.baselines import evaluate_baselines
from tunekit.report import leaderboard, load, render, write_report
from tunekit.results import BASELINES_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"alpha": tk.Choice([0.1, 10.0])}


def _search(regression_data, **kwargs):
    X, y = regression_data
    return tk.search(Ridge(), X, y, space=SPACE, cv=3, verbose=0, **kwargs)


def test_default_baselines_use_the_same_folds_and_held_out_set(regression_data):
    X, y = regression_data
    result = _search(regression_data)
    scores = result.baselines_
    assert scores["baseline"] == ["dummy", "ridge"]
    X_search, X_test, y_search, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    folds = list(KFold(3).split(X_search, y_search))
    expected = cross_val_score(DummyRegressor(), X_search, y_search, cv=folds)
    got = [scores[f"split{i}_test_score"][0] for i in range(3)]
    np.testing.assert_allclose(got, expected)
    held = clone(DummyRegressor()).fit(X_search, y_search).score(X_test, y_test)
    assert scores["heldout_test_score"][0] == pytest.approx(held)
    assert scores["mean_test_score"][1] > 0.9  # the linear model fits this linear problem
    assert scores["seconds"] > 0


def test_baselines_leave_the_candidates_untouched(regression_data):
    with_b = _search(regression_data)
    without = _search(regression_data, baselines=False)
    assert without.baselines_ is None
    assert with_b.best_index_ == without.best_index_
    np.testing.assert_array_equal(
        with_b.cv_results_["rank_test_score"], without.cv_results_["rank_test_score"]
    )
    assert set(with_b.cv_results_) == set(without.cv_results_)
    assert len(with_b.cv_results_["params"]) == 2


def test_leaderboard_marks_baselines_and_never_ranks_them(regression_data):
    result = _search(regression_data)
    lb = leaderboard(result)
    marked = lb[lb["state"] == "BASELINE"]
    assert list(marked.index) == ["baseline:dummy", "baseline:ridge"]
    assert marked["rank"].isna().all()
    assert list(lb.index[:2]) == sorted(range(2), key=lambda i: lb.loc[i, "rank"])
    assert lb.attrs["best_candidate"] == result.best_index_
    assert not marked["one_se_pick"].any()
    # the dummy predictor is far below a fitted ridge: the corrected test says so
    assert marked.loc["baseline:dummy", "p_value"] < 0.05
    assert marked.loc["baseline:dummy", "delta_vs_best"] > 0.5
    assert np.isfinite(marked["heldout_test_score"]).all()
    assert "beats the best baseline (ridge)" in lb.attrs["baseline_summary"] or (
        "does not beat the best baseline (ridge)" in lb.attrs["baseline_summary"]
    )
    assert "corrected t-test" in lb.attrs["baseline_summary"]
    assert "BASELINE" not in set(leaderboard(result, baselines=False)["state"])
    top = leaderboard(result, top=1)
    assert list(top.index) == [result.best_index_, "baseline:dummy", "baseline:ridge"]


def test_reports_show_the_comparison_and_read_it_back(regression_data, tmp_path):
    result = _search(regression_data)
    line = leaderboard(result).attrs["baseline_summary"]
    assert line in render(result, "md")
    html = render(result, "html", plots=False)
    assert 'class="BASELINE"' in html
    assert line.replace("(", "").split(":")[0] in html.replace("(", "")
    written = write_report(result, tmp_path, plots=False)
    back = leaderboard(load(tmp_path))
    assert back.attrs["baseline_summary"] == line
    csv = load(written["csv"])
    assert list(csv.index[-2:]) == ["baseline:dummy", "baseline:ridge"]
    assert csv.index[0] == result.best_index_


def test_optuna_study_keeps_the_baselines_for_the_report(regression_data, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    result = _search(regression_data, strategy="optuna", n_trials=2, storage=url, study_name="s")
    assert result.study_.user_attrs[BASELINES_ATTR]["baseline"] == ["dummy", "ridge"]
    lb = leaderboard(load(url, study="s"))
    assert list(lb.index[-2:]) == ["baseline:dummy", "baseline:ridge"]
    from_study, from_result = lb.attrs["baseline_summary"], leaderboard(result).attrs[
        "baseline_summary"
    ]
    assert from_study.split(";")[0] == from_result.split(";")[0]  # the CV comparison
    assert from_study.split(";")[-1] == from_result.split(";")[-1]  # the corrected test


def test_user_baselines_and_classifier_defaults(binary_data):
    X, y = binary_data
    result = tk.search(
        LogisticRegression(),
        X,
        y,
        space={"C": tk.Choice([0.1, 1.0])},
        cv=3,
        verbose=0,
        baselines=[DummyClassifier(strategy="most_frequent"), ("lr", LogisticRegression())],
    )
    assert result.baselines_["baseline"] == ["dummyclassifier", "lr"]
    folds = [(np.arange(10), np.arange(10, 20)), (np.arange(10, 20), np.arange(10))]
    names = evaluate_baselines(LogisticRegression(), X[:20], y[:20], folds)["baseline"]
    assert names == ["dummy", "logistic"]


def test_inputs_of_more_than_two_dimensions_are_flattened(regression_data):
    X, y = regression_data
    X3 = X.reshape(len(X), 2, 2)
    folds = list(KFold(3).split(X3))
    flat = evaluate_baselines(Ridge(), X, y, folds, X[:10], y[:10])
    cube = evaluate_baselines(Ridge(), X3, y, folds, X3[:10], y[:10])
    np.testing.assert_allclose(flat["mean_test_score"], cube["mean_test_score"])
    np.testing.assert_allclose(flat["heldout_test_score"], cube["heldout_test_score"])


def test_non_numeric_inputs_skip_the_baselines_with_one_log_line(caplog):
    X = np.array([["a", "b"], ["c", "d"]] * 6, dtype=object)
    y = np.arange(12.0)
    folds = list(KFold(2).split(X))
    with caplog.at_level(logging.INFO, logger="tunekit"):
        assert evaluate_baselines(Ridge(), X, y, folds) is None
    lines = [r.getMessage() for r in caplog.records if "baselines skipped" in r.getMessage()]
    assert len(lines) == 1 and "not numeric" in lines[0]


def test_token_sequences_for_an_embedding_skip_the_baselines(caplog):
    class Embedding:  # what matters is the layer's class name, as in Keras
        pass

    class Fitted:
        model_ = type("Model", (), {"layers": [Embedding()]})()

    X = np.arange(24).reshape(12, 2)
    folds = list(KFold(2).split(X))
    with caplog.at_level(logging.INFO, logger="tunekit"):
        assert evaluate_baselines(Fitted(), X, X[:, 0] * 1.0, folds) is None
    assert any("Embedding" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "baselines, match",
    [
        ("ridge", r"baselines must be True .* got 'ridge'"),
        ([], r"non-empty list"),
        ([42], r"each baseline must be a scikit-learn estimator .* got 42"),
    ],
)
def test_bad_baselines_are_rejected_before_any_fit(baselines, match, regression_data):
    with pytest.raises(ValueError, match=match):
        _search(regression_data, baselines=baselines)
