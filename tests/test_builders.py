"""The mlp() reference builder and the builder protocol."""

import inspect

import keras
import numpy as np
import pytest

import tunekit as tk
from tunekit.builders import NoisyDense, mlp, smooth_loss


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_listing_5_13_is_expressible():
    model = mlp((10000,), hidden=(16, 16), l2=0.002)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [16, 16, 1]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "sigmoid"]
    assert all(np.isclose(layer.kernel_regularizer.l2, 0.002) for layer in dense)
    assert all(np.isclose(layer.kernel_regularizer.l1, 0.0) for layer in dense)
    assert model.input_shape == (None, 10000)
    assert not model.compiled


@pytest.mark.parametrize(
    "knobs, expected",
    [
        ({}, ["InputLayer", "Dense", "Dense", "Dense"]),
        ({"dropout": 0.5}, ["InputLayer", "Dense", "Dropout", "Dense", "Dropout", "Dense"]),
        ({"noise": 0.1}, ["InputLayer", "GaussianNoise", "Dense", "Dense", "Dense"]),
        ({"activation_noise": 0.1},
         ["InputLayer", "Dense", "GaussianNoise", "Dense", "GaussianNoise", "Dense"]),
        ({"weight_noise": 0.05}, ["InputLayer", "NoisyDense", "NoisyDense", "Dense"]),
    ],
)
def test_each_knob_adds_its_layers(knobs, expected):
    assert layer_types(mlp((6,), **knobs)) == expected


def test_dropout_rate_and_penalties_reach_the_layers():
    model = mlp((6,), hidden=(8,), l1=0.01, l2=0.02, dropout=0.4)
    assert model.get_layer("dropout_0").rate == 0.4
    reg = model.get_layer("dense_0").kernel_regularizer
    assert np.isclose(reg.l1, 0.01) and np.isclose(reg.l2, 0.02)
    assert model.get_layer("output").kernel_regularizer is not None


def test_random_layers_act_only_in_training():
    X = np.ones((4, 6), dtype="float32")
    model = mlp((6,), dropout=0.5, noise=0.5, activation_noise=0.5, weight_noise=0.5, seed=0)
    inference = [np.asarray(model(X, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    training = [np.asarray(model(X, training=True)) for _ in range(2)]
    assert not np.array_equal(training[0], training[1])


def test_noisy_dense_jitters_the_kernel_in_training_only():
    layer = NoisyDense(3, weight_noise=1.0, seed=0)
    x = np.ones((2, 4), dtype="float32")
    plain = np.asarray(layer(x))
    np.testing.assert_allclose(plain, np.asarray(x @ layer.kernel + layer.bias), rtol=1e-6)
    noisy = np.asarray(layer(x, training=True))
    assert not np.allclose(noisy, plain)
    assert NoisyDense.from_config(layer.get_config()).weight_noise == 1.0


def test_noisy_dense_without_noise_is_dense():
    layer = NoisyDense(3, weight_noise=0.0, seed=0)
    x = np.ones((2, 4), dtype="float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), np.asarray(layer(x)))


def test_label_smoothing_is_applied_to_the_loss():
    compile_kwargs = {"optimizer": "rmsprop", "loss": "binary_crossentropy"}
    model = mlp((6,), label_smoothing=0.1, compile_kwargs=compile_kwargs)
    assert model.compiled
    assert model.loss.get_config()["label_smoothing"] == 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dropout": 1.0}, ValueError,
         r"dropout=1.0 is out of range: dropout must be a real number in \[0, 1\)"),
        ({"dropout": -0.1}, ValueError, r"dropout=-0.1 is out of range"),
        ({"l2": -1e-3}, ValueError,
         r"l2=-0.001 is out of range: l2 must be a finite real number >= 0"),
        ({"l1": float("inf")}, ValueError, r"l1=inf is out of range"),
        ({"noise": "a lot"}, TypeError,
         r"noise='a lot' has the wrong type: noise must be a real number in \[0, 1\]"),
        ({"noise": 1.5}, ValueError, r"noise=1.5 is out of range: .* in \[0, 1\]"),
        ({"activation_noise": 2}, ValueError, r"activation_noise=2 is out of range"),
        ({"weight_noise": float("nan")}, ValueError, r"weight_noise=nan is out of range"),
        ({"hidden": (16, 0)}, ValueError,
         r"hidden=\(16, 0\) is out of range: hidden must be a tuple of positive integers"),
        ({"hidden": "16"}, TypeError, r"hidden='16' has the wrong type"),
        ({"hidden": (16, 2.5)}, TypeError, r"hidden=\(16, 2.5\) holds a value that is not an int"),
        ({"output_units": 0}, ValueError, r"output_units=0 is out of range: .* integer >= 1"),
        ({"output_units": True}, TypeError, r"output_units=True has the wrong type"),
        ({"activation": "relux"}, ValueError, r"activation='relux' is not a Keras activation"),
        ({"output_activation": 3}, ValueError, r"output_activation=3 is not a Keras activation"),
        ({"label_smoothing": 0.1}, ValueError, r"label_smoothing=0.1 acts on the loss"),
    ],
)
def test_bad_knobs_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        mlp((6,), **kwargs)


@pytest.mark.parametrize("shape", [(), (0,), "six", (6.0,), None])
def test_bad_input_shape_is_rejected(shape):
    with pytest.raises((ValueError, TypeError), match=r"input_shape=.* input_shape must be a"):
        mlp(shape)


def test_mlp_declares_its_ranges_for_spaces_and_estimators():
    """The builder protocol's ``param_ranges``: the one table mlp() checks itself against."""
    from tunekit._checks import MLP_RANGES

    assert mlp.param_ranges is MLP_RANGES
    assert set(MLP_RANGES) <= set(inspect.signature(mlp).parameters)
    mlp((6,), noise=1.0, activation_noise=0.0, dropout=0.999, l2=1e300)  # the edges are valid


def test_numpy_scalars_and_shapes_are_accepted():
    model = mlp(np.array([6]), hidden=np.array([4, 2]), l2=np.float32(0.01),
                dropout=np.float64(0.25), output_units=np.int64(2))
    assert model.input_shape == (None, 6)
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [4, 2, 2]


def test_smooth_loss_refuses_non_crossentropy():
    with pytest.raises(ValueError, match=r"needs a cross-entropy loss.*'mse'"):
        smooth_loss("mse", 0.1)
    assert smooth_loss("mse", 0.0) == "mse"


def test_users_own_builder_follows_the_protocol(binary_data):
    X, y = binary_data

    def tiny(input_shape, *, width=4, output_units=1, output_activation="sigmoid"):
        inputs = keras.Input(input_shape)
        hidden = keras.layers.Dense(width, activation="tanh")(inputs)
        return keras.Model(inputs, keras.layers.Dense(output_units, output_activation)(hidden))

    est = tk.KerasClassifier(tiny, model__width=3, epochs=1, random_state=0).fit(X, y)
    assert est.model_.layers[1].units == 3
    assert est.predict(X).shape == (len(X),)


def test_integer_hidden_and_input_shape_are_accepted():
    model = mlp(6, hidden=8)
    assert model.input_shape == (None, 6)
    assert [layer.units for layer in model.layers[1:]] == [8, 1]
