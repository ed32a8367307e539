"""Code written for scikeras keeps working when its import says tunekit.

Each test is written the way a scikeras user writes code: subclasses with their own
``_keras_build_fn``, custom target encoders for multi-output models, ``partial_fit``
loops, seeded runs, column-vector targets.
"""

import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags
from tensorflow.python.eager import context

import tunekit as tk


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(48, 4)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


# ---------------------------------------------------------------- a subclass's build hook
class HookClassifier(tk.KerasClassifier):
    """The scikeras documentation's pattern: the model is built by a method."""

    def __init__(self, hidden_layer_sizes=(8,), epochs=2, **kwargs):
        super().__init__(epochs=epochs, **kwargs)
        self.hidden_layer_sizes = hidden_layer_sizes

    def _keras_build_fn(self, meta, compile_kwargs):
        inputs = keras.Input((meta["n_features_in_"],))
        hidden = inputs
        for units in self.hidden_layer_sizes:
            hidden = keras.layers.Dense(units, activation="relu")(hidden)
        outputs = keras.layers.Dense(1, activation="sigmoid")(hidden)
        model = keras.Model(inputs, outputs, name="from_the_hook")
        model.compile(loss="binary_crossentropy", optimizer=compile_kwargs["optimizer"])
        return model


def test_subclass_build_hook_is_used_instead_of_the_default_builder(data):
    X, y = data
    est = clone(HookClassifier(hidden_layer_sizes=(5, 3), random_state=0)).fit(X, y)
    assert est.model_.name == "from_the_hook"
    dense = [layer.units for layer in est.model_.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [5, 3, 1]
    assert est.predict(X).shape == (len(X),)


class RoutedHookClassifier(tk.KerasClassifier):
    """A hook whose arguments come from routed ``model__`` parameters."""

    def _keras_build_fn(self, hidden_layer_sizes, meta):
        inputs = keras.Input((meta["n_features_in_"],))
        hidden = inputs
        for units in hidden_layer_sizes:
            hidden = keras.layers.Dense(units, activation="relu")(hidden)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))


