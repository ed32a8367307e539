"""Out-of-fold predictions: every (candidate, fold)'s predictions on its test rows.

The reference is the fold model itself: on the standard path, a fold model
refit by hand (or the very model the evaluator fitted) predicts the same
numbers on the fold's test rows; on the stacked engine, a Keras ``mlp()``
rebuilt from a member's final weights does. Studies store them in the trial
record (base64 float32) and read them back, on SQLite and PostgreSQL alike.
"""

import os

import numpy as np
import optuna
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score

import tunekit as tk
import tunekit.evaluators._base as base
from tunekit.record import (
    OOF_PREDICTIONS,
    TrialRecord,
    encode_oof_predictions,
    oof_predictions_of,
    read_oof_predictions,
    read_oof_target,
)
from tunekit.strategies.fixed_list import StackedSearchCV

SPACE = {"C": tk.Choice([0.01, 1.0])}


def _data(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, y


def _by_hand(result, i):
    """Candidate ``i`` refit on each fold's training rows, predicting its test rows."""
    data = result.data_
    est = clone(data.estimator).set_params(**result.cv_results_["params"][i])
    out = np.full(result.oof_predictions_[i].shape, np.nan)
    for train, test in data.folds:
        model = clone(est).fit(data.X_search[train], data.y_search[train])
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        out[test] = getattr(model, method)(data.X_search[test])
    return out


@pytest.mark.parametrize("strategy", ["grid", "random", "optuna"])
def test_standard_path_equals_each_fold_models_predict_proba(strategy):
    X, y = _data()
    result = tk.search(LogisticRegression(), X, y, space=SPACE, strategy=strategy, n_trials=2,
                       cv=3, verbose=0, baselines=False)  # fmt: skip
    assert len(result.oof_predictions_) == len(result.cv_results_["params"])
    n_search = len(result.data_.y_search)
    for i, oof in enumerate(result.oof_predictions_):
        assert oof.dtype == np.float32 and oof.shape == (n_search, 2)
        np.testing.assert_allclose(oof, _by_hand(result, i), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(result.oof_target_, result.data_.y_search)


def test_regressor_values_and_a_failed_fold_is_nan():
    X, y = _data()
    y = X @ np.array([1.0, -1.0, 0.5, 0.0])
    result = tk.search(Ridge(), X, y, space={"alpha": tk.Choice([0.1, 10.0])}, cv=3,
                       verbose=0, baselines=False, test_size=None)  # fmt: skip
    for i, oof in enumerate(result.oof_predictions_):
        assert oof.shape == (len(y),)
        np.testing.assert_allclose(oof, _by_hand(result, i), rtol=1e-5, atol=1e-5)


class _FailsOnFold(LogisticRegression):
    """Fails when its training rows include the row whose first value is ``poison``."""

    def __init__(self, C=1.0, poison=None):
        super().__init__(C=C)
        self.poison = poison

    def fit(self, X, y, sample_weight=None):
        if np.any(X[:, 0] == self.poison):
            raise ValueError("poison row")
        return super().fit(X, y, sample_weight)


def test_nan_where_a_fold_failed():
    X, y = _data()
    space = {"poison": tk.Choice([float(X[0, 0]), 999.0])}  # the first fails in 2 of 3 folds
    with pytest.warns(UserWarning):
        result = tk.search(_FailsOnFold(), X, y, space=space, cv=3, verbose=0, baselines=False,
                           test_size=None, refit_top=0)  # fmt: skip
    i = [p["poison"] for p in result.cv_results_["params"]].index(float(X[0, 0]))
    oof = result.oof_predictions_[i]
    test_of_row0 = next(te for _, te in result.data_.folds if 0 in te)
    assert np.isfinite(oof[test_of_row0]).all()  # the one fold that trained without row 0
    assert np.isnan(oof).sum() == 2 * (len(y) - len(test_of_row0))
    assert np.isfinite(result.oof_predictions_[1 - i]).all()


def test_turned_off():
    X, y = _data()
    result = tk.search(LogisticRegression(), X, y, space=SPACE, cv=3, verbose=0,
                       baselines=False, oof_predictions=False)  # fmt: skip
    assert result.oof_predictions_ is None


def _spy(monkeypatch):
    """Record every (fitted fold model, test X, predictions) the evaluators keep."""
    seen = []
    real = base.predictions_of

    def spy(est, X):
        out = real(est, X)
        seen.append((est, np.array(X), out))
        return out

    monkeypatch.setattr(base, "predictions_of", spy)
    return seen


def _rows_of(X_search, X_test):
    index = {row.tobytes(): i for i, row in enumerate(np.asarray(X_search, dtype="float32"))}
    return np.array([index[row.tobytes()] for row in np.asarray(X_test, dtype="float32")])


def _keras_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 5)).astype("float32")
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    return X, y


