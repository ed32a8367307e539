"""KerasClassifier / KerasRegressor: scikit-learn correctness, input checks, seeding, training."""

import os
import pickle
import subprocess
import sys
import textwrap

import joblib
import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    StratifiedKFold,
    check_cv,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

import tunekit as tk
from tunekit.exceptions import DivergedError, InputShapeError


def small_clf(**kwargs):
    params = dict(model__hidden=(8,), epochs=3, batch_size=16, random_state=0)
    params.update(kwargs)
    return tk.KerasClassifier(tk.builders.mlp, **params)


def small_reg(**kwargs):
    params = dict(model__hidden=(8,), epochs=3, batch_size=16, random_state=0)
    params.update(kwargs)
    return tk.KerasRegressor(tk.builders.mlp, **params)


# ---------------------------------------------------------------- trap 1: sklearn's view
def test_classifier_and_regressor_are_recognized_by_sklearn():
    assert is_classifier(small_clf())
    assert not is_regressor(small_clf())
    assert is_regressor(small_reg())
    assert not is_classifier(small_reg())
    assert get_tags(small_clf()).estimator_type == "classifier"
    assert get_tags(small_reg()).estimator_type == "regressor"


def test_gridsearch_cv5_is_stratified_for_the_classifier(binary_data):
    X, y = binary_data
    cv = check_cv(5, y, classifier=is_classifier(small_clf()))
    assert isinstance(cv, StratifiedKFold)
    search = GridSearchCV(small_clf(epochs=1), {"model__dropout": [0.0]}, cv=5).fit(X, y)
    # every stratified test fold of 120 samples holds 24 samples with the class ratio kept
    assert search.n_splits_ == 5
    for _, test in StratifiedKFold(5).split(X, y):
        assert abs(y[test].mean() - y.mean()) < 0.05


LABELS = {
    "string": lambda y: np.array(["no", "yes", "maybe"])[y],
    "bool": lambda y: y.astype(bool),
    "int_from_3": lambda y: y + 3,
}


