"""``python -m tunekit.workers [-n N] [--gpus 0,1] SCRIPT [ARGS...]``: a study's workers.

Several processes, on one machine or many, can run the same Optuna study:
each one runs a script that calls :func:`tunekit.search` with
``strategy="optuna"``, the same ``storage`` URL (PostgreSQL for several
machines) and the same ``study_name``. This command runs such a script as one
worker (in this process), or as ``N`` worker processes (one per GPU with
``--gpus``) started by the launcher (:func:`tunekit.launch.launch`): signals
are passed on to them, and they stop when this process dies. What each worker
guarantees (signals stop a trial at a safe point, dead workers' trials are
retried, nothing is left RUNNING, distinct seeds through
:func:`worker_seed`): :mod:`tunekit.strategies.shared_study`.

Exit status: the launcher's table (:mod:`tunekit.launch`): 0 done, 130 after
SIGINT, 143 after SIGTERM, 75 when the storage was lost, 2 for a usage error,
128 + N for a worker killed by signal N, 1 for other errors.
"""

from __future__ import annotations

import signal

if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):  # first: no signal is lost
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))

import argparse
import logging
import os
import runpy
import sys
from collections.abc import Sequence

from tunekit import _signals
from tunekit._signals import WorkerInterrupted
from tunekit.launch import EXIT_INTERRUPTED, EXIT_STORAGE, gpu_ids, launch
from tunekit.storage import StorageError
from tunekit.strategies.shared_study import worker_seed

__all__ = ["launch", "main", "run_script", "worker_seed"]


def run_script(path: str | os.PathLike, argv: Sequence[str] = ()) -> int:
    """Run a study script as ``__main__`` in this process, as one worker.

    Returns
    -------
    status : int
        0 when the script finished, 143 after SIGTERM, 130 after SIGINT, 75
        when the storage was lost (the message goes to stderr, without the
        password). Other exceptions propagate.
    """
    saved = sys.argv
    sys.argv = [os.fspath(path), *argv]
    before = len(_signals.received())
    try:
        try:
            runpy.run_path(os.fspath(path), run_name="__main__")
        finally:
            received = _signals.received()[before:]
    except WorkerInterrupted as err:
        print(f"tunekit worker: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except SystemExit as done:  # sys.exit() in the script, or SIGTERM (143)
        if done.code is None or isinstance(done.code, int):
            return done.code or (128 + received[0] if received else 0)
        print(done.code, file=sys.stderr)
        return 1
    except StorageError as err:
        print(f"tunekit worker: error: {err}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as err:
        if not received:
            raise
        # a stop during the script's start-up, which an import turned into another error
        print(f"tunekit worker: stopped by a signal ({type(err).__name__})", file=sys.stderr)
        return 128 + received[0]
    finally:
        sys.argv = saved
    return 128 + received[0] if received else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tunekit.workers",
        description="Run a study script as one or several workers sharing its Optuna study.",
    )
    parser.add_argument(
        "-n",
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: 1, or one per GPU with --gpus)",
    )
    parser.add_argument(
        "--gpus",
        default=None,
        help="GPU indices from nvidia-smi -L, e.g. 0,1, or all (given out round robin)",
    )
    parser.add_argument("script", help="a Python file that calls tunekit.search")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the script")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tunekit.workers [-n N] [--gpus 0,1] SCRIPT [ARGS...]``.

    Run as a command (``argv=None``), SIGINT and SIGTERM stay blocked from its
    first line until the handlers exist: the script's (one worker, in this
    process), or the launcher's (several): a signal of the start-up window is
    held back, then honoured.
    """
    if argv is None:
        _signals.hold()
    parser = _parser()
    opts = parser.parse_args(argv)
    gpus = None
    if opts.gpus is not None:
        try:
            gpus = gpu_ids(opts.gpus)
        except ValueError as err:
            parser.error(str(err))
    n_workers = opts.workers if opts.workers is not None else len(gpus or [None])
    if n_workers < 1:
        parser.error(f"--workers must be >= 1, got {n_workers}")
    if not os.path.isfile(opts.script):
        parser.error(f"no such study script: {opts.script!r}")
    if n_workers == 1 and not gpus:
        try:
            _signals.prepare()  # the script's handlers: a signal held back arrives here
        except WorkerInterrupted as err:
            print(f"tunekit worker: {err}", file=sys.stderr)
            return 128 + err.signum
        return run_script(opts.script, opts.args)
    command = [sys.executable, "-m", "tunekit.workers", opts.script, *opts.args]
    return launch(command, n_workers, gpus=gpus)


if __name__ == "__main__":
    # run the imported module, not this ``__main__`` copy: its exception classes are the
    # ones tunekit raises
    from tunekit.workers import main as _main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(_main())
