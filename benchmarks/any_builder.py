"""Any Keras builder on the stacked path, against GridSearchCV, side by side in one run.

Two user-style builders (not :func:`tunekit.builders.mlp`), 8 candidates x 5 folds each:

- (a) ``conv1d_net``: Conv1D-BatchNormalization-pooling-Conv1D-Dropout-Dense on a
  synthetic 1-D signal task (3 wave shapes in noise, 64 steps);
- (b) ``conv2d_net``: Conv2D-pooling-Dropout-Dense on ``load_digits`` as 8x8x1 images.

Arms, per task and seed:

- standard: ``sklearn.model_selection.GridSearchCV`` over ``tunekit.KerasClassifier``
  (one Keras fit per candidate and fold);
- stacked: :func:`tunekit.engine.keras_stack.probe` + ``train_group`` +
  ``member_estimator`` scored by the same scorer on the same folds.

Run::

    python benchmarks/any_builder.py                  # 3 seeds, both tasks
    python benchmarks/any_builder.py --seeds 1 --tasks a

It prints one table row per (task, arm, seed): wall time, mean CV accuracy over the
candidates, the best candidate's, peak RSS growth, and for the stacked arm the
probe / first-epoch (tracing + XLA compilation) / steady-epoch / scoring split.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import psutil
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import get_scorer
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold

import tunekit as tk
from tunekit.engine import keras_stack as ks


def conv1d_net(input_shape, filters=8, dropout=0.0, l2=0.0, output_units=1,
               output_activation="sigmoid"):
    """A user-style 1-D convolutional classifier."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu",
                            kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(filters, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def conv2d_net(input_shape, filters=8, dropout=0.0, l2=0.0, output_units=10,
               output_activation="softmax"):
    """A user-style 2-D convolutional classifier for 8x8 digits."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                            kernel_regularizer=keras.regularizers.L2(l2))(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def signals(n=1000, length=64, seed=0, noise=0.8):
    """Sine, square and sawtooth waves of random frequency and phase, in noise."""
    rng = np.random.RandomState(seed)
    t = np.linspace(0, 1, length)
    y = rng.randint(0, 3, size=n)
    freq = rng.uniform(2, 6, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    arg = 2 * np.pi * freq * t + phase
    waves = [np.sin(arg), np.sign(np.sin(arg)), 2 * ((arg / (2 * np.pi)) % 1) - 1]
    X = np.choose(y[:, None], waves) + rng.normal(scale=noise, size=(n, length))
    return X[..., None].astype("float32"), y


def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).reshape(-1, 8, 8, 1).astype("float32"), y


GRID = {
    "model__dropout": [0.0, 0.3],
    "model__l2": [0.0, 1e-3],
    "optimizer__learning_rate": [1e-3, 3e-3],
}
TASKS = {
    "a": ("Conv1D, 1-D signals (1000 x 64 x 1, 3 classes)", conv1d_net, signals),
    "b": ("Conv2D, load_digits as 8x8x1 (1797, 10 classes)", conv2d_net, digits),
}


def _rss() -> float:
    return psutil.Process().memory_info().rss / 2**20


class _PeakRSS:
    """Peak resident memory growth (MiB) sampled around a block."""

    def __enter__(self):
        self.start = self.peak = _rss()
        return self

    def sample(self):
        self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self.sample()
        self.growth = self.peak - self.start


def run_standard(estimator, X, y, cv, seed):
    est = estimator.set_params(random_state=seed)
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        search = GridSearchCV(est, GRID, cv=cv, scoring="accuracy", refit=False).fit(X, y)
        wall = time.perf_counter() - t0
    scores = search.cv_results_["mean_test_score"]
    return {"wall": wall, "scores": scores, "rss": mem.growth}


def _member_seed(base: int, c: int, s: int) -> int:
    return int(np.random.SeedSequence([base, c, s]).generate_state(1)[0] >> 1)


def standard_initial_weights(estimator, X, y, seed):
    """The initial weights the standard path's fits start from with ``random_state=seed``."""
    est = clone(estimator).set_params(random_state=seed)
    est.initialize(X, y)
    return est.model_.get_weights()


def run_stacked(estimator, X, y, cv, seed, matched_init=False):
    """What a search does on the stacked path: probe, train each stack, score members.

    With ``matched_init``, every member starts from the initial weights the
    standard path uses for ``random_state=seed`` (one draw shared by all its
    fits), so that both arms differ only in batch order and dropout draws.
    """
    candidates = list(ParameterGrid(GRID))
    init = standard_initial_weights(estimator, X, y, seed) if matched_init else None
    splits = list(cv.split(X, y))
    scorer = get_scorer("accuracy")
    scores = np.zeros((len(candidates), len(splits)))
    split = {"probe": 0.0, "first_epoch": 0.0, "epochs": 0.0, "score": 0.0, "host": 0.0}
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        groups = ks.probe(estimator, candidates, X, y)
        split["probe"] = time.perf_counter() - t0
        ks.require_stackable(groups, candidates)
        n_members = 0
        for group in groups:
            where = [(c, s) for c in group.indices for s in range(len(splits))]
            members = [
                ks.KerasMember(c, splits[s][0], seed=_member_seed(seed, c, s), initial_weights=init)
                for c, s in where
            ]
            result = ks.train_group(group, members, X, y, on_epoch_end=lambda e, r: mem.sample())
            n_members += len(members)
            split["first_epoch"] += result.epoch_times[0]
            split["epochs"] += sum(result.epoch_times[1:])
            split["host"] += result.fit_time - sum(result.epoch_times)
            t1 = time.perf_counter()
            for m, (c, s) in enumerate(where):
                test = splits[s][1]
                scores[c, s] = scorer(ks.member_estimator(result, m), X[test], y[test])
            split["score"] += time.perf_counter() - t1
        wall = time.perf_counter() - t0
    n_weights = sum(int(np.prod(s[2])) for s in groups[0]._plan.weight_slots)
    return {
        "wall": wall,
        "scores": scores.mean(axis=1),
        "rss": mem.growth,
        "split": split,
        "members": n_members,
        "weights": n_weights,
    }


def member_bytes(n_weights: int, n_train: int, optimizer_slots: int = 1) -> int:
    """Device bytes per member: weights, gradients, slots (float32), batch indices and mask."""
    return 4 * n_weights * (2 + optimizer_slots) + 8 * n_train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="a,b")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--stacked-only", action="store_true",
                        help="skip the standard arm (scores only, no ratio)")
    parser.add_argument("--matched-init", action="store_true",
                        help="stacked members start from the standard arm's initial weights")
    args = parser.parse_args(argv)
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    header = ("| task | arm | seed | wall (s) | ratio | mean CV acc | best CV acc | "
              "peak RSS growth (MiB) |")
    print(header)
    print("|" + "---|" * 8)
    summary = {}
    for key in args.tasks.split(","):
        title, builder, data = TASKS[key]
        X, y = data()
        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        est = tk.KerasClassifier(builder, epochs=args.epochs, batch_size=32)
        rows = []
        for seed in range(args.seeds):
            std = (run_standard(est, X, y, cv, seed) if not args.stacked_only
                   else {"wall": float("nan"), "scores": np.full(len(ParameterGrid(GRID)), np.nan),
                         "rss": float("nan")})
            stk = run_stacked(est, X, y, cv, seed, matched_init=args.matched_init)
            ratio = std["wall"] / stk["wall"]
            rows.append((std, stk, ratio))
            for arm, r in (("standard", std), ("stacked", stk)):
                print(f"| {key} | {arm} | {seed} | {r['wall']:.1f} | "
                      f"{ratio if arm == 'stacked' else 1.0:.1f}x | {r['scores'].mean():.4f} | "
                      f"{r['scores'].max():.4f} | {r['rss']:.0f} |", flush=True)
            sp = stk["split"]
            n_train = int(len(X) * 0.8)
            print(f"|   | stacked split | {seed} | probe {sp['probe']:.1f}, first epoch "
                  f"{sp['first_epoch']:.1f}, other epochs {sp['epochs']:.1f}, host "
                  f"{sp['host']:.1f}, scoring {sp['score']:.1f} | {stk['members']} members, "
                  f"{stk['weights']} weights, {member_bytes(stk['weights'], n_train)} B/member "
                  "| | | |", flush=True)
        summary[key] = (title, rows)
    print()
    for key, (title, rows) in summary.items():
        std_means = np.array([r[0]["scores"].mean() for r in rows])
        stk_means = np.array([r[1]["scores"].mean() for r in rows])
        std_wall = sum(r[0]["wall"] for r in rows)
        stk_wall = sum(r[1]["wall"] for r in rows)
        print(f"({key}) {title}: standard {std_wall:.1f} s, stacked {stk_wall:.1f} s, "
              f"ratio {std_wall / stk_wall:.1f}x; mean CV accuracy standard "
              f"{std_means.min():.4f}..{std_means.max():.4f}, stacked "
              f"{stk_means.min():.4f}..{stk_means.max():.4f}")
        per_cand_std = np.array([r[0]["scores"] for r in rows])
        per_cand_stk = np.array([r[1]["scores"] for r in rows])
        print("    per candidate (mean over seeds): standard "
              + " ".join(f"{v:.3f}" for v in per_cand_std.mean(0))
              + " | stacked " + " ".join(f"{v:.3f}" for v in per_cand_stk.mean(0)))


if __name__ == "__main__":
    main()
