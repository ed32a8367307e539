"""Seeding a fit from ``random_state`` without leaving Keras or TensorFlow seeded afterwards.

scikeras with ``random_state=`` turns TensorFlow op determinism on for the rest of
the process, and a later unseeded fit raises "Random ops require a seed". Here the
seed state of Python, NumPy, Keras and TensorFlow is saved, set for the fit, and
restored after it.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import keras
import numpy as np
import tensorflow as tf

# Keras and TensorFlow keep their global seed state in private modules: the state is
# saved and restored from there, since no public call reads it back
from keras.src.backend.common import global_state as _global_state
from keras.src.random import seed_generator as _seed_generator
from keras.src.utils import rng_utils as _rng_utils
from tensorflow.python.eager import context as _tf_context

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int | None):
    """Seed Python, NumPy and the Keras backend for the block, without op determinism.

    scikeras's own ``tensorflow_random_state`` enables TensorFlow op determinism
    and can leave it on, after which any unseeded random op in the process
    raises. Here only the seeds are set, and every global random state the
    block touched is put back on exit: Python's, NumPy's, TensorFlow's global
    seed and Keras's global seed, so code running after a seeded fit draws the
    same (unseeded) numbers as if the fit had never run.
    """
    if seed is None:
        yield
        return
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - restoring the legacy global state
    keras_state = keras_seed_state()
    tf_state = tf_seed_state()
    keras.utils.set_random_seed(int(seed))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        restore_keras_seed_state(keras_state)
        restore_tf_seed_state(tf_state)


def keras_seed_state() -> tuple:
    """Keras's global seed and global seed generator, as ``set_random_seed`` leaves them."""
    return (
        _global_state.get_global_attribute(_rng_utils.GLOBAL_RANDOM_SEED),
        _global_state.get_global_attribute(_seed_generator.GLOBAL_SEED_GENERATOR),
    )


def restore_keras_seed_state(state: tuple) -> None:
    seed, generator = state
    _global_state.set_global_attribute(_rng_utils.GLOBAL_RANDOM_SEED, seed)
    _global_state.set_global_attribute(_seed_generator.GLOBAL_SEED_GENERATOR, generator)


def tf_seed_state() -> tuple | None:
    """TensorFlow's eager global seed and its op-seed sequence (``None`` in graph mode).

    ``keras.utils.set_random_seed`` sets TensorFlow's global seed whenever
    TensorFlow is installed, whatever the Keras backend. (scikeras imports
    TensorFlow in any case.)
    """
    if not _tf_context.executing_eagerly():
        return None
    rng = getattr(_tf_context.context(), "_rng", None)
    return _tf_context.global_seed(), None if rng is None else rng.getstate()


def restore_tf_seed_state(state: tuple | None) -> None:
    if state is None:
        return
    seed, rng_state = state
    tf.random.set_seed(seed)  # None: unseeded again, as before the block
    rng = getattr(_tf_context.context(), "_rng", None)
    if seed is not None and rng is not None and rng_state is not None:
        rng.setstate(rng_state)  # continue the caller's op-seed sequence where it was
