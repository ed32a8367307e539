"""Train the members of a group in lockstep: one compiled epoch for all of them."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from tunekit.engine._backend import get_backend
from tunekit.engine.early_stopping import EarlyStopping
from tunekit.engine.keras_stack._plan import KerasGroup, _Plan
from tunekit.engine.keras_stack.layers import (
    _STEP_STRIDE,
    _forward,
    _penalty,
    _per_member,
    _row_loss,
)
from tunekit.engine.optimizers import apply_updates, init_state
from tunekit.engine.result import Leaving, Resume, StackResult, diverged, leaving_outcomes
from tunekit.engine.schedule import EpochSchedule

__all__ = [
    "FitOverrides",
    "KerasMember",
    "KerasStackResult",
    "member_initial_weights",
    "train_group",
]

_MAX_EVAL_ROWS = 2048


@dataclass
class KerasMember:
    """One member of a stack: a candidate trained on some rows from a seed.

    Parameters
    ----------
    candidate : int
        Index of the candidate (one of the group's ``indices``).
    train_idx : ndarray of int
        Rows the member trains on.
    val_idx : ndarray of int or None, default=None
        Rows watched by early stopping (carved from the training fold).
    seed : int, default=0
        The member's own seed: initial weights, batch order, dropout and noise.
    epochs, patience : int or None, default=None
        Override the candidate's ``epochs`` / ``early_stopping``.
    knobs : dict or None, default=None
        Override some of the candidate's knob values.
    initial_weights : list of ndarray or None, default=None
        Start from these weights (``model.get_weights()`` order) instead of a draw.
    """

    candidate: int
    train_idx: np.ndarray
    val_idx: np.ndarray | None = None
    seed: int = 0
    epochs: int | None = None
    patience: int | None = None
    knobs: dict | None = None
    initial_weights: list | None = None


@dataclass
class KerasStackResult(StackResult):
    """What :func:`train_group` returns (also passed to ``on_epoch_end``).

    A :class:`~tunekit.engine.result.StackResult` (its ``weights`` include
    BatchNormalization moving statistics, its ``epoch_times`` are a list) with:

    Attributes
    ----------
    group : KerasGroup
    members : list of KerasMember
    trace_time : float
        Wall time of the first epoch call less the median of the others: an
        estimate of tracing plus compilation.
    active : ndarray of bool or None
        In ``on_epoch_end``, the members that trained in the epoch just run.
    outputs : callable or None
        ``outputs(rows)``: for a list of one row-index array per member (into
        ``X``; empty for a member left out), each member's network outputs on
        its rows (inference mode), computed for all members in one compiled
        member-axis pass. In ``on_epoch_end`` with the weights after the
        epoch; in the returned result with the kept weights (``weights``).
    """

    group: KerasGroup | None = None
    members: list = field(default_factory=list)
    trace_time: float = 0.0
    active: np.ndarray | None = None
    outputs: Callable | None = None


@dataclass(frozen=True)
class FitOverrides:
    """Settings of :func:`train_group` that override the group's own ``fit`` settings.

    Parameters
    ----------
    epochs : int or None, default=None
        Override every member's epochs (default: its candidate's ``epochs``).
    batch_size : int or None, default=None
        Override the group's batch size (``-1``: each member's whole fold).
    shuffle : bool or None, default=None
        Override the group's ``fit__shuffle``.
    """

    epochs: int | None = None
    batch_size: int | None = None
    shuffle: bool | None = None


# ---------------------------------------------------------------------- compiled step
class _Batch(NamedTuple):
    """One step's rows of every member: inputs, targets and row weights (0: padding)."""

    x: Any
    y: Any
    row_weight: Any