def _row_of(result, est_params):
    for i, params in enumerate(result.cv_results_["params"]):
        if all(est_params.get(k) == v for k, v in params.items()):
            return i
    raise AssertionError(f"no candidate has {est_params}")


def test_keras_standard_path_equals_the_fold_models_own_predictions(monkeypatch):
    X, y = _keras_data()
    seen = _spy(monkeypatch)
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=2, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    result = tk.search(est, X, y, space={"model__l2": tk.Choice([0.0, 0.01])}, cv=2,
                       engine="sklearn", verbose=0, baselines=False, test_size=None,
                       refit_top=0)  # fmt: skip
    assert len(seen) == 4
    for model, X_test, _ in seen:
        i = _row_of(result, model.get_params())
        rows = _rows_of(X, X_test)
        np.testing.assert_allclose(result.oof_predictions_[i][rows], model.predict_proba(X_test),
                                   atol=1e-6)  # fmt: skip


def test_stacked_engine_equals_a_keras_model_rebuilt_from_the_member_weights(monkeypatch):
    X, y = _keras_data()
    seen = _spy(monkeypatch)
    est = tk.KerasClassifier(tk.builders.mlp, epochs=2, batch_size=16, random_state=0, verbose=0)
    # widths tell the members apart: only its own candidate's network takes its weights
    space = {"model__hidden": tk.Choice([(3,), (5,)]), "model__l2": tk.Choice([0.0, 0.01])}
    result = tk.search(est, X, y, space=space, cv=2, engine="stacked", verbose=0,
                       baselines=False, test_size=None, refit_top=0)  # fmt: skip
    assert result.engine_ == "stacked"
    members = [(m, X_test) for m, X_test, _ in seen if hasattr(m, "weights_")]
    assert len(members) == 8
    checked = set()
    for member, X_test in members:
        rows = _rows_of(X, X_test)
        width = member.weights_[0].shape[1]
        for i, params in enumerate(result.cv_results_["params"]):
            if params["model__hidden"] != (width,):
                continue
            keras_model = tk.builders.mlp(
                input_shape=(5,), hidden=(width,), l2=params["model__l2"],
                output_units=1, output_activation="sigmoid",
            )  # fmt: skip
            keras_model.set_weights(member.weights_)
            p = keras_model.predict(X_test, verbose=0)[:, 0]
            if np.allclose(result.oof_predictions_[i][rows, 1], p, atol=1e-5):
                checked.add((i, tuple(rows)))
    assert len(checked) == 8  # every (candidate, fold) matched its own member's network
    for oof in result.oof_predictions_:
        assert np.isfinite(oof).all()
        np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-5)


