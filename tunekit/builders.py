"""Reference model builders and the builder protocol.

A *builder* is a plain function that returns a :class:`keras.Model`::

    def builder(input_shape, *, knob_a=..., knob_b=..., **optional) -> keras.Model

The protocol, which :class:`tunekit.KerasClassifier` and
:class:`tunekit.KerasRegressor` rely on:

1. The first argument is ``input_shape``: the shape of one sample, without the
   batch axis (``(20,)`` for 20 features). The estimator passes the shape of
   ``X`` at fit time, or the ``input_shape=`` declared on the estimator after
   checking that it matches ``X``.
2. Every hyperparameter is a keyword argument with a default. The estimator
   routes ``model__<name>`` parameters to it, so ``model__l2`` can be searched
   by ``GridSearchCV`` or an Optuna study like any other parameter.
3. Optional keyword arguments the estimator fills in when the builder declares
   them and the user did not set them:

   - ``output_units`` and ``output_activation``: from the target (1 and
     ``"sigmoid"`` for binary labels, the number of classes and ``"softmax"``
     for multiclass labels, the number of outputs and ``"linear"`` for
     regression);
   - ``compile_kwargs``: the estimator's ``optimizer``, ``loss`` and
     ``metrics``, already instantiated. A builder that accepts it must return a
     compiled model; one that does not is compiled by the estimator;
   - ``seed``: an integer derived from the estimator's ``random_state`` (or
     ``None``), for the builder's random layers.

4. The builder must not train the model, read global data or touch global
   state: it may be called once per fold and per candidate.
5. Optionally, the builder declares the valid ranges of its knobs as a
   ``param_ranges`` attribute: a mapping of knob name to rule
   (:class:`Interval` for numbers, :class:`Shape` for tuples of sizes), as
   :func:`mlp` does with ``tunekit._checks.MLP_RANGES``. Then
   :meth:`tunekit.Space.check_params` refuses a space that can draw an
   invalid ``model__<knob>`` value, and the estimators refuse one before
   training, each naming the knob, the value and the valid range.

:func:`mlp` is the reference builder: a multilayer perceptron with every knob of
the overfitting lecture. Listing 5.13 (two ``Dense(16)`` layers with an L2
penalty of 0.002, a sigmoid output, rmsprop and binary cross-entropy) is
``mlp(input_shape, hidden=(16, 16), l2=0.002)`` compiled with ``"rmsprop"``
and ``"binary_crossentropy"``, which is what ``tunekit.KerasClassifier``
does by default for binary labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from tunekit._checks import MLP_RANGES, Interval, Shape, check_value

__all__ = ["Interval", "NoisyDense", "Shape", "mlp", "smooth_loss"]


@keras.saving.register_keras_serializable(package="tunekit")
class NoisyDense(layers.Dense):
    """A ``Dense`` layer whose kernel is jittered with Gaussian noise in training.

    At every training step a fresh draw ``eps ~ N(0, weight_noise**2)`` is
    added to the kernel before the product (weight noise, as in Graves 2011);
    at inference the plain kernel is used. With ``weight_noise=0`` the layer is
    exactly :class:`keras.layers.Dense`.

    Parameters
    ----------
    units : int
        Number of output units.
    weight_noise : float, default=0.0
        Standard deviation of the noise added to the kernel in training.
    seed : int or None, default=None
        Seed of the layer's own random generator.
    **kwargs
        Passed to :class:`keras.layers.Dense`.
    """

    def __init__(self, units, weight_noise: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(units, **kwargs)
        self.weight_noise = float(weight_noise)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.weight_noise <= 0.0:
            return super().call(inputs, training=training)
        kernel = self.kernel + keras.random.normal(
            ops.shape(self.kernel), stddev=self.weight_noise, seed=self.seed_generator
        )
        x = ops.matmul(inputs, kernel)
        if self.use_bias:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        config = super().get_config()
        config.update({"weight_noise": self.weight_noise, "seed": self.seed})
        return config


_SMOOTHABLE = {
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
}


def smooth_loss(loss: Any, label_smoothing: float) -> Any:
    """Return ``loss`` with label smoothing applied.

    Parameters
    ----------
    loss : str or keras.losses.Loss
        ``"binary_crossentropy"`` or ``"categorical_crossentropy"`` (or an
        instance of those losses).
    label_smoothing : float
        In ``[0, 1)``. ``0`` returns ``loss`` unchanged.

    Returns
    -------
    loss : str or keras.losses.Loss

    Raises
    ------
    ValueError
        If ``label_smoothing`` is out of range or ``loss`` cannot be smoothed.
    """
    check_value("label_smoothing", label_smoothing, MLP_RANGES["label_smoothing"])
    if label_smoothing == 0:
        return loss
    if isinstance(loss, keras.losses.Loss):
        for name, cls in _SMOOTHABLE.items():
            if isinstance(loss, cls):
                loss = name
                break
    elif callable(loss) and getattr(loss, "__name__", None) in _SMOOTHABLE:
        loss = loss.__name__  # keras.losses.binary_crossentropy and friends
    if isinstance(loss, str) and loss in _SMOOTHABLE:
        return _SMOOTHABLE[loss](label_smoothing=float(label_smoothing))
    raise ValueError(
        f"label_smoothing={label_smoothing} needs a cross-entropy loss on one-hot or 0/1 "
        f"labels ('binary_crossentropy' or 'categorical_crossentropy'), but got loss={loss!r}. "
        "Label smoothing only applies to classifiers; for multiclass targets tunekit's "
        "KerasClassifier switches to 'categorical_crossentropy' by itself when loss=None."
    )


def _check_hidden(hidden) -> tuple[int, ...]:
    return MLP_RANGES["hidden"].normalize("hidden", hidden)


def _check_input_shape(input_shape) -> tuple[int, ...]:
    return MLP_RANGES["input_shape"].normalize("input_shape", input_shape)


def _check_activation(name: str, activation) -> None:
    try:
        keras.activations.get(activation)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={activation!r} is not a Keras activation: pass a name such as 'relu', "
            "'tanh' or 'sigmoid', or a callable."
        ) from None


def mlp(
    input_shape: Sequence[int] | int,
    *,
    hidden: Sequence[int] | int = (16, 16),
    activation: str = "relu",
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
    noise: float = 0.0,
    activation_noise: float = 0.0,
    weight_noise: float = 0.0,
    label_smoothing: float = 0.0,
    output_units: int = 1,
    output_activation: str | None = "sigmoid",
    compile_kwargs: dict | None = None,
    seed: int | None = None,
    name: str = "mlp",
) -> keras.Model:
    """Build a multilayer perceptron with every anti-overfitting knob.

    The layers, in order: the input (flattened when a sample has several
    axes); ``GaussianNoise(noise)`` on the inputs;
    then for each width in ``hidden`` a ``Dense`` layer (``NoisyDense`` when
    ``weight_noise > 0``) with an L1/L2 kernel penalty and ``activation``,
    ``GaussianNoise(activation_noise)`` on its activations and
    ``Dropout(dropout)``; finally a ``Dense(output_units, output_activation)``
    output layer with the same penalty. Noise and dropout layers are only
    added when their value is above zero, and act only in training.

    Parameters
    ----------
    input_shape : tuple of int or int
        Shape of one sample, without the batch axis.
    hidden : tuple of int or int, default=(16, 16)
        Width of each hidden layer; ``()`` gives a linear / logistic model.
    activation : str, default="relu"
        Activation of the hidden layers.
    l1, l2 : float, default=0.0
        L1 and L2 penalties on every kernel (the lecture's Listing 5.13 uses
        ``l2=0.002``). Must be >= 0.
    dropout : float, default=0.0
        Fraction of hidden activations dropped in training, in ``[0, 1)``.
        The lecture's typical value is 0.5.
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to the inputs in training,
        in ``[0, 1]`` (Keras's ``GaussianNoise`` takes no more).
    activation_noise : float, default=0.0
        Standard deviation of Gaussian noise added to each hidden layer's
        activations in training, in ``[0, 1]``.
    weight_noise : float, default=0.0
        Standard deviation of Gaussian jitter added to the hidden kernels at
        every training step (see :class:`NoisyDense`). Must be >= 0.
    label_smoothing : float, default=0.0
        Label smoothing of the cross-entropy loss, in ``[0, 1)``. It acts on
        the loss, so it applies when the builder compiles the model, i.e. when
        ``compile_kwargs`` is given (as the estimators do).
    output_units : int, default=1
        Width of the output layer. The estimators fill it in from the target.
    output_activation : str or None, default="sigmoid"
        Activation of the output layer. The estimators fill it in.
    compile_kwargs : dict or None, default=None
        When given, the model is compiled with these arguments (``optimizer``,
        ``loss``, ``metrics``, ...), with the loss smoothed by
        ``label_smoothing``. When ``None`` the model is returned uncompiled.
    seed : int or None, default=None
        Seed for the dropout, noise and weight-noise layers.
    name : str, default="mlp"
        Name of the Keras model.

    Returns
    -------
    model : keras.Model
        A functional Keras model, compiled when ``compile_kwargs`` is given.

    Raises
    ------
    TypeError, ValueError
        Before any layer is made, for a knob outside its valid range
        (``tunekit._checks.MLP_RANGES``: finite penalties and weight noise
        >= 0, ``noise`` and ``activation_noise`` in ``[0, 1]``, ``dropout``
        and ``label_smoothing`` in ``[0, 1)``, positive widths and
        ``output_units``) or an unknown activation, naming the knob, the
        value and the range.

    Examples
    --------
    >>> import tunekit as tk
    >>> model = tk.builders.mlp((20,), hidden=(16, 16), l2=0.002)
    >>> [layer.units for layer in model.layers if hasattr(layer, "units")]
    [16, 16, 1]
    """
    shape = _check_input_shape(input_shape)
    widths = _check_hidden(hidden)
    knobs = {"l1": l1, "l2": l2, "dropout": dropout, "noise": noise,
             "activation_noise": activation_noise, "weight_noise": weight_noise,
             "label_smoothing": label_smoothing, "output_units": output_units}  # fmt: skip
    for knob, value in knobs.items():
        check_value(knob, value, MLP_RANGES[knob])
    _check_activation("activation", activation)
    _check_activation("output_activation", output_activation)
    if label_smoothing and compile_kwargs is None:
        raise ValueError(
            f"label_smoothing={label_smoothing} acts on the loss, so mlp() needs "
            "compile_kwargs to apply it; build through tunekit.KerasClassifier "
            "(model__label_smoothing=...) or pass compile_kwargs={'optimizer': ..., 'loss': ...}"
        )

    def penalty():
        return keras.regularizers.L1L2(l1=float(l1), l2=float(l2)) if (l1 or l2) else None

    inputs = keras.Input(shape=shape, name="features")
    x = layers.Flatten(name="flatten")(inputs) if len(shape) > 1 else inputs
    if noise > 0:
        x = layers.GaussianNoise(float(noise), seed=seed, name="input_noise")(x)
    for i, width in enumerate(widths):
        dense_kwargs = dict(activation=activation, kernel_regularizer=penalty(), name=f"dense_{i}")
        if weight_noise > 0:
            layer_seed = None if seed is None else seed + 1000 + i
            x = NoisyDense(width, weight_noise=weight_noise, seed=layer_seed, **dense_kwargs)(x)
        else:
            x = layers.Dense(width, **dense_kwargs)(x)
        if activation_noise > 0:
            layer_seed = None if seed is None else seed + 2000 + i
            x = layers.GaussianNoise(
                float(activation_noise), seed=layer_seed, name=f"activation_noise_{i}"
            )(x)
        if dropout > 0:
            layer_seed = None if seed is None else seed + 3000 + i
            x = layers.Dropout(float(dropout), seed=layer_seed, name=f"dropout_{i}")(x)
    outputs = layers.Dense(
        int(output_units),
        activation=output_activation,
        kernel_regularizer=penalty(),
        name="output",
    )(x)
    model = keras.Model(inputs, outputs, name=name)
    if compile_kwargs is not None:
        kwargs = dict(compile_kwargs)
        kwargs["loss"] = smooth_loss(kwargs.get("loss"), label_smoothing)
        model.compile(**kwargs)
    return model


mlp.param_ranges = MLP_RANGES