@pytest.mark.parametrize("label_kind", sorted(LABELS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_probability_scorers_work_for_all_label_kinds(label_kind, n_classes, multiclass_data):
    X, y = multiclass_data
    if n_classes == 2:
        y = (y > 0).astype(int)
    elif label_kind == "bool":
        pytest.skip("bool labels have two classes")
    y = LABELS[label_kind](y)
    scoring = ["accuracy", "neg_log_loss", "roc_auc" if n_classes == 2 else "roc_auc_ovr"]
    result = cross_validate(small_clf(), X, y, cv=2, scoring=scoring, error_score="raise",
                            return_estimator=True)  # fmt: skip
    for name in scoring:
        scores = result[f"test_{name}"]
        assert np.all(np.isfinite(scores)), (name, scores)
    fitted = result["estimator"][0]  # trained on a stratified half: every class is in it
    assert set(fitted.classes_) == set(np.unique(y))
    assert set(np.unique(fitted.predict(X))) <= set(np.unique(y))
    assert fitted.predict_proba(X).shape == (len(X), n_classes)


def test_roc_auc_gridsearch_gives_no_nan(binary_data):
    X, y = binary_data
    search = GridSearchCV(small_clf(), {"model__l2": [0.0, 0.01]}, cv=3, scoring="roc_auc",
                          refit=False)  # the scores only: no refit  # fmt: skip
    search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# ---------------------------------------------------------------- trap 5: shapes
def test_declared_input_shape_mismatch_fails_before_training(binary_data):
    X, y = binary_data
    est = small_clf(input_shape=(5,))
    with pytest.raises(InputShapeError, match=r"X has 6 features.*expecting 5 features"):
        est.fit(X, y)
    assert not hasattr(est, "history_")


def test_predict_with_wrong_width_names_both_shapes(binary_data):
    X, y = binary_data
    est = small_clf().fit(X, y)
    with pytest.raises(ValueError, match=r"X has 4 features.*expecting 6.*\(6,\).*\(4,\)"):
        est.predict(X[:, :4])


def fixed_width_builder(input_shape, output_units=1, output_activation="sigmoid"):
    # ignores input_shape on purpose: declares 10 features
    inputs = keras.Input((10,))
    return keras.Model(inputs, keras.layers.Dense(output_units, output_activation)(inputs))


def test_builder_declaring_another_width_fails_readably(binary_data):
    X, y = binary_data
    est = tk.KerasClassifier(fixed_width_builder, epochs=1)
    with pytest.raises(InputShapeError, match=r"the built model declares an input shape of"):
        est.fit(X, y)
    assert not hasattr(est, "history_")


def test_builder_receives_input_and_output_shape(multiclass_data):
    X, y = multiclass_data
    seen = {}

    def builder(input_shape, output_units, output_activation, seed=None):
        seen.update(input_shape=input_shape, units=output_units, act=output_activation)
        return tk.builders.mlp(input_shape, hidden=(4,), output_units=output_units,
                               output_activation=output_activation)

    tk.KerasClassifier(builder, epochs=1).fit(X, y)
    assert seen == {"input_shape": (5,), "units": 3, "act": "softmax"}


# ---------------------------------------------------------------- bad input
def _bad_inputs(X, y):
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["colour"] = "red"
    ragged = [list(row) for row in X]
    ragged[7] = ragged[7][:-2]
    X_huge = X.astype(np.float64)
    X_huge[2, 3] = 1e308  # finite in float64, infinity in float32
    return {
        "ragged_X": (ragged, y, ValueError,
                     r"Input X is ragged.*row 0 has 6 and row 7 has 4.*pad or truncate"),
        "float32_overflow_X": (X_huge, y, ValueError,
                               r"Input X holds finite values too large for float32.*1e\+308"
                               r".*Rescale"),
        "nan_X": (X_nan, y, ValueError, r"contains NaN or infinity \(1 NaN"),
        "inf_X": (X_inf, y, ValueError, r"contains NaN or infinity \(0 NaN, 1 infinite"),
        "non_numeric_column": (frame, y, ValueError, r"non-numeric columns \['colour'\]"),
        "single_class": (X, np.zeros_like(y), ValueError, r"at least 2 classes.*1 class"),
        "empty_X": (X[:0], y[:0], ValueError, r"0 sample\(s\)"),
        "one_dimensional_X": (X[:, 0], y, ValueError, r"expects X to be 2-D"),
        "sparse_nan_X": (sp.csr_matrix(X_nan), y, ValueError,
                         r"contains NaN or infinity \(1 NaN, 0 infinite stored"),
    }


@pytest.mark.parametrize(
    "case",
    ["nan_X", "inf_X", "non_numeric_column", "single_class", "empty_X",
     "one_dimensional_X", "sparse_nan_X", "ragged_X", "float32_overflow_X"],
)
def test_bad_input_is_rejected_before_training(case, binary_data):
    X, y, error, match = _bad_inputs(*binary_data)[case]
    est = small_clf()
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "history_")


def test_predict_rejects_values_that_overflow_float32(binary_data):
    X, y = binary_data
    est = small_clf(epochs=1).fit(X.astype(np.float64), y)
    X_huge = X.astype(np.float64)
    X_huge[0, 0] = -1e300
    with pytest.raises(ValueError, match=r"too large for float32.*largest magnitude is 1e\+300"):
        est.predict(X_huge)
    assert est.predict(X.astype(np.float64)).shape == (len(X),)  # values that fit are fine


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_regressor_rejects_non_finite_targets(bad, regression_data):
    X, y = regression_data
    y = y.copy()
    y[5] = bad
    with pytest.raises(ValueError, match=r"Input y contains NaN or infinity"):
        small_reg().fit(X, y)


# ---------------------------------------------------------------- trap 2: seeding
def test_same_random_state_gives_identical_scores(binary_data):
    X, y = binary_data
    kw = dict(model__dropout=0.3, model__noise=0.1, model__weight_noise=0.01)
    first = small_clf(**kw).fit(X, y).predict_proba(X)
    second = small_clf(**kw).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = small_clf(random_state=1, **kw).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


def test_seeded_fit_does_not_leak_op_determinism(binary_data):
    from tensorflow.python.framework import config

    X, y = binary_data
    small_clf(model__dropout=0.5).fit(X, y)
    assert not config.is_op_determinism_enabled()
    # an unseeded fit with random layers afterwards works (scikeras raises here)
    small_clf(random_state=None, model__dropout=0.5, model__noise=0.1).fit(X, y)


def test_seeding_restores_global_numpy_and_python_state(binary_data):
    import random

    X, y = binary_data
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(), random.random())
    np.random.seed(123)
    random.seed(123)
    small_clf().fit(X, y)
    assert (np.random.rand(), random.random()) == expected


SEEDED_FIT = textwrap.dedent(
    """
    import numpy as np, tunekit as tk
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 5)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    clf = tk.KerasClassifier(model__hidden=(8,), model__dropout=0.3, epochs=3,
                             batch_size=16, random_state=7).fit(X, y)
    proba = clf.predict_proba(X)
    """
)
SEEDED_RUN = (
    'import os, sys\nos.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"\n'
    + SEEDED_FIT
    + "np.save(sys.argv[1], proba)\n"
)


