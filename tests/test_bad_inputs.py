"""Bad inputs: each ends in a clear error or in a documented behaviour.

Every bad input of the core issue (NaN or inf in X, and in y for regression;
non-numeric columns; a single class; empty X; the wrong number of
dimensions; NaN in a sparse X), plus a class with one sample under stratified
CV, fewer samples than folds, object and pandas string columns, pandas string
labels, ``sample_weight`` and ``class_weight``, goes through a tiny Keras
estimator's ``fit`` and through ``tunekit.search`` (grid with the default
engine, and Optuna).
"""

import re
import warnings
from contextlib import contextmanager
from unittest import mock

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

import tunekit as tk
from tunekit.exceptions import DivergedError, InputShapeError, SearchFailedError

pytestmark = pytest.mark.timeout(300)

N = 40
SPACE = {"model__dropout": tk.Choice([0.0])}
SEARCH_ERRORS = (ValueError, TypeError, SearchFailedError)


def clf(**kwargs):
    return tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=1, batch_size=32, random_state=0, **kwargs
    )


def reg(**kwargs):
    return tk.KerasRegressor(
        tk.builders.mlp, model__hidden=(4,), epochs=1, batch_size=32, random_state=0, **kwargs
    )


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N, 3)).astype("float32")
    return X, (X[:, 0] > 0).astype(int), (2 * X[:, 0]).astype("float32")


def _with(array, value, rows=range(0, N, 4)):
    """``array`` with ``value`` written into 10 rows spread over the data."""
    out = array.copy()
    out[list(rows), ...] = value
    return out


X, Y, Y_REG = _data()
LABELS = np.where(Y == 1, "pos", "neg")

