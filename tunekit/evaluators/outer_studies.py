"""Nested cross-validation's Optuna studies, trained in lockstep on shared stacks.

An Optuna study adapts to its own scores, so the outer folds of a nested
search cannot share one evaluation up front as a grid does
(:mod:`tunekit.evaluators.outer_folds`). They can share every *batch*. Each
outer fold's study runs in a thread of its own, asks for its next batch of
trials and hands the batch to :class:`OuterStudies`. Once every study still
running has handed one in, all the batches train as one evaluation: one stack
per structure, each trial's members on its own outer fold's inner splits
only. Each study then gets its own entries back, reports its own trials after
every epoch (its pruner sees its own trials only) and tells its own results.

Only one thread runs at a time. A study's thread holds the baton except while
it waits for the other studies' batches, so storage writes, logging and the
samplers never run concurrently; the shared evaluation runs in the thread
whose batch completed the set. Each study computes what it would alone:
members of a stack train independently of each other and, with an integer
``random_state``, start from the seeds they would have alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.utils.validation import _num_samples

from tunekit import _signals
from tunekit.evaluators._base import Evaluation
from tunekit.evaluators.stacked.data import end_to_end

__all__ = ["OuterStudies"]

logger = logging.getLogger("tunekit")


@dataclass
class _Request:
    """One study's batch: what its evaluator would have trained alone, and the answer."""

    evaluator: Any
    estimator: Any
    candidates: list
    splits: list
    X: Any
    y: Any
    scorers: Any
    done: Any = None  # its Evaluation, or the exception the shared evaluation raised


class OuterStudies:
    """The outer folds' studies of a nested search, run side by side in threads.

    Parameters
    ----------
    folds : OuterFolds
        The nested search's outer folds: :meth:`evaluate` records there what
        trained the batches (``trained_by``), so that every outer fold's
        chosen candidate is then trained on its outer training part in one
        more evaluation instead of each inner search refitting its own.
    """

    def __init__(self, folds) -> None:
        self.folds = folds
        self.baton = threading.Condition()
        self.active = 0
        self.running = False
        self.pending: list[_Request] = []
        self.n_together = 0  # evaluations that trained the batches of two or more studies

    def run(self, work: Callable[[int], Any], n: int) -> dict[int, Any]:
        """``work(k)`` for every outer fold ``k``, each in a thread of its own; the results.

        Signals are handled here, in the main thread: a stop request ends
        every study at its next epoch boundary, and the first exception of a
        thread (by outer fold) is raised once all threads have ended. The
        warning filters and Optuna's verbosity, which the studies set and
        restore in turn, are those of before afterwards.
        """
        results: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}

        def body(k: int) -> None:
            with self.baton:
                try:
                    results[k] = work(k)
                except BaseException as err:  # re-raised in the main thread below
                    errors[k] = err
                finally:
                    self._leave()

        self.active, self.running = n, True
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(body, k),
                             name=f"tunekit-outer-fold-{k}", daemon=True)
            for k in range(n)
        ]  # fmt: skip
        with _signals.handling(), _global_state_kept():
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)  # the main thread stays free to record signals
            self.running = False
            if errors:
                raise errors[min(errors)]
            _signals.check_stop()  # a study interrupted in lockstep: the nested search stops
        logger.info(
            "nested CV: %d outer folds' studies ran in lockstep, %d evaluation(s) shared",
            n, self.n_together,
        )  # fmt: skip
        return results

    def evaluate(self, evaluator, estimator, candidates, splits, X, y, *, scorers) -> Evaluation:
        """Hand in a study's batch; return its entries once the shared evaluation has run."""
        request = _Request(evaluator, estimator, list(candidates), list(splits), X, y, scorers)
        self.pending.append(request)
        if len(self.pending) >= self.active:
            self._train()
        while request.done is None:
            self.baton.wait()
        if isinstance(request.done, BaseException):
            raise request.done
        return request.done

    def _leave(self) -> None:
        """A study has ended: the batches of the others may now be complete."""
        self.active -= 1
        if self.pending and len(self.pending) >= self.active:
            self._train()

    def _train(self) -> None:
        requests, self.pending = self.pending, []
        try:
            answers = self._together(requests)
        except BaseException as err:  # every waiting study raises it
            answers = [err] * len(requests)
        for request, answer in zip(requests, answers, strict=True):
            request.done = answer
        self.baton.notify_all()

    def _together(self, requests: list[_Request]) -> list[Evaluation]:
        """Every request's batch as one evaluation, each candidate on its own splits."""
        lead = requests[0]
        if self.folds.trained_by is None:
            trainer = copy.copy(lead.evaluator)
            trainer.on_epoch = None
            self.folds.trained_by = (lead.estimator, lead.scorers, trainer)
            self.folds.shared = True
        if len(requests) == 1:
            return [
                r.evaluator.evaluate(r.estimator, r.candidates, r.splits, r.X, r.y,
                                     scorers=r.scorers)
                for r in requests
            ]  # fmt: skip
        starts, candidates, splits, folds = [], [], [], []
        offset = 0
        for r in requests:
            s0 = len(splits)
            splits += [(np.asarray(tr) + offset, np.asarray(te) + offset) for tr, te in r.splits]
            starts.append((len(candidates), s0))
            own = frozenset(range(s0, len(splits)))
            candidates += r.candidates
            folds += [own] * len(r.candidates)
            offset += _num_samples(r.X)
        X, y = end_to_end([r.X for r in requests]), end_to_end([r.y for r in requests])
        evaluator = copy.copy(lead.evaluator)
        evaluator.on_epoch = _dispatch(requests, starts)
        done = evaluator.evaluate(
            lead.estimator, candidates, splits, X, y, scorers=lead.scorers, folds=folds
        )
        self.n_together += 1
        return [
            _part(done, c0, len(r.candidates), s0, len(r.splits), first=i == 0)
            for i, (r, (c0, s0)) in enumerate(zip(requests, starts, strict=True))
        ]