class _Compiled:
    """The compiled epoch and evaluation of one plan (traced once per shape)."""

    def __init__(self, plan: _Plan, jit_compile: bool):
        backend = get_backend()
        trainable = [s[3] for s in plan.weight_slots]

        def split(flat):
            return [v for v, t in zip(flat, trainable, strict=True) if t]

        def merge(train, state):
            it_t, it_s = iter(train), iter(state)
            return [next(it_t) if t else next(it_s) for t in trainable]

        state_keys = [(s[0], s[1]) for s in plan.weight_slots if not s[3]]

        def losses(train, state, batch: _Batch, knobs, keys, counter, training):
            rw = batch.row_weight
            ctx = {"row_weight": rw, "knobs": knobs, "keys": keys, "counter": counter}
            ctx["state"] = {}
            out = _forward(plan, merge(train, state), batch.x, ctx, training)
            rows = _row_loss(plan, batch.y, out, knobs.get("label_smoothing"))
            data = ops.sum(rows * rw, axis=1)
            new_state = [ctx["state"].get(k, s) for k, s in zip(state_keys, state, strict=True)]
            return data, new_state

        def epoch(train, state, opt_state, X, Y, knobs, schedule: EpochSchedule):
            idx, valid, active, keys = schedule

            def body(i, carry):
                train, state, opt_state, loss_sum, n_sum = carry
                rows = ops.take(idx, i, axis=0)
                rw = ops.take(valid, i, axis=0)
                xb = ops.take(X, rows, axis=0)
                yb = ops.take(Y, rows, axis=0)
                n = ops.sum(rw, axis=1)
                counter = i * _STEP_STRIDE

                def objective(p):
                    batch = _Batch(xb, yb, rw)
                    data, new_state = losses(p, state, batch, knobs, keys, counter, True)
                    member = data / ops.maximum(n, 1.0)
                    pen = _penalty(plan, merge(p, state), knobs)
                    if pen is not None:
                        member = member + pen
                    return ops.sum(member), (member, new_state)

                _, (member, new_state), grads = backend.value_and_grad(objective, train)
                mask = ops.logical_and(active, n > 0)
                train, opt_state = apply_updates(
                    plan.optimizer, train, grads, opt_state, knobs["learning_rate"], mask
                )
                state = [
                    ops.where(_per_member(mask, s), ns, s)
                    for s, ns in zip(state, new_state, strict=True)
                ]
                loss_sum = loss_sum + ops.where(mask, member * n, 0.0)
                n_sum = n_sum + ops.where(mask, n, 0.0)
                return train, state, opt_state, loss_sum, n_sum

            zeros = ops.zeros((idx.shape[1],), dtype="float32")
            return ops.fori_loop(0, idx.shape[0], body, (train, state, opt_state, zeros, zeros))

        def evaluate(train, state, X, Y, idx, valid, knobs):
            xb = ops.take(X, idx, axis=0)
            yb = ops.take(Y, idx, axis=0)
            zero = ops.zeros((), dtype="int32")
            keys = ops.zeros((idx.shape[0],), dtype="int32")
            data, _ = losses(train, state, _Batch(xb, yb, valid), knobs, keys, zero, False)
            pen = _penalty(plan, merge(train, state), knobs)
            return data, (ops.zeros_like(data) if pen is None else pen)

        self.split, self.merge = split, merge
        self.epoch = _compile(epoch, jit_compile)
        self.evaluate = _compile(evaluate, jit_compile)
        self.outputs = _compile(_outputs_fn(plan, merge), jit_compile)


def _outputs_fn(plan: _Plan, merge: Callable) -> Callable:
    """Every member's network outputs on its rows ``idx`` of ``X`` (inference mode)."""

    def outputs(train, state, X, idx):
        ctx = {"row_weight": None, "knobs": {}, "keys": None, "counter": 0, "state": {}}
        return _forward(plan, merge(train, state), ops.take(X, idx, axis=0), ctx, False)

    return outputs


def _compile(fn: Callable, jit_compile: bool) -> Callable:
    backend = get_backend()
    if backend.name == "tensorflow":
        return backend.tf.function(fn, jit_compile=jit_compile, autograph=False)
    return backend.compile(fn)  # jax.jit


def _compiled(plan: _Plan, jit_compile: bool) -> _Compiled:
    # One traced program per plan (and stack shape, by tf.function / jax.jit):
    # knob values are tensors, so zero and non-zero rates share it.
    if jit_compile not in plan.compiled:
        plan.compiled[jit_compile] = _Compiled(plan, jit_compile)
    return plan.compiled[jit_compile]