# name: (estimator factory, X, y, the clear error's pattern)
BAD = {
    "nan in X": (clf, _with(X, np.nan), Y, r"Input X contains NaN or infinity \(\d+ NaN"),
    "inf in X": (clf, _with(X, np.inf), Y, r"Input X contains NaN or infinity \(0 NaN, \d+ inf"),
    "nan in y (regression)": (reg, X, _with(Y_REG, np.nan), r"Input y contains NaN or infin"),
    "inf in y (regression)": (reg, X, _with(Y_REG, np.inf), r"Input y contains NaN or infin"),
    "object column": (
        clf,
        pd.DataFrame({"a": X[:, 0], "b": ["x", "y"] * (N // 2)}),
        Y,
        r"needs numeric features, but X has non-numeric columns \['b'\]",
    ),
    "pandas str column": (
        clf,
        pd.DataFrame({"a": X[:, 0], "b": pd.Series(["x", "y"] * (N // 2), dtype="str")}),
        Y,
        r"needs numeric features, but X has non-numeric columns \['b'\]",
    ),
    "pandas string column": (
        clf,
        pd.DataFrame({"a": X[:, 0], "b": pd.Series(["x", "y"] * (N // 2), dtype="string")}),
        Y,
        r"needs numeric features, but X has non-numeric columns \['b'\]",
    ),
    "string array": (
        clf,
        np.array([["a", "b", "c"]] * N),
        Y,
        r"needs numeric features, but X has dtype <U1 holding values that are not numbers",
    ),
    "single class": (clf, X, np.zeros(N, int), r"needs at least 2 classes in y, but y has 1"),
    "1-D X": (clf, X[:, 0], Y, r"expects X to be 2-D \(n_samples, n_features\)"),
    "sparse X holding NaN": (
        clf, sp.csr_matrix(_with(X, np.nan)), Y, r"Input X contains NaN or infinity \(\d+ NaN"
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_to_fit_is_a_clear_error(case):
    make, X_bad, y_bad, pattern = BAD[case]
    with pytest.raises((ValueError, TypeError), match=pattern):
        make().fit(X_bad, y_bad)


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_to_search_is_a_clear_error(case, strategy):
    """The estimator's own message reaches the user: raised, or as the first failure."""
    make, X_bad, y_bad, pattern = BAD[case]
    with pytest.raises(SEARCH_ERRORS, match=pattern):
        tk.search(make(), X_bad, y_bad, space=SPACE, strategy=strategy, n_trials=2, cv=2, verbose=0)


@pytest.mark.parametrize("case", ["nan in X", "nan in y (regression)"])
def test_one_nan_with_the_sklearn_engine_is_a_clear_error(case):
    make, X_bad, y_bad, pattern = BAD[case]
    if case == "nan in X":  # one bad row: the folds that train on it fail, the others don't
        X_bad = _with(X, np.nan, rows=[0])
    else:
        y_bad = _with(Y_REG, np.nan, rows=[0])
    with pytest.raises((ValueError, SearchFailedError), match=pattern):
        tk.search(make(), X_bad, y_bad, space=SPACE, cv=2, engine="sklearn", verbose=0)


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_empty_x_is_a_clear_error(strategy):
    empty, labels = np.zeros((0, 3), "float32"), np.zeros(0, int)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        clf().fit(empty, labels)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        tk.search(clf(), empty, labels, space=SPACE, strategy=strategy, n_trials=1, verbose=0)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        tk.search(clf(), empty, labels, space=SPACE, strategy=strategy, test_size=None, verbose=0)


def test_3d_x_with_a_declared_input_shape_is_a_clear_error():
    """A trailing axis of size 1 is Keras's to squeeze; any other extra axis is refused."""
    with pytest.raises(InputShapeError, match=r"declares an input shape of \(3,\) per sample"):
        clf(model__input_shape=(3,)).fit(X.reshape(N, 1, 3), Y)


def test_3d_x_without_a_declared_input_shape_is_flattened_by_mlp():
    """Documented: mlp() flattens samples with several axes, so 3-D X trains."""
    model = clf().fit(X.reshape(N, 3, 1), Y)
    assert model.model_.get_layer("flatten") is not None
    assert model.predict(X.reshape(N, 3, 1)).shape == (N,)


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_a_class_with_one_sample(strategy):
    """Held out: a clear error. Without a held-out set: scikit-learn's warning, and it runs."""
    y_rare = Y.copy()
    y_rare[0] = 2
    kwargs = dict(space=SPACE, strategy=strategy, n_trials=1, cv=2, verbose=0)
    with pytest.raises(ValueError, match=r"held-out test set.*too few members are: \[2\]"):
        tk.search(clf(), X, y_rare, **kwargs)
    with pytest.warns(UserWarning, match=r"least populated class in y has only 1 members"):
        result = tk.search(clf(), X, y_rare, test_size=None, **kwargs)
    assert set(result.cv_results_["state"]) == {"COMPLETE"}
    assert list(result.best_estimator_.classes_) == [0, 1, 2]


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_fewer_samples_than_folds_is_a_clear_error(strategy):
    small_X, small_y = X[:4], np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"n_splits=5 greater than the number of samples: n_"):
        tk.search(
            clf(), small_X, small_y, space=SPACE, strategy=strategy, cv=5, test_size=None, verbose=0
        )


@pytest.mark.parametrize(
    "dtype, strategy", [(object, "grid"), ("str", "grid"), ("string", "grid"), ("str", "optuna")]
)
def test_string_labels_are_kept_as_labels(dtype, strategy):
    """Documented: string labels (pandas 3 ``str``/``string`` included) are classes."""
    labels = pd.Series(LABELS, dtype=dtype)
    model = clf().fit(X, labels)
    assert list(model.classes_) == ["neg", "pos"]
    assert set(np.asarray(model.predict(X))) <= {"neg", "pos"}
    result = tk.search(clf(), X, labels, space=SPACE, strategy=strategy, n_trials=1, verbose=0)
    assert set(result.cv_results_["state"]) == {"COMPLETE"}
    assert set(np.asarray(result.best_estimator_.predict(X))) <= {"neg", "pos"}
    assert 0.0 <= result.heldout_score_ <= 1.0


def test_sample_weight_through_optuna_search():
    """Documented: per-sample weights are sliced to each training fold; they change the fit."""
    weights = np.where(Y == 1, 5.0, 0.2)
    kwargs = dict(space=SPACE, strategy="optuna", n_trials=1, cv=2, test_size=None, verbose=0)
    weighted = tk.search(clf(), X, Y, fit_params={"sample_weight": weights}, **kwargs)
    plain = tk.search(clf(), X, Y, **kwargs)
    assert set(weighted.cv_results_["state"]) == {"COMPLETE"}
    assert weighted.best_estimator_.predict(X).mean() >= plain.best_estimator_.predict(X).mean()


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_sample_weight_with_a_held_out_set_is_refused(strategy):
    with pytest.raises(ValueError, match=r"sample_weight'\] with a held-out test set is not sup"):
        tk.search(
            clf(), X, Y, space=SPACE, strategy=strategy, fit_params={"sample_weight": np.ones(N)}
        )


def test_sample_weight_through_grid_search_with_the_sklearn_engine():
    weights = np.where(Y == 1, 5.0, 0.2)
    result = tk.search(
        clf(),
        X,
        Y,
        space=SPACE,
        cv=2,
        test_size=None,
        engine="sklearn",
        verbose=0,
        fit_params={"sample_weight": weights},
    )
    assert set(result.cv_results_["state"]) == {"COMPLETE"}


def test_sample_weight_through_grid_search_with_the_default_engine():
    result = tk.search(
        clf(), X, Y, space=SPACE, cv=2, test_size=None, verbose=0,
        fit_params={"sample_weight": np.ones(N)},
    )  # fmt: skip
    assert set(result.cv_results_["state"]) == {"COMPLETE"}


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_class_weight_is_a_searchable_parameter(strategy):
    space = {"class_weight": tk.Choice(["balanced", {0: 1.0, 1: 3.0}])}
    kwargs = dict(space=space, strategy=strategy, n_trials=2, cv=2, refit_top=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no candidate may fail
        result = tk.search(clf(), X, Y, **kwargs)
    assert set(result.cv_results_["state"]) == {"COMPLETE"}
    seen = {repr(p["class_weight"]) for p in result.cv_results_["params"]}
    assert len(seen) >= 2


# ---------------------------------------------------------------- knobs outside their range
@contextmanager
def _no_training():
    """Fail the test if anything trains inside the block."""
    with mock.patch.object(keras.Model, "fit", side_effect=AssertionError("training started")):
        yield


KNOB_CASES = [
    ("batch_size", 0, r"batch_size=0, but batch_size must be an integer >= 1, or None or -1"),
    ("epochs", -3, r"epochs=-3, but epochs must be an integer >= 1"),
    ("model__l2", -1.0, r"model__l2=-1.0, but model__l2 must be a finite real number >= 0"),
    ("model__dropout", 1.5, r"model__dropout=1.5, but model__dropout must be a real number in "
     r"\[0, 1\)"),
    ("optimizer__learning_rate", -0.1, r"optimizer__learning_rate=-0.1, but"),
    ("early_stopping", -2, r"early_stopping=-2, but early_stopping must be an integer >= 0"),
]


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
@pytest.mark.parametrize("name, value, pattern", KNOB_CASES)
def test_a_space_with_a_bad_value_is_refused_before_the_search(name, value, pattern, strategy):
    space = {name: tk.Choice([value])}
    with _no_training(), pytest.raises(ValueError, match=r"the space's dimension .*" + pattern):
        tk.search(clf(), X, Y, space=space, strategy=strategy, n_trials=1, cv=2, verbose=0)


@pytest.mark.parametrize("name, value, pattern", KNOB_CASES)
def test_the_estimator_refuses_a_bad_knob_before_training(name, value, pattern):
    message = pattern.replace(", but", " is out of range:")
    bad = clf().set_params(**{name: value})
    with _no_training(), pytest.raises(ValueError, match=message):
        bad.fit(X, Y)
    with _no_training(), pytest.raises(ValueError, match=message):  # held by the estimator
        tk.search(bad, X, Y, space={"verbose": [0]}, cv=2, verbose=0)


# ---------------------------------------------------------------- search() arguments and data
ARGUMENT_CASES = [
    ({"cv": 1}, r"cv must be a number of folds >= 2, .* got cv=1"),
    ({"cv": "5"}, r"got cv='5'"),
    ({"n_points": 0}, r"n_points must be an integer >= 1 \(grid points\), got 0"),
    ({"random_state": 2**32}, r"random_state must be None or an integer in \[0, 2\*\*32 - 1\]"),
    ({"random_state": -1}, r"random_state must be None or an integer"),
    ({"error_score": "nan"}, r"error_score must be a number .* or 'raise', got 'nan'"),
    ({"timeout": -1.0}, r"timeout must be None or a number of seconds >= 0, got -1.0"),
    ({"factor": 1}, r"factor must be a number > 1 \(halving's reduction\), got 1"),
    ({"resource": None}, r"resource must be 'n_samples', 'epochs' or a parameter name"),
    ({"n_jobs": 0}, r"n_jobs must be None, a positive number of workers or -1"),
    ({"verbose": -1}, r"verbose must be an integer >= 0, got -1"),
    ({"n_trials": True}, r"n_trials must be a positive integer or None, got True"),
    ({"test_size": np.float64(np.nan)}, r"test_size must be a fraction in \(0, 1\)"),
    ({"test_size": np.float32(0.25)}, r"test_size must be a fraction in \(0, 1\)"),
]


@pytest.mark.parametrize("kwargs, pattern", ARGUMENT_CASES)
def test_bad_search_arguments_are_refused_before_training(kwargs, pattern):
    with _no_training(), pytest.raises(ValueError, match=pattern):
        tk.search(clf(), X, Y, space=SPACE, **{"verbose": 0, **kwargs})


class _Trained(BaseException):
    """Raised where training starts; a BaseException so no fit loop swallows it."""


def test_numpy_scalars_are_valid_search_arguments():
    with mock.patch.object(keras.Model, "fit", side_effect=_Trained), pytest.raises(_Trained):
        tk.search(clf(), X, Y, space=SPACE, cv=np.int64(2), test_size=np.float64(0.25),
                  random_state=np.int64(3), engine="sklearn", verbose=0)


DATA_CASES = [
    ("y too short", X, Y[:-1], r"X and y must hold the same number of samples, but X has 40 "
     r"and y has 39"),
    ("y is None", X, None, r"KerasClassifier learns from targets, but y is None"),
    ("continuous y", X, Y_REG, r"needs class labels in y, but y holds continuous values"),
    ("mixed labels", X, np.array([0, "a"] * (N // 2), dtype=object),
     r"needs class labels in y, but y holds unknown values"),
    ("scalar X", np.float32(1.0), Y, r"X must be an array-like of samples"),
]


@pytest.mark.parametrize("case", [c[0] for c in DATA_CASES])
def test_bad_data_is_refused_before_training(case):
    _, X_bad, y_bad, pattern = next(c for c in DATA_CASES if c[0] == case)
    with _no_training(), pytest.raises(ValueError, match=pattern):
        tk.search(clf(), X_bad, y_bad, space=SPACE, cv=2, test_size=None, verbose=0)


# ---------------------------------------------------------------- known defects, pinned
def test_halving_runs_with_its_default_candidates():
    result = tk.search(clf(), X, Y, space={"model__dropout": tk.Choice([0.0, 0.2])},
                       strategy="halving", cv=2, test_size=None, verbose=0)
    assert set(result.cv_results_["state"]) == {"COMPLETE"}


@pytest.mark.parametrize("engine", ["auto", "sklearn"])
def test_a_diverging_refit_fails_as_a_search(engine):
    """Folds of 8 rows train; the refit on all 16 diverges (X near float32's square root)."""
    X_big = X[:16] * np.float32(1e19)
    y_small = Y_REG[:16]
    space = {"optimizer__learning_rate": tk.Choice([1e-3])}
    # the standard path's folds score; the engine's predictions overflow the scorer already
    where = r"chosen candidate 0 could not be refitted" if engine == "sklearn" else "failed"
    with pytest.raises(SearchFailedError, match=rf"{where}(.|\n)*training diverged"):
        tk.search(reg(), X_big, y_small, space=space, cv=2, test_size=None, engine=engine,
                  verbose=0)


class _DivergesOnAllRows(Ridge):
    """A ridge regression whose fit diverges on more than ``rows`` rows when ``alpha`` < 1.

    Cross-validation folds are smaller than the whole search set: the candidate
    with the best CV score fails only in its refit.
    """

    def __init__(self, alpha=1.0, rows=12):
        super().__init__(alpha=alpha)
        self.rows = rows

    def fit(self, X, y, sample_weight=None):
        if len(X) > self.rows and self.alpha < 1:
            raise DivergedError(f"training diverged: the loss became inf on {len(X)} rows")
        return super().fit(X, y, sample_weight)


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
def test_a_diverging_refit_hands_the_choice_to_the_next_best(strategy, tmp_path):
    X_lin = X[:24]
    y_lin = (X_lin @ np.array([1.0, -2.0, 0.5])).astype("float32")
    space = {"alpha": tk.Choice([0.001, 100.0])}  # 0.001 fits best and cannot be refitted
    kwargs = {"n_trials": 4, "random_state": 0} if strategy == "optuna" else {}
    result = tk.search(_DivergesOnAllRows(), X_lin, y_lin, space=space, strategy=strategy,
                       cv=2, test_size=0.25, baselines=False, verbose=0, **kwargs)
    cv = result.cv_results_
    means = np.asarray(cv["mean_test_score"], dtype=float)
    failed = [i for i, p in enumerate(result.search_.cv_results_["params"]
                                      if strategy == "grid" else result.search_.candidate_params())
              if p["alpha"] == 0.001]
    assert means[failed[0]] == np.nanmax(means)  # it ranked first by CV...
    assert "DivergedError: training diverged" in cv["refit_failure"][failed[0]]
    assert result.best_params_ == {"alpha": 100.0}  # ...and the next best was refitted
    assert result.best_estimator_.alpha == 100.0
    assert np.isfinite(result.heldout_score_)
    assert result.leaderboard.attrs["best_candidate"] == result.best_index_
    text = str(result)
    assert f"candidate {failed[0]}: DivergedError" in text
    assert f"candidate {result.best_index_}, the next best by CV, is the chosen model" in text
    tk.report.write_report(result, tmp_path, formats=("md", "json"), plots=False)
    assert "could not be refitted" in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    back = tk.report.load(tmp_path / "cv_results.json")
    assert tk.report.leaderboard(back).attrs["refit_summary"] == (
        result.leaderboard.attrs["refit_summary"]
    )


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
@pytest.mark.parametrize("engine", ["auto", "sklearn"])
def test_a_nan_row_always_says_why(engine, strategy):
    """A learning rate of 1e20 throws the weights to 1e20 in the epoch's last update: the
    epoch's loss was finite, the predictions are not."""
    space = {"optimizer__learning_rate": tk.Choice([1e20, 1e-3])}
    kwargs = {"n_trials": 2, "random_state": 0} if strategy == "optuna" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.search(reg(), X[:16], Y_REG[:16], space=space, cv=2, test_size=None,
                           strategy=strategy, engine=engine, verbose=0, **kwargs)
    cv = result.cv_results_
    lr = [p["optimizer__learning_rate"] for p in result.search_.cv_results_["params"]] \
        if strategy == "grid" else [p["optimizer__learning_rate"]
                                    for p in result.search_.candidate_params()]
    bad = lr.index(1e20)
    assert cv["state"][bad] == "FAIL" and cv["state"][1 - bad] == "COMPLETE"
    reason = cv["failure_reason"][bad]
    assert "DivergedError: training diverged" in reason
    assert "after epoch 1" in reason  # the epoch
    assert re.search(r"last training loss \d", reason)  # the loss
    assert "the learning rate 1e+20 is far too large" in reason  # the likely cause


@pytest.mark.parametrize("strategy", ["grid", "optuna"])
@pytest.mark.parametrize("engine", ["auto", "sklearn"])
def test_an_infinite_score_is_a_failure_that_never_ranks(engine, strategy):
    """X and y scaled by 1e9 with a learning rate of 1e6: predictions reach 1e22 and R² is
    -inf. That is a FAIL with its reason, on every path, and never the best."""
    X_big, y_big = X[:16] * np.float32(1e9), Y_REG[:16] * np.float32(1e9)
    space = {"optimizer__learning_rate": tk.Choice([1e6, 1e-3])}
    kwargs = {"n_trials": 2, "random_state": 0} if strategy == "optuna" else {}
    est = reg().set_params(model__hidden=(3,), batch_size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.search(est, X_big, y_big, space=space, cv=2, test_size=None,
                           strategy=strategy, engine=engine, verbose=0, **kwargs)
    cv = result.cv_results_
    assert not np.isinf(np.asarray(cv["mean_test_score"], dtype=float)).any()
    for name in [k for k in cv if k.startswith("split") and k.endswith("_test_score")]:
        assert not np.isinf(np.asarray(cv[name], dtype=float)).any()
    failed = [i for i, state in enumerate(cv["state"]) if state == "FAIL"]
    assert failed and all("training diverged" in cv["failure_reason"][i] for i in failed)
    assert result.best_index_ not in failed
    assert result.best_params_["optimizer__learning_rate"] == 1e-3
