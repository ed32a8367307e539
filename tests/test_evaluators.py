"""The seam: one schema, one seed rule and epochs for free on both evaluators; pipelines stack."""

import numpy as np
import pytest
from _builders import dense as _dense
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

import tunekit as tk
from tunekit.strategies.fixed_list import StackedSearchCV
from tunekit.strategies.sklearn_search import TunekitGridSearchCV

ENGINES = ("stacked", "sklearn")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=90) > 0).astype(int)
    return X, y


def _clf(**kw):
    params = dict(model__hidden=(6,), epochs=3, batch_size=16, random_state=0, verbose=0)
    params.update(kw)
    return tk.KerasClassifier(tk.builders.mlp, **params)


def _search(estimator, grid, X, y, engine, cv=3):
    return tk.search(
        estimator, X, y, space=grid, strategy="grid", cv=cv, engine=engine, test_size=None,
        verbose=0, baselines=False,
    )


@pytest.fixture(scope="module")
def both(data):
    X, y = data
    grid = {"model__dropout": [0.0, 0.3], "epochs": [2, 4]}
    return {engine: _search(_clf(), grid, X, y, engine) for engine in ENGINES}


def test_both_engines_write_the_same_keys(both):
    stacked, standard = both["stacked"], both["sklearn"]
    assert stacked.engine_ == "stacked" and standard.engine_ == "sklearn"
    assert set(stacked.cv_results_) == set(standard.cv_results_)
    for key in ("split0_best_epoch", "split2_n_epochs", "state", "failure_reason"):
        assert key in stacked.cv_results_
    np.testing.assert_array_equal(stacked.cv_results_["split0_n_epochs"], [2, 2, 4, 4])


@pytest.mark.parametrize("engine", ENGINES)
def test_epoch_counts_share_one_run(both, engine):
    result = both[engine]
    # 2 families (one per dropout) x 3 folds trained, not 4 candidates x 3 folds
    assert result.n_fits_ == 1 + 6
    assert result.n_epochs_ == 6 * 4


@pytest.mark.parametrize("engine", ENGINES)
def test_curves_end_on_the_score_the_search_ranks_by(both, engine):
    result = both[engine]
    curves = result.epoch_curves_
    assert list(curves.columns) == [
        "candidate", "fold", "epoch", "train_loss", "test_score", "val_loss"
    ]
    assert len(curves) == 3 * (2 + 2 + 4 + 4)
    for c, epochs in enumerate(result.cv_results_["param_epochs"]):
        for s in range(3):
            row = curves[(curves.candidate == c) & (curves.fold == s)]
            assert row.epoch.tolist() == list(range(1, epochs + 1))
            last = row[row.epoch == epochs].test_score.item()
            assert last == pytest.approx(result.cv_results_[f"split{s}_test_score"][c], abs=1e-6)
    assert np.isfinite(curves.train_loss).all()


# the standard path's fits: about 13 s on 2 cores, with -m slow in CI
@pytest.mark.parametrize(
    "engine", [pytest.param(e, marks=pytest.mark.slow) if e == "sklearn" else e for e in ENGINES]
)
def test_a_shorter_count_read_from_a_longer_run_equals_its_own_run(data, engine):
    X, y = data
    alone = _search(_clf(model__dropout=0.2), {"epochs": [2]}, X, y, engine)
    shared = _search(_clf(model__dropout=0.2), {"epochs": [2, 4]}, X, y, engine)
    for s in range(3):
        assert shared.cv_results_[f"split{s}_test_score"][0] == pytest.approx(
            alone.cv_results_[f"split{s}_test_score"][0], abs=1e-6
        )
        assert shared.cv_results_[f"split{s}_train_score"][0] == pytest.approx(
            alone.cv_results_[f"split{s}_train_score"][0], abs=1e-6
        )


def test_early_stopping_keeps_its_own_rule_and_reports_its_epochs(data):
    X, y = data
    result = _search(
        _clf(early_stopping=1, validation_fraction=0.25), {"epochs": [2, 6]}, X, y, "stacked"
    )
    assert result.n_fits_ == 1 + 6  # each candidate trains: no sharing under early stopping
    best = np.column_stack([result.cv_results_[f"split{s}_best_epoch"] for s in range(3)])
    assert np.isfinite(best).all() and (best >= 1).all()
    assert np.isfinite(result.epoch_curves_.val_loss).all()