def _dispatch(requests: list[_Request], starts: list[tuple[int, int]]) -> Callable:
    """The shared evaluation's epoch hook: each study's own hook on its own candidates."""

    def on_epoch(epoch, scores):
        stop = []
        for r, (c0, _) in zip(requests, starts, strict=True):
            if r.evaluator.on_epoch is None:
                continue
            n = len(r.candidates)
            own = {c - c0: v for c, v in scores.items() if c0 <= c < c0 + n}
            stop += [c + c0 for c in r.evaluator.on_epoch(epoch, own) or ()]
        return stop

    return on_epoch


def _part(done: Evaluation, c0: int, n: int, s0: int, n_splits: int, first: bool) -> Evaluation:
    """One study's share of the shared evaluation, in its own positions."""
    curves = [
        {**row, "candidate": row["candidate"] - c0, "fold": row["fold"] - s0}
        for row in done.curves
        if c0 <= row["candidate"] < c0 + n and s0 <= row["fold"] < s0 + n_splits
    ]
    return Evaluation(
        entries=[done.entries[c][s0 : s0 + n_splits] for c in range(c0, c0 + n)],
        engines=done.engines[c0 : c0 + n],
        curves=curves,
        n_trained=done.n_trained if first else 0,  # the shared members count once
        n_epochs=done.n_epochs if first else 0,
        pruned={c - c0: e for c, e in done.pruned.items() if c0 <= c < c0 + n},
    )


@contextlib.contextmanager
def _global_state_kept():
    """Warning filters and Optuna's verbosity as they were, whatever the threads did."""
    verbosity = optuna.logging.get_verbosity()
    with warnings.catch_warnings():
        try:
            yield
        finally:
            optuna.logging.set_verbosity(verbosity)
