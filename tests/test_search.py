"""tunekit.search(): every strategy, one schema, held-out test, pruning, resume, failures."""

import numpy as np
import optuna
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit.exceptions import SearchFailedError

optuna.logging.set_verbosity(optuna.logging.WARNING)

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
TUNEKIT_KEYS = {"state", "failure_reason", "heldout_test_score"}


def keras_clf(**kwargs):
    params = dict(model__hidden=(4,), epochs=2, batch_size=32, random_state=0)
    params.update(kwargs)
    return tk.KerasClassifier(tk.builders.mlp, **params)


KERAS_SPACE = {"model__l2": tk.Float(1e-4, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.4)}
LOGREG_SPACE = {"C": tk.Float(0.01, 10.0, log=True)}


def schema_keys(cv_results, n_splits):
    keys = set(cv_results)
    for i in range(n_splits):
        assert f"split{i}_test_score" in keys
        assert f"split{i}_train_score" in keys
    return {k for k in keys if not k.startswith(("split", "param_"))}


@pytest.mark.parametrize(
    "strategy, extra",
    [
        # grid and random: the stacked searches of tests/engine/test_stacked_search.py and
        # test_same_schema_for_every_strategy; halving on Keras: tests/test_epoch_rungs.py, and
        # test_bad_inputs.py::test_halving_runs_with_its_default_candidates (on n_samples).
        # About 10 s each on 2 cores: CI runs them with -m slow.
        pytest.param("grid", {"n_points": 2}, marks=pytest.mark.slow),
        pytest.param("random", {"n_trials": 2}, marks=pytest.mark.slow),
        pytest.param("halving", {"n_trials": 3}, marks=pytest.mark.slow),
        ("optuna", {"n_trials": 2}),
    ],
)
def test_every_strategy_end_to_end_on_keras(strategy, extra, binary_data):
    X, y = binary_data
    result = tk.search(
        keras_clf(),
        X,
        y,
        space=KERAS_SPACE,
        strategy=strategy,
        cv=2,
        refit_top=1,  # one held-out refit: the chosen candidate (more: test_held_out_rows)
        engine="sklearn",
        verbose=0,
        **extra,
    )
    keys = schema_keys(result.cv_results_, 2)
    assert SKLEARN_KEYS | TUNEKIT_KEYS <= keys
    assert "param_model__l2" in result.cv_results_
    assert set(result.best_params_) == set(KERAS_SPACE)
    assert result.best_estimator_.predict(X).shape == (len(X),)
    assert result.heldout_score_ is not None and 0.0 <= result.heldout_score_ <= 1.0
    assert result.strategy == strategy and result.scoring == "accuracy"
    board = result.leaderboard
    assert (board["state"] != "BASELINE").sum() == len(result.cv_results_["params"])
    assert result.n_epochs_ and result.n_epochs_ >= 2 * 2  # epochs per fold were recorded
    assert result.histories_ and all("loss" in h for h in result.histories_.values())


def test_same_schema_for_every_strategy(binary_data):
    X, y = binary_data
    seen = {}
    for strategy in ("grid", "random", "halving", "optuna"):
        result = tk.search(
            LogisticRegression(),
            X,
            y,
            space=LOGREG_SPACE,
            strategy=strategy,
            cv=3,
            n_trials=3,
            verbose=0,
        )
        seen[strategy] = schema_keys(result.cv_results_, 3) - {
            "iter",
            "n_resources",
            "trial_number",
        }
    assert seen["grid"] == seen["random"] == seen["halving"] == seen["optuna"]


def test_optuna_over_the_grid_reproduces_gridsearchcv(binary_data):
    """A custom strategy over the same candidates gives GridSearchCV's cv_results_."""
    X, y = binary_data
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    reference = GridSearchCV(LogisticRegression(), grid, cv=3, return_train_score=True)
    reference.fit(X, y)
    sampler = optuna.samplers.GridSampler(grid, seed=0)
    result = tk.search(
        LogisticRegression(),
        X,
        y,
        space={"C": tk.Choice(grid["C"])},
        strategy="optuna",
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
        cv=3,
        n_trials=4,
        test_size=None,
        verbose=0,
    )
    ours = {p["C"]: i for i, p in enumerate(result.cv_results_["params"])}
    for j, params in enumerate(reference.cv_results_["params"]):
        i = ours[params["C"]]
        for key in (
            "mean_test_score",
            "std_test_score",
            "rank_test_score",
            "mean_train_score",
            "split0_test_score",
            "split2_train_score",
        ):
            assert result.cv_results_[key][i] == pytest.approx(reference.cv_results_[key][j])
    assert result.best_params_ == reference.best_params_


