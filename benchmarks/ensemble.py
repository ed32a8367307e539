"""Ensemble selection against the best single candidate and the best baseline, held out.

    python benchmarks/ensemble.py [--trials 40] [--seeds 0 1 2]

For each data set (the main job's diabetes, breast cancer, digits) and seed:
an Optuna study of the lecture's MLP on the stacked engine (held-out split
20%, baselines on, out-of-fold predictions kept), timed; then
``tk.ensemble(result)``, timed. Prints the held-out score of the ensemble, of
the best candidate and of the best baseline, the bootstrap p-value of the
ensemble against each, and the ensemble's time as a share of the study's.
"""

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler

import tunekit as tk

DATA = {
    "diabetes": (load_diabetes, tk.KerasRegressor, "r2"),
    "breast_cancer": (load_breast_cancer, tk.KerasClassifier, "accuracy"),
    "digits": (load_digits, tk.KerasClassifier, "accuracy"),
}


def run(name: str, seed: int, trials: int) -> dict:
    load, kind, scoring = DATA[name]
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    est = kind(tk.builders.mlp, model__hidden=(32, 32), epochs=30, batch_size=32, verbose=0,
               random_state=seed)  # fmt: skip
    space = {"model__l2": tk.Float(1e-6, 1e-1, log=True), "model__dropout": tk.Float(0.0, 0.5)}
    start = time.perf_counter()
    result = tk.search(est, X, y, space=space, strategy="optuna", n_trials=trials, cv=5,
                       scoring=scoring, random_state=seed, verbose=0)  # fmt: skip
    study_s = time.perf_counter() - start
    start = time.perf_counter()
    tk.ensemble(result)
    ensemble_s = time.perf_counter() - start
    table = result.ensemble_scores_
    held = table["heldout_score"]
    base = [m for m in table.index if m.startswith("best baseline")]
    return {
        "data": name,
        "seed": seed,
        "ensemble": held["ensemble"],
        "best candidate": held["best candidate"],
        "best baseline": held[base[0]] if base else np.nan,
        "p vs candidate": table.loc["best candidate", "p_value"],
        "p vs baseline": table.loc[base[0], "p_value"] if base else np.nan,
        "members": len(result.ensemble_weights_),
        "study s": study_s,
        "ensemble s": ensemble_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    args = parser.parse_args()
    rows = [run(name, seed, args.trials) for name in args.data for seed in args.seeds]
    print("| data | seed | ensemble | best candidate | best baseline | p vs candidate | "
          "p vs baseline | models picked | study s | ensemble s (share) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['seed']} | {r['ensemble']:.4f} | {r['best candidate']:.4f} | "
              f"{r['best baseline']:.4f} | {r['p vs candidate']:.3f} | {r['p vs baseline']:.3f} | "
              f"{r['members']} | {r['study s']:.1f} | {r['ensemble s']:.1f} "
              f"({r['ensemble s'] / r['study s']:.0%}) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
