"""What out-of-fold predictions cost: memory, storage and time, on a 1,000-trial study.

Two arms on the same data (``--rows`` search rows, binary, 2 outputs per row),
a ``LogisticRegression`` tuned by an Optuna study of ``--trials`` trials, 3 folds,
each study in its own SQLite file:

- ``oof_predictions=False``;
- ``oof_predictions=True`` (the default).

Then ``tk.ensemble(result)`` on the second. It prints, per arm: wall time, the
SQLite file's size, the bytes of ``oof_predictions_`` in memory, the bytes the
``oof_predictions`` attributes take in the study (JSON text), and the time to read
them back with :func:`tunekit.record.oof_predictions_of`.

``--stored-only`` measures the storage alone, without training: ``--trials``
complete trials written into a fresh SQLite study, each with random out-of-fold
predictions through :class:`tunekit.record.TrialRecord` (one ``set_user_attrs``
write per trial), against the same trials without them.

Run::

    python benchmarks/oof_memory.py                     # 1,000 trials, 1,000 rows
    python benchmarks/oof_memory.py --trials 100 --rows 500
    python benchmarks/oof_memory.py --stored-only
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import optuna
from sklearn.linear_model import LogisticRegression

import tunekit as tk
from tunekit.record import OOF_PREDICTIONS, TrialRecord, oof_predictions_of
from tunekit.storage import set_user_attrs


def _arm(X, y, trials: int, oof: bool, folder: str) -> dict:
    url = f"sqlite:///{folder}/oof-{oof}.db"
    start = time.perf_counter()
    result = tk.search(
        LogisticRegression(max_iter=200), X, y, space={"C": tk.Float(1e-3, 1e3, log=True)},
        strategy="optuna", n_trials=trials, cv=3, verbose=0, baselines=False, storage=url,
        study_name="oof", oof_predictions=oof, pruner=optuna.pruners.NopPruner(),
    )  # fmt: skip
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name="oof", storage=url)
    tick = time.perf_counter()
    trials_read = study.get_trials(deepcopy=False)
    read = oof_predictions_of(trials_read)
    read_s = time.perf_counter() - tick
    stored = sum(
        len(json.dumps(t.user_attrs[OOF_PREDICTIONS]))
        for t in trials_read
        if OOF_PREDICTIONS in t.user_attrs
    )
    in_memory = sum(a.nbytes for a in result.oof_predictions_ or [])
    return {
        "result": result,
        "wall_s": wall,
        "db_bytes": os.path.getsize(url.removeprefix("sqlite:///")),
        "memory_bytes": in_memory,
        "stored_json_bytes": stored,
        "read_s": read_s,
        "read_arrays": 0 if read is None else len(read),
    }


def _stored_only(trials: int, rows: int, folder: str) -> None:
    """Write ``trials`` complete trials with and without predictions; sizes and read time."""
    rng = np.random.default_rng(0)
    dist = {"C": optuna.distributions.FloatDistribution(1e-3, 1e3, log=True)}
    for oof in (False, True):
        url = f"sqlite:///{folder}/stored-{oof}.db"
        study = optuna.create_study(storage=url, study_name="oof", direction="maximize")
        tick = time.perf_counter()
        for _ in range(trials):
            trial = study.ask(dist)
            record = TrialRecord()
            for _fold in range(3):
                record.add_fold(test_score=0.8, fit_time=0.01, score_time=0.001)
            if oof:
                p = rng.random((rows, 1)).astype(np.float32)
                record.set_predictions(np.hstack([1 - p, p]))
            set_user_attrs(trial, record.attrs())
            study.tell(trial, 0.8)
        write_s = time.perf_counter() - tick
        tick = time.perf_counter()
        read = oof_predictions_of(optuna.load_study(study_name="oof", storage=url).trials)
        read_s = time.perf_counter() - tick
        size = os.path.getsize(url.removeprefix("sqlite:///"))
        n = 0 if read is None else len(read)
        print(f"stored-only oof={oof!s:5}  {trials} trials written in {write_s:6.1f} s  "
              f"db {size / 1e6:7.2f} MB  read back {read_s:5.2f} s ({n} arrays)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1000, help="rows of the search set")
    parser.add_argument("--stored-only", action="store_true", help="storage only, no training")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.stored_only:
        with tempfile.TemporaryDirectory() as folder:
            _stored_only(args.trials, args.rows, folder)
        return
    rng = np.random.default_rng(0)
    n = int(args.rows / 0.8)  # test_size=0.2 holds out the rest
    X = rng.normal(size=(n, 10))
    y = (X[:, 0] + X[:, 1] + rng.normal(size=n) > 0).astype(int)
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for oof in (False, True):
            out = _arm(X, y, args.trials, oof, folder)
            rows.append((oof, out))
            print(
                f"oof_predictions={oof!s:5}  wall {out['wall_s']:7.1f} s  "
                f"db {out['db_bytes'] / 1e6:7.2f} MB  in memory {out['memory_bytes'] / 1e6:6.2f} MB"
                f"  stored JSON {out['stored_json_bytes'] / 1e6:6.2f} MB  "
                f"read back {out['read_s']:5.2f} s ({out['read_arrays']} arrays)",
                flush=True,
            )
        result = rows[1][1]["result"]
        tick = time.perf_counter()
        tk.ensemble(result)
        print(f"tk.ensemble: {time.perf_counter() - tick:.1f} s, "
              f"{len(result.ensemble_weights_)} members")  # fmt: skip
        print(result.ensemble_scores_.round(4).to_string())
        per = args.rows * 2 * 4
        print(f"expected per candidate: rows x outputs x 4 = {per} bytes")


if __name__ == "__main__":
    main()
