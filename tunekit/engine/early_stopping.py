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

    def update(self, epoch: int, val_loss: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Record one epoch's validation losses; return the members that improved."""
        improved = np.zeros(len(self.patience), dtype=bool)
        for m in np.flatnonzero(self.watch & active):
            # keras.callbacks.EarlyStopping.on_epoch_end, member by member:
            # the first watched epoch is always an improvement (best=None).
            self.wait[m] += 1
            if self.best_epoch[m] < 0 or val_loss[m] < self.best[m]:
                self.best[m], self.best_epoch[m], self.wait[m] = val_loss[m], epoch, 0
                improved[m] = True
            elif self.wait[m] >= self.patience[m] and epoch > 0:
                self.stopped[m] = True
        return improved

    def halt(self, members) -> None:
        """Freeze ``members`` from the next epoch on (e.g. pruned candidates)."""
        self.stopped[np.asarray(list(members), dtype=int)] = True

    def kept_epoch(self, n_epochs: np.ndarray) -> np.ndarray:
        """1-based epoch whose weights each member keeps."""
        return np.where(self.watch, self.best_epoch + 1, n_epochs)