# ---------------------------------------------------------------------- training
def member_initial_weights(group: KerasGroup, seed: int) -> list[np.ndarray]:
    """Draw one member's initial weights from its own seed.

    Every weight is drawn with the initializer the built model declares for
    it (``kernel_initializer``, ``gamma_initializer``, ...), seeded from
    ``seed`` and the weight's position only: the draw does not depend on the
    stack the member trains in.

    Parameters
    ----------
    group : KerasGroup
        A stackable group from :func:`~tunekit.engine.keras_stack.probe`.
    seed : int
        The member's seed.

    Returns
    -------
    weights : list of ndarray
        In ``model.get_weights()`` order.
    """
    plan = group._plan
    seeds = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7]).generate_state(
        max(len(plan.weight_slots), 1)
    )
    out = []
    for (_i, _name, shape, _t, init), s in zip(plan.weight_slots, seeds, strict=False):
        if init is None:
            raise ValueError(f"no initializer for weight {_name!r} of layer {_i}")
        cfg = keras.initializers.serialize(init)
        inner = dict(cfg.get("config") or {})
        if "seed" in inner:
            inner["seed"] = int(s >> 1)
        fresh = keras.initializers.get({**cfg, "config": inner})
        out.append(np.asarray(ops.convert_to_numpy(fresh(shape, dtype="float32"))))
    return out


def _member_key(seed: int, epoch: int) -> int:
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 11]).generate_state(1)
    return int(state[0] >> 1)


def _epoch_order(member: KerasMember, epoch: int, shuffle: bool) -> np.ndarray:
    rows = np.asarray(member.train_idx)
    if not shuffle:
        return rows
    rng = np.random.default_rng([int(member.seed) & 0xFFFFFFFF, int(epoch), 3])
    return rows[rng.permutation(len(rows))]