def test_unknown_parameter_fails_before_any_fit(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match=r"'model__dropot'.*Did you mean 'model__dropout'"):
        tk.search(keras_clf(), X, y, space={"model__dropot": [0.1]}, verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "bayes"}, r"strategy must be one of 'grid', 'random'"),
        ({"test_size": 1.5}, r"test_size must be a fraction in \(0, 1\)"),
        ({"n_trials": 0}, r"n_trials must be a positive integer"),
        ({"engine": "fast"}, r"engine must be one of"),
    ],
)
def test_bad_options_are_rejected(kwargs, match, binary_data):
    with pytest.raises(ValueError, match=match):
        tk.search(LogisticRegression(), *binary_data, space=LOGREG_SPACE, verbose=0, **kwargs)


class RowRecorder(ClassifierMixin, BaseEstimator):
    """Remembers every row id (last column) it was fit on, across clones."""

    seen: set = set()

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        RowRecorder.seen.update(np.asarray(X)[:, -1].astype(int).tolist())
        self.model_ = LogisticRegression(C=self.C).fit(np.asarray(X)[:, :-1], y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(np.asarray(X)[:, :-1])


def test_held_out_rows_are_never_seen_by_the_search(binary_data):
    X, y = binary_data
    X = np.column_stack([X, np.arange(len(X))])
    RowRecorder.seen = set()
    result = tk.search(
        RowRecorder(),
        X,
        y,
        space={"C": [0.1, 1.0, 10.0]},
        cv=3,
        test_size=0.25,
        refit_top=2,
        verbose=0,
    )
    held_out = set(range(len(X))) - RowRecorder.seen
    assert len(held_out) == 30  # 25% of 120 never reached any fit, refits included
    scored = np.isfinite(result.cv_results_["heldout_test_score"])
    assert scored.sum() == 2  # refit_top candidates were scored on them
    assert scored[result.best_index_]
    assert result.heldout_score_ == result.cv_results_["heldout_test_score"][result.best_index_]


def test_test_size_none_skips_the_held_out_set(binary_data):
    result = tk.search(
        LogisticRegression(), *binary_data, space=LOGREG_SPACE, test_size=None, verbose=0
    )
    assert result.heldout_score_ is None
    assert np.isnan(result.cv_results_["heldout_test_score"]).all()


def test_nested_cross_validation(binary_data):
    result = tk.search(
        LogisticRegression(),
        *binary_data,
        space=LOGREG_SPACE,
        cv=2,
        outer_cv=3,
        n_points=2,
        verbose=0,
    )
    assert len(result.outer_scores_) == 3
    assert all(0.5 < s <= 1.0 for s in result.outer_scores_)


class FailingClassifier(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        if self.C > 5:
            raise RuntimeError(f"C={self.C} is too large for this test")
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_failing_candidate_ranks_last_with_its_reason(strategy, binary_data):
    X, y = binary_data
    space = {"C": tk.Choice([0.1, 10.0])}
    kwargs = (
        {"sampler": optuna.samplers.GridSampler({"C": [0.1, 10.0]})} if strategy == "optuna" else {}
    )
    with pytest.warns(UserWarning):
        result = tk.search(
            FailingClassifier(),
            X,
            y,
            space=space,
            strategy=strategy,
            cv=2,
            n_trials=2,
            verbose=0,
            **kwargs,
        )
    cv = result.cv_results_
    bad = next(i for i, p in enumerate(cv["params"]) if p["C"] == 10.0)
    assert cv["state"][bad] == "FAIL"
    assert np.isnan(cv["mean_test_score"][bad])
    assert cv["rank_test_score"][bad] == max(cv["rank_test_score"])
    assert "too large for this test" in cv["failure_reason"][bad]
    assert result.best_params_["C"] == 0.1


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_all_candidates_failing_shows_the_first_traceback(strategy, binary_data):
    X, y = binary_data
    with pytest.raises(SearchFailedError, match=r"(?s)failed.*too large for this test"):
        tk.search(
            FailingClassifier(),
            X,
            y,
            space={"C": tk.Choice([20.0, 30.0])},
            strategy=strategy,
            cv=2,
            n_trials=2,
            verbose=0,
        )


class PruneAllButFirst(optuna.pruners.BasePruner):
    """Prunes every trial but number 0 at its first report."""

    def prune(self, study, trial):
        return trial.number > 0


def test_pruning_inside_the_folds_of_a_keras_model(binary_data):
    X, y = binary_data
    result = tk.search(
        keras_clf(epochs=4),
        X,
        y,
        space=KERAS_SPACE,
        strategy="optuna",
        cv=2,
        n_trials=3,
        pruner=PruneAllButFirst(),
        verbose=0,
        engine="sklearn",  # one trial at a time, folds in turn (the engine: test_optuna_batch)
    )
    states = list(result.cv_results_["state"])
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]
    first = result.study_.trials[0]
    # stride = max_epochs + 1 = 5: fold 0 epochs at steps 0..3, fold end at 4, fold 1 at 5..9
    assert {0, 4, 5, 9} <= set(first.intermediate_values)
    pruned = result.study_.trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert max(pruned.intermediate_values) < 4  # stopped inside the first fold
    assert np.isnan(result.cv_results_["mean_test_score"][1])


def test_pruning_after_a_fold(binary_data):
    X, y = binary_data
    result = tk.search(
        LogisticRegression(),
        X,
        y,
        space=LOGREG_SPACE,
        strategy="optuna",
        cv=3,
        n_trials=4,
        pruner=PruneAllButFirst(),
        verbose=0,
    )
    assert list(result.cv_results_["state"]).count("PRUNED") == 3
    assert np.isfinite(result.cv_results_["split0_test_score"][1])  # its first fold is kept
    assert np.isnan(result.cv_results_["split1_test_score"][1])


def test_optuna_study_resumes_without_rerunning_trials(binary_data, tmp_path):
    X, y = binary_data
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    kwargs = dict(
        space=LOGREG_SPACE, strategy="optuna", storage=storage, study_name="resume", cv=3, verbose=0
    )
    first = tk.search(LogisticRegression(), X, y, n_trials=3, **kwargs)
    values = [t.value for t in first.study_.trials]
    again = tk.search(LogisticRegression(), X, y, n_trials=3, **kwargs)
    assert len(again.study_.trials) == 3  # complete: nothing re-run
    more = tk.search(LogisticRegression(), X, y, n_trials=5, **kwargs)
    trials = more.study_.trials
    assert len(trials) == 5 and [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [t.value for t in trials[:3]] == values
    assert len(more.cv_results_["params"]) == 5


def test_default_storage_is_an_sqlite_file(binary_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tk.search(
        LogisticRegression(),
        *binary_data,
        space=LOGREG_SPACE,
        strategy="optuna",
        study_name="default-file",
        n_trials=1,
        cv=2,
        verbose=0,
    )
    assert (tmp_path / "tunekit-results" / "default-file.db").exists()


def test_reusing_a_study_with_another_space_is_refused(binary_data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    kwargs = dict(strategy="optuna", storage=storage, study_name="s", n_trials=1, cv=2, verbose=0)
    tk.search(LogisticRegression(), *binary_data, space=LOGREG_SPACE, **kwargs)
    with pytest.raises(ValueError, match=r"different search space"):
        tk.search(LogisticRegression(), *binary_data, space={"C": tk.Float(1.0, 2.0)}, **kwargs)


class InterruptingClassifier(LogisticRegression):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        InterruptingClassifier.fits += 1
        if InterruptingClassifier.fits == 7:  # inside the third trial (3 folds each)
            raise KeyboardInterrupt
        return super().fit(X, y, sample_weight=sample_weight)


def test_ctrl_c_keeps_finished_trials_and_returns_a_result(binary_data, tmp_path):
    InterruptingClassifier.fits = 0
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = tk.search(
        InterruptingClassifier(),
        *binary_data,
        space=LOGREG_SPACE,
        strategy="optuna",
        storage=storage,
        study_name="ctrl-c",
        cv=3,
        n_trials=10,
        verbose=0,
    )
    assert result.interrupted_
    assert list(result.cv_results_["state"]) == ["COMPLETE", "COMPLETE", "FAIL"]
    stored = optuna.load_study(study_name="ctrl-c", storage=storage)
    assert [t.state.name for t in stored.trials] == ["COMPLETE", "COMPLETE", "FAIL"]


@pytest.mark.slow  # Keras fits rung by rung (12 to 28 s); the engine's: tests/test_epoch_rungs.py
def test_halving_on_epochs(binary_data):
    X, y = binary_data
    result = tk.search(
        keras_clf(epochs=6),
        X,
        y,
        space=KERAS_SPACE,
        strategy="halving",
        resource="epochs",
        min_resources=2,
        factor=3,
        n_trials=3,
        cv=2,
        test_size=None,  # the rungs only: no held-out refits
        engine="sklearn",
        verbose=0,
    )
    assert sorted(set(result.cv_results_["n_resources"])) == [2, 6]


def test_pipeline_space_with_prefix(binary_data):
    pipe = make_pipeline(StandardScaler(), keras_clf())
    space = tk.Space({"model__dropout": [0.0, 0.3]}).prefixed("kerasclassifier__")
    result = tk.search(pipe, *binary_data, space=space, cv=2, engine="sklearn", test_size=None,
                       verbose=0)  # fmt: skip
    assert set(result.best_params_) == {"kerasclassifier__model__dropout"}


def test_parallel_jobs_give_the_same_scores(binary_data):
    kwargs = dict(space=LOGREG_SPACE, cv=3, n_points=3, verbose=0)
    serial = tk.search(LogisticRegression(), *binary_data, n_jobs=1, **kwargs)
    parallel = tk.search(LogisticRegression(), *binary_data, n_jobs=2, **kwargs)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"]
    )


def test_refit_order_puts_the_chosen_candidate_first_and_skips_repeats():
    from tunekit.strategies.refit import refit_order

    # halving: row 0 (an early round) has the best mean, but row 3 (the last round) was chosen
    means = np.array([0.9, 0.8, np.nan, 0.85, 0.7])
    params = [{"C": 1}, {"C": 2}, {"C": 3}, {"C": 4}, {"C": 1}]
    assert refit_order(means, params, chosen=3) == [3, 0, 1]  # row 4 repeats row 0