def test_the_engine_follows_the_estimators_seed(data):
    X, y = data
    grid = {"model__dropout": [0.0, 0.2]}
    a = StackedSearchCV(_clf(random_state=0), grid, cv=3, refit=False).fit(X, y)
    b = StackedSearchCV(_clf(random_state=0), grid, cv=3, refit=False).fit(X, y)
    c = StackedSearchCV(_clf(random_state=1), grid, cv=3, refit=False).fit(X, y)
    key = "split0_test_score"
    np.testing.assert_array_equal(a.cv_results_[key], b.cv_results_[key])
    losses = [s.epoch_curves_.train_loss.to_numpy() for s in (a, c)]
    assert not np.allclose(*losses)


def test_a_candidates_scores_do_not_depend_on_its_neighbours(data):
    X, y = data
    target = {"model__dropout": 0.3, "model__noise": 0.1}
    others = [{"model__dropout": 0.0}, {"model__l2": 0.01}]
    first = StackedSearchCV(_clf(), [target, *others], cv=3, refit=False).fit(X, y)
    last = StackedSearchCV(_clf(), [others[1], target], cv=3, refit=False).fit(X, y)
    for s in range(3):
        key = f"split{s}_test_score"
        assert first.cv_results_[key][0] == pytest.approx(last.cv_results_[key][1], abs=1e-6)
    a = first.epoch_curves_.query("candidate == 0").train_loss.to_numpy()
    b = last.epoch_curves_.query("candidate == 1").train_loss.to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


class _Recorder(TransformerMixin, BaseEstimator):
    """Scales like StandardScaler and records the rows it was fitted on."""

    fitted_on: list = []

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X, y=None):
        type(self).fitted_on.append(np.asarray(X).copy())
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return np.asarray(X) - self.mean_ + self.shift


def test_pipeline_steps_are_fitted_on_each_folds_training_rows(data):
    X, y = data
    _Recorder.fitted_on = []
    pipe = make_pipeline(_Recorder(), _clf())
    grid = {"_recorder__shift": [0.0, 1.0], "kerasclassifier__model__l2": [0.0, 0.01]}
    search = TunekitGridSearchCV(
        pipe, grid, cv=StratifiedKFold(3), refit=False,
        evaluator=tk.evaluators.StackedEvaluator(strict=True),
    ).fit(X, y)
    assert search.engine_ == "stacked"
    folds = list(StratifiedKFold(3).split(X, y))
    # one fit per (preprocessing variant, fold), never on a test row
    assert len(_Recorder.fitted_on) == 2 * 3
    for k, rows in enumerate(_Recorder.fitted_on):
        train = folds[k % 3][0]
        np.testing.assert_array_equal(rows, X[train])
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()


class _FailsOnSmallFolds(TransformerMixin, BaseEstimator):
    def __init__(self, limit=0):
        self.limit = limit

    def fit(self, X, y=None):
        if len(X) < self.limit:
            raise ValueError(f"needs {self.limit} rows, got {len(X)}")
        self.n_rows_ = len(X)
        return self

    def transform(self, X):
        return np.asarray(X)


def test_a_failing_pipeline_step_gives_nan_and_its_reason(data):
    X, y = data
    pipe = make_pipeline(_FailsOnSmallFolds(), _clf())
    grid = {"_failsonsmallfolds__limit": [0, 1000]}
    with pytest.warns(UserWarning):
        result = _search(pipe, grid, X, y, "stacked")
    assert result.engine_ == "stacked"
    assert np.isfinite(result.cv_results_["mean_test_score"][0])
    assert np.isnan(result.cv_results_["mean_test_score"][1])
    assert "needs 1000 rows" in result.cv_results_["failure_reason"][1]


def test_engine_stacked_refuses_a_candidate_it_cannot_stack_before_training(data):
    X, y = data
    with pytest.raises(ValueError, match=r"engine='stacked' cannot stack candidate 1 .*adagrad"):
        _search(_clf(), {"optimizer": ["rmsprop", "adagrad"]}, X, y, "stacked")


def test_auto_mixes_engines_and_says_so(data):
    X, y = data
    result = _search(_clf(epochs=2), {"optimizer": ["rmsprop", "adagrad"]}, X, y, "auto")
    assert result.engine_ == "mixed"
    assert result.search_.engines_ == ["stacked", "sklearn"]
    assert np.isfinite(result.cv_results_["mean_test_score"]).all()


def test_halving_over_epochs_runs_its_rungs_on_the_engine(data):
    X, y = data
    result = tk.search(
        _clf(epochs=4), X, y, space={"model__dropout": tk.Float(0.0, 0.5)}, strategy="halving",
        resource="epochs", n_trials=4, factor=2, min_resources=2, cv=2, test_size=None,
        verbose=0, baselines=False,
    )
    assert result.engine_ == "stacked"
    assert set(result.cv_results_["iter"]) == {0, 1}
    assert set(result.cv_results_["n_resources"]) == {2, 4}


