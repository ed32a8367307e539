"""Optuna and successive halving on the stacked engine vs the standard path, in one run.

(a) The README quickstart as written (pipeline, Optuna, 20 trials, 5-fold, breast
    cancer), each arm and seed in its own fresh in-memory study: engine vs
    ``engine="sklearn"``: wall time, best CV and held-out scores.
(b) The main job's search (``studies/tune.py``'s default: a Dense(64)-Dense(64)
    regressor behind a StandardScaler on the diabetes data, ``spaces.overfitting()``
    with epochs 5..100, 20 trials, 3-fold), both arms.
(c) Halving with ``resource="epochs"``, 27 candidates, both arms.
(d) Pruning on vs off on the engine (median pruner), same trials.
(e) The headline: 200 trials x 5 folds of ``mlp(hidden=(16, 16))`` on breast cancer
    with pruning, engine only, timed from the call to the result.

Usage::

    python benchmarks/optuna_engine.py --parts a,b,c,d,e --seeds 3
    python benchmarks/optuna_engine.py --quick      # a smoke run of every part
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time


def _breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)


def _quickstart(seed: int, engine: str, quick: bool, n_trials: int = 20, pruner=None):
    from seam import quickstart  # the same pipeline, space and data as benchmarks/seam.py

    import tunekit as tk

    pipe, space, X, y = quickstart(seed, quick)
    start = time.perf_counter()
    result = tk.search(
        pipe, X, y, space=space, strategy="optuna", n_trials=4 if quick else n_trials, cv=5,
        engine=engine, random_state=seed, verbose=0, baselines=False, pruner=pruner,
    )
    return _row(result, start)


def _row(result, start):
    return {
        "wall": time.perf_counter() - start,
        "cv": float(result.best_score_),
        "heldout": float("nan") if result.heldout_score_ is None else result.heldout_score_,
        "engine": result.engine_,
        "epochs": result.n_epochs_,
    }


def _main_job(seed: int, engine: str, quick: bool):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk
    from tunekit import datasets

    X, y = datasets.load("diabetes", n_samples=100 if quick else None, random_state=seed)
    reg = tk.KerasRegressor(tk.builders.mlp, model__hidden=(64, 64), random_state=seed, verbose=0)
    space = tk.Space(
        {
            **tk.spaces.overfitting(label_smoothing=False),
            "epochs": tk.Int(1, 2) if quick else tk.Int(5, 100, log=True),
        }
    ).prefixed("kerasregressor__")
    start = time.perf_counter()
    result = tk.search(
        make_pipeline(StandardScaler(), reg), X, y, space=space, strategy="optuna",
        n_trials=2 if quick else 20, cv=2 if quick else 3, engine=engine, random_state=seed,
        verbose=0, baselines=False,
    )
    return _row(result, start)


def _halving(seed: int, engine: str, quick: bool):
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk

    X, y = _breast_cancer()
    X = StandardScaler().fit_transform(X)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(16, 16), epochs=9 if quick else 27, batch_size=64,
        random_state=seed, verbose=0,
    )
    space = {"model__l2": tk.Float(1e-5, 1e-1, log=True), "model__dropout": tk.Float(0.0, 0.5)}
    start = time.perf_counter()
    result = tk.search(
        clf, X, y, space=space, strategy="halving", resource="epochs", factor=3,
        n_trials=9 if quick else 27, min_resources=1 if quick else 3, cv=5, engine=engine,
        random_state=seed, verbose=0, baselines=False,
    )
    return _row(result, start)


def _headline(seed: int, quick: bool):
    from sklearn.preprocessing import StandardScaler

    import tunekit as tk

    X, y = _breast_cancer()
    X = StandardScaler().fit_transform(X)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(16, 16), epochs=20, batch_size=64, random_state=seed,
        verbose=0,
    )
    space = {
        "model__l2": tk.Float(1e-5, 1e-1, log=True),
        "model__dropout": tk.Float(0.0, 0.5),
        "batch_size": tk.Choice([32, 64, 128]),
    }
    start = time.perf_counter()
    result = tk.search(
        clf, X, y, space=space, strategy="optuna", n_trials=20 if quick else 200, cv=5,
        random_state=seed, verbose=0, baselines=False, trial_batch=None,
    )
    return _row(result, start)


def _table(title, rows):
    lines = [
        title,
        "",
        "| arm | seed | wall s | engine | epochs trained | best CV | held-out |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, seed, r in rows:
        lines.append(
            f"| {arm} | {seed} | {r['wall']:.1f} | {r['engine']} | {r['epochs']} | "
            f"{r['cv']:.4f} | {r['heldout']:.4f} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="a,b,c,d,e")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts = set(args.parts.split(","))
    seeds = range(1 if args.quick else args.seeds)
    out = [
        f"`python benchmarks/optuna_engine.py --parts {args.parts} --seeds {len(seeds)}"
        f"{' --quick' if args.quick else ''}`, {dt.date.today().isoformat()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        "",
    ]
    jobs = {
        "a": ("(a) quickstart: pipeline + Optuna, 20 trials x 5 folds", _quickstart),
        "b": ("(b) the main job's search (studies/tune.py default)", _main_job),
        "c": ("(c) halving, resource='epochs', 27 candidates x 5 folds", _halving),
    }
    for part, (title, fn) in jobs.items():
        if part not in parts:
            continue
        rows = []
        for seed in seeds:
            for arm in ("auto", "sklearn"):
                rows.append((arm, seed, fn(seed, arm, args.quick)))
                print(rows[-1], flush=True)
        out += [*_table(title, rows), ""]
    if "d" in parts:
        rows = []
        for seed in seeds:
            rows.append(("pruning", seed, _quickstart(seed, "auto", args.quick)))
            rows.append(
                ("no pruning", seed,
                 _quickstart(seed, "auto", args.quick, pruner=optuna.pruners.NopPruner()))
            )
            print(rows[-2:], flush=True)
        out += [*_table("(d) engine, median pruning vs none (quickstart)", rows), ""]
    if "e" in parts:
        rows = [("engine", 0, _headline(0, args.quick))]
        print(rows[-1], flush=True)
        out += _table("(e) 200 trials x 5 folds, mlp(16, 16), breast cancer, pruning", rows)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