def test_subclass_build_hook_receives_routed_model_parameters(data):
    X, y = data
    est = RoutedHookClassifier(model__hidden_layer_sizes=(3,), epochs=1, random_state=0)
    est.fit(X, y)
    dense = [layer.units for layer in est.model_.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [3, 1]
    assert "binary_crossentropy" in str(est.model_.loss)  # tunekit's default loss still applies


def test_subclass_build_hook_and_a_model_argument_conflict(data):
    with pytest.raises(ValueError, match=r"cannot implement ``_keras_build_fn``"):
        HookClassifier(model=tk.builders.mlp).fit(*data)


def test_default_builder_applies_only_without_model_and_hook(data):
    est = tk.KerasClassifier(epochs=1, random_state=0).fit(*data)
    assert est.model_.name == "mlp"


# ---------------------------------------------------------------- multi-output encoders
class ColumnsAsOutputs(BaseEstimator, TransformerMixin):
    """Each 0/1 column of ``y`` becomes its own binary Keras output."""

    def fit(self, y):
        self.n_outputs_expected_ = y.shape[1]
        self.n_classes_ = [2] * y.shape[1]
        self.classes_ = [np.array([0, 1])] * y.shape[1]
        return self

    def transform(self, y):
        return [y[:, [i]].astype("float32") for i in range(y.shape[1])]

    def inverse_transform(self, y, return_proba=False):
        stacked = np.column_stack(y)
        return stacked if return_proba else (stacked > 0.5).astype(int)

    def get_metadata(self):
        return {"n_classes_": self.n_classes_, "n_outputs_expected_": self.n_outputs_expected_}


class MultiLabelClassifier(tk.KerasClassifier):
    @property
    def target_encoder(self):
        return ColumnsAsOutputs()


def two_heads(input_shape, meta):
    inputs = keras.Input(input_shape)
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [keras.layers.Dense(1, activation="sigmoid")(hidden)
               for _ in range(meta["n_outputs_expected_"])]
    return keras.Model(inputs, outputs)


def two_heads_with_units(input_shape, meta, output_units=1):
    inputs = keras.Input(input_shape)
    outputs = [keras.layers.Dense(output_units, activation="sigmoid")(inputs)
               for _ in range(meta["n_outputs_expected_"])]
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("builder", [two_heads, two_heads_with_units])
def test_multi_output_target_encoder_with_per_output_losses(builder, data):
    X, y = data
    Y = np.column_stack([y, 1 - y])
    est = MultiLabelClassifier(
        builder,
        loss=["binary_crossentropy", "binary_crossentropy"],
        metrics=[["accuracy"], ["accuracy"]],
        epochs=2,
        random_state=0,
    ).fit(X, Y)
    assert est.n_classes_ == [2, 2]
    assert len(est.model_.outputs) == 2
    assert all(tuple(out.shape) == (None, 1) for out in est.model_.outputs)
    assert est.predict(X).shape == (len(X), 2)
    assert set(np.unique(est.predict(X))) <= {0, 1}


# ---------------------------------------------------------------- seeding leaves no trace
def test_seeded_fit_leaves_the_tensorflow_seed_unset(data):
    tf.random.set_seed(None)  # an unseeded process, whatever ran before in this one
    assert context.global_seed() is None
    tk.KerasClassifier(epochs=1, random_state=0).fit(*data)
    assert context.global_seed() is None
    draws = {float(tf.random.uniform([])) for _ in range(3)}
    assert len(draws) == 3


def test_seeded_fit_does_not_disturb_a_seeded_tensorflow_stream(data):
    tf.random.set_seed(123)
    expected = [float(tf.random.uniform([])) for _ in range(2)]
    tf.random.set_seed(123)
    first = float(tf.random.uniform([]))
    tk.KerasClassifier(epochs=1, model__dropout=0.2, random_state=0).fit(*data)
    second = float(tf.random.uniform([]))
    tf.random.set_seed(None)
    assert [first, second] == expected


UNSEEDED_AFTER_SEEDED = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, numpy as np, tensorflow as tf, tunekit as tk
    X = np.random.RandomState(0).normal(size=(32, 3)).astype("float32")
    tk.KerasClassifier(epochs=1, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    print(float(tf.random.uniform([])), float(keras.random.uniform(())))
    """
)


@pytest.mark.slow  # two TensorFlow start-ups; test_seeded_fit_leaves_the_tensorflow_seed_unset
def test_unseeded_random_ops_after_a_seeded_fit_differ_between_processes():
    runs = [
        subprocess.Popen([sys.executable, "-c", UNSEEDED_AFTER_SEEDED],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    draws = []
    for run in runs:
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0
        draws.append([float(v) for v in out.strip().splitlines()[-1].split()])
    (tf_a, keras_a), (tf_b, keras_b) = draws
    assert tf_a != tf_b  # TensorFlow's global seed was not left at random_state
    assert keras_a != keras_b  # nor was Keras's global seed generator


# ---------------------------------------------------------------- target dimensions
def test_column_target_keeps_its_column_shape(data):
    X, y = data
    column = (X[:, :1] * 2.0).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataConversionWarning)
        reg = tk.KerasRegressor(epochs=1, random_state=0).fit(X, column)
        clf = tk.KerasClassifier(epochs=1, random_state=0).fit(X, y[:, None])
    assert reg.predict(X).shape == (len(X), 1)
    assert clf.predict(X).shape == (len(X), 1)
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert tk.KerasRegressor(epochs=1, random_state=0).fit(X, column[:, 0]).predict(X).shape == (
        len(X),
    )


@pytest.mark.parametrize("first, then", [("1d", "column"), ("column", "1d")])
def test_partial_fit_refuses_a_target_whose_dimensions_changed(first, then, data):
    X, y = data
    shapes = {"1d": y.astype("float32"), "column": y[:, None].astype("float32")}
    reg = tk.KerasRegressor(epochs=1, random_state=0).fit(X, shapes[first])
    expected_ndim, got_ndim = shapes[first].ndim, shapes[then].ndim
    with pytest.raises(
        ValueError,
        match=rf"y has {got_ndim} dimensions, but this KerasRegressor is expecting "
        rf"{expected_ndim} dimensions in y.*cannot change between fits.*start over",
    ):
        reg.partial_fit(X, shapes[then])
    reg.partial_fit(X, shapes[first])  # the same kind of y keeps working
    assert reg.n_epochs_ == 2


# ---------------------------------------------------------------- scikeras's own errors
def test_a_loss_list_without_any_loss_is_refused(data):
    X, y = data
    est = tk.KerasRegressor(loss=[None], epochs=1)
    with pytest.raises(ValueError,
                       match=r"No valid loss function found.*loss=\[None\].*must provide a loss"):
        est.fit(X, y.astype("float32"))


class SplitFeatures(tk.KerasRegressor):
    """A scikeras-style feature encoder: X's two halves become two model inputs."""

    @property
    def feature_encoder(self):
        return FunctionTransformer(lambda X: [X[:, :2], X[:, 2:]])


def two_inputs():
    left, right = keras.Input((2,)), keras.Input((2,))
    joined = keras.layers.Concatenate()([left, right])
    return keras.Model([left, right], keras.layers.Dense(1)(joined))


def test_full_batch_with_a_list_of_inputs_names_the_fix(data):
    X, y = data
    est = SplitFeatures(two_inputs, batch_size=-1, epochs=1)
    with pytest.raises(ValueError, match=r"`batch_size=-1` requires that `X` implement `shape`.*"
                                         r"Set batch_size to a number"):
        est.fit(X, y.astype("float32"))
    fitted = SplitFeatures(two_inputs, batch_size=16, epochs=1).fit(X, y.astype("float32"))
    assert fitted.predict(X).shape == (len(X),)


# ---------------------------------------------------------------- tags
@pytest.mark.parametrize("est", [tk.KerasClassifier(), tk.KerasRegressor()], ids=type)
def test_tags_carry_scikeras_poor_score_and_multioutput(est):
    tags = get_tags(est)
    kind = tags.classifier_tags or tags.regressor_tags
    assert kind.poor_score is True
    assert tags.target_tags.multi_output is True


# ---------------------------------------------------------------- input rank
def flat_input(meta):
    inputs = keras.Input((meta["n_features_in_"],))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse")
    return model


def test_a_trailing_unit_axis_is_accepted_as_keras_does_and_dropping_it_later_fails(data):
    X, y = data
    X3 = X[:, :, None]  # (n, 4, 1) into a model declaring (4,): Keras squeezes the last axis
    est = tk.KerasRegressor(flat_input, epochs=1).fit(X3, y.astype("float32"))
    assert est.predict(X3).shape == (len(X),)
    with pytest.raises(ValueError, match=r"X has 2 dimensions, but this KerasRegressor is "
                                         r"expecting 3 dimensions in X"):
        est.partial_fit(X, y.astype("float32"))


def two_inputs_of_widths(left_width, right_width):
    def build():
        left, right = keras.Input((left_width,)), keras.Input((right_width,))
        joined = keras.layers.Concatenate()([left, right])
        model = keras.Model([left, right], keras.layers.Dense(1)(joined))
        model.compile(loss="mse")
        return model

    return build


def test_each_input_of_a_multi_input_model_is_checked_against_what_feeds_it(data):
    X, y = data  # the encoder gives (n, 2) and (n, 2); the model wants (n, 2) and (n, 3)
    with pytest.raises(tk.exceptions.InputShapeError,
                       match=r"X has 2 features, but SplitFeatures is expecting 3 features"):
        SplitFeatures(two_inputs_of_widths(2, 3), epochs=1).fit(X, y.astype("float32"))
    fitted = SplitFeatures(two_inputs_of_widths(2, 2), epochs=1).fit(X, y.astype("float32"))
    assert fitted.predict(X).shape == (len(X),)


# ---------------------------------------------------------------- a reshaping feature encoder
class ImageClassifier(tk.KerasClassifier):
    """scikeras's MNIST pattern: X arrives flat and the encoder gives it an image's shape."""

    @property
    def feature_encoder(self):
        return FunctionTransformer(lambda X: X.reshape(-1, 8, 8, 1))


def small_convnet(side=8):
    def build(meta, compile_kwargs):
        inputs = keras.Input((side, side, 1))
        hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        hidden = keras.layers.Flatten()(hidden)
        outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(hidden)
        model = keras.Model(inputs, outputs)
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=compile_kwargs["optimizer"], metrics=["accuracy"])
        return model

    return build


@pytest.fixture
def flat_images():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(90, 64)).astype("float32")  # 90 flat 8 x 8 images
    y = np.repeat([0, 1, 2], 30)
    X[y == 1, :32] += 1.0  # class 1 is bright at the top, class 2 at the bottom
    X[y == 2, 32:] += 1.0
    return X, y


