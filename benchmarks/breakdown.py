"""Where the headline study's time goes, and its share of the machine's fp32 peak.

    python benchmarks/breakdown.py [--trials 200] [--seed 0]

The headline study: the lecture's MLP (16, 16) on breast cancer, 20 epochs,
batch 32, an Optuna study of l2 and dropout with 5-fold CV and the defaults
(median pruner, held-out split, baselines). One run, timed from the call to
the result, with timers wrapped around the pieces:

- import: ``import tunekit`` and Keras, in a fresh process;
- sampler: Optuna's ``ask``, ``tell`` and parameter draws, less the storage writes
  inside them;
- storage writes: the study storage's ``set_*`` and ``create_new_trial``;
- compilation: the first epoch of each compiled stack structure, less a
  steady epoch of it;
- steady-state training: every other compiled epoch (and the validation
  passes);
- per-epoch scoring: the members' test scores after each epoch (curves,
  pruning) and the recorded fold scores (with refilled slots: each member's
  hand-over, less the telling inside it);
- slot turnover: seating new trials in a running stack's free slots (less the
  scoring, asking and telling inside it);
- held-out refits: the chosen candidates refit and scored on the held-out part;
- baselines;
- other: the rest (strategy, record, result).

Then, in the same run, the machine's fp32 peak (the median of 5 float32
2048 x 2048 matmuls in TensorFlow) and the study's useful FLOP/s: 6 x (a
member's weights) x (its training rows) for every member-epoch trained.
"""

import argparse
import functools
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

SPENT: dict = defaultdict(float)
FIRST: dict = {}
EPOCHS: dict = defaultdict(list)


INSIDE: list = []  # the buckets being timed, outermost first


def timed(owner, name: str, bucket: str) -> None:
    """Wrap ``owner.name`` so that its time adds to ``SPENT[bucket]``.

    Time spent in a timed call inside another one counts for the inner bucket
    only: storage writes inside ``tell`` are storage writes, not sampler time.
    """
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        INSIDE.append(bucket)
        try:
            return inner(*args, **kwargs)
        finally:
            INSIDE.pop()
            seconds = time.perf_counter() - start
            SPENT[bucket] += seconds
            if INSIDE and INSIDE[-1] != bucket:
                SPENT[INSIDE[-1]] -= seconds

    setattr(owner, name, wrapper)


def _import_seconds() -> float:
    code = ("import time; t = time.perf_counter(); import tunekit as tk; tk.KerasClassifier; "
            "import keras; print(time.perf_counter() - t)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _instrument() -> None:
    import optuna

    from tunekit import api
    from tunekit.engine.mlp import trainer
    from tunekit.evaluators.stacked import mlp_run, refill

    timed(optuna.study.Study, "ask", "sampler")
    timed(optuna.study.Study, "tell", "sampler")
    timed(optuna.trial.Trial, "_suggest", "sampler")  # where the sampler draws a parameter
    for storage in (optuna.storages.InMemoryStorage, optuna.storages.RDBStorage):
        for name in dir(storage):
            if name.startswith("set_") or name == "create_new_trial":
                timed(storage, name, "storage writes")
    timed(mlp_run._Chunk, "on_epoch_end", "per-epoch scoring")
    timed(mlp_run._Chunk, "finish_member", "per-epoch scoring")
    timed(refill._RefillChunk, "on_epoch_end", "per-epoch scoring")  # refilled slots
    timed(refill._RefillChunk, "hand_over", "per-epoch scoring")
    timed(trainer._StackRun, "turn_over", "slot turnover")
    timed(api, "_heldout_refits", "held-out refits")
    timed(api, "_baselines", "baselines")
    stack = trainer._StackRun
    epoch = stack.run_single_epoch

    def run_single_epoch(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return epoch(self, *args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            key = (id(self.fns), tuple(np.shape(self.params[0])))  # one trace per shape
            if key not in FIRST:
                FIRST[key] = seconds
            else:
                EPOCHS[key].append(seconds)

    stack.run_single_epoch = run_single_epoch
    timed(stack, "validation_step", "steady-state training")


def _fp32_peak() -> float:
    import tensorflow as tf

    a = tf.random.normal((2048, 2048), dtype=tf.float32)
    b = tf.random.normal((2048, 2048), dtype=tf.float32)
    tf.linalg.matmul(a, b).numpy()  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * 2048**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import_s = _import_seconds()
    import tunekit as tk

    _instrument()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(16, 16), epochs=20, batch_size=32,
                             verbose=0, random_state=args.seed)  # fmt: skip
    space = {"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.5)}
    start = time.perf_counter()
    result = tk.search(est, X, y, space=space, strategy="optuna", n_trials=args.trials, cv=5,
                       random_state=args.seed, verbose=0)  # fmt: skip
    wall = time.perf_counter() - start
    compile_s = steady = 0.0
    for key, first in FIRST.items():
        typical = statistics.median(EPOCHS[key]) if EPOCHS[key] else 0.0
        compile_s += max(first - typical, 0.0)
        steady += typical + sum(EPOCHS[key])
    SPENT["compilation"] = compile_s
    SPENT["steady-state training"] += steady
    parts = ["sampler", "storage writes", "compilation", "steady-state training",
             "per-epoch scoring", "slot turnover", "held-out refits", "baselines"]  # fmt: skip
    SPENT["other"] = wall - sum(SPENT[p] for p in parts)
    n_weights = 30 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    rows = len(result.data_.y_search) * 4 / 5
    member_epochs = int(result.n_epochs_ or 0)
    useful = 6 * n_weights * rows * member_epochs
    peak = _fp32_peak()
    print(
        f"headline study: {args.trials} trials, seed {args.seed}: {wall:.1f} s from the call to "
        f"the result; best CV {result.best_score_:.4f}, held out {result.heldout_score_:.4f}"
    )
    print(f"import (fresh process): {import_s:.1f} s, not in the wall time above\n")
    print("| part | seconds | share of the wall time |")
    print("|---|---|---|")
    for part in [*parts, "other"]:
        print(f"| {part} | {SPENT[part]:.2f} | {SPENT[part] / wall:.0%} |")
    print(
        f"\nstacks compiled: {len(FIRST)}; member-epochs trained: {member_epochs}; "
        f"{n_weights} weights per member, {rows:.0f} training rows per fold"
    )
    print(
        f"useful arithmetic: {useful / 1e9:.2f} GFLOP, {useful / wall / 1e9:.3f} GFLOP/s end to "
        f"end; fp32 peak (median of 5 2048x2048 matmuls): {peak / 1e9:.1f} GFLOP/s; "
        f"share of peak: {useful / wall / peak:.2%}"
    )
    steady_rate = useful / max(SPENT["steady-state training"], 1e-9)
    print(
        f"during the compiled epochs alone: {steady_rate / 1e9:.2f} GFLOP/s, "
        f"{steady_rate / peak:.2%} of peak"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
