"""Ensemble selection over out-of-fold predictions, its comparison, and the diagnostics.

The reference for the selection is a greedy run worked out by hand on hand-made
predictions (below, step by step); the ensemble estimator is checked against
its members' own predictions, and its held-out score against the scorer.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, check_scoring

import tunekit as tk
from tunekit.ensembles import EnsembleClassifier, select
from tunekit.report._diagnostics import diagnostic_figures, ensemble_lines, plot_diagnostics
from tunekit.results import SearchData, SearchResult

# y = 0 on every row; three models predict constants. Score: -MSE.
#   A = 1 (-1), B = -3 (-9), C = 2 (-4): sorted order A, C, B.
# max_init=2: mean(A) = 1 -> -1; mean(A, C) = 1.5 -> -2.25: start from [A].
# size 4, k=2: +A -> 1 (-1), +B -> -1 (-1), +C -> 1.5 (-2.25): A and B tie, A scores
#   better alone: [A, A], total 2.
# k=3: +A -> 1 (-1), +B -> -1/3 (-1/9), +C -> 4/3 (-16/9): [A, A, B], total -1.
# k=4: +A -> 0 (0), +B -> -1 (-1), +C -> 1/4 (-1/16): [A, A, B, A].
# Weights: A 3/4, B 1/4, C 0.
# max_init=3: mean(A, C, B) = 0 -> 0 beats -1 and -2.25: start from [A, C, B], total 0;
#   k=4: +A -> 1/4 (-1/16), +B -> -3/4 (-9/16), +C -> 1/2 (-1/4): A. Weights 1/2, 1/4, 1/4.
N = 6
HAND = [np.full(N, 1.0), np.full(N, -3.0), np.full(N, 2.0)]


def _mse(values):
    return -float(np.mean(values**2))


@pytest.mark.parametrize(
    ("max_init", "n_init", "weights", "indices"),
    [(2, 1, [0.75, 0.25, 0.0], [0, 0, 1, 0]), (3, 3, [0.5, 0.25, 0.25], [0, 2, 1, 0])],
)
def test_select_equals_the_greedy_run_by_hand(max_init, n_init, weights, indices):
    chosen = select(HAND, _mse, size=4, max_init=max_init)
    np.testing.assert_allclose(chosen.weights, weights)
    assert chosen.indices == indices
    assert chosen.n_init == n_init
    np.testing.assert_allclose(chosen.trajectory[n_init - 1:], [[-1, -1, -1 / 9, 0], [0, -1 / 16]]
                               [max_init - 2])  # fmt: skip


def _hand_result(oof, estimator=None, scoring="neg_mean_squared_error"):
    """A search result around hand-made out-of-fold predictions (no held-out set)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, 2)), np.zeros(N)
    params = [{"alpha": a} for a in (1.0, 2.0, 3.0)][: len(oof)]
    means = np.array([_mse(p) for p in oof])
    folds = [(np.arange(3, 6), np.arange(3)), (np.arange(3), np.arange(3, 6))]
    return SearchResult(
        cv_results_={"params": params, "mean_test_score": means,
                     "state": np.array(["COMPLETE"] * len(oof), dtype=object)},
        best_params_=params[0], best_estimator_=None, best_index_=0, best_score_=means[0],
        heldout_score_=None, search_=None, study_=None, strategy="grid",
        scoring="neg_mean_squared_error", n_splits_=2, test_train_ratio_=1.0,
        oof_predictions_=[np.asarray(p, dtype=np.float32) for p in oof],
        data_=SearchData(X, y, None, None, folds, estimator or Ridge(), scoring, False),
    )  # fmt: skip


def test_ensemble_of_a_result_uses_the_searchs_scorer_and_the_hand_weights():
    result = _hand_result(HAND)
    est = tk.ensemble(result, size=4, max_init=2)
    assert est is result.ensemble_
    assert list(result.ensemble_weights_.index) == ["candidate 0", "candidate 1"]
    np.testing.assert_allclose(result.ensemble_weights_["weight"], [0.75, 0.25])
    assert result.ensemble_scores_.loc["ensemble", "cv_score"] == 0.0
    assert result.ensemble_scores_.loc["ensemble", "cv_optimistic"]
    X = result.data_.X_search
    y = result.data_.y_search
    members = [Ridge(alpha=1.0).fit(X, y), Ridge(alpha=2.0).fit(X, y)]
    np.testing.assert_allclose(
        est.predict(X), 0.75 * members[0].predict(X) + 0.25 * members[1].predict(X)
    )


def test_no_complete_candidate_is_a_clear_error():
    result = _hand_result([np.full(N, np.nan), np.r_[1.0, np.full(N - 1, np.nan)]])
    with pytest.raises(ValueError, match="none of the 2 did"):
        tk.ensemble(result)
    result.oof_predictions_ = None
    with pytest.raises(ValueError, match="oof_predictions=True"):
        tk.ensemble(result)


def _data(n=150):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.5 * rng.normal(size=n) > 0.3).astype(int)
    return X, y


