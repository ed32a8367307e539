"""Nested cross-validation as a result of its own: every outer fold's choice and score.

A user's own loop (one search per outer training part, its choice refit and scored on the
outer test part) is the reference; rows are traced to show that no outer test row reaches
the inner search; a fold whose search fails is a NaN row with its reason.
"""

import numpy as np
import pytest
from _builders import dense
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, check_scoring
from sklearn.model_selection import StratifiedKFold

import tunekit as tk
from tunekit.exceptions import SearchFailedError

SPACE = {"C": tk.Choice([0.01, 1.0, 100.0])}
SEEN: list[set] = []


def _data(n=90):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    ids = np.arange(n, dtype=float)[:, None]  # column 0: the row's id, ignored by the model
    return np.hstack([ids, X]), y


class _Traced(LogisticRegression):
    """Logistic regression on columns 1:, recording the row ids it is fit on."""

    def fit(self, X, y, sample_weight=None):
        SEEN.append(set(X[:, 0].astype(int)))
        return super().fit(X[:, 1:], y, sample_weight)

    def decision_function(self, X):  # what predict and predict_proba call
        return super().decision_function(X[:, 1:])


class _FailsOnRow(_Traced):
    """Fails whenever its training rows include row ``bad``: every candidate of one fold."""

    def __init__(self, C=1.0, bad=-1):
        super().__init__(C=C)
        self.bad = bad

    def fit(self, X, y, sample_weight=None):
        if self.bad in set(X[:, 0].astype(int)):
            raise ValueError(f"row {self.bad} is poison")
        return super().fit(X, y, sample_weight)


def _nested(estimator, X, y, **kwargs):
    return tk.search(estimator, X, y, space=SPACE, cv=3, outer_cv=3, baselines=False,
                     verbose=0, **kwargs)  # fmt: skip


def test_nested_cv_keeps_every_outer_folds_choice_and_equals_the_users_loop():
    X, y = _data()
    result = _nested(_Traced(), X, y)
    nested = result.nested_
    assert list(nested.index) == [0, 1, 2]
    outer = StratifiedKFold(3).split(X, y)
    for k, (train, test) in enumerate(outer):  # the loop a user would write
        inner = tk.search(_Traced(), X[train], y[train], space=SPACE, cv=3, test_size=None,
                          baselines=False, verbose=0)  # fmt: skip
        score = accuracy_score(y[test], inner.best_estimator_.predict(X[test]))
        row = nested.loc[k]
        assert row["params"] == inner.best_params_
        assert row["inner_best_score"] == pytest.approx(inner.best_score_)
        assert row["outer_score"] == pytest.approx(score)
        assert row["optimism"] == pytest.approx(inner.best_score_ - score)
        assert (row["n_train"], row["n_test"]) == (len(train), len(test))
    assert result.outer_scores_ == list(nested["outer_score"])
    text = str(result)
    assert "nested CV over 3 outer folds:" in text and "optimistic by" in text


def test_no_outer_test_row_reaches_the_inner_search():
    X, y = _data()
    SEEN.clear()
    _nested(_Traced(), X, y)
    tests = [set(test) for _, test in StratifiedKFold(3).split(X, y)]
    # every fit of an outer fold's search (its CV folds and its refit) sees only rows of
    # that fold's training part: each fit avoids exactly one outer test part entirely
    assert SEEN
    for rows in SEEN:
        assert sum(not (rows & test) for test in tests) == 1


