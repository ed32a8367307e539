"""An ``mlp()`` stack run: one structure's members on :func:`tunekit.engine.train_stack`.

:class:`MlpStackRun` holds the run's state (the batch, the fold data, the
seeds); each stack that fits the memory budget
(:class:`~tunekit.evaluators.stacked.budget.StackBudget`) is a
:class:`_Chunk` that scores members along the way, asks ``on_epoch`` which
candidates stop, and turns every trained member into its entries.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

import tunekit.engine as engine
from tunekit.engine.memory import mlp_footprint
from tunekit.evaluators._base import Fold, _curve_point, main_score, score_entry
from tunekit.evaluators.diagnosis import diverged_member
from tunekit.evaluators.fast_scores import fast_metric
from tunekit.evaluators.stacked.budget import data_bytes, family_sizes
from tunekit.evaluators.stacked.data import carve_validation, variant_key
from tunekit.evaluators.stacked.grouping import CandidateGroup, split_params
from tunekit.evaluators.stacked.runs import GroupRun
from tunekit.evaluators.stacked.seeds import Seeds
from tunekit.exceptions import DivergedError

__all__ = ["MlpStackRun"]

_log = logging.getLogger("tunekit")


@dataclass
class _Slot:
    """A member in a stack: which family, which fold, where its copy of X starts."""

    family: object
    fold: int
    offset: int


class MlpStackRun(GroupRun):
    """Train one structure's members on the ``mlp()`` trainer and record their entries."""

    def run(self) -> list[int]:
        """Train the group; return the candidates left to the standard path."""
        group, b = self.group, self.batch
        self.data = self.target()
        copies = self.make_copies()
        if self.falls_back():
            return group.indices
        if copies.all_failed:
            reason = next(iter(copies.where.values()), "no data")
            if self.pre is None:  # X itself cannot be stacked: the standard path says why
                if self.ev.strict:
                    self.ev._refuse(b.candidates, [CandidateGroup(group.indices, None, reason)])
                return group.indices
        n_copies = max(copies.n_copies, 1)
        self.y_all = np.concatenate([np.asarray(b.y)] * n_copies)
        self.Y_all = np.tile(self.data.Y, (n_copies, 1))
        rest = []
        for width, (specs, slots) in self._members().items():
            try:
                config = engine.stack_config(
                    group.structure,
                    task=self.data.task,
                    n_features=width,
                    n_outputs=self.data.n_outputs,
                    n_train_max=max(len(sp.train_idx) for sp in specs),
                )
            except ValueError as err:
                if self.ev.strict:
                    self.ev._refuse(b.candidates, [CandidateGroup(group.indices, None, str(err))])
                rest.extend(group.indices[c] for slot in slots for c in slot.family.epochs)
                continue
            stacks = self._stacks(config, specs, slots)
            why = self._sparse_refusal(config, max(len(stack) for stack in stacks))
            if why is not None:
                rest.extend(group.indices[c] for slot in slots for c in slot.family.epochs)
                continue
            pad = self.padding(stacks, self.capacity)
            for stack in stacks:
                group.stacks.append(len(stack))
                chunk = self.chunk(config, [specs[i] for i in stack], [slots[i] for i in stack])
                chunk.train(pad)
        return sorted(set(rest))

    def chunk(self, config, specs: list, slots: list) -> _Chunk:
        """The compiled stack that trains ``specs``."""
        return _Chunk(self, config, specs, slots)

    def _stacks(self, config, specs: list, slots: list) -> list[list[int]]:
        """The members (positions in ``specs``) of each stack that fits the memory budget."""
        n_rows = max(len(s.train_idx) + (0 if s.val_idx is None else len(s.val_idx)) for s in specs)
        member = mlp_footprint(config, n_rows, any(s.patience is not None for s in specs))
        shared = data_bytes(self.copies.X, self.Y_all)
        families = family_sizes([id(slot.family) for slot in slots])
        what = f"candidates {self.group.indices}"
        self.capacity = self.ev.budget_.capacity(member, shared, what)
        return self.ev.budget_.stacks(member, shared, families, what)

    def _sparse_refusal(self, config, n_members: int) -> str | None:
        """Why a sparse copy of X does not fit the trainer's cap (logged; refused if strict)."""
        if not sp.issparse(self.copies.X):
            return None
        why = engine.sparse_refusal(self.copies.X, n_members, config.batch_size)
        if why is not None:
            group = CandidateGroup(self.group.indices, None, why)
            if self.ev.strict:
                self.ev._refuse(self.batch.candidates, [group])
            _log.info(f"candidates {self.group.indices} take the standard path: {why}")
        return why

    def _members(self) -> dict[int, tuple[list, list]]:
        """Every family's members (one per fold), by the width of their copy of X."""
        seeds = Seeds(self.final, self.ev.random_state)
        by_width: dict[int, tuple[list, list]] = {}
        for family in self.families():
            lead = self.cands[family.leader]
            member = self.resolved(lead)
            key = variant_key(self.pre, lead, self.prefix)
            for s, (_, test) in enumerate(self.batch.splits):
                if not self.wants(family, s):
                    continue
                made = self.fold_member(member, key, s, seeds)
                if isinstance(made, str):
                    self._fail(family, s, len(test), made)
                    continue
                spec, offset, width = made
                specs, slots = by_width.setdefault(width, ([], []))
                specs.append(spec)
                slots.append(_Slot(family, s, offset))
        return by_width

    def resolved(self, candidate: dict) -> dict:
        """The candidate's member knobs (the estimator's, with its own values)."""
        base = self.final.get_params(deep=False)
        return engine.resolve_params({**base, **split_params(candidate, self.prefix)[1]}).member

    def fold_member(self, member: dict, key, s: int, seeds: Seeds):
        """``(spec, offset, width)`` of a member on fold ``s``, or why it cannot train."""
        train, _ = self.batch.splits[s]
        copy = self.copies.where[(key, s)]
        init, stream, carve_seed = seeds.draw()
        if isinstance(copy, str):
            return copy
        fit_rows, val = train, None
        if member["patience"] is not None:
            try:
                fit_rows, val = carve_validation(
                    train,
                    self.data.codes,
                    member["validation_fraction"],
                    carve_seed,
                    self.data.classifier,
                )
            except ValueError as err:
                if self.raise_errors:
                    raise
                return f"ValueError: {err}"
        offset, width = copy
        return _member_spec(member, fit_rows + offset, val, offset, init, stream), offset, width

    def _fail(self, family, s: int, n_test: int, reason: str) -> None:
        """Record a failed fold for every candidate of ``family``."""
        for c in family.epochs:
            self.record(self.group.indices[c], s, self.failed(n_test, reason))
        self.ev._tick(len(family.epochs))


