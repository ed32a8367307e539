"""Nested cross-validation's inner searches, trained together.

Nested cross-validation runs one inner search per outer fold. A grid or a
random search with a fixed ``random_state`` proposes the same candidates in
every outer fold; only the rows differ. :class:`OuterFolds` holds what every
outer fold's inner search will ask for (the outer training rows and the inner
splitter), and :class:`LockstepEvaluator` turns the first inner search's
request into one evaluation of every candidate on every (outer, inner) fold:
on the stacked engine that is one stack of outer x inner x candidates
members instead of one stack per outer fold. The later inner searches read
their entries from it. The inner searches then skip their refits, and
:meth:`OuterFolds.outer_entries` trains every outer fold's chosen candidate on
its outer training rows, scored on its outer test rows, as one more evaluation.

The sharing is exact: each entry is what the inner search would have
computed on its own (an evaluator's contract is that a candidate's scores do
not depend on the other members of its batch), since the inner search's rows
are the outer training rows, and positions are mapped back to them.

Where a request is not the one foreseen (another candidate list, a halving
rung's subsample, a splitter that shuffles without a seed, per-sample fit
parameters), the request is evaluated as it stands, as without sharing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing

from tunekit.evaluators._base import Evaluation, Evaluator

__all__ = [
    "LockstepEvaluator",
    "OuterFolds",
    "evaluate_batch",
    "lockstep",
    "refit_elsewhere",
    "sharing_for",
]

logger = logging.getLogger("tunekit")

_ACTIVE: ContextVar = ContextVar("tunekit_outer_folds", default=None)


def _key(train, test) -> tuple[bytes, bytes]:
    return np.asarray(train, dtype=np.int64).tobytes(), np.asarray(test, dtype=np.int64).tobytes()


@dataclass
class OuterFolds:
    """The outer folds of a nested cross-validation, and the entries computed once for all.

    Parameters
    ----------
    X, y : indexable
        The whole data the outer folds index.
    trains : list of ndarray of int
        Every outer fold's training rows: what its inner search is given.
    cv : int, splitter or iterable
        The inner searches' ``cv``.
    classifier : bool
        Whether the estimator is a classifier (stratified inner folds).
    """

    X: Any
    y: Any
    trains: list
    cv: Any
    classifier: bool
    current: int = 0
    candidates: list = field(default_factory=list)
    entries: dict = field(default_factory=dict)  # (c, train bytes, test bytes) -> entry, engine
    curves: dict = field(default_factory=dict)  # (c, train bytes, test bytes) -> curve rows
    shared: bool = False
    unreported: tuple = (0, 0)  # the shared members and epochs, counted once
    trained_by: Any = None  # the estimator, scorers and evaluator of the shared evaluation
    refit: bool = False  # the current inner search refits its choice, as it would alone
    studies: Any = None  # Optuna studies in lockstep (tunekit.evaluators.outer_studies)

    def refit_elsewhere(self) -> bool:
        """Whether the current inner search skips its refit (:meth:`outer_entries` trains it)."""
        return self.shared and not self.refit

    def inner_splits(self, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Outer fold ``k``'s inner splits, in the rows of the whole data."""
        train = self.trains[k]
        X, y = _safe_indexing(self.X, train), _safe_indexing(self.y, train)
        cv = check_cv(self.cv, y, classifier=self.classifier)
        return [(train[tr], train[te]) for tr, te in cv.split(X, y)]

    def foreseen(self, splits) -> bool:
        """Whether ``splits`` (in the current outer fold's rows) are its plain inner splits."""
        try:
            expected = self.inner_splits(self.current)
        except ValueError:  # a splitter that needs more than X and y (groups): no sharing
            return False
        train = self.trains[self.current]
        got = [(train[np.asarray(tr)], train[np.asarray(te)]) for tr, te in splits]
        if len(got) != len(expected):
            return False
        pairs = zip(got, expected, strict=True)
        return all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in pairs)

    def outer_entries(self, chosen: dict, tests: dict) -> dict:
        """Each outer fold's chosen candidate trained on its outer training rows.

        Parameters
        ----------
        chosen : dict of int -> dict
            Outer fold -> the parameters its inner search chose.
        tests : dict of int -> ndarray of int
            Outer fold -> its outer test rows.

        Returns
        -------
        dict of int -> dict
            Outer fold -> its entry (``test_scores`` on the outer test rows,
            ``fit_error``), as a refit scored on them would give. On the
            stacked engine, every candidate chosen by some fold is trained on
            every outer fold in one stack; otherwise each fold trains its own.
        """
        estimator, scorers, evaluator = self.trained_by
        evaluator = copy.copy(evaluator)
        evaluator.oof_predictions = evaluator.epoch_curves = False
        evaluator.return_train_score, evaluator.progress = False, None
        folds = sorted(chosen)
        splits = {k: (self.trains[k], np.asarray(tests[k])) for k in folds}
        if getattr(evaluator, "name", "") != "stacked":
            return {
                k: evaluator.evaluate(estimator, [chosen[k]], [splits[k]], self.X, self.y,
                                      scorers=scorers).entries[0][0]
                for k in folds
            }  # fmt: skip
        distinct: list = []
        for k in folds:
            if not any(_same(chosen[k], d) for d in distinct):
                distinct.append(chosen[k])
        done = evaluator.evaluate(
            estimator, distinct, [splits[k] for k in folds], self.X, self.y, scorers=scorers
        )
        where = {k: next(i for i, d in enumerate(distinct) if _same(chosen[k], d)) for k in folds}
        return {k: done.entries[where[k]][s] for s, k in enumerate(folds)}

    def position(self, candidate: dict) -> int | None:
        """The candidate's position in the shared evaluation, or ``None``."""
        for i, known in enumerate(self.candidates):
            if _same(known, candidate):
                return i
        return None


