"""Sparse X on the stacked engine: densifying one batch at a time vs the standard path.

The task: a one-hot encoding of 50 categorical columns x 100 levels (5,000
columns, one stored value per column and row: 1% density), 20,000 rows, a
binary target that depends on the levels of three columns; 8 candidates
(``model__l2`` x ``model__dropout``) x 3 folds; ``hidden=(32,)``, 3 epochs,
batch 128, adam. Each arm runs in its own subprocess:

(a) ``StackedSearchCV`` on the CSR matrix: the ``mlp()`` trainer densifies one
    (members x batch x features) block per step;
(b) the same search with the engine's memory cap set to 0 bytes, so every
    candidate takes the standard path (one Keras fit per candidate and fold,
    on the CSR matrix): what the engine's fallback does;
(c) for reference, ``StackedSearchCV`` on ``X.toarray()``: the dense copy a
    user would otherwise make (made inside the measured window).

For each arm: wall time of ``fit``, the growth of the process's resident set
during ``fit`` (VmRSS sampled every 20 ms: the largest value minus the value
before, and the value after minus the value before) and each candidate's mean
CV accuracy.

Usage::

    python benchmarks/sparse_input.py            # all arms, prints a Markdown table
    python benchmarks/sparse_input.py --quick    # 2,000 rows, 1 epoch (smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

ARMS = {
    "a": "stacked engine, sparse X densified one batch at a time",
    "b": "fallback: standard path on sparse X",
    "c": "stacked engine on X.toarray() (reference)",
}


def make_data(n_rows: int, columns: int = 50, levels: int = 100, seed: int = 0):
    import scipy.sparse as sp

    rng = np.random.RandomState(seed)
    codes = rng.randint(0, levels, size=(n_rows, columns))
    effect = rng.normal(size=(3, levels))
    logit = effect[0, codes[:, 0]] + effect[1, codes[:, 1]] + effect[2, codes[:, 2]]
    y = (logit + 0.5 * rng.normal(size=n_rows) > 0).astype(int)
    indices = (codes + levels * np.arange(columns)).astype(np.int32).ravel()
    indptr = np.arange(0, n_rows * columns + 1, columns, dtype=np.int64)
    data = np.ones(n_rows * columns, dtype=np.float32)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, columns * levels))
    return X, y


def _rss() -> int:
    with open("/proc/self/status") as status:
        return int(next(r for r in status if r.startswith("VmRSS:")).split()[1]) * 1024


class _Sampler(threading.Thread):
    """The largest VmRSS seen while running."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.done = _rss(), threading.Event()

    def run(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _rss())


def worker(arm: str, quick: bool) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # noqa: F401  (loaded before the measured window)

    import tunekit as tk
    import tunekit.engine.mlp.sparse_rows as sparse_rows
    from tunekit.strategies.fixed_list import StackedSearchCV

    X, y = make_data(2_000 if quick else 20_000)
    est = tk.KerasClassifier(model__hidden=(32,), optimizer="adam", epochs=1 if quick else 3,
                             batch_size=128, random_state=0)
    grid = {"model__l2": [0.0, 1e-4, 1e-3, 1e-2], "model__dropout": [0.0, 0.2]}
    if arm == "b":
        sparse_rows.MAX_DENSE_BATCH_BYTES = 0  # every stack is refused: the standard path
    search = StackedSearchCV(est, grid, cv=3, scoring="accuracy", refit=False,
                             return_train_score=False, random_state=0)
    sampler = _Sampler()
    before = _rss()
    sampler.start()
    start = time.perf_counter()
    data = X.toarray() if arm == "c" else X
    search.fit(data, y)
    wall = time.perf_counter() - start
    after = _rss()
    sampler.done.set()
    sampler.join()
    return {
        "arm": arm,
        "fits": len(search.cv_results_["params"]) * 3,
        "wall_s": wall,
        "peak_growth_mb": (max(sampler.peak, after) - before) / 2**20,
        "end_growth_mb": (after - before) / 2**20,
        "engine": search.engine_,  # "stacked", "sklearn" (the standard path) or "mixed"
        "scores": [float(s) for s in search.cv_results_["mean_test_score"]],
        "params": [str(p) for p in search.cv_results_["params"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--arms", default="abc")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.quick)))
        return
    rows = []
    for arm in args.arms:
        cmd = [sys.executable, __file__, "--worker", arm] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"arm {arm} done: {rows[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    print("| arm | trained by | fits | fit wall (s) | peak RSS growth (MB) "
          "| RSS growth at the end (MB) | mean CV accuracy (min..max over candidates) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["scores"]
        print(f"| ({r['arm']}) {ARMS[r['arm']]} | {r['engine']} | {r['fits']} "
              f"| {r['wall_s']:.1f} | {r['peak_growth_mb']:.0f} | {r['end_growth_mb']:.0f} "
              f"| {np.mean(s):.4f} ({min(s):.4f}..{max(s):.4f}) |")
    print()
    print("candidate scores:", json.dumps({r["arm"]: r["scores"] for r in rows}))


if __name__ == "__main__":
    main()
