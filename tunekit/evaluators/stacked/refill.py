"""Refilled slots: a running ``mlp()`` stack seats new candidates as others leave.

An Optuna study's batch (:mod:`tunekit.strategies.optuna_batch`) hands the
stacked evaluator a :class:`Refill`. When a candidate is pruned or finishes,
its members leave their slots at the next epoch boundary: each is scored on
its fold, and once all of a candidate's folds are in, :meth:`Refill.done`
tells the caller (who tells the study). The free slots then take the study's
next candidates, all folds of one candidate together, through the trainer's
``turnover`` (:func:`tunekit.engine.train_stack`): fresh weights, zero
optimizer slots, their own seeds and epoch counts. A seated candidate trains
exactly as it would in a stack of its own, so the stack never idles while
the study has trials left, and the member-epochs that pruning saves become
saved wall time.

It applies where one compiled ``mlp()`` stack holds the whole batch; a
candidate the running stack cannot seat (another structure, other random
knobs or penalties, another preprocessing variant) waits for the caller's next
batch. Elsewhere (several stacks or structures, the any-builder trainer,
nested cross-validation's lockstep studies) the batch trains as a whole, as
before, and :func:`refill_refusal` says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

import numpy as np

import tunekit.engine as engine
from tunekit.evaluators._base import Family, _curve_point
from tunekit.evaluators.stacked.data import variant_key
from tunekit.evaluators.stacked.grouping import split_params
from tunekit.evaluators.stacked.keras_run import KerasStackRun
from tunekit.evaluators.stacked.keras_run import _Slot as KerasSlot
from tunekit.evaluators.stacked.mlp_run import MlpStackRun, _Chunk, _Slot
from tunekit.evaluators.stacked.seeds import Seeds

__all__ = ["KerasRefillRun", "Refill", "RefillRun", "refill_refusal"]


class Refill(Protocol):
    """What a caller of :meth:`StackedEvaluator.evaluate` gives to have slots refilled."""

    def epoch_end(self, scores: dict) -> Iterable[int]:
        """After an epoch: candidate -> ``(its epoch, its folds' test scores)``; those to stop."""

    def done(self, index: int, evaluation) -> None:
        """Candidate ``index`` (its position in the batch) has an entry on every fold."""

    def more(self, n: int, fits: Callable[[dict], bool]) -> list[dict]:
        """Up to ``n`` new candidates; a candidate that ``fits`` refuses is kept for later."""

    # optional: resume(self, finished: list[int]) -> dict[int, int]
    #   the candidates whose folds have all just left that train on, and to how many
    #   epochs in all (successive halving on epochs: a rung's survivors)
    # optional: compacts = True
    #   the stack is made smaller once at most half of its slots are taken (no refill
    #   is coming to take them)


def refill_refusal(groups, batch) -> str | None:
    """Why a batch cannot have its slots refilled, or ``None`` when it can."""
    if batch.folds is not None:
        return "the outer folds' studies of nested cross-validation train in lockstep batches"
    if len(groups) != 1:
        return "the batch's candidates make more than one stack"
    group = groups[0]
    if not group.stacked:
        return f"the batch takes the standard path ({group.reason})"
    return None


class _Refilling:
    """What a run with refilled slots adds to its trainer's run: the caller's refill."""

    def __init__(self, evaluator, group, batch, refill: Refill):
        super().__init__(evaluator, group, batch)
        self.refill = refill
        self.refilled = False  # whether the one stack ran with refilled slots
        self.n_stacks = 0


class RefillRun(_Refilling, MlpStackRun):
    """An :class:`MlpStackRun` whose one stack seats the caller's next candidates.

    Every candidate is a member of its own on each fold (no epoch families:
    a candidate that arrives later cannot share a run that has started).
    When the group needs several stacks (the memory budget, several widths),
    it trains as an :class:`MlpStackRun` and :attr:`refilled` stays False.
    """

    def families(self):
        return [Family(c, {c: self.resolved(cand)["epochs"]}) for c, cand in enumerate(self.cands)]

    def _members(self):
        by_width = super()._members()
        self.n_stacks = len(by_width)
        return by_width

    def _stacks(self, config, specs, slots):
        stacks = super()._stacks(config, specs, slots)
        self.n_stacks += len(stacks) - 1
        return stacks

    def chunk(self, config, specs, slots) -> _Chunk:
        if self.n_stacks != 1:
            return super().chunk(config, specs, slots)
        self.refilled = True
        return _RefillChunk(self, config, specs, slots)


class _Seats:
    """Who sits in each slot of a refilled stack, and what leaving and joining record.

    Shared by both trainers' refilled stacks (:class:`_RefillChunk` on
    ``mlp()``'s, :class:`_KerasRefill` on the any-builder one). A subclass
    gives :meth:`lead_entry` (a member's entry from its outcome),
    ``leaving_outputs`` (a pass over the leaving members, or ``None``),
    :meth:`fits` and :meth:`fold_members` (a new candidate's member per fold).
    """

    run: object
    specs: list
    slots: list

    def take_seats(self, seeds: Seeds) -> None:
        """The first members' seats (every slot's candidate) and the counters per slot."""
        run = self.run
        self.seeds = seeds
        self.seats = {m: run.group.indices[slot.family.leader] for m, slot in enumerate(self.slots)}
        self.home: dict[int, list] = {}  # candidate -> its slots
        for m, c in self.seats.items():
            self.home.setdefault(c, []).append(m)
        self.left = {c: len(ms) for c, ms in self.home.items()}
        self.finished: list[int] = []  # candidates whose folds have all left, this turnover
        self.points: dict = {}  # (candidate, fold, epoch) -> test score
        self.tick = 0.0

    def pad(self, pad: int) -> None:
        """Add ``pad`` padding slots (no candidate) and zero every slot's counters."""
        self.slots = self.slots + [None] * pad
        n = len(self.slots)
        self.counted = np.zeros(n, dtype=int)  # each slot's epochs counted so far
        self.born = np.zeros(n, dtype=int)  # stack epochs run when each member joined
        self.share = np.zeros(n)  # each member's share of the stack's wall time
        self.start = self.tick = time.perf_counter()

    def test_rows(self, m: int) -> np.ndarray:
        """Slot ``m``'s test rows of its fold, in the stack's copy of the data."""
        slot = self.slots[m]
        return self.run.batch.splits[slot.fold][1] + slot.offset

    def score_epoch(self, active: np.ndarray, ages, estimator, test_x=None, predicted=None):
        """Score every seated member at its own epoch (``ages``); stop what the caller stops.

        ``estimator(m, age)`` is member ``m`` as a fitted estimator; ``test_x(m)``
        its test rows' array (default: taken from the stack's copy of the data);
        ``predicted``: member -> its predictions on them, where the caller has
        them already. Returns the members to halt.
        """
        predicted = predicted or {}
        run = self.run
        now = time.perf_counter()
        self.share[active] += (now - self.tick) / max(int(active.sum()), 1)
        scores: dict = {}
        for m in np.flatnonzero(active).tolist():
            c = self.seats.get(m)
            if c is None:  # padding
                continue
            slot, age = self.slots[m], int(ages[m])
            rows = self.test_rows(m)
            x = run.copies.X[rows] if test_x is None else test_x(m)
            point = _curve_point(
                run.batch.scorers, estimator(m, age), x, run.y_all[rows], predicted.get(m)
            )
            self.points[c, slot.fold, age] = point
            scores.setdefault(c, (age, []))[1].append(point)
        stop = set(run.refill.epoch_end(scores) or ())
        for c in stop:
            run.batch.evaluation.pruned.setdefault(c, scores[c][0] if c in scores else 0)
        self.tick = time.perf_counter()
        self.share[active] += (self.tick - now) / max(int(active.sum()), 1)
        return [m for m, c in self.seats.items() if c in stop]

    def turnover(self, epoch: int, outcomes: dict) -> dict:
        """Record the members that left; seat the caller's next candidates in free slots.

        The leaving members' test and train rows are predicted first, all in one
        pass (:meth:`leaving_outputs`); their entries are scored from it.
        """
        self.finished = []
        slots = {
            m: self.slots[m] for m, outcome in outcomes.items()
            if m in self.seats and not outcome.diverged
        }  # fmt: skip
        known = self.run.known_outputs(self.leaving_outputs(outcomes), slots)
        for m, outcome in outcomes.items():
            self.hand_over(m, outcome, known.get(m))
        seated = self.resumed()
        free = [m for m in range(len(self.slots)) if m not in self.seats]
        n_folds = len(self.run.batch.splits)
        if len(free) < n_folds:
            return seated
        for params in self.run.refill.more(len(free) // n_folds, self.fits):
            self.seat(epoch, params, free, seated)
        return seated

    def resumed(self) -> dict:
        """The slots of the candidates the caller has train on (``Refill.resume``)."""
        resume = getattr(self.run.refill, "resume", None)
        going_on = resume(self.finished) if resume is not None and self.finished else {}
        seated = {}
        for c, epochs in going_on.items():
            for m in self.home[c]:
                self.seats[m] = c
                seated[m] = engine.Resume(int(epochs))
            self.left[c] = len(self.home[c])
        gone = set(self.finished) - set(going_on)  # for good: their curve points too
        if gone:
            self.points = {k: v for k, v in self.points.items() if k[0] not in gone}
        return seated

    def hand_over(self, m: int, outcome, known=None) -> None:
        """The entry and curve of a member that left its slot; ``done`` once a candidate is in.

        ``known``: the member's outputs on its fold, from :meth:`turnover`'s pass.
        """
        run = self.run
        c = self.seats.pop(m, None)
        if c is None:  # padding
            return
        slot = self.slots[m]
        entry = self.lead_entry(m, slot, outcome, float(self.share[m]), known)
        run.record(c, slot.fold, entry)
        evaluation = run.batch.evaluation
        evaluation.n_trained += int(self.counted[m] == 0)
        evaluation.n_epochs += outcome.n_epochs - int(self.counted[m])
        self.counted[m] = outcome.n_epochs
        if run.ev.epoch_curves:
            val = outcome.history.get("val_loss")
            evaluation.curves.extend(
                {
                    "candidate": c,
                    "fold": slot.fold,
                    "epoch": e,
                    "train_loss": float(outcome.history["loss"][e - 1]),
                    "test_score": self.points.get((c, slot.fold, e), math.nan),
                    "val_loss": float(val[e - 1]) if val is not None else math.nan,
                }
                for e in range(1, outcome.n_epochs + 1)
            )
        run.ev._tick(1)
        self._fold_done(c)

    def _fold_done(self, c: int) -> None:
        self.left[c] -= 1
        if self.left[c] == 0:
            del self.left[c]
            self.finished.append(c)
            self.run.refill.done(c, self.run.batch.evaluation)

    def seat(self, epoch: int, params: dict, free: list, seated: dict) -> None:
        """Seat one new candidate's members (one per fold) in ``free`` slots."""
        run = self.run
        c = run.add_candidate(params)
        run.batch.evaluation.started[c] = epoch
        self.left[c] = 1  # held until every fold is seated or recorded
        for s, made in enumerate(self.fold_members(c, params)):
            if isinstance(made, str):
                run.record(c, s, run.failed(len(run.batch.splits[s][1]), made))
                continue
            spec, slot = made
            m = free.pop(0)
            seated[m] = self.specs[m] = spec
            self.slots[m] = slot
            self.seats[m], self.born[m], self.share[m], self.counted[m] = c, epoch, 0.0, 0
            self.home.setdefault(c, []).append(m)
            self.left[c] += 1
        self._fold_done(c)


class _RefillChunk(_Chunk, _Seats):
    """The one ``mlp()`` stack of a :class:`RefillRun`: scores, stops, hands over, seats."""

    def __init__(self, run: RefillRun, config, specs: list, slots: list):
        super().__init__(run, config, specs, slots)
        self.take_seats(Seeds(run.final, run.ev.random_state))
        self.key = engine.static_key(specs)
        self.rows = max(len(s.train_idx) for s in specs)

    def train(self, pad: int = 0) -> None:
        """Train until no candidate is left: the first ones, then each one seated."""
        run = self.run
        padding = [replace(self.specs[0], epochs=1, patience=None, val_idx=None)] * pad
        self.specs = self.specs + padding
        self.pad(pad)
        result = engine.train_stack(
            self.config,
            self.specs,
            run.copies.X,
            run.Y_all,
            verbose=max(0, run.ev.verbose - 1),
            on_epoch_end=self.on_epoch_end,
            turnover=self.turnover,
            on_compact=self.compacted if getattr(run.refill, "compacts", False) else None,
        )
        run.group.fit_time += result.fit_time
        run.group.epoch_times.extend(result.epoch_times.tolist())

    def on_epoch_end(self, epoch: int, params: list, active: np.ndarray):
        """Score every seated member on its fold; stop the candidates the caller stops."""
        seated = [m for m in np.flatnonzero(active).tolist() if m in self.seats]
        return self.score_epoch(
            active, epoch - self.born, lambda m, age: self.member([p[m] for p in params], age, age),
            predicted=self.predictions(params, seated),
        )  # fmt: skip

    def leaving_outputs(self, outcomes):
        """A NumPy pass over the leaving members' kept weights (``None`` for sparse X)."""
        return self.pass_over({m: outcome.weights for m, outcome in outcomes.items()})

    def compacted(self, keep: np.ndarray) -> None:
        """The trainer kept the slots at ``keep`` only: renumber what is kept per slot."""
        new = {int(old): m for m, old in enumerate(keep)}
        self.seats = {new[m]: c for m, c in self.seats.items()}
        self.home = {c: [new[m] for m in ms if m in new] for c, ms in self.home.items()}
        self.home = {c: ms for c, ms in self.home.items() if ms}
        self.specs = [self.specs[m] for m in keep]
        self.slots = [self.slots[m] for m in keep]
        self.born, self.share, self.counted = self.born[keep], self.share[keep], self.counted[keep]

    def fits(self, params: dict) -> bool:
        """Whether this stack can seat ``params``: same structure, width, knobs' key and rows."""
        run = self.run
        # the structure; a regression target's label smoothing fails the knobs' key below
        groups = run.ev.plan(run.batch.estimator, [params])
        if len(groups) != 1 or not groups[0].stacked or groups[0].structure != run.group.structure:
            return False
        member = run.resolved(params)
        copies = _copies(run, params)
        if copies is None or any(width != self.config.n_features for _, width in copies):
            return False
        probe = engine.MemberSpec(
            train_idx=np.zeros(1, dtype=int), **{k: member[k] for k in engine.MEMBER_KNOBS}
        )
        if engine.static_key([probe]) != self.key:
            return False
        longest = max(len(train) for train, _ in run.batch.splits)
        return member["patience"] is not None or longest <= self.rows

    def fold_members(self, c: int, params: dict) -> list:
        """Per fold, ``(MemberSpec, slot)`` of candidate ``c``, or why it cannot train there."""
        run = self.run
        member = run.resolved(params)
        key = variant_key(run.pre, params, run.prefix)
        out = []
        for s in range(len(run.batch.splits)):
            made = run.fold_member(member, key, s, self.seeds)
            if not isinstance(made, str):
                spec, offset, _ = made
                made = spec, _Slot(Family(c, {c: member["epochs"]}), s, offset)
            out.append(made)
        return out


def _copies(run, params: dict) -> list | None:
    """``(offset, width)`` of ``params``'s copy of X on every fold; ``None`` if one is missing."""
    key = variant_key(run.pre, params, run.prefix)
    copies = [run.copies.where.get((key, s)) for s in range(len(run.batch.splits))]
    if any(copy is None or isinstance(copy, str) for copy in copies):
        return None
    return copies


class KerasRefillRun(_Refilling, KerasStackRun):
    """A :class:`KerasStackRun` whose one stack seats the caller's next candidates.

    As :class:`RefillRun`, on the any-builder trainer: every candidate is a
    member of its own on each fold; a candidate is seated when its built model
    has the stack's structure (the same signature from
    :func:`tunekit.engine.keras_stack.probe`) and at most its steps per epoch.
    When the group needs several stacks, it trains as a :class:`KerasStackRun`.
    """

    def families(self):
        kg = self.group.keras
        return [Family(k, {k: kg.epochs[c]}) for k, c in enumerate(kg.indices)]

    def _stacks(self, members, slots):
        stacks = super()._stacks(members, slots)
        self.n_stacks = len(stacks)
        return stacks

    def _train(self, members, pad: int = 0) -> None:
        if self.n_stacks != 1:
            return super()._train(members, pad)
        self.refilled = True
        _KerasRefill(self, members).train(pad)
        return None


class _KerasRefill(_Seats):
    """The one stack of a :class:`KerasRefillRun`: scores, stops, hands over, seats."""

    def __init__(self, run: KerasRefillRun, members: list):
        self.run, self.specs, self.slots = run, list(members), list(run.slots)
        self.take_seats(Seeds(run.final, run.ev.random_state))
        kg = run.group.keras
        size = max(len(m.train_idx) for m in members) if kg.batch_size == -1 else kg.batch_size
        self.batch_size = size
        self.steps = max(-(-len(m.train_idx) // size) for m in members)
        self.probed: dict = {}  # id(params) -> its probed group (fits, then seat)

    def train(self, pad: int = 0) -> None:
        """Train until no candidate is left: the first ones, then each one seated."""
        run = self.run
        padding = [replace(self.specs[0], epochs=1, patience=None, val_idx=None)] * pad
        self.specs = self.specs + padding
        self.pad(pad)
        result = engine.keras_stack.train_group(
            run.group.keras, self.specs, run.copies.X, run.y_all,
            on_epoch_end=self.on_epoch_end, turnover=self.turnover,
        )  # fmt: skip
        run.group.fit_time += result.fit_time
        run.group.epoch_times.extend(list(result.epoch_times))

    def on_epoch_end(self, epoch: int, result):
        """Score every seated member on its fold (all in one pass); stop the candidates the
        caller stops."""
        seated = [m for m in np.flatnonzero(result.active).tolist() if m in self.seats]
        rows = {m: self.test_rows(m) for m in seated}
        outputs = engine.keras_stack.EpochOutputs(result, self.run.copies.X, rows)
        return self.score_epoch(result.active, result.n_epochs,
                                lambda m, _age: outputs.estimators[m], outputs.x.get)  # fmt: skip

    def leaving_outputs(self, outcomes):
        """The compiled pass over the leaving members' kept weights (``Leaving.outputs``)."""
        return getattr(outcomes, "outputs", None)

    def lead_entry(self, m: int, slot, outcome, fit_time: float, known=None) -> dict:
        """The entry of the member that left slot ``m``, from its outcome (and ``known``
        outputs, :meth:`~tunekit.evaluators.stacked.runs.GroupRun.known_outputs`)."""
        one = engine.keras_stack.KerasStackResult(
            weights=[outcome.weights], n_epochs=np.array([outcome.n_epochs]),
            best_epoch=np.array([outcome.best_epoch]),
            history={"loss": np.asarray(outcome.history["loss"])[:, None]},
            diverged=np.array([outcome.diverged]), group=self.run.group.keras,
        )  # fmt: skip
        return self.run._lead_entry(0, slot, one, fit_time, known)

    def fits(self, params: dict) -> bool:
        """Whether this stack can seat ``params``: the same built structure and data, its rows."""
        run = self.run
        groups = run.ev.plan(run.batch.estimator, [params])
        if len(groups) != 1 or groups[0].stacked:  # mlp()'s trainer would take it
            return False
        copies = _copies(run, params)
        if copies is None:
            return False
        offset, n = copies[0][0], len(run.batch.y)
        own = split_params(params, run.prefix)[1]
        try:
            (found,) = engine.keras_stack.probe(
                run.final, [own], run.copies.X[offset : offset + n], run.batch.y
            )
        except Exception:  # a model that cannot be built waits for a batch of its own
            return False
        if not found.stackable or found._plan.signature != run.group.keras._plan.signature:
            return False
        fraction = {**run.final.get_params(deep=False), **own}.get("validation_fraction")
        longest = max(len(train) for train, _ in run.batch.splits)
        if found.patience[0] is not None:
            longest -= math.ceil(fraction * longest)
        if -(-longest // self.batch_size) > self.steps:
            return False
        self.probed[id(params)] = found
        return True

    def fold_members(self, c: int, params: dict) -> list:
        """Per fold, ``(KerasMember, slot)`` of candidate ``c``, or why it cannot train there."""
        run, kg = self.run, self.run.group.keras
        found = self.probed.pop(id(params))
        local = max(kg.knobs) + 1  # the candidate's id in the group
        kg.indices.append(local)
        kg.knobs[local], kg.epochs[local] = found.knobs[0], found.epochs[0]
        kg.patience[local] = found.patience[0]
        family = Family(c, {c: found.epochs[0]})
        out = []
        for s in range(len(run.batch.splits)):
            made = run.fold_member(family, s, self.seeds)
            if not isinstance(made, str):
                member, offset = made
                made = member, KerasSlot(family, s, offset)
            out.append(made)
        return out