def _same(a: dict, b: dict) -> bool:
    try:
        return a.keys() == b.keys() and all(bool(a[k] == b[k]) for k in a)
    except (TypeError, ValueError):  # arrays and other values without a plain truth value
        return a is b


@contextlib.contextmanager
def lockstep(folds: OuterFolds | None, k: int, refit: bool = False):
    """Within this block, evaluators made for an inner search share ``folds`` (outer fold ``k``).

    ``refit=True``: the inner search refits its choice itself, as without sharing.
    """
    if folds is not None:
        folds.current, folds.refit = k, refit
    token = _ACTIVE.set(folds)
    try:
        yield folds
    finally:
        _ACTIVE.reset(token)


def refit_elsewhere() -> bool:
    """Whether an Optuna inner search of nested CV leaves its refit to the nested search."""
    folds = _ACTIVE.get()
    return folds is not None and folds.studies is not None and folds.refit_elsewhere()


def evaluate_batch(evaluator, estimator, candidates, splits, X, y, *, scorers,
                   refill=None) -> Evaluation:  # fmt: skip
    """An Optuna batch: trained with the other outer folds' batches in a nested search.

    Outside nested cross-validation's lockstep studies, ``evaluator`` trains
    it alone, as :meth:`Evaluator.evaluate`, with ``refill`` (refilled slots:
    see :mod:`tunekit.evaluators.stacked.refill`); the lockstep studies train
    whole batches.
    """
    folds = _ACTIVE.get()
    studies = None if folds is None else folds.studies
    if studies is None or not studies.running:
        return evaluator.evaluate(estimator, candidates, splits, X, y, scorers=scorers,
                                  refill=refill)  # fmt: skip
    return studies.evaluate(evaluator, estimator, candidates, splits, X, y, scorers=scorers)


