"""The few backend-specific pieces of the stacked engine.

Everything else in :mod:`tunekit.engine` is written with :mod:`keras.ops` and
runs unchanged on TensorFlow and JAX. Three things cannot be: taking a
gradient of a Python function, compiling a function, and drawing random
numbers from a seed that is itself a tensor (``keras.random`` only takes
Python ints or a stateful ``SeedGenerator``, which JAX cannot carry through a
compiled loop). They live here, one small implementation per backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = ["SUPPORTED_BACKENDS", "backend_name", "get_backend"]

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
        return self.tf.function(fn, jit_compile=JIT, autograph=AUTOGRAPH)

    @staticmethod
    def _alg():
        # Under XLA on CPU, Threefry is several times faster than the default
        # ("auto_select", Philox) for the per-step dropout and noise draws; the
        # plain TensorFlow kernels implement Philox only.
        return "threefry" if JIT else "philox"

    def uniform(self, shape, seed, counter):
        tf = self.tf
        return tf.random.stateless_uniform(
            shape, seed=tf.stack([seed, counter]), dtype=tf.float32, alg=self._alg()
        )

    def normal(self, shape, seed, counter):
        tf = self.tf
        return tf.random.stateless_normal(
            shape, seed=tf.stack([seed, counter]), dtype=tf.float32, alg=self._alg()
        )


class _Jax:
    name = "jax"

    def __init__(self):
        import jax

        self.jax = jax

    def value_and_grad(self, fn: Callable, params: list) -> tuple[Any, Any, list]:
        (value, aux), grads = self.jax.value_and_grad(fn, has_aux=True)(params)
        return value, aux, grads

    def compile(self, fn: Callable) -> Callable:
        return self.jax.jit(fn)

    def _key(self, seed, counter):
        random = self.jax.random
        return random.fold_in(random.PRNGKey(seed), counter)

    def uniform(self, shape, seed, counter):
        return self.jax.random.uniform(self._key(seed, counter), shape, dtype="float32")

    def normal(self, shape, seed, counter):
        return self.jax.random.normal(self._key(seed, counter), shape, dtype="float32")


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
