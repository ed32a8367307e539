"""Bad inputs: each ends in a clear error or in a documented behaviour.

Every bad input of the core issue (NaN or inf in X, and in y for regression;
non-numeric columns; a single class; empty X; the wrong number of
dimensions; sparse input), plus a class with one sample under stratified
CV, fewer samples than folds, object and pandas string columns, pandas string
labels, ``sample_weight`` and ``class_weight``, goes through a tiny Keras
estimator's ``fit`` and through ``tunekit.search`` (grid with the default
engine, and Optuna).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tunekit as tk
from tunekit.exceptions import InputShapeError, SearchFailedError

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
    "sparse X": (clf, sp.csr_matrix(X), Y, r"needs dense input, but X is a scipy sparse matrix"),
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
    with pytest.raises(InputShapeError, match=r"declares an input shape of \(3,\) per sample"):
        clf(model__input_shape=(3,)).fit(X.reshape(N, 3, 1), Y)


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