def test_a_reshaping_feature_encoder_feeds_a_conv2d_model(flat_images):
    X, y = flat_images
    est = ImageClassifier(small_convnet(), optimizer="adam", epochs=3, batch_size=16,
                          random_state=0).fit(X, y)
    assert est.X_shape_ == (90, 64)  # scikeras records the raw X; the model gets images
    assert est.model_.inputs[0].shape[1:] == (8, 8, 1)
    assert est.predict(X).shape == (90,)
    assert est.predict_proba(X).shape == (90, 3)
    assert est.score(X, y) > 0.5


def test_a_reshaping_encoder_that_misses_the_model_input_names_both_shapes(flat_images):
    X, y = flat_images
    est = ImageClassifier(small_convnet(side=7), epochs=1)
    with pytest.raises(tk.exceptions.InputShapeError,
                       match=r"the built model declares an input shape of \(7, 7, 1\) per sample "
                             r"and X has samples of shape \(8, 8, 1\)"):
        est.fit(X, y)
    assert not hasattr(est, "history_")  # refused before any training


# ---------------------------------------------------------------- sparse input
def test_sparse_one_hot_regression_fits_predicts_and_scores():
    import scipy.sparse as sp
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.RandomState(0)
    codes = rng.randint(0, 30, size=(300, 4))
    effect = rng.normal(size=30)
    y = (effect[codes[:, 0]] + effect[codes[:, 1]]).astype("float32")
    X = OneHotEncoder().fit_transform(codes)  # a scipy sparse matrix, 120 columns
    assert sp.issparse(X)
    est = tk.KerasRegressor(model__hidden=(16,), optimizer="adam", epochs=3, batch_size=16,
                            optimizer__learning_rate=0.01, random_state=0).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (300,) and np.all(np.isfinite(pred))
    dense = X.toarray().astype("float32")  # as in scikeras, a sparse X is fitted as float32
    np.testing.assert_allclose(pred, est.predict(dense), rtol=1e-5, atol=1e-5)
    assert est.score(X, y) == pytest.approx(est.score(dense, y), abs=1e-5)
    assert est.score(X, y) > 0.3  # it learned the levels' effects: better than the mean
