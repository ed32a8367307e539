"""``tunekit run SCRIPT``: a study script, once or as workers sharing its storage.

One run (the script as one process), or workers (``--workers N``, one per GPU
with ``--gpus``, or Ray tasks with ``--ray``) followed by one final run that
writes the report. Processes, signals, GPUs and exit codes: :mod:`tunekit.launch`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tunekit import _quiet, _signals, launch
from tunekit.cli._common import PROG
from tunekit.launch import EXIT_FAILURE, EXIT_OK, EXIT_STORAGE, EXIT_USAGE

_STOPS = (launch.EXIT_INTERRUPTED, launch.EXIT_TERMINATED)  # run the same command again

__all__ = ["run"]

logger = logging.getLogger("tunekit")


def run(args: argparse.Namespace) -> int:
    """Run ``tunekit run`` with its parsed arguments; return the exit code."""
    script = _find_script(args.script)
    if script is None:
        found = (
            sorted(p.name for p in Path("studies").glob("*.py")) if Path("studies").is_dir() else []
        )
        hint = f"; studies in ./studies: {', '.join(found)}" if found else ""
        print(f"{PROG} run: error: no study script {args.script!r}{hint}", file=sys.stderr)
        return EXIT_USAGE
    study_args = list(args.study_args)
    if "--worker" in study_args:
        print(f"{PROG} run: error: --worker is set by tunekit run itself", file=sys.stderr)
        return EXIT_USAGE
    base = _quiet.quiet_child_env()
    tracked = {}
    if args.mlflow is not None:
        # start-up: tunekit.tracking loads pandas, which only a run that asks for MLflow pays;
        # the process that ends the study (the only one, or the one after the workers) logs it
        from tunekit.tracking import ENV_VAR

        tracked = {ENV_VAR: args.mlflow}
    final_env = {**base, **tracked}
    if args.ray is not None:
        code = _ray_workers(args, script, study_args, base)
        return _after_workers(code, script, study_args, final_env)
    if args.gpus is not None:
        try:
            ids = launch.gpu_ids(args.gpus)
        except ValueError as err:
            print(f"{PROG} run: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        envs = [{**base, **launch.gpu_env(i)} for i in ids]
        final_env = {**base, **launch.gpu_env(ids[0]), **tracked}
    elif args.workers > 1:
        envs = [{**base, **launch.thread_env(args.workers)} for _ in range(args.workers)]
    else:
        return launch.run_child(_signals.child_command(str(script), study_args), final_env)
    logger.info("%s: %d workers share the study", script, len(envs))
    codes = launch.run_workers(
        _signals.child_command(str(script), [*study_args, "--worker"]), envs, label=True
    )
    return _after_workers(_workers_status(codes), script, study_args, final_env)


def _find_script(text: str) -> Path | None:
    for candidate in (Path(text), Path("studies") / text, Path("studies") / f"{text}.py"):
        if candidate.is_file():
            return candidate
    return None


def _workers_status(codes: list[int]) -> int:
    """The workers' one exit status; a failure is named on stderr."""
    status = launch.combined_status(codes)
    if status not in (EXIT_OK, EXIT_STORAGE, *_STOPS):
        failed = [(i, launch.exit_status(c)) for i, c in enumerate(codes) if c != 0]
        text = ", ".join(f"worker {i} exited with code {c}" for i, c in failed)
        print(f"{PROG} run: error: {text}; see its output above", file=sys.stderr)
    return status


def _ray_workers(
    args: argparse.Namespace, script: Path, study_args: list[str], env: dict[str, str]
) -> int:
    """``--ray ADDRESS``: the workers as Ray tasks sharing the study."""
    n_workers = args.workers if args.workers > 1 else None  # None: one per cluster CPU
    try:
        codes = launch.run_ray_workers(
            script, [*study_args, "--worker"], address=args.ray, n_workers=n_workers, env=env
        )
    except (ImportError, ConnectionError, ValueError) as err:
        print(f"{PROG} run: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return _workers_status(codes)


def _after_workers(code: int, script: Path, study_args: list[str], final_env: dict) -> int:
    """After the workers: the final run that writes the report, or why there is none."""
    if code != EXIT_OK:
        if code in _STOPS:
            print(
                f"{PROG} run: interrupted; run the same command again to continue", file=sys.stderr
            )
        elif code == EXIT_STORAGE:
            print(
                f"{PROG} run: error: the study's storage was lost; run the same command "
                "again once the database is reachable",
                file=sys.stderr,
            )
        return code
    logger.info("workers done; writing the report")
    return launch.run_child(_signals.child_command(str(script), study_args), final_env)
