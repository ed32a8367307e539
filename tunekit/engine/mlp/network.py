"""The stacked multilayer perceptron: :func:`tunekit.builders.mlp` with a member axis.

Every weight carries a leading member axis: the kernel of a ``Dense(out)``
layer fed by ``in`` features is ``(M, in, out)`` and its bias ``(M, out)``.
A batch is ``(M, B, features)``: member ``m``'s rows go through member ``m``'s
weights only (a batched matrix product), so the members never mix. The
per-member knobs (penalties, dropout rates, noise levels, label smoothing)
are tensors of shape ``(M,)``, so a grid over them is one model.

The functions here are written with :mod:`keras.ops` (training, any backend)
except :func:`forward_numpy`, the inference pass of one member in NumPy used
by the fitted stand-ins that score each member.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from keras import activations, ops

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "RandomStream",
    "forward",
    "forward_numpy",
    "glorot_uniform",
    "penalty",
    "per_row_loss",
]

# Hidden activations the engine supports: Keras names -> NumPy inference.
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: (
        1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))
    ),
    "softplus": lambda x: np.logaddexp(0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2.0))),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "relu6": lambda x: np.clip(x, 0, 6),
}

# Output activation -> the loss computed from its logits (the stable form
# Keras's TensorFlow backend uses for sigmoid / softmax outputs).
HEADS = {
    "sigmoid": "binary_crossentropy",
    "softmax": "categorical_crossentropy",
    "linear": "mean_squared_error",
}


def _erf(x):
    from scipy.special import erf

    return erf(x)


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """Draw one kernel like ``keras.initializers.GlorotUniform``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The member's own generator.
    fan_in, fan_out : int
        Kernel shape.

    Returns
    -------
    kernel : ndarray of shape (fan_in, fan_out), float32
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype("float32")


def init_member(
    rng: np.random.Generator, n_features: int, hidden: Sequence[int], n_outputs: int
) -> list[np.ndarray]:
    """Initial weights of one member, in ``keras.Model.get_weights()`` order.

    Kernels are Glorot-uniform and biases zero, as ``keras.layers.Dense``
    does by default.
    """
    widths = [n_features, *hidden, n_outputs]
    weights = []
    for fan_in, fan_out in itertools.pairwise(widths):
        weights.append(glorot_uniform(rng, fan_in, fan_out))
        weights.append(np.zeros(fan_out, dtype="float32"))
    return weights


def _member(x, like):
    """Reshape a per-member vector ``(M,)`` to broadcast against ``like``."""
    return ops.reshape(x, (-1,) + (1,) * (len(like.shape) - 1))


class RandomStream(NamedTuple):
    """Where one step's dropout and noise draws come from.

    Attributes
    ----------
    rng : object
        The backend glue (``uniform`` / ``normal`` from a tensor seed).
    seed : int32 tensor of shape (M,)
        One seed per member: member ``m``'s draws depend on ``seed[m]`` alone.
    counter : int32 tensor
        The step's place in the stream: every draw uses ``(seed, counter + k)``
        for its own ``k``, so the draws of one step are independent.
    """

    rng: Any
    seed: Any
    counter: Any


def forward(
    params: Sequence,
    x,
    hyper: Mapping,
    *,
    activation: str,
    training: bool,
    stream: RandomStream | None = None,
    flags: frozenset = frozenset(),
):
    """Logits of every member: the stacked form of ``mlp()``'s call.

    Parameters
    ----------
    params : list of tensors
        ``[K0, b0, K1, b1, ..., K_out, b_out]`` with a leading member axis.
    x : tensor of shape (M, B, n_features)
        Member ``m``'s batch in ``x[m]``.
    hyper : dict of str -> tensor of shape (M,)
        Per-member ``noise``, ``activation_noise``, ``weight_noise`` and
        ``dropout``.
    activation : str
        Hidden activation (a Keras name).
    training : bool
        Whether noise and dropout act, as in ``model(x, training=True)``.
    stream : RandomStream, optional
        The draws' backend glue, per-member seeds and counter; required when
        ``training`` and ``flags`` is not empty.
    flags : frozenset of str
        The random layers present in the stack (``"noise"``,
        ``"activation_noise"``, ``"weight_noise"``, ``"dropout"``): a
        layer no member uses is left out of the graph, as ``mlp()`` leaves it
        out of the model.

    Returns
    -------
    logits : tensor of shape (M, B, n_outputs)
        Pre-activation outputs; :func:`per_row_loss` and the heads apply the
        output activation.
    """
    act = activations.get(activation)
    n_layers = len(params) // 2
    k = 0

    def draw(kind, shape):
        nonlocal k
        k += 1
        return getattr(stream.rng, kind)(shape, stream.seed, stream.counter + k)

    if training and "noise" in flags:
        x = x + draw("normal", ops.shape(x)) * _member(hyper["noise"], x)
    for i in range(n_layers - 1):
        kernel, bias = params[2 * i], params[2 * i + 1]
        if training and "weight_noise" in flags:
            kernel = kernel + draw("normal", ops.shape(kernel)) * _member(
                hyper["weight_noise"], kernel
            )
        x = act(ops.matmul(x, kernel) + ops.expand_dims(bias, 1))
        if training and "activation_noise" in flags:
            x = x + draw("normal", ops.shape(x)) * _member(hyper["activation_noise"], x)
        if training and "dropout" in flags:
            rate = _member(hyper["dropout"], x)
            keep = draw("uniform", ops.shape(x)) >= rate
            x = ops.where(keep, x / (1.0 - rate), ops.zeros_like(x))
    return ops.matmul(x, params[-2]) + ops.expand_dims(params[-1], 1)


