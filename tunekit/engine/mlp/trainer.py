"""Train many members of one architecture as a single compiled model.

:func:`train_stack` is the engine's core. It keeps one copy of the data on the
device and, for every member, only index arrays (its training rows, its
validation rows). An epoch is one compiled call: a loop over steps in which
every member gathers its own batch (``X[idx[step]]``, shape
``(M, B, features)``), the loss is the sum over members of each member's mean
batch loss plus its penalty, and one optimizer step updates every member
(:mod:`tunekit.engine.optimizers`). Because each member's loss depends only
on its own weights, the gradient of the sum with respect to member ``m``'s
weights is member ``m``'s own gradient, and the element-wise optimizers make
the joint step equal to separate steps.

Early stopping (:class:`~tunekit.engine.early_stopping.EarlyStopping`) runs on
the host between epochs with the semantics of
``keras.callbacks.EarlyStopping(monitor="val_loss", patience=p,
restore_best_weights=True)``, per member: each member has its own best
epoch, best weights and patience counter, and a stopped member is frozen
(its updates are masked) whatever the others do.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from keras import ops

from tunekit.engine._backend import get_backend
from tunekit.engine.early_stopping import EarlyStopping
from tunekit.engine.mlp.network import (
    HEADS,
    RandomStream,
    forward,
    init_member,
    penalty,
    per_row_loss,
)
from tunekit.engine.mlp.sparse_rows import dense_rows, padded_rows, rows_that_fit
from tunekit.engine.optimizers import DEFAULT_LEARNING_RATES, apply_updates, init_state
from tunekit.engine.result import Leaving, Resume, StackResult, diverged, leaving_outcomes
from tunekit.engine.schedule import EpochSchedule

__all__ = ["MemberSpec", "StackConfig", "static_key", "train_stack"]

_RANDOM_KNOBS = ("noise", "activation_noise", "weight_noise", "dropout")
_STEP_STRIDE = 1024  # random-stream counters reserved per step


@dataclass(frozen=True)
class StackConfig:
    """What every member of a stack shares: the compiled model's structure.

    Parameters
    ----------
    n_features : int
        Width of ``X``.
    hidden : tuple of int
        Hidden layer widths (``mlp(hidden=...)``).
    activation : str
        Hidden activation, one of :data:`tunekit.engine.network.ACTIVATIONS`.
    n_outputs : int
        Width of the output layer.
    output_activation : {"sigmoid", "softmax", "linear"}
        The output head; it fixes the loss (binary cross-entropy,
        categorical cross-entropy, mean squared error).
    optimizer : {"rmsprop", "adam", "sgd"}
        Optimizer (Keras's defaults apart from the learning rate).
    batch_size : int
        Rows per member per step.
    shuffle : bool, default=True
        Reshuffle each member's training rows every epoch, as
        ``model.fit(shuffle=True)``; ``False`` keeps their order.
    """

    n_features: int
    hidden: tuple[int, ...]
    activation: str
    n_outputs: int
    output_activation: str
    optimizer: str
    batch_size: int
    shuffle: bool = True

    @property
    def loss(self) -> str:
        """The loss fixed by the output head."""
        return HEADS[self.output_activation]


@dataclass
class MemberSpec:
    """One member: its rows, its epochs and its own knob values.

    Parameters
    ----------
    train_idx : ndarray of int
        Rows of ``X`` the member trains on (its training fold, less its
        validation rows when early stopping).
    val_idx : ndarray of int or None, default=None
        Rows watched by early stopping; required when ``patience`` is set.
    epochs : int, default=1
        Maximum number of epochs.
    patience : int or None, default=None
        Early-stopping patience, or ``None`` for no early stopping.
    learning_rate : float or None, default=None
        ``None`` uses the optimizer's Keras default.
    l1, l2, dropout, noise, activation_noise, weight_noise, label_smoothing : float
        The member's values of :func:`tunekit.builders.mlp`'s knobs.
    seed : int, default=0
        Seed of the member's initial weights.
    stream_seed : int or None, default=None
        Seed of the member's batch order and of its dropout and noise draws;
        ``None`` uses ``seed``. A member's draws come from its own seeds
        alone, so it trains the same way in any stack, at any position.
    initial_weights : list of ndarray or None, default=None
        Start from these weights (``get_weights()`` order) instead of a draw.
    """

    train_idx: np.ndarray
    val_idx: np.ndarray | None = None
    epochs: int = 1
    patience: int | None = None
    learning_rate: float | None = None
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    noise: float = 0.0
    activation_noise: float = 0.0
    weight_noise: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    stream_seed: int | None = None
    initial_weights: list | None = None


def _loss_fns(config: StackConfig, flags: frozenset, use_l1, use_l2, smoothing, backend):
    """Per-member data losses and penalties, as the compiled functions call them."""
    loss_name = config.loss
    activation = config.activation

    def member_losses(params, xb, yb, w, hyper, seed, counter, training):
        logits = forward(
            params,
            xb,
            hyper,
            activation=activation,
            training=training,
            stream=RandomStream(backend, seed, counter),
            flags=flags,
        )
        ls = hyper["label_smoothing"] if smoothing else None
        rows = per_row_loss(yb, logits, loss_name, ls)
        return ops.sum(rows * w, axis=1)

    def reg(params, hyper):
        pen = penalty(params, hyper["l1"], hyper["l2"], use_l1=use_l1, use_l2=use_l2)
        return pen

    return member_losses, reg


def _epoch_fn(config: StackConfig, backend, member_losses, reg):
    """An epoch: a loop over steps, each one optimizer step for every active member."""

    def epoch(params, state, X, Y, hyper, schedule: EpochSchedule):
        idx, valid, active, seed = schedule

        def body(i, carry):
            params, state, loss_sum, n_sum = carry
            rows = ops.take(idx, i, axis=0)
            w = ops.take(valid, i, axis=0)
            xb = dense_rows(X, rows, config.n_features)
            yb = ops.take(Y, rows, axis=0)
            n = ops.sum(w, axis=1)

            def objective(p):
                data = member_losses(p, xb, yb, w, hyper, seed, i * _STEP_STRIDE, True)
                member = data / ops.maximum(n, 1.0)
                pen = reg(p, hyper)
                if pen is not None:
                    member = member + pen
                return ops.sum(member), member

            _, member, grads = backend.value_and_grad(objective, params)
            mask = ops.logical_and(active, n > 0)
            params, state = apply_updates(
                config.optimizer, params, grads, state, hyper["learning_rate"], mask
            )
            loss_sum = loss_sum + ops.where(mask, member * n, 0.0)
            n_sum = n_sum + ops.where(mask, n, 0.0)
            return params, state, loss_sum, n_sum

        zeros = ops.zeros_like(ops.cast(active, "float32"))  # (M,): M may be unknown here
        return ops.fori_loop(0, ops.shape(idx)[0], body, (params, state, zeros, zeros))

    return epoch


def _select(mask, new, old):
    """``new`` where ``mask`` (per member), ``old`` elsewhere."""
    return [
        ops.where(ops.reshape(mask, (-1,) + (1,) * (len(a.shape) - 1)), a, b)
        for a, b in zip(new, old, strict=True)
    ]


class _Compiled:
    """The compiled functions of one stack structure (traced once, reused)."""

    def __init__(self, config: StackConfig, flags: frozenset, use_l1, use_l2, smoothing):
        self.backend = backend = get_backend()
        member_losses, reg = _loss_fns(config, flags, use_l1, use_l2, smoothing, backend)

        def evaluate(params, X, Y, idx, valid, hyper):
            xb = dense_rows(X, idx, config.n_features)
            yb = ops.take(Y, idx, axis=0)
            zero = ops.zeros((), dtype="int32")
            total = member_losses(params, xb, yb, valid, hyper, zero, zero, False)
            pen = reg(params, hyper)
            if pen is None:
                pen = ops.zeros_like(total)
            return total, pen

        self.epoch = backend.compile(_epoch_fn(config, backend, member_losses, reg))
        self.evaluate = backend.compile(evaluate)
        self.select = backend.compile(_select)


_COMPILED: dict = {}


def _compiled(config, flags, use_l1, use_l2, smoothing) -> _Compiled:
    # the batch size and the row order are not part of the compiled functions
    config = dataclasses.replace(config, batch_size=0, shuffle=True)
    key = (get_backend().name, config, flags, use_l1, use_l2, smoothing)
    if key not in _COMPILED:
        if len(_COMPILED) > 32:
            _COMPILED.clear()
        _COMPILED[key] = _Compiled(config, flags, use_l1, use_l2, smoothing)
    return _COMPILED[key]


def _pad_rows(rows: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack index arrays into ``(M, length)`` with a 0/1 validity mask."""
    idx = np.zeros((len(rows), length), dtype="int32")
    valid = np.zeros((len(rows), length), dtype="float32")
    for m, r in enumerate(rows):
        idx[m, : len(r)] = r
        valid[m, : len(r)] = 1.0
    return idx, valid


def _check_members(config: StackConfig, members: Sequence[MemberSpec], n_rows: int):
    if not members:
        raise ValueError("train_stack needs at least one member, got an empty list")
    for m, spec in enumerate(members):
        if len(spec.train_idx) == 0:
            raise ValueError(f"member {m} has no training rows")
        if spec.patience is not None and (spec.val_idx is None or len(spec.val_idx) == 0):
            raise ValueError(
                f"member {m} has patience={spec.patience} but no validation rows; "
                "early stopping needs val_idx (rows carved from its training fold)"
            )
        for rows in (spec.train_idx, spec.val_idx):
            if rows is not None and len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
                raise ValueError(f"member {m} has row indices outside [0, {n_rows})")
        if int(spec.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got epochs={spec.epochs} for member {m}")


def train_stack(
    config: StackConfig,
    members: Sequence[MemberSpec],
    X: np.ndarray,
    Y: np.ndarray,
    *,
    random_state: int | None = None,
    eval_batch_size: int = 2048,
    verbose: int = 0,
    on_epoch_end: Callable[[int, list, np.ndarray], None] | None = None,
    turnover: Callable[[int, dict], dict] | None = None,
    on_compact: Callable[[np.ndarray], None] | None = None,
) -> StackResult:
    """Train ``members`` side by side as one stacked model.

    Parameters
    ----------
    config : StackConfig
        The structure every member shares.
    members : sequence of MemberSpec
        One entry per member (e.g. per candidate and fold).
    X : ndarray of shape (n_samples, n_features)
        The whole data set, once; members address it by index.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets in the loss's encoding: 0/1 for a sigmoid head, one-hot for
        softmax, values for linear.
    random_state : int or None, default=None
        Mixed into every member's stream seed (batch order, dropout and
        noise); ``None`` leaves the members' own seeds alone. Initial
        weights come from each member's ``seed``.
    eval_batch_size : int, default=2048
        Validation rows per member per evaluation call (bounds memory).
    verbose : int, default=0
        Print one line per epoch when > 0.
    on_epoch_end : callable or None, default=None
        ``on_epoch_end(epoch, params, active)`` after every epoch: the
        1-based epoch, the stacked weights as NumPy arrays (member axis
        first, before any early-stopping restore) and the mask of members
        that trained in it. Used to score members along the way. It may
        return the indices of members to freeze (e.g. pruned trials): they
        train no further and keep their current weights.
    turnover : callable or None, default=None
        Refilled slots. ``turnover(epoch, outcomes)`` after every epoch in
        which members left (out of epochs, early-stopped or frozen):
        ``outcomes`` maps each leaving member's slot to its
        :class:`~tunekit.engine.result.MemberOutcome`, and the call returns
        ``{slot: MemberSpec}`` for the members that take those slots now, or
        ``{slot: Resume(epochs)}`` for a member that goes on training from
        where it is (:class:`~tunekit.engine.result.Resume`). A new member
        starts from its own initial weights, zero optimizer slots
        and its own step counter, seeds and epoch count, so it trains as it
        would in a stack of its own; it must have the stack's static key
        (:func:`static_key`) and at most the stack's training rows. The stack
        runs until no slot is taken. Every member, the first ones included,
        leaves through ``turnover``; the returned result then holds the
        timings only.
    on_compact : callable or None, default=None
        With ``turnover``: once a turnover leaves at most half of the slots
        taken, the stack is made smaller (the taken slots only, in order; a
        new compiled shape) and ``on_compact(keep)`` is told which old slots
        the new ones are. ``None`` keeps the stack's size (empty slots are
        masked; a refill soon takes them).

    Returns
    -------
    result : StackResult
    """
    start = time.perf_counter()
    X, Y = _check_data(config, X, Y)
    _check_members(config, members, X.shape[0])
    run = _StackRun(config, members, X, Y, random_state, eval_batch_size)
    run.on_compact = on_compact
    run.fit_loop(verbose, on_epoch_end, turnover)
    return run.result(start)


def _check_data(config: StackConfig, X, Y) -> tuple[np.ndarray, np.ndarray]:
    if sp.issparse(X):  # a scipy sparse X: densified a batch at a time (sparse_rows)
        X = sp.csr_matrix(X, dtype="float32")
    else:
        X = np.ascontiguousarray(X, dtype="float32")
    Y = np.ascontiguousarray(Y, dtype="float32")
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or X.shape[1] != config.n_features:
        raise ValueError(f"X must have shape (n_samples, {config.n_features}), got {X.shape}")
    if Y.shape != (X.shape[0], config.n_outputs):
        raise ValueError(f"Y must have shape ({X.shape[0]}, {config.n_outputs}), got {Y.shape}")
    return X, Y


def _knobs(config: StackConfig, members: Sequence[MemberSpec]) -> dict[str, np.ndarray]:
    """Per-member knobs as ``(M,)`` arrays."""
    knob = {
        name: np.array([float(getattr(s, name)) for s in members], dtype="float32")
        for name in ("l1", "l2", "label_smoothing", *_RANDOM_KNOBS)
    }
    lr_default = DEFAULT_LEARNING_RATES[config.optimizer]
    knob["learning_rate"] = np.array(
        [lr_default if s.learning_rate is None else float(s.learning_rate) for s in members],
        dtype="float32",
    )
    return knob


def static_key(members: Sequence[MemberSpec]) -> tuple:
    """What a stack compiles in from its members' knobs: which draws and penalties exist.

    A member joins a running stack only with the stack's key: a random
    knob's draws, or a penalty's term, that the compiled step lacks (or has
    and the member lacks) would change how the member trains.
    """
    knob = {
        name: np.array([float(getattr(s, name)) for s in members])
        for name in ("l1", "l2", "label_smoothing", *_RANDOM_KNOBS)
    }
    flags = frozenset(k for k in _RANDOM_KNOBS if np.any(knob[k] > 0))
    return (
        flags,
        bool(np.any(knob["l1"] > 0)),
        bool(np.any(knob["l2"] > 0)),
        bool(np.any(knob["label_smoothing"] > 0)),
    )


def _member_weights(config: StackConfig, spec: MemberSpec) -> list:
    """One member's initial weights: its own, or a draw from its ``seed``."""
    if spec.initial_weights is not None:
        return [np.asarray(w, dtype="float32") for w in spec.initial_weights]
    member_rng = np.random.default_rng(spec.seed)
    return init_member(member_rng, config.n_features, config.hidden, config.n_outputs)


def _stream(spec: MemberSpec, random_state) -> np.random.Generator:
    """A member's generator of batch orders and step seeds."""
    return np.random.default_rng(
        [spec.seed if spec.stream_seed is None else spec.stream_seed]
        + ([] if random_state is None else [int(random_state)])
    )


def _initial_params(config: StackConfig, members: Sequence[MemberSpec]) -> list:
    """Every member's initial weights, stacked along the member axis."""
    per_member = [_member_weights(config, spec) for spec in members]
    return [ops.convert_to_tensor(np.stack(ws)) for ws in zip(*per_member, strict=True)]


def _validation_chunks(members: Sequence[MemberSpec], eval_batch_size: int):
    """The watched members' validation rows as ``(M, chunk)`` tensors, and their counts."""
    val_rows = [
        np.asarray(s.val_idx if s.patience is not None else [], dtype="int64") for s in members
    ]
    n_val = np.array([len(r) for r in val_rows], dtype="float64")
    chunk = max(1, min(int(eval_batch_size), int(n_val.max())))
    n_chunks = math.ceil(int(n_val.max()) / chunk)
    v_idx, v_valid = _pad_rows(val_rows, n_chunks * chunk)
    chunks = [
        (
            ops.convert_to_tensor(v_idx[:, c * chunk : (c + 1) * chunk]),
            ops.convert_to_tensor(v_valid[:, c * chunk : (c + 1) * chunk]),
        )
        for c in range(n_chunks)
    ]
    return chunks, n_val


class _StackRun:
    """One stack's training state between epochs: weights, optimizer, streams, stopping.

    :meth:`fit_loop` runs the epochs; each is :meth:`run_single_epoch` (one
    compiled call whose steps update every active member) followed by
    :meth:`validation_step` (early stopping on the host, best weights kept on
    the device).
    """

    def __init__(self, config, members, X, Y, random_state, eval_batch_size):
        self.config = config
        self.members = list(members)
        self.n_members = len(members)
        self.random_state = random_state
        self.eval_batch_size = eval_batch_size
        self.streams = [_stream(s, random_state) for s in members]
        # Per-member knobs as (M,) tensors; static flags drop unused layers.
        self.key = static_key(members)
        self.fns = _compiled(config, *self.key)
        self.hyper = {k: ops.convert_to_tensor(v) for k, v in _knobs(config, members).items()}
        self.params = _initial_params(config, members)
        self.state = init_state(config.optimizer, self.params)
        self.X = padded_rows(X) if sp.issparse(X) else ops.convert_to_tensor(X)
        self.Y = ops.convert_to_tensor(Y)
        self.train_rows = [np.asarray(s.train_idx, dtype="int64") for s in members]
        n_train = np.array([len(r) for r in self.train_rows])
        self.n_steps = math.ceil(int(n_train.max()) / int(config.batch_size))
        # rows per member and step: a batch larger than every member's rows is all of them
        # in one step, as in Keras, so stacks of every such batch size share one shape
        self.width = min(int(config.batch_size), int(n_train.max()))
        self.max_epochs = np.array([int(s.epochs) for s in members])
        self.stopper = EarlyStopping([s.patience for s in members])
        self.sparse, self.n_rows = sp.issparse(X), X.shape[0]
        self.best_params = list(self.params)
        if self.stopper.watch.any():
            self._watch_validation()
        self.trained = np.zeros(self.n_members, dtype=int)
        self.started = np.zeros(self.n_members, dtype=int)  # stack epochs run when each joined
        self.taken = np.ones(self.n_members, dtype=bool)  # slots with a member
        self.on_compact = None  # see train_stack
        self.hist_loss, self.hist_val, self.epoch_times = [], [], []

    def _watch_validation(self) -> None:
        """The watched members' validation rows, chunked for the evaluation calls."""
        size = self.eval_batch_size
        if self.sparse:  # each chunk is densified: it must fit the cap
            size = rows_that_fit(self.n_members, self.config.n_features, size)
        self.val_chunks, self.n_val = _validation_chunks(self.members, size)

    def active(self) -> np.ndarray:
        """Members that train in the next epoch: in a slot, not stopped, epochs left."""
        return self.taken & ~self.stopper.stopped & (self.trained < self.max_epochs)

    def fit_loop(self, verbose: int, on_epoch_end, turnover=None) -> None:
        """Train until every member is out of epochs or stopped (and no slot is refilled)."""
        stopper = self.stopper
        epoch = 0
        while True:
            active = self.active()
            if not active.any():
                break
            self.run_single_epoch(epoch, active)
            if stopper.watch.any():
                self.validation_step(epoch, active)
            if on_epoch_end is not None:
                params = [ops.convert_to_numpy(p) for p in self.params]
                halt = on_epoch_end(epoch + 1, params, active)
                if halt is not None:  # members frozen from the next epoch on (e.g. pruned)
                    stopper.halt(halt)
            if turnover is not None:
                self.turn_over(epoch + 1, turnover)
            epoch += 1
            if verbose > 0:
                msg = f"epoch {epoch}: {int(active.sum())}/{self.n_members} members training"
                if stopper.watch.any():
                    msg += f", {int(stopper.stopped.sum())} stopped"
                print(msg, flush=True)

    def _batches(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's row order ``(steps, M, batch)``, its validity mask and step seeds."""
        batch, n_members, n_steps = self.width, self.n_members, self.n_steps
        idx = np.zeros((n_members, n_steps * batch), dtype="int32")
        valid = np.zeros((n_members, n_steps * batch), dtype="float32")
        for m, rows in enumerate(self.train_rows):
            order = self.streams[m].permutation(rows) if self.config.shuffle else rows
            idx[m, : len(rows)] = order
            valid[m, : len(rows)] = 1.0
        idx = idx.reshape(n_members, n_steps, batch).transpose(1, 0, 2)
        valid = valid.reshape(n_members, n_steps, batch).transpose(1, 0, 2)
        seed = np.array([r.integers(0, 2**31 - 1) for r in self.streams], dtype="int32")
        return idx, valid, seed

    def run_single_epoch(self, epoch: int, active: np.ndarray) -> None:
        """One compiled call: every step of the epoch for every active member."""
        idx, valid, seed = self._batches()
        tick = time.perf_counter()
        schedule = EpochSchedule(
            ops.convert_to_tensor(np.ascontiguousarray(idx)),
            ops.convert_to_tensor(np.ascontiguousarray(valid)),
            ops.convert_to_tensor(active),
            ops.convert_to_tensor(seed),
        )
        self.params, self.state, loss_sum, n_sum = self.fns.epoch(
            self.params, self.state, self.X, self.Y, self.hyper, schedule
        )
        self.trained += active
        loss_sum, n_sum = ops.convert_to_numpy(loss_sum), ops.convert_to_numpy(n_sum)
        self.epoch_times.append(time.perf_counter() - tick)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.hist_loss.append(np.where(active, loss_sum / n_sum, np.nan))

    def validation_step(self, epoch: int, active: np.ndarray) -> None:
        """The watched members' validation loss, early stopping and best weights."""
        total = np.zeros(self.n_members)
        for c_idx, c_valid in self.val_chunks:
            part, pen = self.fns.evaluate(self.params, self.X, self.Y, c_idx, c_valid, self.hyper)
            total += ops.convert_to_numpy(part)
        pen = ops.convert_to_numpy(pen)
        with np.errstate(invalid="ignore", divide="ignore"):
            val_loss = total / self.n_val + pen
        val_loss = np.where(self.stopper.watch & active, val_loss, np.nan)
        self.hist_val.append(val_loss)
        improved = self.stopper.update(self.trained - 1, val_loss, active)
        if improved.any():
            self.best_params = self.fns.select(
                ops.convert_to_tensor(improved), self.params, self.best_params
            )

    def turn_over(self, epoch: int, turnover) -> None:
        """Hand over the members that leave after ``epoch``; seat the ones that take their slots."""
        leaving = np.flatnonzero(self.taken & ~self.active())
        if not len(leaving):
            return
        current = [ops.convert_to_numpy(p) for p in self.params]
        watch = self.stopper.watch
        best = [ops.convert_to_numpy(p) for p in self.best_params] if watch.any() else current
        outcomes = Leaving(leaving_outcomes(
            leaving.tolist(), lambda m: [np.array(p[m]) for p in (best if watch[m] else current)],
            self.trained, self.started, self.stopper.kept_epoch(self.trained), self.hist_loss,
            self.hist_val, watch,
        ))  # fmt: skip
        self.taken[leaving] = False
        seated = turnover(epoch, outcomes) or {}
        for m, epochs in [(m, r.epochs) for m, r in seated.items() if isinstance(r, Resume)]:
            if m not in outcomes or self.stopper.stopped[m] or epochs <= self.trained[m]:
                raise ValueError(
                    f"slot {m} cannot resume to {epochs} epochs: only a member that has just "
                    f"left with fewer epochs ({self.trained[m]}) and was not stopped trains on"
                )
            self.max_epochs[m], self.taken[m] = epochs, True
        fresh = {m: spec for m, spec in seated.items() if not isinstance(spec, Resume)}
        if fresh:
            self.seat(epoch, fresh, current)
        if self.on_compact is not None and 0 < self.taken.sum() <= self.n_members // 2:
            keep = np.flatnonzero(self.taken)
            self.compact(keep)
            self.on_compact(keep)

    def compact(self, keep: np.ndarray) -> None:
        """Keep the slots at ``keep`` only: a smaller stack, every member's state carried."""
        index = ops.convert_to_tensor(keep.astype("int32"))
        take = lambda tensors: [ops.take(p, index, axis=0) for p in tensors]  # noqa: E731
        self.params, self.best_params = take(self.params), take(self.best_params)
        self.state = {
            "step": ops.take(self.state["step"], index, axis=0),
            "slots": [take(kind) for kind in self.state["slots"]],
        }
        self.members = [self.members[m] for m in keep]
        self.streams = [self.streams[m] for m in keep]
        self.train_rows = [self.train_rows[m] for m in keep]
        self.n_members = len(keep)
        for name in ("max_epochs", "trained", "started", "taken"):
            setattr(self, name, getattr(self, name)[keep])
        self.stopper.select(keep)
        self.hist_loss = [row[keep] for row in self.hist_loss]
        self.hist_val = [row[keep] for row in self.hist_val]
        self.hyper = {
            k: ops.convert_to_tensor(v) for k, v in _knobs(self.config, self.members).items()
        }
        if self.stopper.watch.any():
            self._watch_validation()

    def seat(self, epoch: int, seated: dict, current: list) -> None:
        """Put new members in slots: fresh weights, zero optimizer slots, their own counters."""
        for m, spec in seated.items():
            if self.taken[m]:
                raise ValueError(f"slot {m} is taken; only a slot that was handed over is refilled")
            if static_key([spec]) != self.key:
                raise ValueError(
                    f"the member for slot {m} has other random knobs or penalties than the "
                    f"stack ({static_key([spec])} against {self.key})"
                )
            if math.ceil(len(spec.train_idx) / self.config.batch_size) > self.n_steps:
                raise ValueError(f"the member for slot {m} has more training rows than the stack")
        _check_members(self.config, list(seated.values()), self.n_rows)
        state = {
            "step": ops.convert_to_numpy(self.state["step"]).copy(),
            "slots": [[ops.convert_to_numpy(p).copy() for p in k] for k in self.state["slots"]],
        }
        for m, spec in seated.items():
            self.members[m] = spec
            for p, w in zip(current, _member_weights(self.config, spec), strict=True):
                p[m] = w
            state["step"][m] = 0.0
            for kind in state["slots"]:
                for p in kind:
                    p[m] = 0.0
            self.streams[m] = _stream(spec, self.random_state)
            self.train_rows[m] = np.asarray(spec.train_idx, dtype="int64")
            self.max_epochs[m] = int(spec.epochs)
            self.stopper.reset(m, spec.patience)
            self.trained[m], self.started[m], self.taken[m] = 0, epoch, True
            self.width = max(self.width, min(int(self.config.batch_size), len(spec.train_idx)))
        self.params = [ops.convert_to_tensor(p) for p in current]
        self.state = {
            "step": ops.convert_to_tensor(state["step"]),
            "slots": [[ops.convert_to_tensor(p) for p in kind] for kind in state["slots"]],
        }
        self.hyper = {
            k: ops.convert_to_tensor(v) for k, v in _knobs(self.config, self.members).items()
        }
        if self.stopper.watch.any():
            self._watch_validation()
            missing = len(self.hist_loss) - len(self.hist_val)  # epochs before any was watched
            self.hist_val.extend([np.full(self.n_members, np.nan)] * missing)
            fresh = np.isin(np.arange(self.n_members), list(seated))
            self.best_params = self.fns.select(
                ops.convert_to_tensor(fresh), self.params, self.best_params
            )

    def result(self, start: float) -> StackResult:
        """The members' kept weights, epochs and history (``start``: the wall clock's start)."""
        watch = self.stopper.watch
        params = self.params
        if watch.any():
            params = self.fns.select(ops.convert_to_tensor(watch), self.best_params, params)
        stacked = [ops.convert_to_numpy(p) for p in params]
        weights = [[np.array(p[m]) for p in stacked] for m in range(self.n_members)]
        history = {"loss": np.array(self.hist_loss)}
        if watch.any():
            history["val_loss"] = np.array(self.hist_val)
        return StackResult(
            weights=weights,
            n_epochs=self.trained,
            best_epoch=self.stopper.kept_epoch(self.trained),
            history=history,
            diverged=diverged(weights),
            fit_time=time.perf_counter() - start,
            epoch_times=np.array(self.epoch_times),
        )
