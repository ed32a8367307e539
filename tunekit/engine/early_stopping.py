"""Early stopping per member, shared by both stacked trainers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """``keras.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True)``, per member.

    Each member has its own best epoch, best validation loss and patience
    counter. The first watched epoch is always an improvement; ``wait``
    counts the epochs since the best; a member stops once ``wait >= patience``
    after the first epoch. A stopped member trains no further, whatever the
    others do. The trainers keep the best weights themselves (on the device or
    the host) from the ``improved`` mask that :meth:`update` returns.

    Parameters
    ----------
    patience : sequence of int or None
        Per member, its patience, or ``None`` for a member that is not watched.

    Attributes
    ----------
    watch : ndarray of bool, shape (M,)
        Members with early stopping.
    stopped : ndarray of bool, shape (M,)
        Members that train no further (early-stopped, or halted by the caller).
    best_epoch : ndarray of int, shape (M,)
        0-based epoch of each member's best validation loss (-1 before any).
    """

    def __init__(self, patience: Sequence[int | None]):
        n = len(patience)
        self.patience = np.array([-1 if p is None else int(p) for p in patience])
        self.watch = np.array([p is not None for p in patience], dtype=bool)
        self.best = np.full(n, np.inf)
        self.best_epoch = np.full(n, -1)
        self.wait = np.zeros(n, dtype=int)
        self.stopped = np.zeros(n, dtype=bool)

    def active(self, epoch: int, max_epochs: np.ndarray) -> np.ndarray:
        """Members that train in ``epoch`` (0-based): not stopped, epochs left."""
        return ~self.stopped & (epoch < max_epochs)

    def update(self, epoch, val_loss: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Record one epoch's validation losses; return the members that improved.

        ``epoch`` is the 0-based epoch, one for all members or one per member
        (members that joined a running stack count their own epochs).
        """
        improved = np.zeros(len(self.patience), dtype=bool)
        epochs = np.broadcast_to(np.asarray(epoch), improved.shape)
        for m in np.flatnonzero(self.watch & active):
            # keras.callbacks.EarlyStopping.on_epoch_end, member by member:
            # the first watched epoch is always an improvement (best=None).
            self.wait[m] += 1
            if self.best_epoch[m] < 0 or val_loss[m] < self.best[m]:
                self.best[m], self.best_epoch[m], self.wait[m] = val_loss[m], epochs[m], 0
                improved[m] = True
            elif self.wait[m] >= self.patience[m] and epochs[m] > 0:
                self.stopped[m] = True
        return improved

    def select(self, keep: np.ndarray) -> None:
        """Keep the members at ``keep`` only, in that order (a stack made smaller)."""
        for name in ("patience", "watch", "best", "best_epoch", "wait", "stopped"):
            setattr(self, name, getattr(self, name)[keep])

    def reset(self, member: int, patience: int | None) -> None:
        """Start ``member`` afresh with ``patience`` (a new member in a running stack's slot)."""
        self.patience[member] = -1 if patience is None else int(patience)
        self.watch[member] = patience is not None
        self.best[member], self.best_epoch[member] = np.inf, -1
        self.wait[member], self.stopped[member] = 0, False

    def halt(self, members) -> None:
        """Freeze ``members`` from the next epoch on (e.g. pruned candidates)."""
        self.stopped[np.asarray(list(members), dtype=int)] = True

    def kept_epoch(self, n_epochs: np.ndarray) -> np.ndarray:
        """1-based epoch whose weights each member keeps."""
        return np.where(self.watch, self.best_epoch + 1, n_epochs)
