"""Stacks cut to the memory budget: how many members each compiled model trains.

:class:`StackBudget` holds one ``evaluate`` call's budget (resolved once from
``memory_budget``); :meth:`StackBudget.stacks` cuts a run's members into
stacks whose estimated memory (:func:`tunekit.engine.memory.stack_bytes`)
fits it, a candidate's folds together when they fit, and never more than
:data:`~tunekit.evaluators.stacked.grouping.MAX_STACK_MEMBERS`; a budget that
not one member fits is a :class:`~tunekit.exceptions.MemoryBudgetError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

import tunekit.engine as engine
from tunekit.engine.memory import (
    MemberFootprint,
    describe,
    members_that_fit,
    mlp_footprint,
    resolve_budget,
    split_stacks,
    stack_bytes,
)
from tunekit.evaluators.stacked.data import prepare_target
from tunekit.evaluators.stacked.grouping import MAX_STACK_MEMBERS, split_params, split_pipeline
from tunekit.exceptions import MemoryBudgetError

__all__ = ["StackBudget", "data_bytes", "family_sizes", "member_footprint"]

_log = logging.getLogger("tunekit")


def data_bytes(*arrays) -> int:
    """Bytes of the data a stack shares (dense or scipy sparse arrays; ``None`` skipped)."""
    total = 0
    for a in arrays:
        if a is None:
            continue
        if sp.issparse(a):
            a = sp.csr_matrix(a)
            total += a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
        else:
            total += np.asarray(a).nbytes
    return int(total)


@dataclass
class StackBudget:
    """The bytes one stack may take, and where that number comes from.

    Attributes
    ----------
    budget : int
    source : str
        ``"memory_budget"``, or the share of the available memory it is.
    """

    budget: int
    source: str

    @classmethod
    def resolve(cls, memory_budget) -> StackBudget:
        """The budget for ``memory_budget`` (see :func:`tunekit.engine.memory.resolve_budget`)."""
        return cls(*resolve_budget(memory_budget))

    def capacity(self, member: MemberFootprint, shared: int, what: str) -> int:
        """Most members per stack; refuse when not even one fits.

        Raises
        ------
        MemoryBudgetError
            Naming ``what`` (the candidates), one member's estimated size and the budget.
        """
        cap = members_that_fit(self.budget, member, shared)
        if cap < 1:
            need = stack_bytes(1, member, shared)
            raise MemoryBudgetError(
                f"one member of {what} needs about {describe(need)} "
                f"({member.n_params:,} weights, batch {member.batch_size}, data shared by "
                f"the stack {describe(2 * shared)}), more than the stacked engine's memory "
                f"budget of {describe(self.budget)} ({self.source}); raise memory_budget "
                "(a fraction of the memory, a byte count or a size such as '8GB'), or use "
                "engine='sklearn' to train one model at a time"
            )
        return min(cap, MAX_STACK_MEMBERS)

    def stacks(
        self, member: MemberFootprint, shared: int, families: list[int], what: str
    ) -> list[list[int]]:
        """Member positions per stack: :func:`~tunekit.engine.memory.split_stacks` at capacity."""
        cap = self.capacity(member, shared, what)
        stacks = split_stacks(families, cap)
        sizes = [len(s) for s in stacks]
        each = describe(stack_bytes(max(sizes), member, shared))
        if len(stacks) > 1:
            _log.info(
                "%s: %d members in %d stacks of %s members (at most %d fit the memory "
                "budget of %s, %s; the largest stack takes about %s)",
                what, sum(sizes), len(stacks), _sizes(sizes), cap, describe(self.budget),
                self.source, each,
            )  # fmt: skip
        else:
            _log.debug(
                "%s: one stack of %d members, about %s of the memory budget of %s",
                what, sizes[0], each, describe(self.budget),
            )  # fmt: skip
        return stacks


def _sizes(sizes: list[int]) -> str:
    distinct = sorted(set(sizes), reverse=True)
    return "/".join(map(str, distinct))


def family_sizes(keys: list) -> list[int]:
    """Run lengths of equal consecutive ``keys``: members per family, in stack order."""
    sizes: list[int] = []
    last = object()
    for key in keys:
        if sizes and key == last:
            sizes[-1] += 1
        else:
            sizes.append(1)
        last = key
    return sizes


def member_footprint(group, estimator, candidates: list, X, y, splits):
    """``(member, shared bytes)`` of ``group``'s stack before any copy of X is made.

    Read from the candidates' structure and the raw ``X`` (the run estimates
    again from the copies it trains on); ``None`` for the standard path and
    for what only the run can tell (a pipeline's transformed width, a
    structure that contradicts the data).
    """
    if not group.stacked or not splits:
        return None
    n_rows = max(len(train) for train, _ in splits)
    if group.keras is not None:
        early = any(p is not None for p in group.keras.patience.values())
        member = engine.keras_stack.footprint(group.keras, n_rows, early)
        return member, data_bytes(np.asarray(X), np.asarray(y))
    pre, final, prefix = split_pipeline(estimator)
    X_shape = getattr(X, "shape", ())
    if pre is not None or len(X_shape) != 2:
        return None
    target = prepare_target(final, y)
    if target.task is None:
        return None
    base = final.get_params(deep=False)
    resolved = [engine.resolve_params({**base, **split_params(c, prefix)[1]}) for c in candidates]
    early = any(r.member is not None and r.member["patience"] is not None for r in resolved)
    try:
        config = engine.stack_config(
            group.structure, task=target.task, n_features=int(X_shape[1]),
            n_outputs=target.n_outputs, n_train_max=n_rows,
        )  # fmt: skip
    except ValueError:
        return None
    return mlp_footprint(config, n_rows, early), data_bytes(X, target.Y)
