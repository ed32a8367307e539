"""Pruning inside cross-validation: epochs trained and held-out score, with and without.

Runs the Optuna strategy on scikit-learn's breast-cancer data with the same seeds twice
(MedianPruner vs no pruning) and prints, side by side, the epochs trained, the trials
pruned, the best CV score and the chosen model's held-out score.

    python benchmarks/pruning.py            # 3 seeds x 16 trials (a few minutes on 2 cores)
    python benchmarks/pruning.py --quick    # 2 seeds x 6 trials
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import optuna
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import tunekit as tk


def total_epochs(study) -> int:
    return int(sum(t.user_attrs.get("epochs_spent", 0) for t in study.trials))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds, trials = (2, 6) if args.quick else (args.seeds, args.trials)

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    estimator = tk.KerasClassifier(model__hidden=(16, 16), batch_size=64, epochs=30,
                                   optimizer="adam", verbose=0)
    space = tk.Space({
        "model__l2": tk.Float(1e-5, 1.0, log=True),
        "model__dropout": tk.Float(0.0, 0.6),
        "optimizer__learning_rate": tk.Float(1e-5, 1e-1, log=True),
    })
    rows = []
    for seed in range(seeds):
        for label, pruner in (("none", optuna.pruners.NopPruner()),
                              ("median", optuna.pruners.MedianPruner(n_startup_trials=4))):
            start = time.perf_counter()
            result = tk.search(estimator.set_params(random_state=seed), X, y, space=space,
                               strategy="optuna", n_trials=trials, cv=3, pruner=pruner,
                               random_state=seed, verbose=0)
            states = list(result.cv_results_["state"])
            rows.append((seed, label, total_epochs(result.study_), states.count("PRUNED"),
                         result.best_score_, result.heldout_score_,
                         time.perf_counter() - start))
    print(f"{'seed':>4} {'pruner':>7} {'epochs':>7} {'pruned':>6} {'best CV':>8} "
          f"{'held-out':>8} {'seconds':>8}")
    for seed, label, epochs, pruned, cv, held, secs in rows:
        print(f"{seed:>4} {label:>7} {epochs:>7} {pruned:>6} {cv:>8.4f} {held:>8.4f} "
              f"{secs:>8.1f}")
    for label in ("none", "median"):
        sel = [r for r in rows if r[1] == label]
        print(f"mean {label:>7} {np.mean([r[2] for r in sel]):>7.0f} "
              f"{np.mean([r[3] for r in sel]):>6.1f} {np.mean([r[4] for r in sel]):>8.4f} "
              f"{np.mean([r[5] for r in sel]):>8.4f} {np.mean([r[6] for r in sel]):>8.1f}")


if __name__ == "__main__":
    main()
