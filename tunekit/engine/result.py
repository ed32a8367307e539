"""What a trained stack returns, on either trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Leaving", "MemberOutcome", "Resume", "StackResult", "diverged", "leaving_outcomes"]


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


class Leaving(dict):
    """Slot -> :class:`MemberOutcome` of the members that leave a running stack.

    What a trainer passes to ``turnover``. ``outputs``, where the trainer has
    one: ``outputs({slot: rows})`` gives each listed slot's network outputs
    (its kept weights, inference mode) on its rows of the stack's ``X``, all
    in one compiled pass; any builder's trainer has it, ``mlp()``'s (whose
    members predict in NumPy from ``MemberOutcome.weights``) does not
    (``None``). Call it inside ``turnover`` only: once ``turnover`` returns,
    new members take the slots.
    """

    def __init__(self, outcomes: dict, outputs=None):
        super().__init__(outcomes)
        self.outputs = outputs


def leaving_outcomes(leaving, weights_of, trained, started, best_epoch, losses, val_losses,
                     watch) -> dict:  # fmt: skip
    """The :class:`MemberOutcome` of each member leaving a running stack (both trainers).

    Parameters
    ----------
    leaving : sequence of int
        The slots whose members leave.
    weights_of : callable
        ``weights_of(m)``: the kept weights of slot ``m``'s member (a copy).
    trained, started, best_epoch : ndarray of int, shape (M,)
        Per slot, the member's epochs, the stack's epochs when it joined and its
        1-based kept epoch.
    losses, val_losses : list of ndarray of shape (M,)
        The stack's per-epoch losses (and validation losses, where watched).
    watch : ndarray of bool, shape (M,)
        Slots whose member has early stopping.
    """
    loss = np.array(losses)
    val = np.array(val_losses) if watch.any() else None
    out = {}
    for m in leaving:
        weights = weights_of(m)
        rows = slice(started[m], started[m] + trained[m])
        history = {"loss": loss[rows, m]}
        if watch[m]:
            history["val_loss"] = val[rows, m]
        out[m] = MemberOutcome(
            weights=weights, n_epochs=int(trained[m]), best_epoch=int(best_epoch[m]),
            history=history, diverged=bool(diverged([weights])[0]), started=int(started[m]),
        )  # fmt: skip
    return out