def test_search_with_ensemble_compares_it_on_the_heldout_set():
    X, y = _data()
    space = {"C": tk.Choice([0.001, 0.1, 10.0])}
    result = tk.search(LogisticRegression(), X, y, space=space, cv=3, verbose=0, ensemble=5)
    est, data = result.ensemble_, result.data_
    assert isinstance(est, EnsembleClassifier)
    weights = result.ensemble_weights_["weight"].to_numpy()
    assert weights.sum() == pytest.approx(1.0) and np.all(weights * 5 % 1 < 1e-9)
    proba = sum(w * m.predict_proba(data.X_test) for w, m in zip(weights, est.estimators_,
                                                                 strict=True))  # fmt: skip
    np.testing.assert_allclose(est.predict_proba(data.X_test), proba)
    scores = result.ensemble_scores_
    assert list(scores.index) == ["ensemble", "best candidate", "best baseline (logistic)"]
    assert scores.loc["ensemble", "heldout_score"] == pytest.approx(
        accuracy_score(data.y_test, est.predict(data.X_test))
    )
    assert scores.loc["best candidate", "heldout_score"] == pytest.approx(result.heldout_score_)
    row = scores.loc["best candidate"]
    assert row["ci_low"] <= row["difference"] <= row["ci_high"] and 0 <= row["p_value"] <= 1
    text = str(result)
    assert "ensemble of" in text and "optimistic" in text
    assert "beat the best candidate" in text


def test_the_report_shows_the_ensemble_beside_the_best_candidate(tmp_path):
    X, y = _data()
    space = {"C": tk.Choice([0.001, 0.1, 10.0])}
    result = tk.search(LogisticRegression(), X, y, space=space, cv=3, verbose=0, ensemble=5)
    tk.report.write_report(result, tmp_path, formats=["md", "html"], plots=False)
    verdict = ensemble_lines(result)[-1]
    assert "beat the best candidate" in verdict
    for name in ("leaderboard.md", "index.md"):
        text = (tmp_path / name).read_text()
        assert text.count(verdict) == 1 and "ensemble of" in text, name
    html = (tmp_path / "leaderboard.html").read_text()
    assert "ensemble of" in html and "beat the best candidate" in html


def test_an_ensemble_that_does_not_help_says_so():
    table = pd.DataFrame(
        {"cv_score": [0.9, 0.88], "cv_optimistic": [True, False], "heldout_score": [0.8, 0.8],
         "difference": [np.nan, 0.0], "ci_low": [np.nan, -0.02], "ci_high": [np.nan, 0.02],
         "p_value": [np.nan, 0.5]}, index=["ensemble", "best candidate"],
    )  # fmt: skip
    result = type("R", (), {"ensemble_scores_": table, "ensemble_weights_": [1, 2]})()
    lines = ensemble_lines(result)
    assert "does not beat the best candidate" in lines[-1] and "optimistic" in lines[0]
    table.loc["best candidate", ["difference", "ci_low"]] = [0.05, 0.01]
    assert "the ensemble beats the best candidate" in ensemble_lines(result)[-1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ensemble": True, "oof_predictions": False}, "oof_predictions=False turns them off"),
        ({"outer_cv": 1}, "outer_cv needs at least 2 folds: give a number"),
        ({"ensemble": 0}, "ensemble must be True, False or a size >= 1"),
        ({"oof_predictions": "yes"}, "oof_predictions must be True or False"),
    ],
)
def test_bad_input_is_refused_before_training(kwargs, match):
    X, y = _data(40)
    with pytest.raises(ValueError, match=match):
        tk.search(LogisticRegression(), X, y, space={"C": tk.Choice([1.0])}, verbose=0, **kwargs)


def test_diagnostics_need_oof_predictions():
    X, y = _data()
    result = tk.search(LogisticRegression(), X, y, space={"C": tk.Choice([1.0])}, cv=3,
                       verbose=0, oof_predictions=False, baselines=False)  # fmt: skip
    with pytest.raises(tk.TunekitError, match="oof_predictions=True"):
        plot_diagnostics(result)
    assert diagnostic_figures(result) == []


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_diagnostics_are_drawn_from_the_best_candidates_oof_predictions(kind, tmp_path):
    pytest.importorskip("matplotlib")
    X, y = _data()
    est = LogisticRegression() if kind == "classifier" else Ridge()
    if kind == "regressor":
        y = X[:, 0] * 2.0 + X[:, 1]
    space = {"C": tk.Choice([0.1, 1.0])} if kind == "classifier" else {"alpha": tk.Choice([1.0])}
    result = tk.search(est, X, y, space=space, cv=3, verbose=0, baselines=False)
    figures = plot_diagnostics(result)
    names = (["oof_confusion", "oof_calibration"] if kind == "classifier"
             else ["oof_prediction_error", "oof_residuals"])  # fmt: skip
    assert list(figures) == names
    if kind == "classifier":  # the confusion matrix counts the OOF argmax against y
        counts = figures["oof_confusion"].axes[0].images[0].get_array()
        oof = result.oof_predictions_[result.best_index_]
        hits = np.sum(np.argmax(oof, axis=1) == result.oof_target_)
        assert np.trace(np.asarray(counts)) == hits
    written = tk.report.write_report(result, tmp_path, formats=["md", "html"])
    assert set(names) <= set(written)
    assert f"{names[0]}.png" in written["index"].read_text()
    assert "data:image/png;base64" in written["html"].read_text()


def test_ensemble_after_the_fact_on_a_study():
    X, y = _data()
    result = tk.search(LogisticRegression(), X, y, space={"C": tk.Float(1e-3, 10.0, log=True)},
                       strategy="optuna", n_trials=4, cv=3, verbose=0, baselines=False)  # fmt: skip
    est = tk.ensemble(result, size=3, n_bootstrap=50)
    assert len(result.ensemble_weights_) == len(est.estimators_) >= 1
    rows = result.ensemble_weights_["row"].to_numpy()
    for row, member in zip(rows, est.estimators_, strict=True):
        assert member.get_params()["C"] == result.cv_results_["params"][row]["C"]
    scorer = check_scoring(LogisticRegression())
    assert np.isfinite(scorer(est, result.data_.X_test, result.data_.y_test))
    assert clone(est).fit(X, y).predict(X).shape == (len(y),)
