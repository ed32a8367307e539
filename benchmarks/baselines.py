"""What the baselines cost: their seconds beside the search they accompany, in one run.

For each bundled data set the script splits off the held-out set and the folds exactly as
``tunekit.search`` does, then times ``evaluate_baselines`` (a dummy predictor and a linear
model behind a ``StandardScaler``, cross-validated on those folds and refit for the
held-out score) and, side by side, one ``tunekit.search`` of the main job's network
(``studies/tune.py``'s Dense(64)-Dense(64) over ``tunekit.spaces.overfitting()``) with
``baselines=False``. It prints a Markdown table: seconds of each arm, their ratio, and the
scores of both arms (best baseline's and the search's chosen candidate's, CV and held out).

    python benchmarks/baselines.py [--n-trials 3] [--cv 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit import datasets
from tunekit.baselines import evaluate_baselines

DATA = {"diabetes": "regressor", "breast_cancer": "classifier", "digits": "classifier"}


def _estimator(kind: str):
    cls = tk.KerasRegressor if kind == "regressor" else tk.KerasClassifier
    return make_pipeline(
        StandardScaler(), cls(tk.builders.mlp, model__hidden=(64, 64), random_state=0)
    )


def run(name: str, kind: str, *, n_trials: int, cv: int, repeats: int, max_epochs: int) -> dict:
    X, y = datasets.load(name)
    estimator = _estimator(kind)
    step = estimator.steps[-1][0]
    space = tk.Space(
        {**tk.spaces.overfitting(label_smoothing=False), "epochs": tk.Int(5, max_epochs, log=True)}
    ).prefixed(f"{step}__")
    classifier = is_classifier(estimator)
    X_s, X_t, y_s, y_t = train_test_split(
        X, y, test_size=0.2, stratify=y if classifier else None, random_state=0
    )
    folds = list(check_cv(cv, y_s, classifier=classifier).split(X_s, y_s))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        scores = evaluate_baselines(estimator, X_s, y_s, folds, X_t, y_t)
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    result = tk.search(
        estimator, X, y, space=space, strategy="optuna", n_trials=n_trials, cv=cv,
        refit_top=1, baselines=False, verbose=0,
    )  # fmt: skip
    search_s = time.perf_counter() - start
    best = int(np.argmax(scores["mean_test_score"]))
    return {
        "data": name,
        "baselines_s": statistics.median(seconds),
        "search_s": search_s,
        "baseline": scores["baseline"][best],
        "baseline_cv": float(scores["mean_test_score"][best]),
        "baseline_heldout": float(scores["heldout_test_score"][best]),
        "search_cv": float(result.best_score_),
        "search_heldout": float(result.heldout_score_),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=3)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--data", default=",".join(DATA))
    args = parser.parse_args(argv)
    print(
        "| data | baselines (s, median) | search (s) | ratio | best baseline | its CV / held-out "
        "| search's chosen CV / held-out |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.data.split(","):
        row = run(
            name, DATA[name], n_trials=args.n_trials, cv=args.cv, repeats=args.repeats,
            max_epochs=args.max_epochs,
        )  # fmt: skip
        print(
            f"| {row['data']} | {row['baselines_s']:.2f} | {row['search_s']:.1f} | "
            f"{row['baselines_s'] / row['search_s']:.4f} | {row['baseline']} | "
            f"{row['baseline_cv']:.4f} / {row['baseline_heldout']:.4f} | "
            f"{row['search_cv']:.4f} / {row['search_heldout']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
