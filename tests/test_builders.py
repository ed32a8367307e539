"""The mlp() reference builder and the builder protocol."""

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
        ({"dropout": 1.0}, ValueError, r"dropout must lie in \[0.0, 1.0\), got dropout=1.0"),
        ({"dropout": -0.1}, ValueError, r"dropout must lie in"),
        ({"l2": -1e-3}, ValueError, r"l2 must lie in \[0.0, inf\], got l2=-0.001"),
        ({"noise": "a lot"}, TypeError, r"noise must be a real number"),
        ({"hidden": (16, 0)}, ValueError, r"every hidden layer width must be a positive"),
        ({"hidden": "16"}, TypeError, r"hidden must be a tuple of layer widths"),
        ({"output_units": 0}, ValueError, r"output_units must be >= 1"),
        ({"label_smoothing": 0.1}, ValueError, r"label_smoothing=0.1 acts on the loss"),
    ],
)
def test_bad_knobs_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        mlp((6,), **kwargs)


@pytest.mark.parametrize("shape", [(), (0,), "six"])
def test_bad_input_shape_is_rejected(shape):
    with pytest.raises((ValueError, TypeError), match="input_shape must be"):
        mlp(shape)


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