def test_same_random_state_is_identical_across_processes(tmp_path):
    """The seeded fit in a fresh process, and in this one after whatever ran here before
    (one TensorFlow start-up instead of two)."""
    out = tmp_path / "run.npy"
    subprocess.run([sys.executable, "-c", SEEDED_RUN, str(out)], check=True)
    here = {}
    exec(SEEDED_FIT, here)
    np.testing.assert_array_equal(np.load(out), here["proba"])


# ---------------------------------------------------------------- divergence
def test_diverging_fit_raises_a_clear_error(regression_data):
    X, y = regression_data
    est = small_reg(optimizer="sgd", optimizer__learning_rate=1e6, epochs=5)
    with pytest.raises(DivergedError, match=r"training diverged.*epoch \d+ of 5"):
        est.fit(X, y * 1e6)


def test_diverging_candidate_scores_nan_in_a_search(regression_data):
    X, y = regression_data
    search = GridSearchCV(
        small_reg(optimizer="sgd"),
        {"optimizer__learning_rate": [1e-3, 1e7]},
        cv=2,
        error_score=np.nan,
    )
    with pytest.warns(FitFailedWarning, match="fits failed"):
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isnan(scores[1])
    assert search.best_index_ == 0


# ---------------------------------------------------------------- early stopping (trap 7)
class _FitRecorder:
    """Records what keras.Model.fit receives."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = keras.Model.fit
        recorder = self

        def fit(model, x=None, y=None, **kwargs):
            recorder.calls.append({"x": np.array(x), "val": kwargs.get("validation_data")})
            return original(model, x=x, y=y, **kwargs)

        monkeypatch.setattr(keras.Model, "fit", fit)


def test_early_stopping_validation_comes_from_the_training_fold(binary_data, monkeypatch):
    X, y = binary_data
    X = X.copy()
    X[:, -1] = np.arange(len(X))  # an id column to trace rows
    recorder = _FitRecorder(monkeypatch)
    cv = list(KFold(3, shuffle=True, random_state=0).split(X, y))
    cross_validate(small_clf(early_stopping=2, validation_fraction=0.25, epochs=4), X, y,
                   cv=cv)
    assert len(recorder.calls) == 3
    for call, (train, test) in zip(recorder.calls, cv, strict=True):
        train_ids = set(call["x"][:, -1].astype(int))
        val_ids = set(np.asarray(call["val"][0])[:, -1].astype(int))
        assert val_ids and train_ids
        assert not val_ids & train_ids
        assert val_ids | train_ids == set(train)  # carved from the fold's training part
        assert not val_ids & set(test)  # never from the fold's test part
        assert len(val_ids) == int(np.ceil(0.25 * len(train)))


def test_early_stopping_restores_the_best_epoch(binary_data):
    X, y = binary_data
    est = small_clf(early_stopping=1, epochs=40, optimizer="adam",
                    optimizer__learning_rate=0.2).fit(X, y)
    val_loss = np.asarray(est.history_["val_loss"])
    assert est.n_epochs_ == len(val_loss) == len(est.history_["loss"])
    assert est.best_epoch_ == int(np.argmin(val_loss)) + 1
    assert est.n_epochs_ < 40  # a large learning rate overfits quickly: it stopped
    assert est.n_epochs_ - est.best_epoch_ == 1  # patience 1


def test_without_early_stopping_all_data_is_used(binary_data, monkeypatch):
    X, y = binary_data
    recorder = _FitRecorder(monkeypatch)
    est = small_clf().fit(X, y)
    assert recorder.calls[0]["x"].shape[0] == len(X)
    assert recorder.calls[0]["val"] is None
    assert est.best_epoch_ is None


@pytest.mark.parametrize(
    "params, match",
    [
        ({"early_stopping": -1}, r"early_stopping=-1 is out of range: .* integer >= 0"),
        ({"early_stopping": 2, "validation_fraction": 1.5},
         r"validation_fraction=1.5 is out of range: .* real number in \(0, 1\)"),
        ({"early_stopping": 2.5}, r"early_stopping=2.5 has the wrong type"),
    ],
)
def test_early_stopping_parameters_are_checked(params, match, binary_data):
    with pytest.raises((ValueError, TypeError), match=match):
        small_clf(**params).fit(*binary_data)


# ---------------------------------------------------------------- persistence and params
def test_clone_get_set_params_nested(binary_data):
    est = small_clf(model__dropout=0.2)
    assert est.get_params()["model__dropout"] == 0.2
    twin = clone(est)
    assert twin.get_params()["model__dropout"] == 0.2
    twin.set_params(model__dropout=0.4, model__hidden=(4, 4))
    assert twin.model__dropout == 0.4 and est.model__dropout == 0.2
    pipe = make_pipeline(StandardScaler(), small_clf())
    pipe.set_params(kerasclassifier__model__dropout=0.5)
    assert pipe.get_params()["kerasclassifier__model__dropout"] == 0.5
    pipe.fit(*binary_data)
    assert pipe[-1].model_.get_layer("dropout_0").rate == 0.5


def test_gridsearch_over_a_pipeline(binary_data):
    X, y = binary_data
    pipe = make_pipeline(StandardScaler(), small_clf(epochs=1))
    search = GridSearchCV(pipe, {"kerasclassifier__model__dropout": [0.0, 0.5]}, cv=2)
    search.fit(X, y)
    assert [p["kerasclassifier__model__dropout"] for p in search.cv_results_["params"]] == [
        0.0, 0.5,
    ]


LOAD_AND_PREDICT = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import joblib, pickle, numpy as np
    data = np.load(sys.argv[1])
    for path, kind, out in zip(*[iter(sys.argv[2:])] * 3):
        if kind == "pickle":
            with open(path, "rb") as fh:
                model = pickle.load(fh)
        else:
            model = joblib.load(path)
        np.save(out, model.predict_proba(data))
    """
)
ROUND_TRIPS = [(kind, pipe) for pipe in (False, True) for kind in ("pickle", "joblib")]


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory):
    """Each fitted model saved, then loaded and predicting in one fresh process (one start of
    TensorFlow for the four): ``{(kind, in_pipeline): (expected, loaded)}``."""
    rng = np.random.RandomState(0)  # conftest's binary_data
    X = rng.normal(size=(120, 6)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    root = tmp_path_factory.mktemp("round-trip")
    np.save(root / "X.npy", X)
    expected, args = {}, []
    for kind, in_pipeline in ROUND_TRIPS:
        est = small_clf(model__weight_noise=0.01, model__dropout=0.2)
        model = make_pipeline(StandardScaler(), est) if in_pipeline else est
        model.fit(X, y)
        expected[kind, in_pipeline] = model.predict_proba(X)
        path = root / f"model-{in_pipeline}.{kind}"
        if kind == "pickle":
            path.write_bytes(pickle.dumps(model))
        else:
            joblib.dump(model, path)
        args += [str(path), kind, str(root / f"proba-{kind}-{in_pipeline}.npy")]
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(root / "X.npy"), *args], check=True
    )
    return {
        case: (expected[case], np.load(root / f"proba-{case[0]}-{case[1]}.npy"))
        for case in ROUND_TRIPS
    }


