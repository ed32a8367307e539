"""The held-out refits after an engine search: one stack against one Keras fit each.

    python benchmarks/heldout_refits.py [--seeds 0 1 2] [--top 5] [--data breast_cancer diabetes]

For each data set and seed: an engine grid search of the lecture's MLP (16, 16),
20 epochs, over l2 x dropout (12 candidates), 5-fold CV, a 20% held-out split;
then the next ``--top`` candidates after the chosen one are refit on the search
part and scored held out, three ways, side by side in this process:

- ``engine``: all of them as members of one stack (what ``tk.search`` does after
  an engine search);
- ``keras``: one Keras ``fit`` each, as before;
- ``keras, other seed``: the same Keras fits with ``random_state + 100``, which
  shows how far two Keras refits of the same candidate differ by their seed alone.

Prints the time of each arm, the mean held-out score of the refit candidates, and
the mean absolute difference of the engine's and the other seed's scores from the
Keras refits' scores.
"""

import argparse
import sys
import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit.evaluators.refits import refit_together
from tunekit.strategies.refit import refit_order
from tunekit.strategies.scoring import EpochAwareScorer

DATA = {
    "breast_cancer": (load_breast_cancer, tk.KerasClassifier, "accuracy"),
    "diabetes": (load_diabetes, tk.KerasRegressor, "r2"),
}


def _keras(est, candidates, data, scoring):
    X_search, y_search, X_test, y_test = data
    scorer = EpochAwareScorer(est, scoring)
    out = []
    for params in candidates:
        model = clone(est).set_params(**params).fit(X_search, y_search)
        out.append(float(scorer(model, X_test, y_test)["score"]))
    return out


def run(name: str, seed: int, top: int) -> dict:
    load, kind, scoring = DATA[name]
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    if kind is tk.KerasRegressor:
        y = ((y - y.mean()) / y.std()).astype("float32")
    est = kind(tk.builders.mlp, model__hidden=(16, 16), epochs=20, batch_size=32, verbose=0,
               random_state=seed)  # fmt: skip
    space = {"model__l2": tk.Choice([1e-5, 1e-4, 1e-3, 1e-2]),
             "model__dropout": tk.Choice([0.0, 0.2, 0.4])}  # fmt: skip
    result = tk.search(est, X, y, space=space, cv=5, scoring=scoring, refit_top=1,
                       baselines=False, random_state=seed, verbose=0)  # fmt: skip
    cv = result.cv_results_
    order = refit_order(cv["mean_test_score"], cv["params"], result.best_index_)[1 : top + 1]
    candidates = [cv["params"][i] for i in order]
    data = (result.data_.X_search, result.data_.y_search, result.data_.X_test, result.data_.y_test)
    start = time.perf_counter()
    engine = [r.score for r in refit_together(est, candidates, *data, scoring=scoring)]
    engine_s = time.perf_counter() - start
    start = time.perf_counter()
    keras = _keras(est, candidates, data, scoring)
    keras_s = time.perf_counter() - start
    other = _keras(clone(est).set_params(random_state=seed + 100), candidates, data, scoring)
    keras = np.asarray(keras)
    return {
        "data": name,
        "seed": seed,
        "refits": len(candidates),
        "engine s": engine_s,
        "keras s": keras_s,
        "speed-up": keras_s / engine_s,
        "engine mean": float(np.mean(engine)),
        "keras mean": float(keras.mean()),
        "other seed mean": float(np.mean(other)),
        "|engine - keras|": float(np.mean(np.abs(np.asarray(engine) - keras))),
        "|other seed - keras|": float(np.mean(np.abs(np.asarray(other) - keras))),
    }


def _cell(key: str, value) -> str:
    if not isinstance(value, float):
        return str(value)
    if key.endswith(" s"):
        return f"{value:.1f}"
    return f"{value:.2f}x" if key == "speed-up" else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    args = parser.parse_args()
    rows = [run(name, seed, args.top) for name in args.data for seed in args.seeds]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(_cell(k, v) for k, v in row.items()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
