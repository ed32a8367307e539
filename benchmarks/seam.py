"""Pipelines and epoch grids on the stacked engine vs the standard path, in one run.

(a) The README quickstart's pipeline (``StandardScaler`` + ``KerasClassifier``,
    ``mlp(hidden=(16, 16))``, 20 epochs, batch 64), ``strategy="random"`` with
    20 candidates over L2, dropout and batch size, 5-fold, breast cancer;
    ``engine="auto"`` (the engine) vs ``engine="sklearn"``, for each seed
    (the estimator's ``random_state`` and the search's): wall time, best CV
    score and held-out score of both arms.
(b) A grid over ``epochs`` in {5, 10, 20, 40} x 4 dropout values against the
    grid over {40} x 4 dropout values, on both engines: fits / member-epochs
    trained (``n_fits_`` / ``n_epochs_``) and the wall-time ratio of the larger
    grid to the smaller one.

Usage::

    python benchmarks/seam.py                 # 3 seeds
    python benchmarks/seam.py --quick         # a smoke run: 1 seed, small sizes
    python benchmarks/seam.py --write-docs    # also replace the section in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Pipelines and epoch grids on the engine"


def quickstart(seed: int, quick: bool):
    """The README quickstart's pipeline, space and data (shared with optuna_engine.py)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk

    X, y = load_breast_cancer(return_X_y=True)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(16, 16), model__l2=0.002, optimizer="rmsprop",
        epochs=5 if quick else 20, batch_size=64, random_state=seed, verbose=0,
    )
    space = tk.Space(
        {
            "model__l2": tk.Float(1e-5, 1e-1, log=True),
            "model__dropout": tk.Float(0.0, 0.5),
            "batch_size": tk.Choice([32, 64, 128]),
        }
    ).prefixed("kerasclassifier__")
    return make_pipeline(StandardScaler(), clf), space, X, y


def _quickstart(seed: int, engine: str, quick: bool):
    import tunekit as tk

    pipe, space, X, y = quickstart(seed, quick)
    start = time.perf_counter()
    result = tk.search(
        pipe, X, y, space=space, strategy="random", n_trials=4 if quick else 20, cv=5,
        engine=engine, random_state=seed, verbose=0, baselines=False,
    )
    return {
        "wall": time.perf_counter() - start,
        "cv": float(result.best_score_),
        "heldout": float(result.heldout_score_),
        "engine": result.engine_,
    }


def _epoch_grid(epochs: list[int], engine: str, quick: bool):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(16, 16), batch_size=64, random_state=0, verbose=0
    )
    grid = {"epochs": epochs, "model__dropout": [0.0, 0.1, 0.2, 0.3]}
    start = time.perf_counter()
    result = tk.search(
        clf, X, y, space=grid, strategy="grid", cv=3 if quick else 5, engine=engine,
        test_size=None, verbose=0, baselines=False,
    )
    return {
        "wall": time.perf_counter() - start,
        "fits": result.n_fits_ - 1,
        "epochs": result.n_epochs_,
        "best": float(result.best_score_),
        "engine": result.engine_,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--skip", choices=["a", "b"], action="append", default=[])
    args = parser.parse_args(argv)
    seeds = range(1 if args.quick else args.seeds)
    lines = []
    if "a" not in args.skip:
        lines += [
            "(a) quickstart pipeline, random search, 20 candidates x 5 folds:",
            "",
            "| seed | engine s | standard s | ratio | best CV engine / standard | "
            "held-out engine / standard |",
            "|---|---|---|---|---|---|",
        ]
        for seed in seeds:
            fast = _quickstart(seed, "auto", args.quick)
            slow = _quickstart(seed, "sklearn", args.quick)
            lines.append(
                f"| {seed} | {fast['wall']:.1f} ({fast['engine']}) | {slow['wall']:.1f} | "
                f"{slow['wall'] / fast['wall']:.1f}x | {fast['cv']:.4f} / {slow['cv']:.4f} | "
                f"{fast['heldout']:.4f} / {slow['heldout']:.4f} |"
            )
            print(lines[-1], flush=True)
    if "b" not in args.skip:
        lines += [
            "",
            "(b) epochs {5, 10, 20, 40} x 4 dropouts vs {40} x 4 dropouts (5-fold):",
            "",
            "| engine | grid | candidates | trained (fits or members) | epochs trained | "
            "wall s | ratio to {40} |",
            "|---|---|---|---|---|---|---|",
        ]
        for engine in ("auto", "sklearn"):
            big = _epoch_grid([5, 10, 20, 40], engine, args.quick)
            small = _epoch_grid([40], engine, args.quick)
            for name, run, n in (("{5,10,20,40}", big, 16), ("{40}", small, 4)):
                lines.append(
                    f"| {run['engine']} | {name} | {n} | {run['fits']} | {run['epochs']} | "
                    f"{run['wall']:.1f} | {run['wall'] / small['wall']:.2f}x |"
                )
                print(lines[-1], flush=True)
    header = [
        SECTION,
        "",
        f"`python benchmarks/seam.py{' --quick' if args.quick else ''}`, "
        f"{dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, TensorFlow backend.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    if args.write_docs:
        from cv_throughput import write_docs  # the one writer of docs/benchmarks.md sections

        write_docs(text.split("\n", 2)[2], SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
