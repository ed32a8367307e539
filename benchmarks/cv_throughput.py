"""Cross-validation throughput: scikeras vs tunekit vs the stacked engine, in one run.

The reference task (tracker issue 7): ``make_classification`` with 4,000 samples
and 20 features; a 16-candidate grid over ``model__l2`` x ``model__dropout``;
5-fold ``StratifiedKFold(shuffle=True, random_state=0)``; 20 epochs, batch 64,
rmsprop, binary cross-entropy, ``hidden=(16, 16)``. Three arms, each in its own
subprocess (clean memory numbers, no TensorFlow state shared between arms):

(a) plain ``scikeras.wrappers.KerasClassifier`` + ``GridSearchCV(n_jobs=1)``:
    what users have today;
(b) ``tunekit.KerasClassifier(tunekit.builders.mlp, ...)`` + ``GridSearchCV``;
(c) ``tunekit.strategies.fixed_list.StackedSearchCV`` (the stacked engine), once
    per backend in ``--backends``.

For each arm: CV fits per second (fits = candidates x folds, over the wall time
of ``fit``), the ratio to (a), the peak-RSS growth of the process during the
search (``ru_maxrss`` after minus before) and every candidate's mean CV
accuracy. ``--seeds N`` runs (a) and (c) with seeds ``0..N-1`` and reports the
spread of each candidate's score across seeds.

Usage::

    python benchmarks/cv_throughput.py                       # full size, seed 0
    python benchmarks/cv_throughput.py --seeds 3 --backends tensorflow,jax
    python benchmarks/cv_throughput.py --quick               # smoke run (~1 min)
    python benchmarks/cv_throughput.py --seeds 3 --backends tensorflow,jax --write-docs

``--write-docs`` replaces the section "## CV throughput: stacked engine" of
``docs/benchmarks.md`` (creating the file or appending the section if needed),
hand-written notes on a run (machine load, interpretation) included: add them
again after a new run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## CV throughput: stacked engine"
ARMS = {
    "a": "scikeras KerasClassifier + GridSearchCV",
    "b": "tunekit.KerasClassifier + GridSearchCV",
    "c": "StackedSearchCV (stacked engine)",
}


# ---------------------------------------------------------------------- the task
def task(quick: bool):
    """Data, grid, CV splitter and training settings of the reference task."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import StratifiedKFold

    X, y = make_classification(n_samples=4000, n_features=20, random_state=0)
    X = X.astype("float32")
    if quick:
        grid = {"model__l2": [0.0, 0.002], "model__dropout": [0.0, 0.5]}
        epochs = 5
    else:
        grid = {"model__l2": [0.0, 0.0005, 0.002, 0.01], "model__dropout": [0.0, 0.1, 0.3, 0.5]}
        epochs = 20
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    settings = dict(
        epochs=epochs, batch_size=64, optimizer="rmsprop", loss="binary_crossentropy", verbose=0
    )
    return X, y, grid, cv, settings


def _scikeras_builder(meta, compile_kwargs, hidden=(16, 16), l2=0.0, dropout=0.0):
    """What a scikeras user writes: a builder taking scikeras's ``meta``."""
    from tunekit.builders import mlp

    return mlp(
        (meta["n_features_in_"],),
        hidden=hidden,
        l2=l2,
        dropout=dropout,
        compile_kwargs=compile_kwargs,
    )


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(arm: str, seed: int, quick: bool) -> dict:
    """Run one arm in this process; return its measurements."""
    import warnings

    import keras
    from sklearn.model_selection import GridSearchCV

    warnings.filterwarnings("ignore")
    X, y, grid, cv, settings = task(quick)
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    if arm == "a":
        from scikeras.wrappers import KerasClassifier

        est = KerasClassifier(
            model=_scikeras_builder, model__hidden=(16, 16), random_state=seed, **settings
        )
        search = GridSearchCV(est, grid, cv=cv, scoring="accuracy", n_jobs=1, refit=False)
    else:
        import tunekit

        est = tunekit.KerasClassifier(
            tunekit.builders.mlp, model__hidden=(16, 16), random_state=seed, **settings
        )
        if arm == "b":
            search = GridSearchCV(est, grid, cv=cv, scoring="accuracy", n_jobs=1, refit=False)
        else:
            from tunekit.strategies.fixed_list import StackedSearchCV

            # return_train_score=False matches GridSearchCV's default in (a) and (b)
            search = StackedSearchCV(
                est,
                grid,
                cv=cv,
                scoring="accuracy",
                refit=False,
                return_train_score=False,
                random_state=seed,
            )
    rss_before = _max_rss_mb()
    start = time.perf_counter()
    search.fit(X, y)
    wall = time.perf_counter() - start
    res = search.cv_results_
    out = {
        "arm": arm,
        "seed": seed,
        "backend": keras.backend.backend(),
        "wall_s": wall,
        "n_fits": n_candidates * 5,
        "fits_per_s": n_candidates * 5 / wall,
        "rss_before_mb": rss_before,
        "rss_peak_mb": _max_rss_mb(),
        "params": [{k: float(v) for k, v in p.items()} for p in res["params"]],
        "scores": res["mean_test_score"].tolist(),
    }
    if arm == "c":
        groups = search.groups_
        times = [t for g in groups for t in g.epoch_times]
        out["stacks"] = [(g.n_members, g.fit_time) for g in groups if g.stacked]
        out["first_epoch_s"] = times[0] if times else None
        out["median_epoch_s"] = float(np.median(times[1:])) if len(times) > 1 else None
        out["fallback"] = [g.reason for g in groups if not g.stacked]
    return out