@pytest.mark.parametrize("kind", ["pickle", "joblib"])
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_fitted_round_trip_in_a_fresh_process(kind, in_pipeline, round_trips):
    expected, loaded = round_trips[kind, in_pipeline]
    np.testing.assert_array_equal(loaded, expected)


# ---------------------------------------------------------------- models and losses
def test_listing_5_13_defaults(binary_data):
    X, y = binary_data
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(16, 16), model__l2=0.002,
                             optimizer="rmsprop", epochs=1, batch_size=512,
                             random_state=0).fit(X, y)
    model = est.model_
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert "binary_crossentropy" in str(model.loss)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [16, 16, 1]
    assert all(np.isclose(layer.kernel_regularizer.l2, 0.002) for layer in dense)
    assert dense[-1].activation.__name__ == "sigmoid"


def test_multiclass_label_smoothing_switches_to_categorical(multiclass_data):
    X, y = multiclass_data
    est = small_clf(model__label_smoothing=0.1).fit(X, y)
    assert isinstance(est.model_.loss, keras.losses.Loss) or "categorical" in str(est.model_.loss)
    assert "label_smoothing': 0.1" in str(est.model_.loss.get_config())
    assert est.predict_proba(X).shape == (len(X), 3)


def test_regressor_fits_multioutput(regression_data):
    X, y = regression_data
    Y = np.column_stack([y, -y])
    est = small_reg().fit(X, Y)
    assert est.predict(X).shape == (len(X), 2)
    assert est.model_.output_shape == (None, 2)


def test_regressor_learns(regression_data):
    X, y = regression_data
    est = small_reg(epochs=60, optimizer="adam", optimizer__learning_rate=0.02).fit(X, y)
    assert est.score(X, y) > 0.8


# ---------------------------------------------------------------- JAX backend
JAX_FIT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "jax"
    import numpy as np, keras, tunekit as tk
    assert keras.backend.backend() == "jax"
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    a = tk.KerasClassifier(model__hidden=(8,), model__dropout=0.2, epochs=2,
                           random_state=0).fit(X, y).predict_proba(X)
    b = tk.KerasClassifier(model__hidden=(8,), model__dropout=0.2, epochs=2,
                           random_state=0).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    print("jax ok")
    """
)


def test_runs_on_the_jax_backend():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax")
    out = subprocess.run([sys.executable, "-c", JAX_FIT], env=env, check=True,
                         capture_output=True, text=True)
    assert "jax ok" in out.stdout