def _member_spec(member: dict, fit_rows, val, offset: int, init: int, stream: int):
    return engine.MemberSpec(
        train_idx=np.asarray(fit_rows),
        val_idx=None if val is None else np.asarray(val) + offset,
        epochs=member["epochs"],
        patience=member["patience"],
        learning_rate=member["learning_rate"],
        seed=init,
        stream_seed=stream,
        **{k: member[k] for k in engine.MEMBER_KNOBS},
    )


class _Chunk:
    """One compiled stack of a run: its members, their scores along the way, their entries.

    Parameters
    ----------
    run : MlpStackRun
    config : StackConfig
    specs : list of MemberSpec
    slots : list of _Slot
        Per member, its family, fold and offset.
    """

    def __init__(self, run: MlpStackRun, config, specs: list, slots: list):
        self.run, self.config, self.specs, self.slots = run, config, specs, slots
        # the epochs, other than its own last, at which a member's family wants a score
        self.wanted = [
            {e for c, e in slot.family.epochs.items() if e != specs[m].epochs}
            for m, slot in enumerate(slots)
        ]
        self.snaps: dict = {}  # (member, epoch) -> entry of a shorter candidate
        self.curve: dict = {}  # (member, epoch) -> test score
        self.spent = 0.0  # wall time spent scoring along the way
        self.start = 0.0

    def member(self, weights, best_epoch, n_epochs):
        """A trained member as a fitted estimator the search's scorer can score."""
        data = self.run.data
        return engine.member_estimator(
            self.config, weights, task=data.task, classes=data.classes,
            n_outputs=data.n_outputs, y_ndim=data.y_ndim, best_epoch=best_epoch,
            n_epochs=n_epochs,
        )  # fmt: skip

    def pass_over(self, weights: dict):
        """A NumPy pass ``outputs({member: rows}) -> {member: outputs}`` over the members'
        ``weights`` (member -> its weights), one per row count
        (:func:`~tunekit.engine.member_outputs`); ``None`` for sparse X."""
        X = self.run.copies.X
        if sp.issparse(X):
            return None

        def outputs(rows: dict) -> dict:
            members = list(rows)
            params = [np.stack(ws) for ws in zip(*(weights[m] for m in members), strict=True)]
            got = engine.member_outputs(self.config, params, X, dict(enumerate(rows.values())))
            return {m: got[i] for i, m in enumerate(members)}

        return outputs

    def train(self, pad: int = 0) -> None:
        """Train the chunk's members and record their entries.

        ``pad`` members more (the first one's settings, one epoch) fill the
        stack to a shape already compiled; they are discarded.
        """
        run, ev = self.run, self.run.ev
        self.start = time.perf_counter()
        padding = [replace(self.specs[0], epochs=1, patience=None, val_idx=None)] * pad
        result = engine.train_stack(
            self.config,
            self.specs + padding,
            run.copies.X,
            run.Y_all,
            verbose=max(0, ev.verbose - 1),
            on_epoch_end=self.on_epoch_end,
        )
        group, evaluation, n = run.group, run.batch.evaluation, len(self.specs)
        group.fit_time += result.fit_time
        group.epoch_times.extend(result.epoch_times.tolist())
        group.n_members += n
        evaluation.n_trained += n
        evaluation.n_epochs += int(np.sum(result.n_epochs[:n]))  # not the padding's
        fit_time = (result.fit_time - self.spent) / n
        kept = {m: result.weights[m] for m in range(n) if not result.diverged[m]}
        known = run.known_outputs(self.pass_over(kept), {m: self.slots[m] for m in kept})
        for m, slot in enumerate(self.slots):
            self.finish_member(m, slot, result, fit_time, known.get(m))

    def predictions(self, params: list, members: list[int]) -> dict:
        """``members``' predictions on their test rows, in one pass per test size.

        Empty where the curve points go through the scorer itself (no direct
        formula for it, see :mod:`~tunekit.evaluators.fast_scores`) or X is
        sparse: each member then predicts on its own.
        """
        run, data = self.run, self.run.data
        if not members or sp.issparse(run.copies.X) or data.y_ndim != 1:
            return {}  # (the direct formulas take 1-D targets only)
        first = self.member([p[members[0]] for p in params], 1, 1)
        if fast_metric(run.batch.scorers, first) is None:
            return {}
        rows = {m: run.batch.splits[self.slots[m].fold][1] + self.slots[m].offset for m in members}
        return engine.predict_members(
            self.config, params, run.copies.X, rows,
            classes=None if data.task == "regression" else data.classes, y_ndim=data.y_ndim,
        )  # fmt: skip

    def on_epoch_end(self, epoch: int, params: list, active: np.ndarray):
        """Score the members whose families want this epoch; return the members to halt."""
        run, ev = self.run, self.run.ev
        tick = time.perf_counter()
        points = [  # the members that want a curve point (the padding after them does not)
            m for m in np.flatnonzero(active[: len(self.slots)]).tolist()
            if ev.epoch_curves and epoch not in self.wanted[m]
        ]  # fmt: skip
        predicted = self.predictions(params, points)
        for m, slot in enumerate(self.slots):
            if not active[m] or not (ev.epoch_curves or epoch in self.wanted[m]):
                continue
            est = self.member([p[m] for p in params], epoch, epoch)
            train, test = run.batch.splits[slot.fold]
            rows = test + slot.offset
            if epoch in self.wanted[m]:
                share = (tick - self.start - self.spent) / len(self.specs)
                self.snaps[m, epoch] = score_entry(
                    run.scoring,
                    est,
                    Fold(run.copies.X, run.y_all, train + slot.offset, rows),
                    share,
                    best_epoch=epoch,
                    n_epochs=epoch,
                    snapshot=True,
                )
                self.curve[m, epoch] = main_score(self.snaps[m, epoch]["test_scores"])
            else:
                self.curve[m, epoch] = _curve_point(run.batch.scorers, est, run.copies.X[rows],
                                                    run.y_all[rows], predicted.get(m))  # fmt: skip
        halt = self.halt(epoch, active)
        self.spent += time.perf_counter() - tick
        return halt

    def halt(self, epoch: int, active: np.ndarray):
        """Ask ``on_epoch`` which candidates stop; return their members."""
        on_epoch = self.run.ev.on_epoch
        if on_epoch is None:
            return None
        indices = self.run.group.indices
        scores: dict = {}
        for m, slot in enumerate(self.slots):
            if active[m] and (m, epoch) in self.curve:
                lead = indices[slot.family.leader]
                scores.setdefault(lead, []).append(self.curve[m, epoch])
        stop = set(on_epoch(epoch, scores) or ())
        for c in stop:
            self.run.batch.evaluation.pruned.setdefault(c, epoch)
        return [m for m, slot in enumerate(self.slots) if indices[slot.family.leader] in stop]

    def lead_entry(self, m: int, slot: _Slot, outcome, fit_time: float, known=None) -> dict:
        """The entry of the member's own candidate (the family's longest run).

        ``outcome``: the member's :class:`~tunekit.engine.result.MemberOutcome`;
        ``known``: its outputs on its fold (:meth:`GroupRun.known_outputs`), or
        ``None`` (its own pass).
        """
        run = self.run
        test = run.batch.splits[slot.fold][1]
        est = self.member(outcome.weights, outcome.best_epoch, outcome.n_epochs)
        # what a failure's reason names: the member's own losses and learning rate
        est.history_ = {"loss": [float(v) for v in outcome.history["loss"]]}
        est.learning_rate_ = self.specs[m].learning_rate
        if outcome.diverged:
            msg = diverged_member(est, run.copies.X[test + slot.offset])
            if run.raise_errors:
                raise DivergedError(msg)
            return run.failed(len(test), f"DivergedError: {msg}", fit_time)
        return run.score_known(
            est, slot, known, fit_time, best_epoch=outcome.best_epoch, n_epochs=outcome.n_epochs
        )

    def finish_member(self, m: int, slot: _Slot, result, fit_time: float, known=None) -> None:
        """Record the entries (and curves) of every candidate the member stands for.

        ``known``: its outputs on its fold (:meth:`GroupRun.known_outputs`), or ``None``.
        """
        run = self.run
        outcome = engine.MemberOutcome(
            weights=result.weights[m],
            n_epochs=int(result.n_epochs[m]),
            best_epoch=int(result.best_epoch[m]),
            history={"loss": result.history["loss"][:, m]},
            diverged=bool(result.diverged[m]),
        )
        lead = self.lead_entry(m, slot, outcome, fit_time, known)
        snapshot = lambda epochs: self.snaps.get((m, epochs))  # noqa: E731
        for index, epochs in run.record_family(slot.family, slot.fold, lead, snapshot, fit_time):
            if run.ev.epoch_curves:
                last = min(int(epochs), int(result.n_epochs[m]))
                self.add_curve(m, index, slot.fold, last, result)

    def add_curve(self, m: int, index: int, s: int, last: int, result) -> None:
        """The candidate's curve rows on fold ``s``, epochs 1 to ``last``."""
        loss = result.history.get("loss")
        val = result.history.get("val_loss")
        self.run.batch.evaluation.curves.extend(
            {
                "candidate": index,
                "fold": s,
                "epoch": e,
                "train_loss": float(loss[e - 1, m]),
                "test_score": self.curve.get((m, e), math.nan),
                "val_loss": float(val[e - 1, m]) if val is not None else math.nan,
            }
            for e in range(1, last + 1)
        )
