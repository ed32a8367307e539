"""Successive halving on epochs: the rungs as one run against each rung from scratch.

    python benchmarks/halving_rungs.py [--candidates 27] [--epochs 27] [--repeats 3]

The lecture's MLP (16, 16) on breast cancer, l2 and dropout, 5-fold CV, halving with
``resource="epochs"`` and factor 3 (rungs of 1, 3, 9 and 27 epochs for 27 candidates) on
the engine: ``continue_rungs=True`` (one stack through the rungs, survivors train on) and
``continue_rungs=False`` (a stack per rung, trained from zero), alternating, after one
warm-up of each. Times the search itself (``refit=False``: the refit is the same Keras fit
in both arms), and checks that both arms give the same ``cv_results_`` and count the
member-epochs each trained.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit.api import make_evaluator
from tunekit.space import Space
from tunekit.strategies.sklearn_search import SearchSettings, make_search

SPACE = Space({"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.5)})


def run(X, y, candidates: int, epochs: int, one_run: bool):
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(16, 16), epochs=epochs,
                             batch_size=32, verbose=0, random_state=0)  # fmt: skip
    settings = SearchSettings(scoring=None, cv=5, n_trials=candidates, random_state=0,
                              resource="epochs", factor=3, n_jobs=1, verbose=0,
                              error_score=np.nan, return_train_score=True)  # fmt: skip
    search = make_search("halving", est, SPACE, settings, make_evaluator("auto", est))
    search.set_params(continue_rungs=one_run, refit=False)
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=27)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    print(f"{args.candidates} candidates, up to {args.epochs} epochs, 5 folds, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for one_run in (True, False):  # warm-up: every compiled shape of both arms
        run(X, y, args.candidates, args.epochs, one_run)
    print("| repeat | one run s | per rung s | ratio | member-epochs, one run | per rung "
          "| same cv_results_ | best CV |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for r in range(args.repeats):
        t1, one = run(X, y, args.candidates, args.epochs, True)
        t2, apart = run(X, y, args.candidates, args.epochs, False)
        a, b = one.cv_results_, apart.cv_results_
        same = list(a["params"]) == list(b["params"]) and np.allclose(
            a["mean_test_score"], b["mean_test_score"], rtol=1e-6, equal_nan=True
        )
        ratios.append(t1 / t2)
        print(f"| {r} | {t1:.2f} | {t2:.2f} | {t1 / t2:.2f} | {one.n_epochs_trained_} "
              f"| {apart.n_epochs_trained_} | {same} | {one.best_score_:.4f} |",
              flush=True)  # fmt: skip
    print(f"median ratio {np.median(ratios):.2f}; member-epochs ratio "
          f"{one.n_epochs_trained_ / apart.n_epochs_trained_:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
