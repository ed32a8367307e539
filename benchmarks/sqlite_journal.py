"""What SQLite's journal mode costs a study: the rollback journal against the write-ahead log.

    python benchmarks/sqlite_journal.py [--trials 60] [--params 7] [--reports 10] [--repeats 2]

A study's storage traffic without any training: each trial is asked, draws ``--params``
parameters (``RandomSampler``), reports ``--reports`` epochs and is told, each through
Optuna's own calls, so every write is one commit. Four arms, alternating within each
repeat, each in a fresh SQLite file opened through ``tunekit.storage.make_storage``:

- ``DELETE, FULL``: SQLite's defaults (``TUNEKIT_SQLITE_WAL=0``; what tunekit used before);
- ``DELETE, NORMAL``: the rollback journal with fewer syncs;
- ``WAL, FULL``: the write-ahead log, a sync per commit;
- ``WAL, NORMAL``: the write-ahead log, syncs at checkpoints (what ``make_storage`` sets).

Prints the median seconds of each arm and its ratio to the defaults.
"""

import argparse
import os
import statistics
import tempfile
import time

import optuna
from sqlalchemy import event

from tunekit.storage import make_storage

ARMS = (("DELETE", "FULL"), ("DELETE", "NORMAL"), ("WAL", "FULL"), ("WAL", "NORMAL"))


def run(folder: str, journal: str, synchronous: str, args) -> float:
    os.environ["TUNEKIT_SQLITE_WAL"] = "0"  # the arm's own pragmas below, on every connection
    storage = make_storage(f"sqlite:///{folder}/{journal}-{synchronous}.db", heartbeat_interval=0)

    def pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA journal_mode={journal}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(0))
    start = time.perf_counter()
    for _ in range(args.trials):
        trial = study.ask()
        for k in range(args.params):
            trial.suggest_float(f"x{k}", 0.0, 1.0)
        for epoch in range(args.reports):
            trial.report(float(epoch), epoch)
        study.tell(trial, 1.0)
    seconds = time.perf_counter() - start
    storage.engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--params", type=int, default=7)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    times: dict = {arm: [] for arm in ARMS}
    for _ in range(args.repeats):
        for arm in ARMS:
            with tempfile.TemporaryDirectory() as folder:
                times[arm].append(run(folder, *arm, args))
    base = statistics.median(times[ARMS[0]])
    print(f"{args.trials} trials, {args.params} parameters and {args.reports} reports each, "
          f"{args.repeats} repeats, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| journal, synchronous | seconds (runs) | median / DELETE, FULL |")
    print("|---|---|---|")
    for arm in ARMS:
        runs = ", ".join(f"{t:.2f}" for t in times[arm])
        median = statistics.median(times[arm])
        print(f"| {arm[0]}, {arm[1]} | {median:.2f} ({runs}) | {median / base:.2f} |")


if __name__ == "__main__":
    main()
