"""Two checkouts of tunekit side by side in one run: start-up, CV throughput, an Optuna study.

Each arm runs *its own tree's* code and benchmark scripts (``PYTHONPATH=<tree>``) with
this interpreter and its installed dependencies, so only tunekit's code differs. Arms
alternate within each repeat, so that a change of load on the machine hits both.

Parts:

* ``imports``: ``python -X importtime -c "import tunekit"`` and ``python -X importtime -m
  tunekit --help``: the sum of the import times (median over ``--repeats``), and whether
  TensorFlow was imported;
* ``cv``: ``benchmarks/cv_throughput.py --arms a,c`` (``--cv-arms``): every candidate's
  mean CV score and the fit seconds of each arm (a: scikeras, c: the stacked engine);
* ``optuna``: ``benchmarks/optuna_engine.py --parts e``: the 200-trial x 5-fold study of
  ``mlp(16, 16)`` on breast cancer with pruning: wall seconds and best CV score;
* ``mainjob``: the README's main job, ``studies/tune.py`` of each tree in a fresh folder
  (its own SQLite study and report), the old one with ``--old-trials`` and the new one
  with each of ``--new-trials`` (``default``: the script's own default): wall seconds from
  the command to its exit, the chosen candidate's CV and held-out scores, the epochs the
  trials trained over all their folds (``epochs_spent``), the pruned and the failed trials.

Usage::

    git worktree add /tmp/old e47eb89
    python benchmarks/old_vs_new.py --old /tmp/old --repeats 5
    python benchmarks/old_vs_new.py --old /tmp/old --parts mainjob --repeats 2 \
        --old-trials default --new-trials 200,default
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEW = Path(__file__).resolve().parents[1]


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _import_ms(tree: Path, args: list[str]) -> tuple[float, bool]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args], env=_env(tree), cwd=tempfile.gettempdir(),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    total, tensorflow = 0, False
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)", line)
        if match:
            total += int(match.group(1))
            tensorflow = tensorflow or match.group(3) == "tensorflow"
    return total / 1000.0, tensorflow


def imports(trees: dict, repeats: int) -> list[str]:
    rows = []
    for label, args in (("import tunekit", ["-c", "import tunekit"]),
                        ("tunekit --help", ["-m", "tunekit", "--help"])):  # fmt: skip
        times = {arm: [] for arm in trees}
        tf = {arm: False for arm in trees}
        for _ in range(repeats):
            for arm, tree in trees.items():
                ms, loaded = _import_ms(tree, args)
                times[arm].append(ms)
                tf[arm] = tf[arm] or loaded
        old, new = (statistics.median(times[a]) for a in ("old", "new"))
        rows.append(
            f"| {label} | {old:.1f} ms | {new:.1f} ms | {new / old:.2f} | "
            f"{'yes' if tf['old'] else 'no'} / {'yes' if tf['new'] else 'no'} |"
        )
        print(rows[-1], flush=True)
    return [
        "| start-up (median of the import-time sums) | old | new | new/old | TensorFlow imported (old / new) |",  # noqa: E501
        "|---|---|---|---|---|",
        *rows,
    ]


def _cv_run(tree: Path, arms: str, out: Path) -> dict:
    subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "cv_throughput.py"), "--arms", arms,
         "--json", str(out)],
        env=_env(tree), cwd=tree, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return {r["arm"]: r for r in json.loads(out.read_text())}


def cv(trees: dict, arms: str, repeats: int) -> list[str]:
    runs = {arm: [] for arm in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for arm, tree in trees.items():
                runs[arm].append(_cv_run(tree, arms, Path(tmp) / f"{arm}.json"))
                print(arm, {k: round(v["wall_s"], 2) for k, v in runs[arm][-1].items()}, flush=True)
    lines = [
        f"| `cv_throughput.py` arm | old fit s (median of {repeats}) | new fit s | new/old | "
        "every candidate's score equal in every run |",
        "|---|---|---|---|---|",
    ]
    for name in arms.split(","):
        old = [r[name] for r in runs["old"]]
        new = [r[name] for r in runs["new"]]
        same = all(o["scores"] == n["scores"] and o["params"] == n["params"]
                   for o in old for n in new)  # fmt: skip
        old_s = statistics.median(r["wall_s"] for r in old)
        new_s = statistics.median(r["wall_s"] for r in new)
        lines.append(
            f"| ({name}) | {old_s:.1f} | {new_s:.1f} | {new_s / old_s:.2f} | "
            f"{'yes' if same else 'NO'} ({len(new[0]['scores'])} candidates) |"
        )
        print(lines[-1], flush=True)
    return lines


def _optuna_run(tree: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "optuna_engine.py"), "--parts", "e"],
        env=_env(tree), cwd=tree / "benchmarks", capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("('engine'"))
    found = dict(re.findall(r"'(wall|cv)': ([0-9.]+)", line))
    return {key: float(value) for key, value in found.items()}


def optuna(trees: dict, repeats: int) -> list[str]:
    runs = {arm: [] for arm in trees}
    for _ in range(repeats):
        for arm, tree in trees.items():
            runs[arm].append(_optuna_run(tree))
            print(arm, runs[arm][-1], flush=True)
    old = statistics.median(r["wall"] for r in runs["old"])
    new = statistics.median(r["wall"] for r in runs["new"])
    scores = {arm: ", ".join(f"{r['cv']:.4f}" for r in rows) for arm, rows in runs.items()}
    return [
        "| 200 trials x 5 folds (`optuna_engine.py --parts e`) | old | new | new/old |",
        "|---|---|---|---|",
        f"| wall s (median of {repeats}) | {old:.1f} | {new:.1f} | {new / old:.2f} |",
        f"| best CV, each run | {scores['old']} | {scores['new']} | |",
    ]


def _mainjob_run(tree: Path, trials: str) -> dict:
    extra = [] if trials == "default" else ["--n-trials", trials]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(tree / "studies" / "tune.py"), *extra],
            env=_env(tree), cwd=tmp, capture_output=True, text=True, check=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        work = _study_work(Path(tmp) / "results" / "tune" / "study.db")
    found = re.search(r"in CV: ([-0-9.]+) vs .*; held out ([-0-9.]+) vs", proc.stdout)
    cv_score, held = (found.groups() if found else ("?", "?"))
    return {"wall": wall, "cv": cv_score, "heldout": held, **work}


def _study_work(path: Path) -> dict:
    """The study's work: the epochs its trials trained over all folds; pruned and failed trials."""
    if not path.exists():
        return {"epochs": "?", "pruned": "?", "failed": "?"}
    with sqlite3.connect(path) as db:
        spent = db.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'epochs_spent'"
        ).fetchall()
        states = dict(db.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    epochs = sum(int(json.loads(v)) for (v,) in spent) if spent else "?"  # older trees: none
    return {"epochs": epochs, "pruned": states.get("PRUNED", 0), "failed": states.get("FAIL", 0)}


def mainjob(trees: dict, repeats: int, old_trials: str, new_trials: list[str]) -> list[str]:
    arms = [("old", old_trials)] + [("new", n) for n in new_trials]
    runs = {arm: [] for arm in arms}
    for _ in range(repeats):
        for arm in arms:
            runs[arm].append(_mainjob_run(trees[arm[0]], arm[1]))
            print(arm, {k: v if isinstance(v, str) else round(v, 1)
                        for k, v in runs[arm][-1].items()}, flush=True)  # fmt: skip
    base = statistics.median(r["wall"] for r in runs[arms[0]])
    lines = [
        "| `studies/tune.py` | trials | wall s (runs) | median / old's | CV, held out (each run) "
        "| epochs trained, pruned, failed (each run) |",
        "|---|---|---|---|---|---|",
    ]
    for (tree, trials), rows in runs.items():
        med = statistics.median(r["wall"] for r in rows)
        walls = ", ".join(f"{r['wall']:.1f}" for r in rows)
        scores = "; ".join(f"{r['cv']}, {r['heldout']}" for r in rows)
        work = "; ".join(f"{r['epochs']}, {r['pruned']}, {r['failed']}" for r in rows)
        lines.append(
            f"| {tree} | {trials} | {med:.1f} ({walls}) | {med / base:.2f} | {scores} | {work} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="the other checkout (its root folder)")
    parser.add_argument("--new", default=str(NEW), help="this checkout by default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", default="imports,cv,optuna")
    parser.add_argument("--cv-arms", default="a,c", help="arms of cv_throughput.py to run")
    parser.add_argument("--old-trials", default="default",
                        help="mainjob: the old tree's --n-trials ('default': its own)")
    parser.add_argument("--new-trials", default="200,default",
                        help="mainjob: the new tree's --n-trials, comma-separated")  # fmt: skip
    args = parser.parse_args(argv)
    trees = {"old": Path(args.old).resolve(), "new": Path(args.new).resolve()}
    parts = set(args.parts.split(","))
    out = []
    if "imports" in parts:
        out += [*imports(trees, args.repeats), ""]
    if "cv" in parts:
        repeats = 1 if "a" in args.cv_arms else args.repeats  # (a) takes minutes a run
        out += [*cv(trees, args.cv_arms, repeats), ""]
    if "optuna" in parts:
        out += [*optuna(trees, max(1, args.repeats // 2)), ""]
    if "mainjob" in parts:
        new_trials = args.new_trials.split(",")
        out += [*mainjob(trees, args.repeats, args.old_trials, new_trials), ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