def test_a_failed_outer_fold_is_a_nan_row_with_its_reason_and_the_others_stand(tmp_path):
    X, y = _data()
    bad = int(next(iter(StratifiedKFold(3).split(X, y)))[1][0])  # in outer fold 0's test part
    # fold 0 trains without the row, folds 1 and 2 with it: only fold 0 can succeed
    result = _nested(_FailsOnRow(bad=bad), X, y)
    nested = result.nested_
    assert np.isfinite(nested.loc[0, "outer_score"])
    for k in (1, 2):
        assert np.isnan(nested.loc[k, "outer_score"]) and nested.loc[k, "params"] is None
        reason = nested.loc[k, "failure_reason"]
        assert reason.startswith("SearchFailedError: ") and f"row {bad} is poison" in reason
    assert "2 outer fold(s) failed (fold 1: SearchFailedError" in str(result)
    tk.report.write_report(result, tmp_path, formats=("md", "json"), plots=False)
    assert "nested CV over 3 outer folds" in (tmp_path / "leaderboard.md").read_text()
    back = tk.report.load(tmp_path / "cv_results.json")
    assert tk.report.leaderboard(back).attrs["nested_summary"] == (
        result.leaderboard.attrs["nested_summary"]
    )


def test_every_outer_fold_failing_is_a_search_failure_and_one_fold_is_refused():
    X, y = _data()
    with pytest.raises(SearchFailedError, match=r"every outer fold of nested cross-validation"):
        _nested(_FailsOnRow(bad=-1).set_params(C=1.0), X[:, :1].repeat(4, axis=1) * np.nan, y)
    with pytest.raises(ValueError, match=r"outer_cv needs at least 2 folds|n_splits"):
        tk.search(_Traced(), X, y, space=SPACE, cv=3, outer_cv=1, verbose=0)


def _keras_data(n=72):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 4)).astype("float32")
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


def _assert_outer_score_of_a_member_alone(row, est, params, X, y, split):
    """The outer score equals the chosen candidate as an engine member trained alone."""
    from tunekit.evaluators import StackedEvaluator

    alone = StackedEvaluator().evaluate(est, [params], [split], X, y,
                                        scorers=check_scoring(est, "accuracy"))  # fmt: skip
    assert row["outer_score"] == pytest.approx(alone.entries[0][0]["test_scores"], abs=1e-12)


def test_every_outer_fold_of_a_keras_grid_trains_in_one_stack_and_equals_the_loop(monkeypatch):
    from tunekit.evaluators import StackedEvaluator

    X, y = _keras_data()
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=3, batch_size=16,
                             verbose=0, random_state=0)  # fmt: skip
    space = {"model__l2": tk.Choice([1e-4, 1e-1]), "model__dropout": tk.Choice([0.0, 0.3])}
    calls = []
    evaluate = StackedEvaluator.evaluate

    def counted(self, estimator, candidates, splits, *args, **kwargs):
        calls.append((len(candidates), len(splits)))
        return evaluate(self, estimator, candidates, splits, *args, **kwargs)

    monkeypatch.setattr(StackedEvaluator, "evaluate", counted)
    result = tk.search(est, X, y, space=space, cv=2, outer_cv=2, baselines=False,
                       engine="stacked", random_state=0, verbose=0)  # fmt: skip
    # one evaluation of 4 candidates x 2 outer x 2 inner folds, then every outer fold's
    # choice on its outer split: no inner search refits on its own
    assert calls[0] == (4, 4)
    assert len(calls) == 2 and calls[1][1] == 2
    assert result.best_estimator_ is None
    monkeypatch.setattr(StackedEvaluator, "evaluate", evaluate)
    nested = result.nested_
    for k, (train, test) in enumerate(StratifiedKFold(2).split(X, y)):
        inner = tk.search(est, X[train], y[train], space=space, cv=2, test_size=None,
                          baselines=False, engine="stacked", random_state=0, verbose=0)  # fmt: skip
        assert nested.loc[k, "params"] == inner.best_params_
        assert nested.loc[k, "inner_best_score"] == pytest.approx(inner.best_score_, abs=1e-12)
        # the chosen candidate as an engine member on the outer training rows, trained alone
        _assert_outer_score_of_a_member_alone(nested.loc[k], est, inner.best_params_, X, y,
                                              (train, test))  # fmt: skip
    assert result.outer_scores_ == list(nested["outer_score"])
    assert "nested CV over 2 outer folds:" in str(result)