def test_record_round_trip_and_study_reader():
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    values[2] = np.nan
    record = TrialRecord()
    record.set_predictions(values)
    attrs = record.attrs()
    stored = attrs[OOF_PREDICTIONS]
    assert stored["shape"] == [6, 2] and stored["dtype"] == "float32"
    np.testing.assert_array_equal(read_oof_predictions(attrs), values)
    assert read_oof_predictions({}) is None
    with pytest.raises(tk.TunekitError, match="base64 float32"):
        read_oof_predictions({OOF_PREDICTIONS: {"shape": [5], "data": "AAAA"}})

    study = optuna.create_study(direction="maximize")
    dist = {"C": optuna.distributions.FloatDistribution(0.1, 10)}
    for state, attrs in ((optuna.trial.TrialState.COMPLETE, {OOF_PREDICTIONS: stored}),
                         (optuna.trial.TrialState.PRUNED, {OOF_PREDICTIONS: stored}),
                         (optuna.trial.TrialState.COMPLETE, {})):  # fmt: skip
        study.add_trial(optuna.trial.create_trial(
            params={"C": 1.0}, distributions=dist, state=state,
            value=0.5 if state == optuna.trial.TrialState.COMPLETE else None,
            user_attrs=attrs,
        ))  # fmt: skip
    read = oof_predictions_of(study.trials)
    np.testing.assert_array_equal(read[0], values)
    assert np.isnan(read[1]).all() and np.isnan(read[2]).all()
    assert oof_predictions_of(study.trials, n_rows=7) is None
    assert encode_oof_predictions(values)["data"] == stored["data"]


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
def test_study_stores_them_and_they_read_back(where, tmp_path):
    if where == "postgres":
        url = os.environ.get("TUNEKIT_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    else:
        url = f"sqlite:///{tmp_path}/oof.db"
    X, y = _data()
    name = f"oof-{os.getpid()}-{np.random.randint(1 << 30)}"
    result = tk.search(LogisticRegression(), X, y, space=SPACE, strategy="optuna", n_trials=2,
                       cv=3, verbose=0, baselines=False, storage=url, study_name=name)  # fmt: skip
    study = optuna.load_study(study_name=name, storage=url)
    read = oof_predictions_of(study.trials)
    for i, oof in enumerate(result.oof_predictions_):
        np.testing.assert_array_equal(read[i], oof)
        np.testing.assert_allclose(oof, _by_hand(result, i), atol=1e-6)


def test_tunekit_report_of_a_storage_draws_the_diagnostics_from_the_trials(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = _data()
    url = f"sqlite:///{tmp_path}/report.db"
    result = tk.search(LogisticRegression(), X, y, space=SPACE, strategy="optuna", n_trials=2,
                       cv=3, verbose=0, baselines=False, storage=url, study_name="r")  # fmt: skip
    study = optuna.load_study(study_name="r", storage=url)
    np.testing.assert_array_equal(read_oof_target(study), result.oof_target_)
    written = tk.report.write_report(tk.report.load(url, study="r"), tmp_path / "out",
                                     formats=["md"])  # fmt: skip
    assert {"oof_confusion", "oof_calibration"} <= set(written)


def test_optuna_batches_on_the_stacked_engine_store_the_members_predictions(tmp_path):
    X, y = _keras_data()
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=2, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    url = f"sqlite:///{tmp_path}/batch.db"
    result = tk.search(est, X, y, space={"model__l2": tk.Float(1e-4, 1e-1, log=True)},
                       strategy="optuna", n_trials=2, cv=2, verbose=0, baselines=False,
                       test_size=None, storage=url, study_name="b",
                       pruner=optuna.pruners.NopPruner())  # fmt: skip
    assert result.engine_ == "stacked"
    study = optuna.load_study(study_name="b", storage=url)
    stored = oof_predictions_of(study.trials, n_rows=len(y))
    for oof, again in zip(result.oof_predictions_, stored, strict=True):
        assert oof.shape == (len(y), 2) and np.isfinite(oof).all()
        np.testing.assert_array_equal(oof, again)
        np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow  # a third stacked-engine run; the rebuilt-weights test covers the engine
def test_fixed_list_oof_predictions_give_the_engines_own_fold_scores():
    X, y = _keras_data()
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=2, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    search = StackedSearchCV(est, {"model__l2": [0.0, 0.1]}, cv=3, refit=False).fit(X, y)
    assert search.engine_ == "stacked" and len(search.oof_predictions_) == 2
    for i, oof in enumerate(search.oof_predictions_):
        for s, (_, test) in enumerate(search._checked_cv_orig.split(X, y)):
            accuracy = accuracy_score(y[test], np.argmax(oof[test], axis=1))
            assert accuracy == pytest.approx(search.cv_results_[f"split{s}_test_score"][i])