def _conv1d(input_shape, filters=3, dropout=0.0, output_units=1, output_activation="sigmoid"):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv1D(filters, 3, activation="relu")(inputs)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def _lstm(input_shape, units=3, output_units=1, output_activation="sigmoid"):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.LSTM(units)(inputs)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def signals():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 12, 1)).astype("float32")
    y = (X[:, :6, 0].mean(axis=1) > 0).astype(int)
    return X, y


def test_any_builder_reads_a_shorter_count_from_a_longer_run(signals):
    """As ``mlp()``'s trainer does: one run of 4 epochs per fold, scored at epoch 2."""
    X, y = signals
    clf = tk.KerasClassifier(_conv1d, epochs=2, batch_size=16, random_state=0, verbose=0,
                             model__dropout=0.2)  # fmt: skip
    alone = _search(clf, {"epochs": [2]}, X, y, "stacked")
    shared = _search(clf, {"epochs": [2, 4]}, X, y, "stacked")
    assert shared.engine_ == "stacked" and shared.n_fits_ == 1 + 3  # not 1 + 6
    for s in range(3):
        for kind in ("test", "train"):
            key = f"split{s}_{kind}_score"
            assert shared.cv_results_[key][0] == pytest.approx(alone.cv_results_[key][0],
                                                               abs=1e-6)  # fmt: skip
        assert shared.cv_results_[f"split{s}_n_epochs"].tolist() == [2, 4]
    curves = shared.epoch_curves_
    for c, epochs in enumerate((2, 4)):
        for s in range(3):
            row = curves[(curves.candidate == c) & (curves.fold == s)]
            assert row.epoch.tolist() == list(range(1, epochs + 1))
            assert row.test_score.iloc[-1] == pytest.approx(
                shared.cv_results_[f"split{s}_test_score"][c], abs=1e-6
            )


def test_a_users_own_builder_trains_on_the_engine(signals):
    X, y = signals
    clf = tk.KerasClassifier(_conv1d, epochs=2, batch_size=16, random_state=0, verbose=0)
    grid = {"model__filters": [2, 3], "model__dropout": [0.0, 0.2]}
    result = _search(clf, grid, X, y, "auto", cv=2)
    assert result.engine_ == "stacked"
    # the same parameters, one candidate: the keys do not depend on how many there are
    standard = _search(clf, {k: v[:1] for k, v in grid.items()}, X, y, "sklearn", cv=2)
    assert set(result.cv_results_) == set(standard.cv_results_)
    assert np.isfinite(result.cv_results_["mean_test_score"]).all()
    curves = result.epoch_curves_
    assert len(curves) == 4 * 2 * 2 and np.isfinite(curves.test_score).all()


def test_engine_stacked_names_the_layer_that_cannot_stack(signals):
    X, y = signals
    clf = tk.KerasClassifier(_lstm, epochs=1, batch_size=16, random_state=0, verbose=0)
    with pytest.raises(ValueError, match=r"engine='stacked' cannot stack candidate 0 .*LSTM"):
        _search(clf, {"model__units": [2, 3]}, X, y, "stacked", cv=2)
    result = _search(clf, {"model__units": [2]}, X, y, "auto", cv=2)
    assert result.engine_ == "sklearn"


