"""Successive halving on epochs as one run: a rung's survivors train on from their weights.

With ``resource="epochs"``, rung ``i`` trains every candidate to ``r_i`` epochs
and the next rung trains the survivors to ``r_{i+1}``. With a constant
learning rate, the same seed and no early stopping, training on from ``r_i``
to ``r_{i+1}`` is the very computation of ``r_{i+1}`` epochs from the start.
:class:`EpochRungs` therefore keeps one ``mlp()`` stack running through the
rungs: the first rung's call starts it, in a thread of its own, with every
candidate; when the rung's epochs are done its members are scored and the call
returns their entries; scikit-learn's halving picks the survivors and calls
again; the survivors' members train on (:class:`tunekit.engine.Resume`) and
the others stay frozen at their rung. The member-epochs trained are each
candidate's last rung's, not the sum over the rungs, and ``cv_results_`` is
``HalvingRandomSearchCV``'s own (``iter``, ``n_resources``).

Where that is not exact or not possible, every rung trains a stack of its own,
as before, and the log says why: early stopping (each member stops on its
own), any builder's trainer (a builder may schedule its learning rate),
candidates that need several stacks or the standard path, fit parameters,
splits that change between rungs. ``continue_rungs=False`` on the halving
search forces that path, for comparison.
"""

from __future__ import annotations

import copy
import logging
import threading

import numpy as np

import tunekit.engine as engine
from tunekit.evaluators._base import Evaluation, Evaluator, _freeze
from tunekit.evaluators.stacked.grouping import split_params, split_pipeline
from tunekit.evaluators.stacked.refill import refill_refusal
from tunekit.evaluators.stacked.runs import Batch

__all__ = ["EpochRungs"]

logger = logging.getLogger("tunekit")


def _key(candidate: dict, resource: str):
    return _freeze({k: v for k, v in candidate.items() if k != resource})


def _same_splits(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(ta, tb) and np.array_equal(ea, eb)
        for (ta, ea), (tb, eb) in zip(a, b, strict=True)
    )


