"""Member-axis versions of the covered layers, the forward pass, losses and penalties.

Every tensor carries a leading member axis ``M``: a batch is ``(M, B, ...)``, a
kernel ``(M, in, out)``. Written with :mod:`keras.ops`, so it runs on TensorFlow and JAX.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from tunekit.engine.keras_stack._plan import RANDOM_LAYERS, _Plan

_STEP_STRIDE = 64  # random-stream counters reserved per step (one per random layer)


# ---------------------------------------------------------------------- randomness
_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)


def _shr(x, k: int):
    return ops.bitwise_and(ops.right_shift(x, k), (1 << (32 - k)) - 1)


def _hash32(x):
    """A 32-bit integer mix (lowbias32) in int32 arithmetic (wrap-around products)."""
    x = ops.bitwise_xor(x, _shr(x, 16))
    x = ops.multiply(x, ops.convert_to_tensor(_M1, "int32"))
    x = ops.bitwise_xor(x, _shr(x, 15))
    x = ops.multiply(x, ops.convert_to_tensor(_M2, "int32"))
    return ops.bitwise_xor(x, _shr(x, 16))


def _uniform(keys, shape, counter, stream: int):
    """Uniforms in [0, 1) of ``shape`` ``(M, ...)``; member ``m``'s from ``keys[m]`` only."""
    n = int(np.prod(shape[1:]))
    iota = ops.reshape(ops.arange(n, dtype="int32"), (1, *shape[1:]))
    k = _hash32(ops.bitwise_xor(keys, _hash32(counter * 4 + stream + 0x5BD1E995)))
    k = ops.reshape(k, (-1,) + (1,) * (len(shape) - 1))
    # broadcast both first: on TensorFlow, keras.ops.add(x1, x2) takes an x2 of one
    # non-unit axis for a bias (tf.nn.bias_add) when its length equals x1's second or last
    # axis, so (1, B, U) + (M, 1, 1) with M == U gave every member the first one's draws
    h = _hash32(ops.add(ops.broadcast_to(_hash32(iota), shape), ops.broadcast_to(k, shape)))
    return (ops.cast(_shr(h, 8), "float32") + 0.5) * (1.0 / (1 << 24))


def _normal(keys, shape, counter):
    u1 = _uniform(keys, shape, counter, 1)
    u2 = _uniform(keys, shape, counter, 2)
    return ops.sqrt(-2.0 * ops.log(u1)) * ops.cos(2.0 * math.pi * u2)


# ---------------------------------------------------------------------- member-axis layers
def _per_member(v, like):
    return ops.reshape(v, (-1,) + (1,) * (len(like.shape) - 1))


def _fold(x):
    return ops.reshape(x, (x.shape[0] * x.shape[1], *x.shape[2:]))


