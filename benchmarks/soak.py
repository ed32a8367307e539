"""Soak: many workers, many fast trials, one study; then its accounting and its storage traffic.

Each run starts W worker processes (``tunekit.workers.launch``), each running
``tunekit.search(strategy="optuna")`` on one fresh study until it holds
``--n-trials`` finished trials. A trial is a ``LogisticRegression`` on 60 x 4
samples with 2-fold CV (milliseconds of CPU): what is measured is the cost
of sharing the study. After each run the study is checked:

* finished trials, which must be within ``[N, N + W - 1]``;
* trials that are not unique (a repeated trial number, or a finished
  candidate whose parameters another finished trial already had): 0;
* trials left RUNNING (or WAITING): 0;
* storage round trips per trial: every SQL statement the workers sent, and
  every transaction they committed, counted by SQLAlchemy event listeners in
  each worker and divided by the trials the study started;
* trials per minute over the study's own span (first trial's start to the
  last trial's end, as stored: process start-up is not counted).

Two arms share the soak on each storage, side by side: ``batched``
(tunekit's objective writes a fold's record as one multi-row upsert, one
transaction) and ``per-attribute`` (the same objective with every attribute
in its own transaction, as ``trial.set_user_attr`` does); they differ only in
that write.

Usage::

    python benchmarks/soak.py                              # PostgreSQL, then SQLite
    python benchmarks/soak.py --storage sqlite --n-trials 30 --workers 1,2
    python benchmarks/soak.py --json results.json          # machine-readable rows

The PostgreSQL URL comes from ``--postgres-url``, else
``TUNEKIT_TEST_POSTGRES_URL``, else ``postgresql://postgres@127.0.0.1:5432/test``.
Exit status 1 when a run's accounting is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
FINISHED = ("COMPLETE", "PRUNED")


# ---------------------------------------------------------------------- a worker
def count_traffic(path: str) -> None:
    """Count this process's SQL statements and commits; write them to ``path`` at exit."""
    import atexit

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts = {"statements": 0, "commits": 0}

    @event.listens_for(Engine, "before_cursor_execute")
    def statement(*args):
        counts["statements"] += 1

    @event.listens_for(Engine, "commit")
    def commit(*args):
        counts["commits"] += 1

    atexit.register(lambda: Path(path).write_text(json.dumps(counts)))


def per_attribute_writes() -> None:
    """The ``per-attribute`` arm: each user attribute in its own transaction."""
    import tunekit.strategies.optuna_search as optuna_search

    def set_user_attrs(trial, attrs):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)

    optuna_search.set_user_attrs = set_user_attrs


def worker(args) -> None:
    """What each of the W processes runs."""
    count_traffic(os.path.join(args.traffic_dir, f"{os.getpid()}.json"))
    if args.arm == "per-attribute":
        per_attribute_writes()
    import numpy as np
    import optuna
    from sklearn.linear_model import LogisticRegression

    import tunekit as tk

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    tk.search(
        LogisticRegression(),
        X,
        y,
        space={"C": tk.Float(1e-3, 1e3, log=True), "tol": tk.Float(1e-5, 1e-2, log=True)},
        strategy="optuna",
        storage=args.url,
        study_name=args.study,
        n_trials=args.n_trials,
        cv=2,
        test_size=None,
        refit_top=0,
        verbose=0,
    )


# ---------------------------------------------------------------------- a run
def accounting(url: str, study_name: str, traffic_dir: str) -> dict:
    """The study's accounting after a run, and the workers' storage traffic."""
    import optuna

    from tunekit.storage import make_storage

    storage = make_storage(url, heartbeat_interval=0)
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    done = [t for t in trials if t.state.name in FINISHED]
    params = [json.dumps(t.params, sort_keys=True) for t in done]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    traffic = {"statements": 0, "commits": 0}
    for path in Path(traffic_dir).glob("*.json"):
        for key, value in json.loads(path.read_text()).items():
            traffic[key] += value
    return {
        "started": len(trials),
        "finished": len(done),
        "not_unique": (len(numbers) - len(set(numbers))) + (len(params) - len(set(params))),
        "left_running": sum(t.state.name in ("RUNNING", "WAITING") for t in trials),
        "failed": sum(t.state.name == "FAIL" for t in trials),
        "statements_per_trial": traffic["statements"] / max(1, len(trials)),
        "commits_per_trial": traffic["commits"] / max(1, len(trials)),
        "best_cv_score": max((t.value for t in done if t.value is not None), default=None),
        "span_s": span,
        "trials_per_min": 60 * len(done) / span if span > 0 else float("nan"),
    }


def run(url: str, n_workers: int, n_trials: int, arm: str) -> dict:
    """One soak run: ``n_workers`` processes on a fresh study of ``n_trials`` trials."""
    import optuna

    from tunekit.storage import make_storage
    from tunekit.workers import launch

    study = f"soak-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as traffic_dir:
        command = [
            sys.executable, __file__, "--worker", "--url", url, "--study", study,
            "--n-trials", str(n_trials), "--arm", arm, "--traffic-dir", traffic_dir,
        ]  # fmt: skip
        env = {"TUNEKIT_HEARTBEAT_INTERVAL": "2", "TUNEKIT_GRACE_PERIOD": "10"}
        start = time.perf_counter()
        code = launch(command, n_workers, env={**env, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - start
        row = accounting(url, study, traffic_dir)
    row.update(
        storage=url.split(":")[0].split("+")[0], workers=n_workers, n_trials=n_trials, arm=arm,
        exit_code=code, wall_s=wall,
    )  # fmt: skip
    row["ok"] = (
        code == 0
        and n_trials <= row["finished"] <= n_trials + n_workers - 1
        and row["not_unique"] == 0
        and row["left_running"] == 0
    )
    if url.startswith("postgres"):
        optuna.delete_study(study_name=study, storage=make_storage(url, heartbeat_interval=0))
    return row


def _line(row: dict) -> str:
    return (
        f"{row['storage']:<10} {row['arm']:<13} {row['workers']:>2} workers  "
        f"finished {row['finished']:>3}/{row['n_trials']} (started {row['started']})  "
        f"not unique {row['not_unique']}  RUNNING {row['left_running']}  "
        f"{row['statements_per_trial']:.1f} statements, {row['commits_per_trial']:.1f} commits "
        f"per trial  {row['trials_per_min']:.0f} trials/min  exit {row['exit_code']}"
        f"{'' if row['ok'] else '  ACCOUNTING WRONG'}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--n-trials", type=int, default=200, help="trials of each study")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts (the last: soak)")
    parser.add_argument("--arms", default="batched,per-attribute")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--url", "--study", "--arm", "--traffic-dir"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    pg = args.postgres_url or os.environ.get("TUNEKIT_TEST_POSTGRES_URL") or DEFAULT_PG
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"postgres": [pg], "sqlite": [], "both": [pg]}[args.storage]
        if args.storage in ("sqlite", "both"):
            urls.append("sqlite")
        counts = [int(w) for w in args.workers.split(",")]
        for url in urls:
            for n_workers in counts:
                for arm in args.arms.split(","):
                    target = url
                    if url == "sqlite":
                        target = f"sqlite:///{Path(tmp) / f'soak-{uuid.uuid4().hex[:8]}.db'}"
                    row = run(target, n_workers, args.n_trials, arm)
                    rows.append(row)
                    print(_line(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