def test_tunekit_keras_estimators_are_recognized_in_pipelines_and_others_are_not():
    """The engine choice and per-epoch pruning hang on this check: it must never go blind."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk
    from tunekit.evaluators import is_keras_estimator

    clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,))
    assert is_keras_estimator(clf)
    assert is_keras_estimator(make_pipeline(StandardScaler(), clf))
    assert is_keras_estimator(tk.KerasRegressor(tk.builders.mlp))
    assert not is_keras_estimator(LogisticRegression())


def test_folds_train_each_candidate_on_its_own_splits_on_both_paths(data):
    """``folds=``: what nested CV's outer studies share; the others' splits stay untrained."""
    from sklearn.metrics import check_scoring

    from tunekit.evaluators import StackedEvaluator

    X, y = data
    est = _clf(epochs=2)
    splits = list(StratifiedKFold(4).split(X, y))
    # the same parameters on two owners' splits (never one family), and one candidate that
    # takes the standard path
    cands = [{"optimizer": "rmsprop"}, {"optimizer": "adagrad"}, {"optimizer": "rmsprop"}]
    folds = [frozenset({0, 1}), frozenset({2, 3}), frozenset({2, 3})]
    scorer = check_scoring(est)
    done = StackedEvaluator().evaluate(est, cands, splits, X, y, scorers=scorer, folds=folds)
    assert done.engines == ["stacked", "sklearn", "stacked"]
    for c, own in enumerate(folds):
        where = sorted(own)
        alone = StackedEvaluator().evaluate(est, [cands[c]], [splits[s] for s in where], X, y,
                                            scorers=scorer)  # fmt: skip
        for s in range(len(splits)):
            if s not in own:
                assert done.entries[c][s] is None
                continue
            expected = alone.entries[0][where.index(s)]["test_scores"]
            assert done.entries[c][s]["test_scores"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("builder", ["mlp", "any"])
def test_padding_a_stack_to_a_compiled_shape_leaves_every_score_unchanged(
    data, monkeypatch, builder
):
    """``pad_to``: the Optuna batches' stacks share one shape; the real members are untouched."""
    import optuna
    from sklearn.metrics import check_scoring

    import tunekit.engine as engine
    from tunekit.evaluators import StackedEvaluator

    X, y = data
    if builder == "mlp":
        est = _clf(epochs=3)
        module, name = engine, "train_stack"
    else:
        est = tk.KerasClassifier(_dense, epochs=3, batch_size=16, random_state=0, verbose=0)
        module, name = engine.keras_stack, "train_group"
    splits = list(StratifiedKFold(3).split(X, y))
    cands = [{"model__dropout": 0.0}, {"model__dropout": 0.3, "epochs": 2}]
    sizes = []
    train = getattr(module, name)

    def counted(config, members, *args, **kwargs):
        sizes.append(len(members))
        return train(config, members, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    scorer = check_scoring(est)
    plain = StackedEvaluator().evaluate(est, cands, splits, X, y, scorers=scorer)
    padded = StackedEvaluator(pad_to=16).evaluate(est, cands, splits, X, y, scorers=scorer)
    assert sizes == [6, 16]  # two candidates x three folds, then padded to 16 members
    for c in range(len(cands)):
        for s in range(len(splits)):
            got, want = padded.entries[c][s], plain.entries[c][s]
            assert got["test_scores"] == pytest.approx(want["test_scores"], abs=1e-12)
            assert (got["n_epochs"], got["best_epoch"]) == (want["n_epochs"], want["best_epoch"])
    assert (padded.n_trained, padded.n_epochs) == (plain.n_trained, plain.n_epochs)
    # an Optuna study's first batch (4 trials) takes the full batches' shape, and on both
    # trainers the whole study is one stack of that shape (refilled slots)
    sizes.clear()
    tk.search(est, X, y, space={"model__dropout": tk.Float(0.0, 0.5)}, strategy="optuna",
              n_trials=14, cv=2, test_size=None, baselines=False, verbose=0, random_state=0,
              pruner=optuna.pruners.NopPruner())  # fmt: skip
    assert sizes == [16]


def test_a_candidates_curve_rows_are_indexed_as_the_rows_grow():
    from tunekit.evaluators._base import Evaluation

    evaluation = Evaluation(entries=[[], []], engines=["stacked", "stacked"])
    evaluation.curves.extend({"candidate": c % 3, "epoch": c} for c in range(7))
    assert [r["epoch"] for r in evaluation.curves_of(1)] == [1, 4]
    evaluation.curves.extend({"candidate": 1, "epoch": e} for e in (10, 11))
    evaluation.merge(Evaluation(entries=[[]], engines=["stacked"],
                                curves=[{"candidate": 0, "epoch": 12}]), [1])  # fmt: skip
    assert [r["epoch"] for r in evaluation.curves_of(1)] == [1, 4, 10, 11, 12]
    assert evaluation.curves_of(5) == []
    evaluation.curves = [{"candidate": 1, "epoch": 20}]  # a shorter list, indexed anew
    assert [r["epoch"] for r in evaluation.curves_of(1)] == [20]
    evaluation.curves = [{"candidate": 1, "epoch": 30}, {"candidate": 2, "epoch": 31}]
    assert [r["epoch"] for r in evaluation.curves_of(1)] == [30]  # another list: anew


def test_take_rows_is_safe_indexing():
    import pandas as pd
    from sklearn.utils import _safe_indexing

    from tunekit.evaluators._base import take_rows

    X = np.arange(30.0).reshape(10, 3)
    for data in (X, X[:, 0], pd.DataFrame(X), [list(r) for r in X]):
        for rows in (np.array([3, 1, 1]), np.array([], dtype=int), np.arange(10) % 2 == 0):
            got, want = take_rows(data, rows), _safe_indexing(data, rows)
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
            assert type(got) is type(want)
