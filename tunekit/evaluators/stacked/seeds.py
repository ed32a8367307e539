"""Seeds: the standard path's seed rule, member by member."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["Seeds"]


class Seeds:
    """The seed rule of the standard path, for members.

    With an integer ``random_state`` on the estimator every member gets the
    same seeds, as every ``clone(estimator).fit`` starts from that seed; with
    ``None`` every member draws fresh ones.

    Parameters
    ----------
    final : estimator object
        The estimator (a pipeline's last step) whose ``random_state`` rules.
    fallback : int, RandomState or None, default=None
        Stands in for an estimator that has no integer seed
        (:class:`StackedSearchCV`'s ``random_state``).
    """

    def __init__(self, final, fallback=None):
        seed = final.get_params(deep=False).get("random_state")
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            self.base = int(seed)
        elif fallback is not None:
            self.base = int(check_random_state(fallback).randint(0, 2**31 - 1))
        else:
            self.base = None
        self._fresh = np.random.default_rng()

    def draw(self) -> tuple[int, int, int]:
        """Seeds of a member's initial weights, random streams and early-stopping split."""
        if self.base is not None:
            return self.base, self.base ^ 0x5BD1E995, self.base
        init, stream, carve = self._fresh.integers(0, 2**31 - 1, size=3)
        return int(init), int(stream), int(carve)
