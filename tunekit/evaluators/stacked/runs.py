"""What a group's run shares on both trainers: the batch it reads and how it records."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import scipy.sparse as sp

from tunekit.evaluators._base import (
    Evaluation,
    Fold,
    Scoring,
    epoch_families,
    fail_entry,
    score_entry,
)
from tunekit.evaluators.stacked.data import Copies, prepare_target, transformed_copies
from tunekit.evaluators.stacked.grouping import CandidateGroup, split_pipeline

__all__ = ["Batch", "GroupRun"]

_log = logging.getLogger("tunekit")


@dataclass
class Batch:
    """One ``evaluate`` call: the estimator, its candidates and folds, and where entries go."""

    estimator: object
    candidates: list
    splits: list
    X: object
    y: object
    scorers: object
    evaluation: Evaluation
    folds: list | None = None  # per candidate, the folds it trains on (None: every fold)


@dataclass
class Known:
    """A member's outputs from a pass over many members (:meth:`GroupRun.known_outputs`).

    Attributes
    ----------
    pairs : list of (ndarray, ndarray)
        Per part of its fold (the test rows, then the train rows): the row
        positions in the run's copy of X, and the member's network outputs on them.
    seconds : float
        Its share of the pass's wall time.
    """

    pairs: list
    seconds: float


class GroupRun:
    """The state of one group's run: the evaluator's settings, the batch, the fold data.

    Parameters
    ----------
    evaluator : StackedEvaluator
        Its settings (``error_score``, ``return_train_score``, ``epoch_curves``,
        ``on_epoch``, ``random_state``, ``strict``, ``verbose``) and progress.
    group : CandidateGroup
    batch : Batch
    """

    def __init__(self, evaluator, group: CandidateGroup, batch: Batch):
        self.ev = evaluator
        self.group = group
        self.batch = batch
        self.pre, self.final, self.prefix = split_pipeline(batch.estimator)
        self.cands = [batch.candidates[i] for i in group.indices]
        self.owners = None if batch.folds is None else [batch.folds[i] for i in group.indices]
        self.copies: Copies | None = None

    def families(self):
        """The group's epoch families; candidates on different folds never share one."""
        return epoch_families(self.batch.estimator, self.cands, self.owners)

    def wants(self, family, fold: int) -> bool:
        """Whether ``family`` trains on ``fold`` (every fold, unless the batch says which)."""
        return self.owners is None or fold in self.owners[family.leader]

    @property
    def scoring(self) -> Scoring:
        """How the batch's (candidate, fold) pairs are scored."""
        return self.ev.scoring(self.batch.scorers)

    @property
    def raise_errors(self) -> bool:
        """Whether a failure raises (``error_score="raise"``) instead of scoring."""
        error_score = self.ev.error_score
        return isinstance(error_score, str) and error_score == "raise"

    def target(self):
        """``y`` in the loss's encoding."""
        return prepare_target(self.final, self.batch.y)

    def make_copies(self, any_shape: bool = False) -> Copies:
        """The transformed copies of X the group's members train on."""
        b = self.batch
        self.copies = transformed_copies(
            self.pre, self.prefix, self.cands, b.splits, b.X, b.y,
            raise_errors=self.raise_errors, any_shape=any_shape,
        )  # fmt: skip
        return self.copies

    def falls_back(self) -> bool:
        """Whether the copies say the group takes the standard path; logged, refused if strict."""
        reason = self.copies.fallback if self.copies is not None else None
        if reason is None:
            return False
        group = CandidateGroup(self.group.indices, None, reason)
        if self.ev.strict:
            self.ev._refuse(self.batch.candidates, [group])
        _log.info(f"candidates {self.group.indices} take the standard path: {reason}")
        return True

    def padding(self, stacks: list, capacity: int) -> int:
        """Members to add to a lone dense stack so that it has the evaluator's ``pad_to``.

        A stack shape is compiled once: the Optuna batches' smaller stacks
        take the full batches' shape (the padding trains one epoch and is
        discarded; every member's draws come from its own seeds).
        """
        target = getattr(self.ev, "pad_to", None)
        if target is None or len(stacks) != 1 or sp.issparse(self.copies.X):
            return 0
        return max(0, min(target, capacity) - len(stacks[0]))

    def known_outputs(self, outputs, slots: dict) -> dict:
        """The members' outputs on their folds' test (and train) rows: one pass for all
        members' test rows, one for their train rows.

        ``outputs``: a pass ``outputs({member: rows}) -> {member: outputs}``
        (any builder's compiled one, :class:`~tunekit.engine.result.Leaving`'s;
        ``mlp()``'s in NumPy), or ``None``; ``slots``: member -> its slot (its
        fold and where its copy of X starts). Returns member -> :class:`Known`,
        which :meth:`score_known` scores. (Test and train rows are separate
        passes: the same rows as each member's own passes, so ``mlp()``'s
        NumPy outputs are the very same numbers.)
        """
        if outputs is None or not slots:
            return {}
        start = time.perf_counter()
        parts = (1, 0) if self.scoring.train_score else (1,)  # test rows, then train rows
        known: dict = {m: [] for m in slots}
        splits = self.batch.splits
        for part in parts:
            rows = {m: splits[slot.fold][part] + slot.offset for m, slot in slots.items()}
            for m, out in outputs(rows).items():
                known[m].append((rows[m], out))
        share = (time.perf_counter() - start) / len(slots)
        return {m: Known(pairs, share) for m, pairs in known.items()}

    def score_known(self, est, slot, known, fit_time: float, **epochs) -> dict:
        """:func:`~tunekit.evaluators._base.score_entry` of a member on its fold, its
        predictions taken from its :class:`Known` outputs where given.

        The member's estimator predicts from them only while it is scored: a kept
        model (``keep_models``) holds no copy of the data. ``epochs``:
        ``best_epoch`` and ``n_epochs``.
        """
        train, test = self.batch.splits[slot.fold]
        X = self.copies.X
        pairs = [] if known is None else [(X[rows], out) for rows, out in known.pairs]
        fold = Fold(X, self.y_all, train + slot.offset, test + slot.offset,
                    X_test=pairs[0][0] if pairs else None,
                    X_train=pairs[1][0] if len(pairs) > 1 else None)  # fmt: skip
        est._network.known = pairs
        try:
            entry = score_entry(self.scoring, est, fold, fit_time, **epochs)
        finally:
            est._network.known = []
        if known is not None:  # its share of the pass, which ran before the entry's timer
            entry["score_time"] += known.seconds
        return entry

    def failed(self, n_test: int, reason: str, fit_time: float = 0.0) -> dict:
        """The entry of a (candidate, fold) whose training failed."""
        return fail_entry(self.scoring, n_test, fit_time, reason)

    def record_family(self, family, fold: int, lead: dict, snapshot, fit_time: float) -> list:
        """Record the entry of every candidate of an epoch ``family`` on ``fold``.

        The longest count gets ``lead``, a shorter one ``snapshot(epochs)`` (its
        entry scored along the way), or a failure when the run never got that
        far. Returns ``(batch index, epochs)`` for each candidate.
        """
        n_test = len(self.batch.splits[fold][1])
        last, out = family.epochs[family.leader], []
        for c, epochs in family.epochs.items():
            entry = lead if epochs == last else snapshot(epochs) or self.failed(
                n_test, lead["fit_error"] or "not trained that far", fit_time
            )  # fmt: skip
            index = self.group.indices[c]
            self.record(index, fold, entry)
            out.append((index, epochs))
        self.ev._tick(len(family.epochs))
        return out

    def add_candidate(self, params: dict) -> int:
        """Append a new candidate to the batch and the group (refilled slots); its position."""
        b = self.batch
        b.candidates.append(params)
        b.evaluation.entries.append([None] * len(b.splits))
        b.evaluation.engines.append(self.ev.name)
        self.cands.append(params)
        self.group.indices.append(len(b.candidates) - 1)
        return len(b.candidates) - 1

    def record(self, index: int, fold: int, entry: dict) -> None:
        """Store the entry of candidate ``index`` (in the batch) on fold ``fold``."""
        self.batch.evaluation.entries[index][fold] = entry
        self.batch.evaluation.engines[index] = self.ev.name
