"""What pruning costs and saves once the study lives in a storage.

    python benchmarks/pruning_storage.py [--trials 150] [--seeds 0 1 2] [--storage sqlite]

The headline study (the lecture's MLP (16, 16) on breast cancer, 20 epochs, l2 and
dropout, 5-fold CV, batches on the engine) in an SQLite (or ``--storage URL``) study,
with the median pruner and with ``NopPruner``, side by side for each seed. Prints the
wall time, the member-epochs trained, the trials pruned and the best CV score of each
arm, and the fraction of wall time and of member-epochs that pruning saved.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import tunekit as tk

SPACE = {"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.0, 0.5)}


def run(X, y, seed: int, trials: int, pruner, storage: str, name: str) -> dict:
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(16, 16), epochs=20, batch_size=32,
                             verbose=0, random_state=seed)  # fmt: skip
    start = time.perf_counter()
    result = tk.search(est, X, y, space=SPACE, strategy="optuna", n_trials=trials, cv=5,
                       test_size=None, baselines=False, verbose=0, random_state=seed,
                       storage=storage, study_name=name, pruner=pruner)  # fmt: skip
    wall = time.perf_counter() - start
    study = result.study_
    epochs = sum(t.user_attrs.get("epochs_spent", 0) for t in study.trials)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {"wall": wall, "epochs": epochs, "pruned": pruned, "best": result.best_score_}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--storage", default="sqlite", help="'sqlite' (a temporary file) or a URL")
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    print(f"{args.trials} trials, storage {args.storage}, load {os.getloadavg()[0]:.1f}")
    print("| seed | median s | none s | member-epochs, median | none | pruned | best CV, median "
          "| none | wall saved | member-epochs saved |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            out = {}
            for label, pruner in (("median", None), ("none", optuna.pruners.NopPruner())):
                storage = args.storage
                if storage == "sqlite":
                    storage = f"sqlite:///{tmp}/{label}-{seed}.db"
                name = f"pruning-{label}-{seed}-{time.time_ns()}"
                out[label] = run(X, y, seed, args.trials, pruner, storage, name)
            m, n = out["median"], out["none"]
            print(f"| {seed} | {m['wall']:.1f} | {n['wall']:.1f} | {m['epochs']} | {n['epochs']} "
                  f"| {m['pruned']} | {m['best']:.4f} | {n['best']:.4f} "
                  f"| {1 - m['wall'] / n['wall']:.0%} | {1 - m['epochs'] / n['epochs']:.0%} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
