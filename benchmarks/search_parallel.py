"""n_jobs=1 against n_jobs=2 for a grid search of Keras models, side by side in one run.

    python benchmarks/search_parallel.py          # 8 candidates x 4 folds
    python benchmarks/search_parallel.py --quick
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sklearn.datasets import make_classification

import tunekit as tk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, epochs = (1000, 3) if args.quick else (4000, 10)
    X, y = make_classification(n_samples=n, n_features=20, random_state=0)
    X = X.astype("float32")
    estimator = tk.KerasClassifier(model__hidden=(16, 16), epochs=epochs, batch_size=64,
                                   random_state=0)
    space = {"model__l2": [0.0, 0.002], "model__dropout": [0.0, 0.2, 0.4, 0.5]}
    timings = {}
    for n_jobs in (1, 2):
        start = time.perf_counter()
        result = tk.search(estimator, X, y, space=space, cv=4, n_jobs=n_jobs, test_size=None,
                           engine="sklearn", verbose=0)
        timings[n_jobs] = time.perf_counter() - start
        fits = len(result.cv_results_["params"]) * result.n_splits_
        print(f"n_jobs={n_jobs}: {timings[n_jobs]:.1f} s for {fits} fits "
              f"({fits / timings[n_jobs]:.2f} fits/s), best CV {result.best_score_:.4f}")
    print(f"speed-up n_jobs=2 / n_jobs=1: {timings[1] / timings[2]:.2f}x "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
