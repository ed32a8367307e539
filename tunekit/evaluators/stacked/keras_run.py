"""The any-builder run: candidates `mlp()`'s trainer cannot take, on `engine.keras_stack`.

:func:`route_any_builder` probes the candidates left to the standard path and
turns those whose built models stack into groups; :class:`KerasStackRun`
trains one such group and records its entries.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import clone

import tunekit.engine as engine
from tunekit.evaluators._base import (
    Family,
    Fold,
    _curve_point,
    main_score,
    score_entry,
)
from tunekit.evaluators.diagnosis import diverged_member
from tunekit.evaluators.stacked.budget import data_bytes, family_sizes
from tunekit.evaluators.stacked.data import carve_validation, task_of, variant_key
from tunekit.evaluators.stacked.grouping import CandidateGroup, split_params, split_pipeline
from tunekit.evaluators.stacked.runs import GroupRun
from tunekit.evaluators.stacked.seeds import Seeds

__all__ = ["KerasStackRun", "route_any_builder"]

_log = logging.getLogger("tunekit")


def route_any_builder(estimator, candidates, groups, X, y) -> list[CandidateGroup]:
    """Send the candidates ``mlp()``'s engine cannot take to the any-builder path.

    Parameters
    ----------
    estimator : estimator object
    candidates : list of dict
    groups : list of CandidateGroup
        The batch's groups so far (:meth:`StackedEvaluator.plan`).
    X, y : array-like

    Returns
    -------
    groups : list of CandidateGroup
        The ``mlp()`` stacks, then the any-builder stacks and what is left.
    """
    singles = [g for g in groups if not g.stacked]
    pre, final, prefix = split_pipeline(estimator)
    if not singles or prefix is None or task_of(final) is None:
        return groups
    if any(prefix and prefix[:-2] in candidates[i] for g in singles for i in g.indices):
        return groups  # a candidate replaces the last step: nothing to probe
    index = [i for g in singles for i in g.indices]
    own = [split_params(candidates[i], prefix)[1] for i in index]
    try:
        sample = X
        if pre is not None:
            pre_params = split_params(candidates[index[0]], prefix)[0]
            steps = clone(pre).set_params(**clone(pre_params, safe=False))
            sample = steps.fit(X, y).transform(X)  # shapes only: nothing is trained
        found = engine.keras_stack.probe(final, own, sample, y)
    except Exception as err:  # a builder that cannot even be built: the standard path says
        _log.info(f"the any-builder path cannot probe these candidates: {err}")
        return groups
    out = [g for g in groups if g.stacked]
    for kg in found:
        members = [index[c] for c in kg.indices]
        if kg.stackable:
            out.append(CandidateGroup(members, ("keras", id(kg)), None, keras=kg))
        else:
            out.extend(CandidateGroup([i], None, kg.reason) for i in members)
    return out


@dataclass
class _Slot:
    """A member in a stack: its family (positions in the group), fold and copy of X."""

    family: Family
    fold: int
    offset: int

    @property
    def wanted(self) -> set:
        """The epochs, other than its own last, at which the family wants a score."""
        last = self.family.epochs[self.family.leader]
        return {e for e in self.family.epochs.values() if e != last}


class KerasStackRun(GroupRun):
    """Train a group of any builder's candidates and record their entries.

    Candidates that differ only in ``epochs`` (no early stopping) are one
    family, as on ``mlp()``'s trainer: only the longest run trains, and the
    shorter counts are scored along the way from its weights at their epoch.
    """

    def run(self) -> list[int]:
        """Train the group; return the candidates left to the standard path."""
        self.data = self.target()
        copies = self.make_copies(any_shape=True)
        if self.falls_back():
            return self.group.indices
        if copies.X is None and self.pre is None:
            return self.group.indices
        n_copies = max(copies.n_copies, 1)
        self.y_all = np.concatenate([np.asarray(self.batch.y)] * n_copies)
        members, slots = self._members()
        if not members:
            return []
        stacks = self._stacks(members, slots)
        pad = self.padding(stacks, self.capacity)
        for stack in stacks:
            self.slots = [slots[i] for i in stack]
            self._train([members[i] for i in stack], pad)
        return []

    def _stacks(self, members, slots) -> list[list[int]]:
        """The members (positions) of each stack that fits the memory budget."""
        n_rows = max(
            len(m.train_idx) + (0 if m.val_idx is None else len(m.val_idx)) for m in members
        )
        early = any(m.val_idx is not None for m in members)
        member = engine.keras_stack.footprint(self.group.keras, n_rows, early)
        shared = data_bytes(self.copies.X, self.y_all)
        families = family_sizes([id(slot.family) for slot in slots])
        what = f"candidates {self.group.indices}"
        self.capacity = self.ev.budget_.capacity(member, shared, what)
        return self.ev.budget_.stacks(member, shared, families, what)

    def _train(self, members, pad: int = 0) -> None:
        """Train one stack of the group's members (``self.slots``) and record their entries.

        ``pad`` members more (the first one's candidate, one epoch) fill the
        stack to a shape already compiled; they are discarded.
        """
        self.curve: dict = {}  # (member, epoch) -> test score
        self.snaps: dict = {}  # (member, epoch) -> entry of a shorter candidate
        self.spent = 0.0  # wall time spent scoring along the way
        self.start = time.perf_counter()
        self.group.stacks.append(len(members))
        padding = [replace(members[0], epochs=1, patience=None, val_idx=None)] * pad
        result = engine.keras_stack.train_group(
            self.group.keras, members + padding, self.copies.X, self.y_all,
            on_epoch_end=self._score_epoch,
        )  # fmt: skip
        group, evaluation = self.group, self.batch.evaluation
        group.fit_time += result.fit_time
        group.n_members += len(members)
        evaluation.n_trained += len(members)
        evaluation.n_epochs += int(np.sum(result.n_epochs[: len(members)]))  # no padding
        fit_time = (result.fit_time - self.spent) / len(members)
        n, empty = len(result.members), np.zeros(0, dtype=int)

        def outputs(rows: dict) -> dict:  # the kept weights' pass, member by member
            got = result.outputs([rows.get(m, empty) for m in range(n)])
            return {m: got[m] for m in rows}

        known = self.known_outputs(
            outputs, {m: slot for m, slot in enumerate(self.slots) if not result.diverged[m]}
        )
        for m, slot in enumerate(self.slots):
            self._finish_member(m, slot, result, fit_time, known.get(m))

    def _members(self):
        """The members (candidate x fold) and where each one's rows live."""
        seeds = Seeds(self.final, self.ev.random_state)
        members, slots = [], []
        for family in self.families():
            for s, (_, test) in enumerate(self.batch.splits):
                if not self.wants(family, s):
                    continue
                made = self.fold_member(family, s, seeds)
                if isinstance(made, str):
                    self._fail(family, s, len(test), made)
                    continue
                members.append(made[0])
                slots.append(_Slot(family, s, made[1]))
        return members, slots

    def fold_member(self, family: Family, s: int, seeds: Seeds):
        """``(KerasMember, offset)`` of ``family``'s leader on fold ``s``, or why it can't train."""
        k = family.leader
        c = self.group.keras.indices[k]
        train, _ = self.batch.splits[s]
        copy = self.copies.where[(variant_key(self.pre, self.cands[k], self.prefix), s)]
        init, _, carve_seed = seeds.draw()
        if isinstance(copy, str):
            return copy
        offset = copy[0]
        fit_rows, val = train, None
        if self.group.keras.patience.get(c) is not None:
            own = split_params(self.cands[k], self.prefix)[1]
            own = {**self.final.get_params(deep=False), **own}
            try:
                fit_rows, val = carve_validation(
                    train, self.data.codes, own.get("validation_fraction"), carve_seed,
                    self.data.codes is not None,
                )  # fmt: skip
            except ValueError as err:
                return f"ValueError: {err}"
        member = engine.keras_stack.KerasMember(
            candidate=c,
            train_idx=np.asarray(fit_rows) + offset,
            val_idx=None if val is None else np.asarray(val) + offset,
            seed=init,
        )
        return member, offset

    def _fail(self, family: Family, s: int, n_test: int, reason: str) -> None:
        """Record a failed fold for every candidate of ``family``."""
        for c in family.epochs:
            self.record(self.group.indices[c], s, self.failed(n_test, reason))
        self.ev._tick(len(family.epochs))

    def _score_epoch(self, epoch: int, result) -> list[int] | None:
        """Score the members after ``epoch`` (0-based): for the curves, for the shorter
        candidates of their families and for ``on_epoch``; return the members to freeze."""
        e, tick = epoch + 1, time.perf_counter()
        trained = [m for m in range(len(self.slots)) if result.n_epochs[m] == e]
        points = [m for m in trained if self.ev.epoch_curves and e not in self.slots[m].wanted]
        # the curve points' test rows, every member's in one compiled pass
        rows = {m: self.batch.splits[self.slots[m].fold][1] + self.slots[m].offset for m in points}
        outputs = engine.keras_stack.EpochOutputs(result, self.copies.X, rows) if rows else None
        for m in trained:
            if m in rows:
                self.curve[m, e] = _curve_point(self.batch.scorers, outputs.estimators[m],
                                                outputs.x[m], self.y_all[rows[m]])  # fmt: skip
            elif e in self.slots[m].wanted:
                self._snapshot(m, self.slots[m], e, result, tick)
        halt = self._halt(e, trained)
        self.spent += time.perf_counter() - tick
        return halt

    def _snapshot(self, m: int, slot: _Slot, e: int, result, tick: float) -> None:
        """The entry of a shorter candidate that ends at epoch ``e``, and its curve point."""
        train, test = self.batch.splits[slot.fold]
        est = engine.keras_stack.member_estimator(result, m)
        share = (tick - self.start - self.spent) / len(self.slots)
        fold = Fold(self.copies.X, self.y_all, train + slot.offset, test + slot.offset)
        self.snaps[m, e] = score_entry(self.scoring, est, fold, share, best_epoch=e,
                                       n_epochs=e, snapshot=True)  # fmt: skip
        self.curve[m, e] = main_score(self.snaps[m, e]["test_scores"])

    def _halt(self, epoch: int, trained: list[int]) -> list[int] | None:
        """Ask ``on_epoch`` which candidates stop (1-based ``epoch``); return their members."""
        on_epoch = self.ev.on_epoch
        if on_epoch is None:
            return None
        indices, scores = self.group.indices, {}
        for m in trained:
            if (m, epoch) in self.curve:
                lead = indices[self.slots[m].family.leader]
                scores.setdefault(lead, []).append(self.curve[m, epoch])
        stop = set(on_epoch(epoch, scores) or ())
        for c in stop:
            self.batch.evaluation.pruned.setdefault(c, epoch)
        return [m for m, slot in enumerate(self.slots) if indices[slot.family.leader] in stop]

    def _lead_entry(self, m: int, slot: _Slot, result, fit_time, known=None) -> dict:
        """The entry of the member's own candidate (its family's longest run).

        ``known``: the member's :meth:`known_outputs`, or ``None`` (its own pass).
        """
        test = self.batch.splits[slot.fold][1]
        est = engine.keras_stack.member_estimator(result, m)
        loss = result.history.get("loss")
        if loss is not None:  # what a failure's reason names: the member's own losses
            est.history_ = {"loss": [float(v) for v in loss[:, m]]}
        if result.diverged is not None and result.diverged[m]:
            msg = diverged_member(est, self.copies.X[test + slot.offset])
            return self.failed(len(test), f"DivergedError: {msg}", fit_time)
        return self.score_known(
            est, slot, known, fit_time, best_epoch=result.best_epoch[m],
            n_epochs=result.n_epochs[m],
        )  # fmt: skip

    def _finish_member(self, m: int, slot: _Slot, result, fit_time, known=None) -> None:
        """Record the entries and curve rows of every candidate member ``m`` stands for."""
        lead = self._lead_entry(m, slot, result, fit_time, known)
        snapshot = lambda epochs: self.snaps.get((m, epochs))  # noqa: E731
        for index, epochs in self.record_family(slot.family, slot.fold, lead, snapshot,
                                                fit_time):  # fmt: skip
            last = int(result.n_epochs[m]) if epochs is None else min(epochs, result.n_epochs[m])
            self._add_curve(m, index, slot.fold, int(last), result)

    def _add_curve(self, m: int, index: int, s: int, last: int, result) -> None:
        """Candidate ``index``'s curve rows on fold ``s``, epochs 1 to ``last``."""
        loss, val_loss = result.history.get("loss"), result.history.get("val_loss")
        if not self.ev.epoch_curves or loss is None:
            return
        self.batch.evaluation.curves.extend(
            {
                "candidate": index, "fold": s, "epoch": e,
                "train_loss": float(loss[e - 1, m]),
                "test_score": self.curve.get((m, e), math.nan),
                "val_loss": float(val_loss[e - 1, m]) if val_loss is not None else math.nan,
            }
            for e in range(1, last + 1)
        )  # fmt: skip