def test_unseeded_random_searches_and_optuna_off_the_engine_run_each_outer_fold_alone():
    from tunekit.nested import shared_outer_folds

    X, y = _data()
    splits = list(StratifiedKFold(3).split(X, y))
    base = {"backend": None, "fit_params": {}, "cv": 3, "random_state": 0}
    for strategy, seed, shared in [("grid", None, True), ("random", 0, True),
                                   ("random", None, False), ("halving", 1, True),
                                   ("optuna", 0, False)]:  # fmt: skip
        options = {**base, "strategy": strategy, "random_state": seed}
        folds = shared_outer_folds(_Traced(), X, y, splits, options)
        assert (folds is not None) == shared, strategy
    options = {**base, "strategy": "grid", "fit_params": {"sample_weight": np.ones(len(y))}}
    assert shared_outer_folds(_Traced(), X, y, splits, options) is None
    # Optuna: studies side by side on the engine only (a Keras estimator, one process)
    keras_est = _keras_clf("mlp")
    for engine, n_jobs, shared in [("auto", 1, True), ("sklearn", 1, False), ("auto", 2, False)]:
        options = {**base, "strategy": "optuna", "engine": engine, "n_jobs": n_jobs}
        folds = shared_outer_folds(keras_est, X, y, splits, options)
        assert (folds is not None and folds.studies is not None) == shared, (engine, n_jobs)


def _keras_clf(builder):
    fn, hidden = (tk.builders.mlp, (4,)) if builder == "mlp" else (dense, 4)
    return tk.KerasClassifier(fn, model__hidden=hidden, epochs=3, batch_size=16, verbose=0,
                              random_state=0)  # fmt: skip


OPTUNA_SPACE = {"model__l2": tk.Float(1e-5, 1e-1, log=True), "model__dropout": tk.Float(0.0, 0.5)}


@pytest.mark.parametrize(
    "builder", ["mlp", pytest.param("any", marks=pytest.mark.slow)]  # any: about 11 s
)
def test_optuna_outer_folds_share_each_round_of_batches_and_equal_the_loop(monkeypatch, builder):
    from tunekit.evaluators import StackedEvaluator

    X, y = _keras_data(60)
    est = _keras_clf(builder)
    calls = []
    evaluate = StackedEvaluator.evaluate

    def counted(self, estimator, candidates, splits, *args, **kwargs):
        calls.append((len(candidates), len(splits), kwargs.get("folds") is not None))
        return evaluate(self, estimator, candidates, splits, *args, **kwargs)

    monkeypatch.setattr(StackedEvaluator, "evaluate", counted)
    options = dict(space=OPTUNA_SPACE, strategy="optuna", n_trials=6, cv=2, baselines=False,
                   random_state=0, verbose=0)  # fmt: skip
    result = tk.search(est, X, y, outer_cv=2, **options)
    # two studies of 6 trials: a round of 4 + 4 trials, then 2 + 2, each on 2 x 2 inner splits;
    # then both outer folds' choices (one candidate if both chose the same) on their outer
    # splits; no inner search refits alone
    assert calls[:2] == [(8, 4, True), (4, 4, True)]
    assert len(calls) == 3 and calls[2][1:] == (2, False)
    assert result.best_estimator_ is None
    monkeypatch.setattr(StackedEvaluator, "evaluate", evaluate)
    nested = result.nested_
    for k, (train, test) in enumerate(StratifiedKFold(2).split(X, y)):
        inner = tk.search(est, X[train], y[train], test_size=None, **options)  # a user's loop
        assert nested.loc[k, "params"] == inner.best_params_
        assert nested.loc[k, "inner_best_score"] == pytest.approx(inner.best_score_, abs=1e-12)
        states = [t.state for t in inner.study_.get_trials()]
        assert len(states) == 6
        _assert_outer_score_of_a_member_alone(nested.loc[k], est, inner.best_params_, X, y,
                                              (train, test))  # fmt: skip
    assert "nested CV over 2 outer folds:" in str(result)


