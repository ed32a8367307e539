"""What a trained stack returns, on either trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["StackResult", "diverged"]


@dataclass
class StackResult:
    """What :func:`~tunekit.engine.train_stack` returns.

    Attributes
    ----------
    weights : list of list of ndarray
        Final weights of every member (``get_weights()`` order): the best
        epoch's weights for members with early stopping.
    n_epochs : ndarray of int, shape (M,)
        Epochs each member trained.
    best_epoch : ndarray of int, shape (M,)
        1-based epoch whose weights the member kept (``n_epochs`` without
        early stopping).
    history : dict of str -> ndarray of shape (n_epochs_run, M)
        ``"loss"`` (training loss, penalty included, as Keras reports it)
        and, when some member early-stops, ``"val_loss"``; NaN where a member
        did not train.
    diverged : ndarray of bool, shape (M,)
        Members whose weights are not finite.
    fit_time : float
        Wall time of the whole stack, compilation included.
    epoch_times : ndarray of float
        Wall time of each epoch's compiled call (the first one includes
        tracing and compilation).
    """

    weights: list
    n_epochs: np.ndarray
    best_epoch: np.ndarray
    history: dict = field(default_factory=dict)
    diverged: np.ndarray | None = None
    fit_time: float = 0.0
    epoch_times: np.ndarray | None = None


def diverged(weights: list) -> np.ndarray:
    """Per member, whether any of its weights is not finite."""
    return np.array([not all(np.isfinite(w).all() for w in ws) for ws in weights])