def _batches(orders: list, batch_size: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.zeros((steps, len(orders), batch_size), dtype="int32")
    valid = np.zeros((steps, len(orders), batch_size), dtype="float32")
    for m, order in enumerate(orders):
        flat = np.zeros(steps * batch_size, dtype="int32")
        flat[: len(order)] = order
        ok = np.zeros(steps * batch_size, dtype="float32")
        ok[: len(order)] = 1.0
        idx[:, m, :] = flat.reshape(steps, batch_size)
        valid[:, m, :] = ok.reshape(steps, batch_size)
    return idx, valid


def _encode(group: KerasGroup, X, y):
    est = group._plan.estimator
    Xa = np.asarray(est.feature_encoder_.transform(np.asarray(X)))
    dtype = "int32" if "int" in group._plan.input_dtype else "float32"
    Ya = np.asarray(est.target_encoder_.transform(np.asarray(y)))
    if group._plan.loss == "sparse_categorical_crossentropy":
        Ya = Ya.reshape(len(Ya), -1)[:, :1].astype("float32")
    else:
        Ya = Ya.reshape(len(Ya), -1).astype("float32")
    return Xa.astype(dtype), Ya


def _knob_tensors(group: KerasGroup, members: Sequence[KerasMember]) -> dict:
    names = group._plan.knob_names
    values = {n: [] for n in names}
    for k, mem in enumerate(members):
        unknown = sorted(set(mem.knobs or {}) - set(names))
        if unknown:
            raise ValueError(
                f"member {k} sets knobs {unknown}, which this group does not have; its "
                f"knobs are {list(names)}"
            )
        own = {**group.knobs[mem.candidate], **(mem.knobs or {})}
        for n in names:
            values[n].append(float(own[n]))
    return {n: ops.convert_to_tensor(np.asarray(v, dtype="float32")) for n, v in values.items()}


def _stack_weights(group, members) -> list[np.ndarray]:
    plan = group._plan
    per_member = []
    for mem in members:
        init = mem.initial_weights
        per_member.append(
            [np.asarray(w, "float32") for w in init]
            if init is not None
            else member_initial_weights(group, mem.seed)
        )
    return [np.stack([pm[j] for pm in per_member]) for j in range(len(plan.weight_slots))]


def _check_members(group: KerasGroup, members: Sequence[KerasMember], n_rows: int) -> None:
    if not group.stackable:
        raise ValueError(
            f"this group cannot stack ({group.reason}); train its candidates the standard way"
        )
    if not members:
        raise ValueError("members is empty: give at least one KerasMember")
    for k, mem in enumerate(members):
        if mem.candidate not in group.knobs:
            raise ValueError(
                f"member {k} has candidate={mem.candidate}, which is not in this group "
                f"(indices {group.indices}); pass members of this group's candidates only"
            )
        rows = np.asarray(mem.train_idx)
        if rows.size == 0 or rows.min() < 0 or rows.max() >= n_rows:
            raise ValueError(
                f"member {k} has train_idx outside [0, {n_rows}) or empty; pass row positions of X"
            )


def _evaluate(fns, train, state, X, Y, members, knobs) -> np.ndarray:
    """Validation loss of every member (NaN for members without val_idx)."""
    n_members = len(members)
    vals = [np.asarray(m.val_idx) if m.val_idx is not None else np.zeros(0, int) for m in members]
    longest = max(len(v) for v in vals)
    total = np.zeros(n_members)
    count = np.zeros(n_members)
    pen = np.zeros(n_members)
    for lo in range(0, longest, _MAX_EVAL_ROWS):
        width = min(_MAX_EVAL_ROWS, longest - lo)
        idx = np.zeros((n_members, width), dtype="int32")
        ok = np.zeros((n_members, width), dtype="float32")
        for m, v in enumerate(vals):
            part = v[lo : lo + width]
            idx[m, : len(part)] = part
            ok[m, : len(part)] = 1.0
        data, p = fns.evaluate(train, state, X, Y, idx, ok, knobs)
        total += np.asarray(ops.convert_to_numpy(data), dtype="float64")
        count += ok.sum(axis=1)
        pen = np.asarray(ops.convert_to_numpy(p), dtype="float64")
    out = np.full(n_members, np.nan)
    has = count > 0
    out[has] = total[has] / count[has] + pen[has]
    return out


def _unstack(flat: list[np.ndarray], m: int) -> list[np.ndarray]:
    return [w[m] for w in flat]


class _BestWeights:
    """The watched members' best weights so far, on the host (``restore_best_weights``)."""

    def __init__(self, watch: np.ndarray):
        self.watch = watch
        self.weights: list | None = None

    def keep(self, improved: np.ndarray, weights: list) -> None:
        """Keep the ``improved`` members' ``weights`` (host arrays ``(M, ...)``)."""
        if self.weights is None:
            self.weights = [w.copy() for w in weights]
        for best, w in zip(self.weights, weights, strict=True):
            best[improved] = w[improved]

    def reset(self, fresh: np.ndarray, weights: list) -> None:
        """The ``fresh`` members (new in their slots) start from ``weights``."""
        if self.weights is not None:
            self.keep(fresh, weights)

    def restore(self, weights: list) -> list:
        """The watched members' best weights, the others' ``weights``."""
        if self.weights is None:
            return weights
        return [
            np.where(self.watch.reshape((-1,) + (1,) * (w.ndim - 1)), b, w)
            for w, b in zip(weights, self.weights, strict=True)
        ]


@dataclass
class _Run:
    """The device state of a stack between epochs."""

    fns: _Compiled
    train: list
    state: list
    opt_state: dict
    X: object
    Y: object
    knobs: dict

    def weights(self) -> list[np.ndarray]:
        return [np.asarray(ops.convert_to_numpy(p)) for p in self.fns.merge(self.train, self.state)]


def _resolve(group, members, overrides: FitOverrides):
    bs = group.batch_size if overrides.batch_size is None else int(overrides.batch_size)
    if bs == -1:
        bs = max(len(m.train_idx) for m in members)
    max_epochs = np.array(
        [overrides.epochs or m.epochs or group.epochs[m.candidate] for m in members], dtype=int
    )
    patience = [
        m.patience if m.patience is not None else group.patience[m.candidate] for m in members
    ]
    for k, (mem, pat) in enumerate(zip(members, patience, strict=True)):
        if pat is not None and mem.val_idx is None:
            raise ValueError(
                f"member {k} has early-stopping patience {pat} but no val_idx; carve "
                "validation rows from its training fold and pass them as val_idx"
            )
    shuffle = group.shuffle if overrides.shuffle is None else bool(overrides.shuffle)
    return bs, max_epochs, patience, shuffle


def _start(group, members, X, y, jit_compile) -> _Run:
    plan = group._plan
    Xa, Ya = _encode(group, X, y)
    knobs = _knob_tensors(group, members)
    fns = _compiled(plan, bool(jit_compile))
    flat = [ops.convert_to_tensor(w) for w in _stack_weights(group, members)]
    train = fns.split(flat)
    state = [v for v, s in zip(flat, plan.weight_slots, strict=True) if not s[3]]
    return _Run(
        fns,
        train,
        state,
        init_state(plan.optimizer, train),
        ops.convert_to_tensor(Xa),
        ops.convert_to_tensor(Ya),
        knobs,
    )


def _run_epoch(run: _Run, members, epochs, active, batch_size: int, steps: int, shuffle: bool):
    """One compiled epoch for every member (each at its own 0-based ``epochs``); its losses."""
    orders = [_epoch_order(m, int(e), shuffle) for m, e in zip(members, epochs, strict=True)]
    idx, valid = _batches(orders, batch_size, steps)
    keys = np.array(
        [_member_key(m.seed, int(e)) for m, e in zip(members, epochs, strict=True)], dtype="int32"
    )
    run.train, run.state, run.opt_state, loss_sum, n_sum = run.fns.epoch(
        run.train,
        run.state,
        run.opt_state,
        run.X,
        run.Y,
        run.knobs,
        EpochSchedule(idx, valid, active, keys),
    )
    n = np.maximum(np.asarray(ops.convert_to_numpy(n_sum)), 1.0)
    return np.asarray(ops.convert_to_numpy(loss_sum)) / n


def train_group(
    group: KerasGroup,
    members: Sequence[KerasMember],
    X,
    y,
    *,
    on_epoch_end: Callable[[int, KerasStackResult], Sequence[int] | None] | None = None,
    jit_compile: bool = False,
    overrides: FitOverrides | None = None,
    turnover: Callable[[int, dict], dict] | None = None,
) -> KerasStackResult:
    """Train every member of a stackable group in lockstep, one compiled step for all.

    Parameters
    ----------
    group : KerasGroup
        A stackable group from :func:`~tunekit.engine.keras_stack.probe`.
    members : sequence of KerasMember
        The members; each names one of the group's candidates.
    X, y : array-like
        All rows (members index into them), raw labels (encoded with the
        estimator's own target encoder).
    on_epoch_end : callable or None, default=None
        Called as ``on_epoch_end(epoch, result_so_far)`` after every epoch
        (0-based), with the members' current weights, their epoch counts and
        the mask of members that trained in it (``result.active``), e.g. to
        score them. It may return members (positions) to freeze from the next
        epoch on, as ``mlp()``'s trainer does (pruned candidates, a stop
        request); their weights, epochs and history end where they were.
    jit_compile : bool, default=False
        TensorFlow only: compile the epoch with XLA. Off by default: for the
        convolutional builders of ``benchmarks/any_builder.py`` XLA took 7 to 17 s
        to compile against 2 to 7 s for the graph executor, for steady epochs
        no faster on 2 loaded cores. JAX always uses ``jax.jit``.
    overrides : FitOverrides or None, default=None
        Override the group's epochs, batch size or shuffling, e.g.
        ``overrides=FitOverrides(shuffle=False)``; ``None`` keeps them all.
    turnover : callable or None, default=None
        Refilled slots, as in :func:`tunekit.engine.train_stack`:
        ``turnover(epoch, outcomes)`` after every epoch in which members left
        (out of epochs, early-stopped or frozen), with ``epoch`` the stack's
        epochs run so far and ``outcomes`` mapping each leaving member's slot
        to its :class:`~tunekit.engine.result.MemberOutcome`. It returns
        ``{slot: KerasMember}`` for new members that take those slots now
        (fresh weights, zero optimizer slots, their own epoch count, seeds
        and early stopping: each trains as in a stack of its own), or
        ``{slot: Resume(epochs)}`` for a member that trains on. A new member
        must be of this group (its candidate in ``group.knobs``) and have at
        most the stack's steps per epoch. The stack runs until no slot is
        taken; every member leaves through ``turnover``, and the result holds
        the timings only (its weights and ``outputs`` are the emptied stack's).

    Returns
    -------
    result : KerasStackResult

    Raises
    ------
    ValueError
        If the group cannot stack, a member names another group's candidate or
        rows outside ``X``, or a member with early stopping has no ``val_idx``.
    """
    _check_members(group, members, len(X))
    start = time.perf_counter()
    training = _Training(group, members, X, y, jit_compile, overrides or FitOverrides())
    training.fit_loop(on_epoch_end, turnover)
    return training.result(start)


class _Training:
    """One stack between epochs: the device run, each slot's counters, stopping, history."""

    def __init__(self, group, members, X, y, jit_compile, overrides: FitOverrides):
        self.group, self.members, self.overrides = group, list(members), overrides
        self.bs, self.max_epochs, patience, self.shuffle = _resolve(group, members, overrides)
        self.steps = max(-(-len(m.train_idx) // self.bs) for m in members)
        self.run = _start(group, members, X, y, jit_compile)
        self.stopper = EarlyStopping(patience)
        self.best = _BestWeights(self.stopper.watch)
        n, self.n_rows = len(members), len(X)
        self.trained = np.zeros(n, dtype=int)
        self.started = np.zeros(n, dtype=int)  # stack epochs run when each member joined
        self.taken = np.ones(n, dtype=bool)  # slots with a member
        self.losses: list = []
        self.val_losses: list = []
        self.result_ = KerasStackResult(
            weights=[], n_epochs=self.trained, best_epoch=self.stopper.kept_epoch(self.trained),
            epoch_times=[], group=group, members=self.members,
        )  # fmt: skip

    def active(self) -> np.ndarray:
        """Members that train in the next epoch: in a slot, not stopped, epochs left."""
        return self.taken & ~self.stopper.stopped & (self.trained < self.max_epochs)

    def fit_loop(self, on_epoch_end, turnover) -> None:
        """Train until no member has epochs left (and no slot is refilled)."""
        epoch = 0
        while (active := self.active()).any():
            weights = self.epoch(active)
            if on_epoch_end is not None:
                result = self.result_
                result.weights = [_unstack(weights, m) for m in range(len(self.members))]
                result.best_epoch = self.stopper.kept_epoch(self.trained)
                result.history = _history(self.losses, self.val_losses)
                result.active = active
                result.outputs = self.outputs
                halt = on_epoch_end(epoch, result)
                if halt is not None:  # members frozen from the next epoch on (e.g. pruned)
                    self.stopper.halt(halt)
            epoch += 1
            if turnover is not None:
                self.turn_over(epoch, turnover, weights)

    def outputs(self, rows: Sequence, weights: list | None = None) -> list[np.ndarray]:
        """Each member's network outputs on its ``rows`` of ``X``: one compiled pass per
        2,048 rows for all members (see :class:`KerasStackResult`).

        ``weights``: the stacked weights to run (host arrays in ``run.weights()``'s
        order, e.g. the kept ones of early-stopped members); default: the stack's own.
        """
        rows = [np.asarray(r, dtype="int32") for r in rows]
        run = self.run
        train, state = (run.train, run.state) if weights is None else self._split(weights)
        longest = max((len(r) for r in rows), default=0)
        parts: list = []
        for lo in range(0, longest, _MAX_EVAL_ROWS):
            width = min(_MAX_EVAL_ROWS, longest - lo)
            idx = np.zeros((len(rows), width), dtype="int32")  # padding: row 0, dropped below
            for m, r in enumerate(rows):
                part = r[lo : lo + width]
                idx[m, : len(part)] = part
            out = run.fns.outputs(train, state, run.X, ops.convert_to_tensor(idx))
            parts.append(np.asarray(ops.convert_to_numpy(out)))
        if not parts:
            return [np.zeros((0,)) for _ in rows]
        whole = np.concatenate(parts, axis=1)
        return [whole[m, : len(r)] for m, r in enumerate(rows)]

    def _split(self, weights: list) -> tuple[list, list]:
        """Stacked host weights as the compiled functions' trainable and state tensors."""
        flat = [ops.convert_to_tensor(p) for p in weights]
        slots = self.group._plan.weight_slots
        return self.run.fns.split(flat), [v for v, s in zip(flat, slots, strict=True) if not s[3]]

    def outputs_of(self, rows: dict, weights: list | None = None) -> dict:
        """:meth:`outputs` for some members: ``{slot: rows}`` -> ``{slot: outputs}``."""
        empty = np.zeros(0, dtype="int32")
        got = self.outputs([rows.get(m, empty) for m in range(len(self.members))], weights)
        return {m: got[m] for m in rows}

    def epoch(self, active: np.ndarray) -> list:
        """One compiled epoch, then early stopping; the stacked weights after it (host)."""
        t0 = time.perf_counter()
        loss = _run_epoch(self.run, self.members, self.trained, active, self.bs, self.steps,
                          self.shuffle)  # fmt: skip
        self.result_.epoch_times.append(time.perf_counter() - t0)
        self.losses.append(np.where(active, loss, np.nan))
        self.trained[active] += 1
        weights = self.run.weights()
        watch = self.stopper.watch
        if watch.any():
            run = self.run
            val = _evaluate(run.fns, run.train, run.state, run.X, run.Y, self.members, run.knobs)
            self.val_losses.append(np.where(active & watch, val, np.nan))
            self.best.keep(self.stopper.update(self.trained - 1, val, active), weights)
        return weights

    def turn_over(self, epoch: int, turnover, current: list) -> None:
        """Hand over the members that leave after ``epoch``; seat those that take their slots."""
        leaving = np.flatnonzero(self.taken & ~self.active())
        if not len(leaving):
            return
        kept = self.best.restore(current)
        outcomes = Leaving(
            leaving_outcomes(
                leaving.tolist(), lambda m: [np.array(w[m]) for w in kept],  # copies: refilled
                self.trained, self.started, self.stopper.kept_epoch(self.trained), self.losses,
                self.val_losses, self.stopper.watch,
            ),
            functools.partial(self.outputs_of, weights=kept),
        )  # fmt: skip
        self.taken[leaving] = False
        seated = turnover(epoch, outcomes) or {}
        for m, resume in seated.items():
            if not isinstance(resume, Resume):
                continue
            if m not in outcomes or self.stopper.stopped[m] or resume.epochs <= self.trained[m]:
                raise ValueError(
                    f"slot {m} cannot resume to {resume.epochs} epochs: only a member that has "
                    f"just left with fewer epochs ({self.trained[m]}) and was not stopped "
                    "trains on"
                )
            self.max_epochs[m], self.taken[m] = int(resume.epochs), True
        fresh = {m: mem for m, mem in seated.items() if not isinstance(mem, Resume)}
        if fresh:
            self.seat(epoch, fresh, current)

    def seat(self, epoch: int, seated: dict, current: list) -> None:
        """Put new members in slots: fresh weights, zero optimizer slots, their own counters."""
        for m, mem in seated.items():
            if self.taken[m]:
                raise ValueError(f"slot {m} is taken; only a slot that was handed over is refilled")
            if -(-len(mem.train_idx) // self.bs) > self.steps:
                raise ValueError(f"the member for slot {m} has more training rows than the stack")
        _check_members(self.group, list(seated.values()), self.n_rows)
        run, plan = self.run, self.group._plan
        _, max_epochs, patience, _ = _resolve(self.group, list(seated.values()), self.overrides)
        opt = {
            "step": ops.convert_to_numpy(run.opt_state["step"]).copy(),
            "slots": [[ops.convert_to_numpy(p).copy() for p in k] for k in run.opt_state["slots"]],
        }
        fresh = np.zeros(len(self.members), dtype=bool)
        for (m, mem), epochs, pat in zip(seated.items(), max_epochs, patience, strict=True):
            self.members[m] = mem
            for p, w in zip(current, _stack_weights(self.group, [mem]), strict=True):
                p[m] = w[0]
            opt["step"][m] = 0.0
            for kind in opt["slots"]:
                for p in kind:
                    p[m] = 0.0
            self.max_epochs[m] = int(epochs)
            self.stopper.reset(m, pat)
            self.trained[m], self.started[m], self.taken[m], fresh[m] = 0, epoch, True, True
        flat = [ops.convert_to_tensor(p) for p in current]
        run.train = run.fns.split(flat)
        run.state = [v for v, s in zip(flat, plan.weight_slots, strict=True) if not s[3]]
        run.opt_state = {
            "step": ops.convert_to_tensor(opt["step"]),
            "slots": [[ops.convert_to_tensor(p) for p in kind] for kind in opt["slots"]],
        }
        run.knobs = _knob_tensors(self.group, self.members)
        if self.stopper.watch.any():
            missing = len(self.losses) - len(self.val_losses)  # epochs before any was watched
            self.val_losses.extend([np.full(len(self.members), np.nan)] * missing)
            self.best.watch = self.stopper.watch
            self.best.reset(fresh, current)

    def result(self, start: float) -> KerasStackResult:
        """The members' kept weights, epochs and history (``start``: the wall clock's start)."""
        result = self.result_
        final = self.best.restore(self.run.weights())
        result.weights = [_unstack(final, m) for m in range(len(self.members))]
        result.best_epoch = self.stopper.kept_epoch(self.trained)
        result.history = _history(self.losses, self.val_losses)
        result.diverged = diverged(result.weights)
        result.outputs = functools.partial(self.outputs, weights=final)
        result.fit_time = time.perf_counter() - start
        times = result.epoch_times
        if times:
            steady = float(np.median(times[1:])) if len(times) > 1 else 0.0
            result.trace_time = max(times[0] - steady, 0.0)
        return result


def _history(loss, val) -> dict:
    hist = {"loss": np.array(loss)}
    if val:
        hist["val_loss"] = np.array(val)
    return hist