def sharing_for(evaluator: Evaluator) -> Evaluator:
    """``evaluator``, wrapped to share outer folds when a nested search is running."""
    folds = _ACTIVE.get()
    if folds is None or isinstance(evaluator, LockstepEvaluator):
        return evaluator
    return LockstepEvaluator(evaluator, folds)


class LockstepEvaluator(Evaluator):
    """An evaluator that trains every outer fold's inner folds at the first request.

    Parameters
    ----------
    inner : Evaluator
        What trains: on the first request, every candidate on every outer
        fold's inner splits at once; otherwise the request as it stands.
    folds : OuterFolds
        The nested cross-validation's outer folds and the shared entries.
    """

    name = "lockstep"

    def __init__(self, inner: Evaluator, folds: OuterFolds):
        super().__init__(**inner.settings())
        self.inner = inner
        self.folds = folds

    @property
    def refit_elsewhere(self) -> bool:
        """Whether the search's refit is left out: the nested search scores the outer fold."""
        return self.folds.refit_elsewhere()

    def _configured(self) -> Evaluator:
        inner = copy.copy(self.inner)
        for name in ("error_score", "return_train_score", "epoch_curves", "oof_predictions"):
            setattr(inner, name, getattr(self, name))
        return inner

    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None):
        """Read the entries from the shared evaluation, or train the request as it stands."""
        folds, k = self.folds, self.folds.current
        if not fit_params and not folds.shared and folds.foreseen(splits):
            self._share(estimator, candidates, scorers)
        found = self._replay(candidates, splits) if folds.shared else None
        if found is not None:
            self._tick(len(candidates) * len(splits))
            return found
        logger.debug("outer fold %d: this batch is trained on its own", k)
        return self._configured().evaluate(
            estimator, candidates, splits, X, y, scorers=scorers, fit_params=fit_params
        )

    def _share(self, estimator, candidates, scorers) -> None:
        """Train ``candidates`` on every outer fold's inner splits as one evaluation."""
        folds = self.folds
        every = [s for k in range(len(folds.trains)) for s in folds.inner_splits(k)]
        inner = self._configured()
        inner.progress = None
        done = inner.evaluate(estimator, candidates, every, folds.X, folds.y, scorers=scorers)
        for c in range(len(candidates)):
            for s, (train, test) in enumerate(every):
                folds.entries[(c, *_key(train, test))] = (done.entries[c][s], done.engines[c])
        for row in done.curves:
            train, test = every[row["fold"]]
            folds.curves.setdefault((row["candidate"], *_key(train, test)), []).append(row)
        folds.candidates = [dict(c) for c in candidates]
        folds.trained_by = (estimator, scorers, self._configured())
        folds.shared = True
        folds.unreported = (done.n_trained, done.n_epochs)
        logger.info(
            "nested CV: %d candidates x %d inner folds of %d outer folds trained together",
            len(candidates), len(every) // max(len(folds.trains), 1), len(folds.trains),
        )  # fmt: skip

    def _replay(self, candidates, splits) -> Evaluation | None:
        """The request's entries from the shared evaluation, or ``None`` if any is missing."""
        folds = self.folds
        train_rows = folds.trains[folds.current]
        keys = [_key(train_rows[np.asarray(tr)], train_rows[np.asarray(te)]) for tr, te in splits]
        positions = [folds.position(c) for c in candidates]
        if any(p is None for p in positions):
            return None
        entries, engines, curves = [], [], []
        for c, p in enumerate(positions):
            row = []
            for s, key in enumerate(keys):
                found = folds.entries.get((p, *key))
                if found is None:
                    return None
                row.append(copy.deepcopy(found[0]))
                rows = folds.curves.get((p, *key), [])
                curves += [{**r, "candidate": c, "fold": s} for r in rows]
            entries.append(row)
            engines.append(found[1])
        trained, epochs = folds.unreported
        folds.unreported = (0, 0)  # the shared members count once, in the first outer fold
        return Evaluation(entries, engines, curves, n_trained=trained, n_epochs=epochs)