# ---------------------------------------------------------------------- the driver
def run_arm(arm: str, seed: int, quick: bool, backend: str = "tensorflow") -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, "--worker", arm, "--seed", str(seed)]
    if quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"arm": arm, "seed": seed, "backend": backend, "error": " | ".join(tail)}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    print(
        f"  ({arm}) seed={seed} backend={backend}: {out['fits_per_s']:.2f} fits/s, "
        f"fit {out['wall_s']:.1f} s",
        flush=True,
    )
    return out


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (`lscpu`), Linux {platform.release()}"


def versions() -> str:
    names = ["keras", "tensorflow", "jax", "scikeras", "scikit-learn", "numpy"]
    found = []
    for name in names:
        try:
            from importlib.metadata import version

            found.append(f"{name} {version(name)}")
        except Exception:  # absent optional packages are skipped
            continue
    return ", ".join(found)


def _fmt_params(p: dict) -> str:
    return f"l2={p['model__l2']:g}, dropout={p['model__dropout']:g}"


def report(runs: list[dict], args, skipped: list[str]) -> str:
    ok = [r for r in runs if "error" not in r]
    by = {}
    for r in ok:
        by.setdefault((r["arm"], r["backend"]), []).append(r)
    a_runs = by.get(("a", "tensorflow"), [])
    a_ref = next((r for r in a_runs if r["seed"] == 0), a_runs[0] if a_runs else None)
    lines = []
    lines.append(f"Measured {dt.date.today().isoformat()} on {machine()}; {versions()}.")
    lines.append("")
    cmd = "python benchmarks/cv_throughput.py " + " ".join(args.argv)
    lines.append(
        f"Command: `{cmd.strip()}`. Each arm runs in its own subprocess; "
        "fits = candidates x folds; throughput is fits over the wall time of "
        "`fit()` (the stacked arm's includes tracing and XLA compilation); "
        "memory is the growth of the process's peak RSS during `fit()`."
    )
    lines.append("")
    lines.append(
        "| arm | backend | seed | fits | fit wall (s) | fits/s | vs (a) | peak RSS growth (MB) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for (arm, backend), rs in sorted(by.items()):
        for r in sorted(rs, key=lambda r: r["seed"]):
            ratio = r["fits_per_s"] / a_ref["fits_per_s"] if a_ref else float("nan")
            grow = r["rss_peak_mb"] - r["rss_before_mb"]
            lines.append(
                f"| ({arm}) {ARMS[arm]} | {backend} | {r['seed']} | {r['n_fits']} | "
                f"{r['wall_s']:.1f} | {r['fits_per_s']:.2f} | {ratio:.1f}x | "
                f"{grow:.0f} |"
            )
    for msg in skipped:
        lines.append(f"| {msg} | | | | | | | |")
    lines.append("")
    c_runs = [r for r in ok if r["arm"] == "c"]
    for r in c_runs:
        if r.get("first_epoch_s") is not None:
            lines.append(
                f"Stacked engine ({r['backend']}, seed {r['seed']}): "
                f"{sum(n for n, _ in r['stacks'])} members in "
                f"{len(r['stacks'])} stack(s); first epoch call (trace + compile + "
                f"run) {r['first_epoch_s']:.2f} s, later epochs "
                f"{r['median_epoch_s']:.3f} s each (median)."
            )
            break
    # per-candidate scores
    if not ok:
        return "\n".join(lines)
    params = ok[0]["params"]
    cols = sorted(by)
    lines.append("")
    lines.append(
        "Mean CV accuracy per candidate (mean over seeds, [min, max] when several "
        "seeds ran). *in (a)'s spread*: the stacked engine's seed-mean lies within "
        "[min - std, max + std] of (a)'s scores across seeds."
    )
    lines.append("")
    header = "| candidate | " + " | ".join(f"({a}) {b}" for a, b in cols) + " | in (a)'s spread |"
    lines.append(header)
    lines.append("|---" * (len(cols) + 2) + "|")
    verdicts = []
    for i, p in enumerate(params):
        cells = []
        for key in cols:
            s = np.array([r["scores"][i] for r in by[key]])
            cell = f"{s.mean():.4f}"
            if len(s) > 1:
                cell += f" [{s.min():.4f}, {s.max():.4f}]"
            cells.append(cell)
        verdict = ""
        if len(a_runs) > 1:
            a_s = np.array([r["scores"][i] for r in a_runs])
            lo, hi = a_s.min() - a_s.std(), a_s.max() + a_s.std()
            marks = []
            for key in cols:
                if key[0] == "c":
                    c_mean = np.mean([r["scores"][i] for r in by[key]])
                    inside = lo <= c_mean <= hi
                    verdicts.append(inside)
                    marks.append(f"{key[1]}: {'yes' if inside else 'NO'}")
            verdict = ", ".join(marks)
        lines.append(f"| {_fmt_params(p)} | " + " | ".join(cells) + f" | {verdict} |")
    if verdicts:
        lines.append("")
        lines.append(
            f"{sum(verdicts)} of {len(verdicts)} (candidate, backend) pairs of the "
            "stacked engine lie within (a)'s spread across seeds."
        )
    return "\n".join(lines)


def write_docs(text: str, section: str = SECTION) -> Path:
    """Replace (or append) ``section`` of docs/benchmarks.md with ``text``."""
    path = ROOT / "docs" / "benchmarks.md"
    body = f"{section}\n\n{text}\n"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Benchmarks\n\nMeasured numbers, one section per benchmark.\n\n" + body)
        return path
    old = path.read_text()
    if section in old:
        head, rest = old.split(section, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        new = head + body + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + body
    path.write_text(new)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 candidates, 5 epochs")
    parser.add_argument(
        "--backends",
        default="tensorflow",
        help="comma-separated backends for the stacked arm (tensorflow,jax)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds for arms (a) and (c)")
    parser.add_argument("--arms", default="a,b,c", help="subset of a,b,c")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write the results section into docs/benchmarks.md",
    )
    parser.add_argument("--json", help="also dump every run's raw numbers to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = [
        a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--write-docs",)
    ]

    if args.worker:
        print(json.dumps(worker(args.worker, args.seed, args.quick)))
        return 0

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    runs, skipped = [], []
    print(f"machine: {machine()}", flush=True)
    for arm, seed in itertools.product(arms, range(args.seeds)):
        if arm == "b" and seed > 0:
            continue  # (b) is as slow as (a); its timing is compared at seed 0
        if arm == "c":
            for backend in backends:
                if backend == "jax" and importlib.util.find_spec("jax") is None:
                    if seed == 0:
                        skipped.append(
                            "(c) on jax: skipped, jax is not installed (pip install 'tunekit[jax]')"
                        )
                        print("  (c) jax: skipped, jax is not installed", flush=True)
                    continue
                runs.append(run_arm(arm, seed, args.quick, backend))
        else:
            runs.append(run_arm(arm, seed, args.quick))
    for r in runs:
        if "error" in r:
            msg = f"({r['arm']}) on {r['backend']} seed {r['seed']}: failed: {r['error']}"
            skipped.append(msg)
            print("  " + msg, flush=True)
    text = report(runs, args, skipped)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    if args.write_docs:
        print(f"\nwrote {write_docs(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