def _unfold(y, n_members):
    return ops.reshape(y, (n_members, y.shape[0] // n_members, *y.shape[1:]))


def _dense(layer, w, x):
    kernel = w["kernel"]
    m, b = x.shape[0], x.shape[1]
    flat = ops.reshape(x, (m, -1, x.shape[-1]))
    y = ops.matmul(flat, kernel)
    y = ops.reshape(y, (m, b, *x.shape[2:-1], kernel.shape[-1]))
    if "bias" in w:
        y = y + ops.reshape(w["bias"], (m,) + (1,) * (len(y.shape) - 2) + (kernel.shape[-1],))
    return layer.activation(y)


def _pads(size, k, stride, dilation, padding):
    span = (k - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _conv(layer, w, x):
    kernel = w["kernel"]  # (M, *k, C, F)
    m, b = x.shape[0], x.shape[1]
    ksize = tuple(kernel.shape[1:-2])
    nd = len(ksize)
    strides = tuple(layer.strides)
    dil = tuple(layer.dilation_rate)
    pads = [_pads(x.shape[2 + d], ksize[d], strides[d], dil[d], layer.padding) for d in range(nd)]
    if any(p != (0, 0) for p in pads):
        x = ops.pad(x, [(0, 0), (0, 0), *pads, (0, 0)])
    sizes = [x.shape[2 + d] for d in range(nd)]
    outs = [(sizes[d] - (ksize[d] - 1) * dil[d] - 1) // strides[d] + 1 for d in range(nd)]
    # im2col as one gather over the flattened spatial positions: row p of the
    # index lists, for output position p, the input positions under the kernel
    # (kernel offsets in row-major order, matching the kernel's layout).
    grids = np.meshgrid(*[np.arange(o) * st for o, st in zip(outs, strides, strict=True)],
                        indexing="ij")
    offs = np.meshgrid(*[np.arange(k) * dl for k, dl in zip(ksize, dil, strict=True)],
                       indexing="ij")
    pos = np.zeros((int(np.prod(outs)), int(np.prod(ksize))), dtype="int64")
    for d in range(nd):
        coord = grids[d].reshape(-1, 1) + offs[d].reshape(1, -1)
        pos = pos * sizes[d] + coord
    flat = ops.reshape(x, (m, b, int(np.prod(sizes)), x.shape[-1]))
    cols = ops.take(flat, ops.convert_to_tensor(pos.astype("int32")), axis=2)
    cols = ops.reshape(cols, (m, b * int(np.prod(outs)), -1))
    k_flat = ops.reshape(kernel, (m, -1, kernel.shape[-1]))
    y = ops.matmul(cols, k_flat)
    y = ops.reshape(y, (m, b, *outs, kernel.shape[-1]))
    if "bias" in w:
        y = y + ops.reshape(w["bias"], (m,) + (1,) * (nd + 1) + (kernel.shape[-1],))
    return layer.activation(y)


def _channel(v, x):
    return ops.reshape(v, (x.shape[0],) + (1,) * (len(x.shape) - 2) + (x.shape[-1],))


def _batch_norm(layer, w, x, ctx, training, i):
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    if axis not in (-1, len(x.shape) - 2):
        raise ValueError("BatchNormalization stacks on the last axis only")
    if training:
        rw = ops.reshape(ctx["row_weight"], (*x.shape[:2],) + (1,) * (len(x.shape) - 2))
        axes = tuple(range(1, len(x.shape) - 1))
        count = ops.sum(rw, axis=axes, keepdims=True) * float(np.prod(x.shape[2:-1]))
        count = ops.maximum(count, 1.0)
        mean = ops.sum(x * rw, axis=axes, keepdims=True) / count
        centered = x - ops.stop_gradient(mean)
        var = ops.sum(ops.square(centered) * rw, axis=axes, keepdims=True) / count
        mom = layer.momentum
        mean_m = ops.reshape(mean, (x.shape[0], x.shape[-1]))
        var_m = ops.reshape(var, (x.shape[0], x.shape[-1]))
        ctx["state"][(i, "moving_mean")] = w["moving_mean"] * mom + mean_m * (1.0 - mom)
        ctx["state"][(i, "moving_variance")] = w["moving_variance"] * mom + var_m * (1.0 - mom)
    else:
        mean, var = _channel(w["moving_mean"], x), _channel(w["moving_variance"], x)
    inv = ops.rsqrt(var + layer.epsilon)
    if "gamma" in w:
        inv = inv * _channel(w["gamma"], x)
    res = -mean * inv
    if "beta" in w:
        res = res + _channel(w["beta"], x)
    return x * inv + res


def _layer_norm(layer, w, x):
    axes = [a + 1 if a >= 0 else a for a in layer.axis]
    mean = ops.mean(x, axis=axes, keepdims=True)
    var = ops.mean(ops.square(x - ops.stop_gradient(mean)), axis=axes, keepdims=True)
    inv = ops.rsqrt(var + layer.epsilon)

    def bcast(v):
        shape = [x.shape[0]] + [1] * (len(x.shape) - 1)
        for a in axes:
            shape[a] = x.shape[a]
        return ops.reshape(v, shape)

    if "gamma" in w:
        inv = inv * bcast(w["gamma"])
    res = -mean * inv
    if "beta" in w:
        res = res + bcast(w["beta"])
    return x * inv + res


def _embedding(layer, w, x):
    table = w["embeddings"]  # (M, V, D)
    m, v, d = table.shape
    ids = ops.cast(x, "int32")
    offsets = ops.reshape(ops.arange(m, dtype="int32") * v, (m,) + (1,) * (len(ids.shape) - 1))
    return ops.take(ops.reshape(table, (m * v, d)), ids + offsets, axis=0)


def _random(layer, x, ctx, training, i):
    if not training:
        return x
    kind = type(layer).__name__
    rate = _per_member(ctx["knobs"][f"layer{i}.{RANDOM_LAYERS[kind]}"], x)
    counter = ctx["counter"] + i
    if kind == "Dropout":
        keep = _uniform(ctx["keys"], tuple(x.shape), counter, 0) >= rate
        return ops.where(keep, x / (1.0 - rate), 0.0)
    noise = _normal(ctx["keys"], tuple(x.shape), counter)
    if kind == "GaussianNoise":
        return x + rate * noise
    return x * (1.0 + ops.sqrt(rate / (1.0 - rate)) * noise)


def _apply(plan: _Plan, i: int, weights: dict, ctx: dict, training: bool, args, kwargs):
    layer = plan.layers[i]
    kind = plan.kinds[i]
    name = type(layer).__name__
    x = args[0]
    if kind == "random":
        return _random(layer, x, ctx, training, i)
    if kind == "folded":
        xs = x if isinstance(x, (list, tuple)) else None
        n_members = (xs[0] if xs else x).shape[0]
        folded = [_fold(t) for t in xs] if xs else _fold(x)
        return _unfold(layer.call(folded), n_members)
    w = weights[i]
    if name == "Dense":
        return _dense(layer, w, x)
    if name in ("Conv1D", "Conv2D"):
        return _conv(layer, w, x)
    if name == "BatchNormalization":
        return _batch_norm(layer, w, x, ctx, training, i)
    if name == "LayerNormalization":
        return _layer_norm(layer, w, x)
    if name == "Embedding":
        return _embedding(layer, w, x)
    raise ValueError(f"no member-axis implementation for {name}")  # pragma: no cover


def _forward(plan: _Plan, flat_weights: Sequence, x, ctx: dict, training: bool):
    """Run the template model with a member axis; ``flat_weights`` in slot order."""
    weights: dict = {}
    for (i, name, *_), value in zip(plan.weight_slots, flat_weights, strict=True):
        weights.setdefault(i, {})[name] = value
    if plan.model.__class__ is keras.Sequential or isinstance(plan.model, keras.Sequential):
        for i in range(len(plan.layers)):
            if plan.kinds[i] != "input":
                x = _apply(plan, i, weights, ctx, training, (x,), {})
        return x
    index = {id(layer): i for i, layer in enumerate(plan.layers)}

    def operation_fn(op):
        i = index[id(op)]

        def call(*args, **kwargs):
            kwargs.pop("training", None)
            kwargs.pop("mask", None)
            return _apply(plan, i, weights, ctx, training, args, kwargs)

        return call

    out = plan.model._run_through_graph(x, operation_fn=operation_fn)
    return out[0] if isinstance(out, (list, tuple)) else out


# ---------------------------------------------------------------------- losses
def _row_loss(plan: _Plan, y, out, smoothing):
    """Per-row loss ``(M, B)`` with Keras's own loss functions (label smoothing per member)."""
    name = plan.loss
    if name == "binary_crossentropy":
        if smoothing is not None:
            ls = _per_member(smoothing, y)
            y = y * (1.0 - ls) + 0.5 * ls
        return keras.losses.binary_crossentropy(y, out, from_logits=plan.from_logits)
    if name == "categorical_crossentropy":
        if smoothing is not None:
            ls = _per_member(smoothing, y)
            y = y * (1.0 - ls) + ls / float(y.shape[-1])
        return keras.losses.categorical_crossentropy(y, out, from_logits=plan.from_logits)
    if name == "sparse_categorical_crossentropy":
        m, b = out.shape[0], out.shape[1]
        yy = ops.reshape(ops.cast(y, "int32"), (m * b,))
        rows = keras.losses.sparse_categorical_crossentropy(
            yy, ops.reshape(out, (m * b, out.shape[-1])), from_logits=plan.from_logits
        )
        return ops.reshape(rows, (m, b))
    if name == "mean_squared_error":
        return keras.losses.mean_squared_error(y, out)
    return keras.losses.mean_absolute_error(y, out)


def _penalty(plan: _Plan, flat, knobs):
    total = None
    for (i, name, _shape, trainable, _init), value in zip(plan.weight_slots, flat, strict=True):
        if not trainable:
            continue
        key = f"layer{i}.{name}_regularizer"
        if f"{key}.l1" not in knobs:
            continue
        axes = tuple(range(1, len(value.shape)))
        term = ops.reshape(knobs[f"{key}.l1"], (-1,)) * ops.sum(ops.abs(value), axis=axes)
        term = term + ops.reshape(knobs[f"{key}.l2"], (-1,)) * ops.sum(
            ops.square(value), axis=axes
        )
        total = term if total is None else total + term
    return total
