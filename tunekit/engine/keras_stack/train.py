"""Train the members of a group in lockstep: one compiled epoch for all of them."""

from __future__ import annotations

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
from tunekit.engine.result import StackResult, diverged
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
    """

    group: KerasGroup | None = None
    members: list = field(default_factory=list)
    trace_time: float = 0.0


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


def _batches(orders: list, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    steps = max(-(-len(o) // batch_size) for o in orders)
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


def _run_epoch(run: _Run, members, epoch: int, active, batch_size: int, shuffle: bool):
    """One compiled epoch for every member; return each member's mean training loss."""
    orders = [_epoch_order(m, epoch, shuffle) for m in members]
    idx, valid = _batches(orders, batch_size)
    keys = np.array([_member_key(m.seed, epoch) for m in members], dtype="int32")
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
        (0-based), with the members' current weights, e.g. to score them. It
        may return members (positions) to freeze from the next epoch on, as
        ``mlp()``'s trainer does (pruned candidates, a stop request); their
        weights, epochs and history end where they were.
    jit_compile : bool, default=False
        TensorFlow only: compile the epoch with XLA. Off by default: for the
        convolutional builders of ``benchmarks/any_builder.py`` XLA took 7 to 17 s
        to compile against 2 to 7 s for the graph executor, for steady epochs
        no faster on 2 loaded cores. JAX always uses ``jax.jit``.
    overrides : FitOverrides or None, default=None
        Override the group's epochs, batch size or shuffling, e.g.
        ``overrides=FitOverrides(shuffle=False)``; ``None`` keeps them all.

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
    overrides = FitOverrides() if overrides is None else overrides
    bs, max_epochs, patience, shuffle = _resolve(group, members, overrides)
    run = _start(group, members, X, y, jit_compile)
    stopper = EarlyStopping(patience)
    best = _BestWeights(stopper.watch)
    n_epochs = np.zeros(len(members), dtype=int)
    result = KerasStackResult(
        weights=[],
        n_epochs=n_epochs,
        best_epoch=stopper.kept_epoch(n_epochs),
        epoch_times=[],
        group=group,
        members=list(members),
    )
    losses, val_losses = [], []
    for epoch in range(int(max_epochs.max())):
        active = stopper.active(epoch, max_epochs)
        if not active.any():
            break
        t0 = time.perf_counter()
        loss = _run_epoch(run, members, epoch, active, bs, shuffle)
        result.epoch_times.append(time.perf_counter() - t0)
        losses.append(np.where(active, loss, np.nan))
        n_epochs[active] += 1
        weights = run.weights()
        if stopper.watch.any():
            val = _evaluate(run.fns, run.train, run.state, run.X, run.Y, members, run.knobs)
            val_losses.append(np.where(active & stopper.watch, val, np.nan))
            best.keep(stopper.update(epoch, val, active), weights)
        if on_epoch_end is not None:
            result.weights = [_unstack(weights, m) for m in range(len(members))]
            result.best_epoch = stopper.kept_epoch(n_epochs)
            result.history = _history(losses, val_losses)
            halt = on_epoch_end(epoch, result)
            if halt is not None:  # members frozen from the next epoch on (e.g. pruned)
                stopper.halt(halt)
    final = best.restore(run.weights())
    result.weights = [_unstack(final, m) for m in range(len(members))]
    result.best_epoch = stopper.kept_epoch(n_epochs)
    result.history = _history(losses, val_losses)
    result.diverged = diverged(result.weights)
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
