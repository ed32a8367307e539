"""What one compiled epoch is given besides the weights, the data and the knobs."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["EpochSchedule"]


class EpochSchedule(NamedTuple):
    """One epoch's steps for every member of a stack, as the compiled epoch takes them.

    A named tuple, so ``tf.function`` and ``jax.jit`` see its four arrays as
    four inputs (one trace per shape, as when they were separate arguments).

    Attributes
    ----------
    idx : int32 array of shape (steps, M, batch)
        The rows of ``X`` member ``m`` takes at each step (padding rows are 0).
    valid : float32 array of shape (steps, M, batch)
        1 for a real row, 0 for padding.
    active : bool array of shape (M,)
        The members that train in this epoch; the others are frozen.
    seeds : int32 array of shape (M,)
        Each member's seed for this epoch's dropout and noise draws.
    """

    idx: Any
    valid: Any
    active: Any
    seeds: Any
