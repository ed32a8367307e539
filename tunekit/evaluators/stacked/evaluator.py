"""The stacked evaluator: candidates x folds trained as members of one compiled model."""

from __future__ import annotations

import logging
import time

import scipy.sparse as sp

import tunekit.engine as engine
from tunekit.evaluators._base import Evaluation, Evaluator
from tunekit.evaluators.stacked.budget import StackBudget, member_footprint
from tunekit.evaluators.stacked.data import SPARSE_REASON, prepare_target
from tunekit.evaluators.stacked.grouping import (
    CandidateGroup,
    split_params,
    split_pipeline,
    stack_plan,
)
from tunekit.evaluators.stacked.keras_run import KerasStackRun, route_any_builder
from tunekit.evaluators.stacked.mlp_run import MlpStackRun
from tunekit.evaluators.stacked.refill import KerasRefillRun, RefillRun, refill_refusal
from tunekit.evaluators.stacked.runs import Batch
from tunekit.evaluators.standard import StandardEvaluator

__all__ = ["StackedEvaluator"]

_log = logging.getLogger("tunekit")


class StackedEvaluator(Evaluator):
    """Cross-validate candidates on the stacked engine; the rest on the standard path.

    Parameters
    ----------
    strict : bool, default=False
        Raise a :class:`ValueError` naming the candidate's parameter and the
        reason, before any training, when a candidate cannot be stacked
        (``tunekit.search(engine="stacked")``). Otherwise such candidates take
        the standard path.
    random_state : int, RandomState or None, default=None
        Seeds members whose estimator has no integer ``random_state``.
    fallback : StandardEvaluator or None, default=None
        Evaluates the candidates that cannot be stacked.
    on_epoch : callable or None, default=None
        ``on_epoch(epoch, scores)`` after every epoch of a stack, with
        ``scores`` mapping each training candidate (its position in the
        batch) to its folds' test scores at that epoch, all folds in lockstep.
        It returns the candidates to stop (e.g. pruned Optuna trials): their
        members are frozen at once and the candidates are listed in
        :attr:`Evaluation.pruned`. Needs ``epoch_curves=True``.
    memory_budget : None, float, int or str, default=None
        The most memory one stack may take; a group of candidates whose
        members need more is trained as several stacks (a candidate's folds
        together when they fit). ``None``: half of the available RAM (on a
        GPU, of the smaller of that and the GPU's memory); a float in (0, 1]:
        that fraction of it; an int: bytes; a string: a size (``"4GB"``,
        ``"512MiB"``). See :mod:`tunekit.engine.memory` for the estimate.
    pad_to : int or None, default=None
        A dense stack of fewer members (the only stack of its structure, on
        either trainer) is padded to this many when the budget allows, so that
        batches of different sizes share one compiled shape: a shape is
        compiled once, and a compilation costs more than the padding. The
        padding members copy the first member's settings, train one epoch
        and are discarded; the others train as they would alone. The Optuna
        batches set it to the size of a full batch.
    **kwargs
        :class:`~tunekit.evaluators.Evaluator`'s settings.

    Attributes
    ----------
    groups_ : list of CandidateGroup
        The stacks and standard-path candidates of the last batch
        (``CandidateGroup.stacks``: the members of each compiled stack).
    budget_ : StackBudget
        The memory budget of the last batch, in bytes, and its source.

    Raises
    ------
    MemoryBudgetError
        From :meth:`evaluate`, before any training, when not even one member
        of a stack fits the budget.
    """

    name = "stacked"

    def __init__(
        self,
        *,
        strict: bool = False,
        random_state=None,
        fallback=None,
        on_epoch=None,
        memory_budget=None,
        pad_to=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.strict = strict
        self.random_state = random_state
        self.fallback = fallback
        self.on_epoch = on_epoch
        self.memory_budget = memory_budget
        self.pad_to = pad_to

    # ------------------------------------------------------------------ grouping
    def plan(self, estimator, candidates, y=None, fit_params=None) -> list[CandidateGroup]:
        """Stacks and standard-path candidates, with what the target and arguments say."""
        groups = stack_plan(estimator, candidates)
        _, final, prefix = split_pipeline(estimator)
        reason = None
        if fit_params:
            reason = f"fit_params ({', '.join(fit_params)}) cannot reach stacked members"
        elif y is not None and prefix is not None:
            target = prepare_target(final, y)
            reason = target.reason
            if target.task == "regression":
                groups = _without_label_smoothing(groups, final, candidates, prefix)
        if reason is not None:
            return [CandidateGroup([i], None, reason) for g in groups for i in g.indices]
        return groups

    def candidates_per_stack(self, estimator, X, y, splits) -> int | None:
        """How many candidates with the estimator's own parameters fit one stack, all folds.

        ``None`` when the estimator does not stack; 0 when not even one
        candidate's folds fit the budget together.

        Raises
        ------
        MemoryBudgetError
            When not even one member fits the budget.
        """
        self.budget_ = StackBudget.resolve(self.memory_budget)
        groups = self.plan(estimator, [{}], y)
        if not sp.issparse(X):
            groups = route_any_builder(estimator, [{}], groups, X, y)
        for g in groups:
            sized = member_footprint(g, estimator, [{}], X, y, splits)
            if sized is not None:
                cap = self.budget_.capacity(*sized, "the estimator's candidates")
                return cap // max(len(splits), 1)
        return None

    def _refuse(self, candidates, groups) -> None:
        singles = [g for g in groups if not g.stacked]
        if not singles:
            return
        g = singles[0]
        params = ", ".join(f"{k}={v!r}" for k, v in candidates[g.indices[0]].items())
        raise ValueError(
            f"engine='stacked' cannot stack candidate {g.indices[0]} ({params or 'defaults'}): "
            f"{g.reason}. Use engine='auto' to train such candidates the standard way, or "
            "engine='sklearn' for all of them."
        )

    def _fallback(self) -> StandardEvaluator:
        if self.fallback is not None:
            return self.fallback
        return StandardEvaluator(**self.settings())

    def routed(self, estimator, candidates, X, y, fit_params=None) -> list[CandidateGroup]:
        """The groups of a batch: stacks, any-builder stacks and standard-path candidates."""
        groups = self.plan(estimator, candidates, y, fit_params)
        if sp.issparse(X):  # the any-builder path takes no sparse X
            singles = [i for g in groups if not g.stacked for i in g.indices]
            if singles:
                _log.info(f"candidates {singles} take the standard path: {SPARSE_REASON}")
        elif not fit_params:
            groups = route_any_builder(estimator, candidates, groups, X, y)
        return groups

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, estimator, candidates, splits, X, y, *, scorers, fit_params=None,
                 folds=None, refill=None):  # fmt: skip
        """Train ``candidates`` on ``splits``; see :meth:`Evaluator.evaluate`.

        ``folds`` (one set of split positions per candidate) trains each
        candidate on those splits only; the other entries stay ``None``. Nested
        cross-validation's outer folds use it to share stacks without training
        a candidate on another outer fold's rows.

        ``refill`` (a :class:`~tunekit.evaluators.stacked.refill.Refill`)
        seats the caller's next candidates in the slots of those that leave,
        where one stack holds the batch (on either trainer); the evaluation then says
        ``refilled`` and has grown by the candidates seated. Elsewhere the
        batch trains as a whole (logged at DEBUG with the reason) and
        ``on_epoch`` stops candidates as usual.
        """
        candidates = list(candidates)
        groups = self.routed(estimator, candidates, X, y, fit_params)
        if self.strict:
            self._refuse(candidates, groups)
        self.groups_ = groups
        self.budget_ = StackBudget.resolve(self.memory_budget)
        for g in groups:  # a budget that not one member fits: refused before any training
            sized = member_footprint(g, estimator, [candidates[i] for i in g.indices], X, y, splits)
            if sized is not None:
                self.budget_.capacity(*sized, f"candidates {g.indices}")
        if self.verbose > 0:
            for g in groups:
                what = "stack" if g.stacked else f"standard path ({g.reason})"
                print(f"  candidates {g.indices}: {what}")
        evaluation = Evaluation(
            entries=[[None] * len(splits) for _ in candidates],
            engines=["sklearn"] * len(candidates),
        )
        batch = Batch(estimator, candidates, splits, X, y, scorers, evaluation, folds)
        if refill is not None and (why := refill_refusal(groups, batch)) is not None:
            _log.debug(f"no refilled slots: {why}")
            refill = None
        for g in groups:
            start = time.perf_counter()
            rest = g.indices
            if g.keras is not None and refill is not None:
                run = KerasRefillRun(self, g, batch, refill)
                rest = run.run()
                evaluation.refilled = run.refilled
            elif g.keras is not None:
                rest = KerasStackRun(self, g, batch).run()
            elif refill is not None:
                run = RefillRun(self, g, batch, refill)
                rest = run.run()
                evaluation.refilled = run.refilled
            elif g.stacked:
                rest = MlpStackRun(self, g, batch).run()
            if rest:
                g.n_members += self._standard_path(batch, list(rest), fit_params)
            g.fit_time = time.perf_counter() - start
        return evaluation

    def _standard_path(self, batch: Batch, rest: list[int], fit_params) -> int:
        """Train the candidates at ``rest`` the standard way, each on its folds; the count."""
        if batch.folds is None:
            owners = {None: rest}
        else:
            owners = {}
            for i in rest:
                owners.setdefault(frozenset(batch.folds[i]), []).append(i)
        n = 0
        for folds, indices in owners.items():
            where = range(len(batch.splits)) if folds is None else sorted(folds)
            sub = self._fallback().evaluate(
                batch.estimator, [batch.candidates[i] for i in indices],
                [batch.splits[s] for s in where], batch.X, batch.y,
                scorers=batch.scorers, fit_params=fit_params,
            )  # fmt: skip
            batch.evaluation.merge(sub, indices, list(where))
            n += len(indices) * len(where)
        return n


def _without_label_smoothing(groups, final, candidates, prefix) -> list[CandidateGroup]:
    """A regression target: candidates with label smoothing leave their stacks."""
    base = final.get_params(deep=False)
    out = []
    for g in groups:
        smooth = [
            i
            for i in g.indices
            if g.stacked
            and engine.resolve_params({**base, **split_params(candidates[i], prefix)[1]}).member[
                "label_smoothing"
            ]
            > 0
        ]
        out.extend(
            CandidateGroup([i], None, "label_smoothing needs a classification loss") for i in smooth
        )
        g.indices = [i for i in g.indices if i not in smooth]
        if g.indices:
            out.append(g)
    return sorted(out, key=lambda g: not g.stacked)
