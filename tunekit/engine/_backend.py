"""The few backend-specific pieces of the stacked engine.

Everything else in :mod:`tunekit.engine` is written with :mod:`keras.ops` and
runs unchanged on TensorFlow and JAX. Three things cannot be: taking a
gradient of a Python function, compiling a function, and drawing random
numbers from a seed that is itself a tensor (``keras.random`` only takes
Python ints or a stateful ``SeedGenerator``, which JAX cannot carry through a
compiled loop). They live here, one small implementation per backend.

Random draws are per member: ``uniform(shape, seeds, counter)`` takes one
seed per member (``seeds`` of shape ``(M,)``, ``shape[0] == M``) and member
``m``'s numbers depend only on ``seeds[m]``, ``counter`` and the position
inside the member's slice, never on ``m`` or on ``M``. A member therefore
draws the same dropout masks and noise whichever stack it trains in. The
numbers come from a counter-based hash (PCG's output permutation, applied
three times), which XLA fuses into the step; on CPU it is about twice as
fast as Threefry for the per-step draws. Normal numbers are the inverse
normal CDF (``ndtri``) of such uniforms: on CPU under XLA a draw costs a
third of Box-Muller's, whose cosine made up most of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = ["SUPPORTED_BACKENDS", "backend_name", "get_backend"]

_PCG_MUL, _PCG_INC, _PCG_OUT = 747796405, 2891336453, 277803737

SUPPORTED_BACKENDS = ("tensorflow", "jax")
JIT = True
AUTOGRAPH = False  # no tensor-dependent Python control flow: tracing ~30% faster


def backend_name() -> str:
    """Return the name of the active Keras backend."""
    return keras.backend.backend()


class _TensorFlow:
    name = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def value_and_grad(self, fn: Callable, params: list) -> tuple[Any, Any, list]:
        """``fn(params) -> (scalar, aux)``; return the scalar, aux and d scalar / d params."""
        tf = self.tf
        with tf.GradientTape() as tape:
            tape.watch(params)
            value, aux = fn(params)
        grads = tape.gradient(value, params)
        return value, aux, grads

    def compile(self, fn: Callable) -> Callable:
        # XLA fuses the per-member element-wise work of a step into a few
        # kernels; on CPU it is ~2x faster than the plain graph executor for
        # this workload (see docs/performance.md).
        return _TracedOnce(self.tf, self.tf.function(fn, jit_compile=JIT, autograph=AUTOGRAPH))

    def _bits(self, shape, seeds, counter):
        tf = self.tf
        u32 = tf.uint32

        def pcg(v):
            state = v * tf.constant(_PCG_MUL, u32) + tf.constant(_PCG_INC, u32)
            shift = tf.bitwise.right_shift(state, 28) + tf.constant(4, u32)
            word = tf.bitwise.bitwise_xor(tf.bitwise.right_shift(state, shift), state)
            word = word * tf.constant(_PCG_OUT, u32)
            return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(word, 22), word)

        # dimensions may be tensors: one trace serves stacks of every shape
        inner = [d if tf.is_tensor(d) else int(d) for d in shape[1:]]
        size = tf.reduce_prod(tf.stack([tf.cast(d, tf.int32) for d in inner]))
        pos = tf.cast(tf.reshape(tf.range(size, dtype=tf.int32), tf.stack(inner)), u32)
        key = pcg(tf.bitwise.bitwise_xor(tf.cast(seeds, u32), pcg(tf.cast(counter, u32))))
        key = tf.reshape(key, [-1] + [1] * len(inner))
        return pcg(tf.bitwise.bitwise_xor(pos, key)), pcg

    def uniform(self, shape, seeds, counter):
        """Uniform [0, 1) numbers of ``shape``; member ``m`` from ``seeds[m]`` alone."""
        tf = self.tf
        bits, _ = self._bits(shape, seeds, counter)
        return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * (2.0**-24)

    def normal(self, shape, seeds, counter):
        """Standard normal numbers (the inverse normal CDF of uniforms in (0, 1)), member
        ``m`` from ``seeds[m]`` alone."""
        tf = self.tf
        bits, _ = self._bits(shape, seeds, counter)
        # 23 bits and a half: exact in float32, strictly inside (0, 1), so never ndtri(1) = inf
        u = (tf.cast(tf.bitwise.right_shift(bits, 9), tf.float32) + 0.5) * 2.0**-23
        return tf.math.ndtri(u)


class _TracedOnce:
    """A ``tf.function`` traced once, for tensors of any shape; XLA compiles each shape.

    Stacks differ in their member, step and batch counts. Traced for the
    shapes of its first call, the function would be traced again for every
    other stack shape before XLA compiles it (0.2 s of a new shape's 0.8 s in
    ``benchmarks/engine_epochs.py``); traced with every dimension unknown, it
    is traced once and XLA compiles the one graph for each shape it meets.
    """

    def __init__(self, tf, function) -> None:
        self._tf, self._function, self._traced = tf, function, False

    def __call__(self, *args):
        if not self._traced:
            tf = self._tf

            def relaxed(value):
                if tf.is_tensor(value):
                    return tf.TensorSpec([None] * value.shape.rank, value.dtype)
                return value

            self._function.get_concrete_function(*tf.nest.map_structure(relaxed, args))
            self._traced = True
        return self._function(*args)


class _Jax:
    name = "jax"

    def __init__(self):
        import jax
        import jax.scipy.special  # normal draws: ndtri

        self.jax = jax

    def value_and_grad(self, fn: Callable, params: list) -> tuple[Any, Any, list]:
        (value, aux), grads = self.jax.value_and_grad(fn, has_aux=True)(params)
        return value, aux, grads

    def compile(self, fn: Callable) -> Callable:
        return self.jax.jit(fn)

    def _bits(self, shape, seeds, counter):
        jnp = self.jax.numpy
        u32 = jnp.uint32

        def pcg(v):
            state = v * u32(_PCG_MUL) + u32(_PCG_INC)
            word = ((state >> ((state >> 28) + u32(4))) ^ state) * u32(_PCG_OUT)
            return (word >> 22) ^ word

        inner = tuple(int(d) for d in shape[1:])
        size = 1
        for d in inner:
            size *= d
        pos = jnp.arange(size, dtype=u32).reshape(inner)
        key = pcg(jnp.asarray(seeds).astype(u32) ^ pcg(jnp.asarray(counter).astype(u32)))
        key = key.reshape((-1,) + (1,) * len(inner))
        return pcg(pos ^ key), pcg

    def uniform(self, shape, seeds, counter):
        bits, _ = self._bits(shape, seeds, counter)
        return (bits >> 8).astype("float32") * (2.0**-24)

    def normal(self, shape, seeds, counter):
        bits, _ = self._bits(shape, seeds, counter)
        # 23 bits and a half: exact in float32, strictly inside (0, 1), so never ndtri(1) = inf
        return self.jax.scipy.special.ndtri(((bits >> 9).astype("float32") + 0.5) * 2.0**-23)


_CACHE: dict[str, Any] = {}


def get_backend():
    """Return the glue object of the active Keras backend.

    Raises
    ------
    RuntimeError
        If the active backend is neither TensorFlow nor JAX.
    """
    name = backend_name()
    if name not in _CACHE:
        if name == "tensorflow":
            _CACHE[name] = _TensorFlow()
        elif name == "jax":
            _CACHE[name] = _Jax()
        else:
            raise RuntimeError(
                f"the stacked engine runs on the TensorFlow and JAX backends, but "
                f"KERAS_BACKEND={name!r}; set KERAS_BACKEND=tensorflow or jax, or "
                "use engine='sklearn'"
            )
    return _CACHE[name]
