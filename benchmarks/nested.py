"""Nested cross-validation on the engine against the user's loop of searches.

    python benchmarks/nested.py [--seeds 0 1 2] [--epochs 15] [--grid 16] [--sklearn-grid 4]
    python benchmarks/nested.py --optuna 40 [--seeds 0 1 2] [--epochs 15]

Breast cancer, the lecture's MLP, a grid of ``--grid`` candidates (l2 x dropout),
or with ``--optuna N`` an Optuna study of N trials over l2 and dropout (the
default pruner and sampler, seeded), 5 outer x 5 inner folds. For each seed,
side by side in one run:

(a) the user's loop: one ``tk.search`` per outer training part (engine
    "auto"), its chosen model scored on the outer test part;
(b) ``tk.search(..., outer_cv=5)``: every outer fold's inner folds of the grid
    trained together; for Optuna, the five studies side by side, each round of
    their batches trained together;
(c) with ``--sklearn-grid N``: (b) on ``engine="sklearn"`` with an N-candidate
    grid, against (b)'s engine run of the same grid.

Prints the wall time of each arm, the speed-up, and the outer scores (mean
over outer folds) of each, with their differences.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

import tunekit as tk

OPTUNA = {"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.5)}


def grid(n: int) -> dict:
    l2 = [1e-5, 1e-4, 1e-3, 1e-2][: max(1, int(np.sqrt(n)))]
    dropout = [0.0, 0.1, 0.2, 0.4][: max(1, n // len(l2))]
    return {"model__l2": l2, "model__dropout": dropout}


def estimator(seed: int, epochs: int):
    return tk.KerasClassifier(tk.builders.mlp, model__hidden=(16, 16), epochs=epochs,
                              batch_size=32, verbose=0, random_state=seed)  # fmt: skip


def _strategy(space) -> dict:
    if isinstance(space, int):  # an Optuna study of that many trials
        return {"space": OPTUNA, "strategy": "optuna", "n_trials": space}
    return {"space": space, "strategy": "grid"}


def user_loop(X, y, space, seed: int, epochs: int) -> list[float]:
    outer = StratifiedKFold(5)
    scores = []
    for train, test in outer.split(X, y):
        result = tk.search(estimator(seed, epochs), X[train], y[train], cv=5, test_size=None,
                           random_state=seed, verbose=0, **_strategy(space))  # fmt: skip
        scores.append(result.best_estimator_.score(X[test], y[test]))
    return scores


def nested(X, y, space, seed: int, epochs: int, engine: str = "auto") -> list[float]:
    result = tk.search(estimator(seed, epochs), X, y, cv=5, outer_cv=5, test_size=None,
                       random_state=seed, engine=engine, verbose=0,
                       **_strategy(space))  # fmt: skip
    return list(result.nested_["outer_score"])


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, float(np.mean(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--sklearn-grid", type=int, default=0)
    parser.add_argument("--optuna", type=int, default=0, help="an Optuna study of N trials")
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    if args.optuna:
        space, what = args.optuna, f"Optuna study of {args.optuna} trials"
    else:
        space = grid(args.grid)
        what = f"{len(space['model__l2']) * len(space['model__dropout'])}-candidate grid"
    print(f"breast cancer, lecture MLP (16, 16), {args.epochs} epochs, {what}, 5 x 5")
    print("| seed | loop s | nested s | speed-up | outer mean, loop | nested | difference |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        loop_s, loop = timed(user_loop, X, y, space, seed, args.epochs)
        nest_s, nest = timed(nested, X, y, space, seed, args.epochs)
        print(f"| {seed} | {loop_s:.1f} | {nest_s:.1f} | {loop_s / nest_s:.2f}x | {loop:.4f} "
              f"| {nest:.4f} | {nest - loop:+.4f} |", flush=True)  # fmt: skip
    if not args.sklearn_grid:
        return
    small = grid(args.sklearn_grid)
    print(f"\nengine against engine='sklearn', {args.sklearn_grid}-candidate grid")
    print("| seed | engine s | sklearn s | outer mean, engine | sklearn | difference |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        eng_s, eng = timed(nested, X, y, small, seed, args.epochs)
        skl_s, skl = timed(nested, X, y, small, seed, args.epochs, engine="sklearn")
        print(f"| {seed} | {eng_s:.1f} | {skl_s:.1f} | {eng:.4f} | {skl:.4f} | {eng - skl:+.4f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
