"""What a trained stack returns, on either trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MemberOutcome", "Resume", "StackResult", "diverged"]


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


@dataclass
class MemberOutcome:
    """One member's result, handed over as it leaves its slot in a running stack.

    Attributes
    ----------
    weights : list of ndarray
        Its kept weights (the best epoch's with early stopping).
    n_epochs : int
        Epochs it trained.
    best_epoch : int
        1-based epoch whose weights it kept.
    history : dict of str -> ndarray of shape (n_epochs,)
        Its ``"loss"`` per epoch and, when watched, its ``"val_loss"``.
    diverged : bool
        Whether any of its weights is not finite.
    started : int
        Epochs the stack had run when the member joined it (0: from the start).
    """

    weights: list
    n_epochs: int
    best_epoch: int
    history: dict
    diverged: bool
    started: int = 0


@dataclass(frozen=True)
class Resume:
    """In a turnover, for a slot just handed over: its member trains on, to ``epochs`` in all.

    Its weights, optimizer slots, step counter and random streams carry on,
    so with a constant learning rate and no early stopping, ``r`` epochs and
    then ``Resume(3 * r)`` is the very computation of ``3 * r`` epochs in one
    go (successive halving on epochs as one run).
    """

    epochs: int