class EpochRungs(Evaluator):
    """The rungs of successive halving on ``resource`` (an ``epochs`` parameter) as one run.

    Parameters
    ----------
    inner : StackedEvaluator
        What trains: the one run, or each rung where the run does not apply.
    resource : str
        The estimator's epochs parameter (``"epochs"``, or ``"step__epochs"``
        in a pipeline).

    Attributes
    ----------
    reason_ : str or None
        Why the rungs trained one stack each (``None`` when they ran as one).
    """

    name = "stacked"
    compacts = True  # a rung's losers leave their slots for good: the stack shrinks

    def __init__(self, inner, resource: str):
        super().__init__(**inner.settings())
        self.inner, self.resource = inner, resource
        self.reason_ = None
        self._cond = threading.Condition()
        self._thread = None
        self._shared: Evaluation | None = None  # the running evaluation (the thread's)
        self._result: Evaluation | None = None  # what the thread's call returned
        self._error: BaseException | None = None
        self._closed = self._stopping = False
        self._asked = self._scored = 0  # rungs asked of the run, and rungs it has scored
        self._next: dict | None = None
        self._positions: dict = {}  # candidate key -> positions in the run
        self._splits: list = []
        self._epochs = 0  # the current rung's epochs
        self._counted = (0, 0)  # members and epochs reported by earlier rungs

    # ------------------------------------------------------------ the search's calls
    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None):
        """The rung's entries: from the one run where it applies, else trained on their own."""
        candidates = [dict(c) for c in candidates]
        if self.reason_ is None and self._thread is None:
            self.reason_ = self._refusal(estimator, candidates, X, y, fit_params)
            if self.reason_ is None:
                return self._start(estimator, candidates, splits, X, y, scorers)
        if self.reason_ is None:
            found = self._continue(candidates, splits)
            if found is not None:
                return found
        return self._inner().evaluate(estimator, candidates, splits, X, y, scorers=scorers,
                                      fit_params=fit_params)  # fmt: skip

    def close(self, stop: bool = False) -> None:
        """End the run (after the last rung, or ``stop``: at the next epoch) and its thread."""
        with self._cond:
            self._closed = True
            self._stopping = self._stopping or stop
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------ the refill's hooks
    def epoch_end(self, scores: dict) -> list:
        """Nothing is pruned within a rung; everything stops when the search does."""
        return list(scores) if self._stopping else []

    def done(self, index: int, evaluation) -> None:
        self._shared = evaluation

    def more(self, n: int, fits) -> list:
        return []

    def resume(self, finished: list) -> dict:
        """A rung is done: hand it to the search, wait for its survivors; they train on."""
        with self._cond:
            self._scored += 1
            self._cond.notify_all()
            while self._next is None and not self._closed:
                self._cond.wait()
            going_on, self._next = self._next or {}, None
            return {} if self._closed else going_on

    # ------------------------------------------------------------ internals
    def _inner(self):
        inner = copy.copy(self.inner)
        for name, value in self.settings().items():
            setattr(inner, name, value)
        return inner

    def _refusal(self, estimator, candidates, X, y, fit_params) -> str | None:
        """Why the rungs cannot run as one (logged), or ``None``."""
        why = None
        if fit_params:
            why = f"fit parameters ({', '.join(fit_params)})"
        elif self._stops_early(estimator, candidates):
            why = "early stopping ends each member at an epoch of its own"
        else:
            groups = self.inner.routed(estimator, list(candidates), X, y, fit_params)
            if any(g.keras is not None for g in groups):
                why = ("any builder's trainer keeps a stack per rung (its builder may schedule "
                       "the learning rate)")  # fmt: skip
            else:
                why = refill_refusal(groups, Batch(estimator, list(candidates), [], X, y, None,
                                                   None))  # fmt: skip
        if why is not None:
            logger.info("successive halving on epochs: each rung trains from scratch: %s", why)
        return why

    def _stops_early(self, estimator, candidates) -> bool:
        _, final, prefix = split_pipeline(estimator)
        if prefix is None:
            return False
        base = final.get_params(deep=False)
        for candidate in candidates:
            try:
                member = engine.resolve_params({**base, **split_params(candidate, prefix)[1]})
            except (TypeError, ValueError):
                return False
            if member.stackable and member.member["patience"] is not None:
                return True
        return False

    def _start(self, estimator, candidates, splits, X, y, scorers) -> Evaluation:
        """The first rung: start the run with every candidate; wait for its rung to be done."""
        self._splits = [(np.asarray(tr), np.asarray(te)) for tr, te in splits]
        self._epochs = int(candidates[0][self.resource])
        for p, candidate in enumerate(candidates):
            self._positions.setdefault(_key(candidate, self.resource), []).append(p)
        inner = self._inner()

        def train():
            try:
                result = inner.evaluate(estimator, candidates, splits, X, y, scorers=scorers,
                                        refill=self)  # fmt: skip
            except BaseException as err:  # handed to the search's thread
                result, self._error = None, err
            with self._cond:
                self._result = result
                self._cond.notify_all()

        self._asked = 1
        self._thread = threading.Thread(target=train, name="tunekit-halving", daemon=True)
        self._thread.start()
        return self._rung(list(range(len(candidates))), first=True)

    def _continue(self, candidates, splits) -> Evaluation | None:
        """A later rung from the running stack, or ``None`` (then it trains on its own)."""
        epochs = {int(c[self.resource]) for c in candidates}
        positions, taken = [], set()
        for candidate in candidates:
            free = [p for p in self._positions.get(_key(candidate, self.resource), [])
                    if p not in taken]  # fmt: skip
            if not free:
                break
            positions.append(free[0])
            taken.add(free[0])
        why = None
        if self._result is not None:
            why = "the run has ended"
        elif not _same_splits(self._splits, [(np.asarray(a), np.asarray(b)) for a, b in splits]):
            why = "the rung's splits differ from the first rung's"
        elif len(epochs) != 1 or len(positions) != len(candidates):
            why = "the rung's candidates are not the running ones"
        elif epochs.pop() < self._epochs:
            why = "the rung has fewer epochs than the last"
        if why is not None:
            self.reason_ = why
            logger.info("successive halving on epochs: the rungs from here train from scratch: "
                        "%s", why)  # fmt: skip
            self.close(stop=True)
            return None
        target = int(candidates[0][self.resource])
        if target == self._epochs:  # aggressive elimination: the same epochs again
            return self._result_of(positions)
        self._epochs = target
        with self._cond:
            self._asked += 1
            self._next = {p: target for p in positions}
            self._cond.notify_all()
        return self._rung(positions)

    def _rung(self, positions: list, first: bool = False) -> Evaluation:
        """Wait until the run has scored the rung (or ended); its entries for ``positions``."""
        try:
            with self._cond:
                while self._scored < self._asked and self._result is None and self._error is None:
                    self._cond.wait()
        except BaseException:  # Ctrl-C in the search's thread: stop the run at its next epoch
            self.close(stop=True)
            raise
        if self._error is not None:
            error, self._error = self._error, None
            self.close()
            raise error
        if self._scored < self._asked:  # the run ended: the first rung as one batch, or nothing
            result = self._result
            if first and not result.refilled:
                self.reason_ = "the candidates did not fit one stack"
                logger.info("successive halving on epochs: each rung trains from scratch: %s",
                            self.reason_)  # fmt: skip
                return result
            self._shared = self._shared or result
        return self._result_of(positions)

    def _result_of(self, positions: list) -> Evaluation:
        """The rung's evaluation: ``positions``' entries and curves as they stand."""
        shared = self._shared
        entries = [copy.deepcopy(shared.entries[p]) for p in positions]
        rows: dict = {}
        where = {p: k for k, p in enumerate(positions)}
        for row in shared.curves:
            k = where.get(row["candidate"])
            if k is not None and row["epoch"] <= self._epochs:
                rows[k, row["fold"], row["epoch"]] = {**row, "candidate": k}
        trained, epochs = shared.n_trained - self._counted[0], shared.n_epochs - self._counted[1]
        self._counted = (shared.n_trained, shared.n_epochs)
        return Evaluation(
            entries=entries,
            engines=[shared.engines[p] for p in positions],
            curves=list(rows.values()),
            n_trained=trained,
            n_epochs=epochs,
        )