def per_row_loss(y, logits, loss: str, label_smoothing=None):
    """Loss of every row of every member, shape ``(M, B)``.

    Cross-entropies are computed from logits (as Keras's TensorFlow backend
    does for sigmoid and softmax outputs); ``label_smoothing`` is a ``(M,)``
    tensor or ``None``. Each row's loss is averaged over the output units as
    Keras's losses do.
    """
    if loss == "mean_squared_error":
        return ops.mean(ops.square(y - logits), axis=-1)
    if label_smoothing is not None:
        ls = _member(label_smoothing, y)
        # the width may be unknown while tracing: a tensor then
        n_classes = 2.0 if loss == "binary_crossentropy" else ops.cast(ops.shape(y)[-1], "float32")
        y = y * (1.0 - ls) + ls / n_classes
    if loss == "binary_crossentropy":
        # TensorFlow's sigmoid_cross_entropy_with_logits, written with `where`
        # so the gradient at z == 0 is sigmoid(0) - y (relu/abs kinks give 0).
        z = logits
        positive = z >= 0
        relu_z = ops.where(positive, z, ops.zeros_like(z))
        neg_abs_z = ops.where(positive, -z, z)
        per_unit = relu_z - z * y + ops.log1p(ops.exp(neg_abs_z))
        return ops.mean(per_unit, axis=-1)
    if loss == "categorical_crossentropy":
        return -ops.sum(y * ops.log_softmax(logits, axis=-1), axis=-1)
    raise ValueError(f"unsupported loss {loss!r}")


def penalty(params: Sequence, l1, l2, *, use_l1: bool = True, use_l2: bool = True):
    """Per-member L1/L2 kernel penalty, shape ``(M,)``, as ``keras.regularizers.L1L2``."""
    total = None
    for kernel in params[0::2]:
        term = None
        if use_l1:
            term = l1 * ops.sum(ops.abs(kernel), axis=(1, 2))
        if use_l2:
            sq = l2 * ops.sum(ops.square(kernel), axis=(1, 2))
            term = sq if term is None else term + sq
        if term is not None:
            total = term if total is None else total + term
    return total


def forward_numpy(
    weights: Sequence[np.ndarray], X: np.ndarray, activation: str, output_activation: str
) -> np.ndarray:
    """Inference pass of one member in NumPy (no noise, no dropout).

    Several members at once: ``X`` of shape ``(n_members, n_samples,
    n_features)``, each kernel ``(n_members, fan_in, fan_out)`` and each bias
    ``(n_members, 1, fan_out)``. NumPy's matmul runs each member's product as
    the BLAS call a lone member's makes, so each member's outputs are the
    same numbers as its own pass.

    Parameters
    ----------
    weights : list of ndarray
        ``[K0, b0, ..., K_out, b_out]`` of one member (``get_weights()`` order).
    X : ndarray of shape (n_samples, n_features), or (n_members, n_samples, n_features)
    activation : str
        Hidden activation.
    output_activation : {"sigmoid", "softmax", "linear"}

    Returns
    -------
    outputs : ndarray of shape (n_samples, n_outputs), float32
        Probabilities for sigmoid / softmax heads, values for linear ones
        (with a leading member axis when ``X`` has one).
    """
    act = ACTIVATIONS[activation]
    x = X if sp.issparse(X) else np.asarray(X, dtype="float32")  # sparse @ dense is dense
    n_layers = len(weights) // 2
    for i in range(n_layers - 1):
        x = act(x @ weights[2 * i] + weights[2 * i + 1]).astype("float32")
    z = x @ weights[-2] + weights[-1]
    if output_activation == "sigmoid":
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-z))).astype("float32")
    if output_activation == "softmax":
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=-1, keepdims=True)).astype("float32")
    return z.astype("float32")