def test_no_outer_test_row_reaches_an_optuna_inner_study_in_lockstep(monkeypatch):
    from tunekit.evaluators import StackedEvaluator

    X, y = _keras_data(60)
    ids = np.arange(len(y), dtype="float32")[:, None]  # column 0: the row's id
    X = np.hstack([ids / len(y), X])
    seen = []
    evaluate = StackedEvaluator.evaluate

    def traced(self, estimator, candidates, splits, X_, *args, **kwargs):
        for own in kwargs.get("folds") or ():  # the studies' trials, not the outer fits
            rows = set()
            for s in own:
                rows |= set(np.rint(X_[np.r_[splits[s][0], splits[s][1]], 0] * len(y)).astype(int))
            seen.append(rows)
        return evaluate(self, estimator, candidates, splits, X_, *args, **kwargs)

    monkeypatch.setattr(StackedEvaluator, "evaluate", traced)
    tk.search(_keras_clf("mlp"), X, y, space=OPTUNA_SPACE, strategy="optuna", n_trials=4,
              cv=2, outer_cv=3, baselines=False, random_state=0, verbose=0)  # fmt: skip
    tests = [set(test) for _, test in StratifiedKFold(3).split(X, y)]
    assert len(seen) == 3 * 4  # one batch of 4 trials in each of the 3 studies, together
    for rows in seen:  # every candidate of every study: one outer fold's rows, no other's test
        assert sum(not (rows & test) for test in tests) == 1


def test_a_stop_request_ends_every_outer_study_in_lockstep(monkeypatch):
    import os
    import signal
    import threading

    from tunekit.evaluators import outer_studies

    X, y = _keras_data(60)
    dispatch = outer_studies._dispatch

    def signalling(requests, starts):
        hook = dispatch(requests, starts)

        def on_epoch(epoch, scores):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # recorded by the main thread's handler
            return hook(epoch, scores)

        return on_epoch

    monkeypatch.setattr(outer_studies, "_dispatch", signalling)
    est = _keras_clf("mlp").set_params(epochs=30)
    with pytest.raises(KeyboardInterrupt):
        tk.search(est, X, y, space=OPTUNA_SPACE, strategy="optuna", n_trials=40, cv=2,
                  outer_cv=2, baselines=False, random_state=0, verbose=0)  # fmt: skip
    assert not [t for t in threading.enumerate() if t.name.startswith("tunekit-outer-fold")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_outer_study_that_fails_in_lockstep_is_a_nan_row_and_the_others_stand(monkeypatch):
    import threading

    from tunekit.strategies.optuna_search import OptunaSearchCV

    X, y = _keras_data(60)
    fit, collect = OptunaSearchCV.fit, OptunaSearchCV._collect

    def fold() -> str:
        return threading.current_thread().name.rsplit("-", 1)[-1]

    def failing_fit(self, X, y=None, **kwargs):  # outer fold 1: before its first batch
        if fold() == "1":
            raise SearchFailedError("fold 1 failed at once")
        return fit(self, X, y, **kwargs)

    def failing_collect(self, X, y, fit_params):  # outer fold 2: after all its batches
        if fold() == "2":
            raise SearchFailedError("fold 2 failed at the end")
        return collect(self, X, y, fit_params)

    monkeypatch.setattr(OptunaSearchCV, "fit", failing_fit)
    monkeypatch.setattr(OptunaSearchCV, "_collect", failing_collect)
    result = tk.search(_keras_clf("mlp"), X, y, space=OPTUNA_SPACE, strategy="optuna",
                       n_trials=6, cv=2, outer_cv=3, baselines=False, random_state=0,
                       verbose=0)  # fmt: skip
    nested = result.nested_
    assert np.isfinite(nested.loc[0, "outer_score"]) and nested.loc[0, "params"] is not None
    for k, why in [(1, "fold 1 failed at once"), (2, "fold 2 failed at the end")]:
        assert np.isnan(nested.loc[k, "outer_score"]) and nested.loc[k, "params"] is None
        assert nested.loc[k, "failure_reason"] == f"SearchFailedError: {why}"
