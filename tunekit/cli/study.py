"""The command line every study in ``studies/`` shares, and how a study script runs.

A study script parses its flags with :func:`study_options` (``--storage``,
``--study-name``, ``--n-trials``, ``--timeout``, ``--seed``, ``--out``,
``--smoke``/``--full``, ``--data``), runs with :func:`study_main` and exits
with the code it returns (see :mod:`tunekit.launch` for the table); :func:`fail`
reports an error of its own set-up. The signal handlers go in first, before
TensorFlow loads, so that a signal of the start-up window is honoured too.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from tunekit import _quiet, _signals
from tunekit.cli._common import clean_error, configure_logging, positive_float, positive_int
from tunekit.launch import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_STORAGE, EXIT_TERMINATED

__all__ = ["StudyOptions", "fail", "study_main", "study_options", "study_parser"]

logger = logging.getLogger("tunekit")


class StudyOptions(argparse.Namespace):
    """Parsed study flags, with :meth:`pick` for sizes that depend on the mode."""

    smoke: bool
    full: bool

    @property
    def mode(self) -> str:
        """``"smoke"``, ``"full"`` or ``"default"``."""
        return "smoke" if self.smoke else "full" if self.full else "default"

    def pick(self, smoke: Any, default: Any, full: Any) -> Any:
        """The value for the current mode: ``--smoke``, default or ``--full``."""
        return {"smoke": smoke, "default": default, "full": full}[self.mode]


def study_parser(
    name: str,
    description: str | None = None,
    *,
    data: tuple[str, ...] | None = None,
    flags: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """The command line every study takes.

    Parameters
    ----------
    name : str
        The study's name: the default study name and ``results/<name>``.
    description : str or None
        Shown by ``--help`` (a study passes its docstring).
    data : tuple of str or None
        Data sets the study can run on (``--data``); the first is the default.
    flags : dict of str to str or None
        Extra on/off flags of the study (``{"--synthetic": "help"}``).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog=f"{name}.py",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Run it again with the same flags to continue an interrupted study: finished "
            "trials are kept in the storage and never re-run. Exit codes: 0 success, 1 "
            "failure, 2 usage error, 75 storage lost, 130 interrupted, 143 terminated."
        ),
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage shared by every run and worker (default: sqlite:///OUT/study.db; "
        "several machines: postgresql://user@host/db)",
    )
    parser.add_argument(
        "--study-name",
        metavar="NAME",
        help=f"study in the storage (default: {name}, with -<data>, -smoke/-full, -seed<N> "
        "appended when those differ from the defaults)",
    )
    parser.add_argument(
        "--n-trials",
        type=positive_int,
        metavar="N",
        help="finished trials the study should hold (plan studies: the first N configurations)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="start no new trial after this many seconds",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", metavar="DIR", help=f"report directory (default: results/{name})")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--smoke", action="store_true", help="tiny run (seconds) to check that it works"
    )
    size.add_argument("--full", action="store_true", help="the real size (slow on a CPU)")
    if data:
        parser.add_argument(
            "--data", choices=data, default=data[0], help=f"data set (default: {data[0]})"
        )
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="log more; show the traceback of an error"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(_study=name, _description=description, _flags=flags or {})
    return parser


def study_options(
    name: str,
    argv: list[str] | None = None,
    *,
    description: str | None = None,
    data: tuple[str, ...] | None = None,
    flags: dict[str, str] | None = None,
    n_trials: tuple[int | None, int | None, int | None] = (2, None, None),
) -> StudyOptions:
    """Parse a study's command line and fill in the defaults.

    The defaults: ``--out results/<name>``, ``--storage
    sqlite:///<out>/study.db`` and a study name that tells modes, data sets
    and seeds apart, so that runs with different settings never share trials.
    ``n_trials`` gives the default ``--n-trials`` for ``--smoke``, the default
    mode and ``--full`` (``None``: the study's own default, e.g. its whole
    plan). See :func:`study_parser` for the other parameters.

    Returns
    -------
    options : StudyOptions
    """
    if argv is None:  # the process's own command line: a study script starting up
        _signals.install()  # first, before TensorFlow loads: no signal is lost
    parser = study_parser(name, description, data=data, flags=flags)
    opts = parser.parse_args(argv, namespace=StudyOptions())
    configure_logging(verbose=opts.verbose, quiet=opts.quiet)
    if opts.verbose:  # Keras loads on first use (tunekit's quiet import), here with its lines
        _quiet.show_tf_logs()
    if opts.study_name is None:
        parts = [name]
        if data and opts.data != data[0]:
            parts.append(opts.data)
        parts += [flag.lstrip("-") for flag in opts._flags if getattr(opts, _dest(flag))]
        if opts.mode != "default":
            parts.append(opts.mode)
        if opts.seed != 0:
            parts.append(f"seed{opts.seed}")
        opts.study_name = "-".join(parts)
    if opts.n_trials is None:
        opts.n_trials = opts.pick(*n_trials)
    if opts.out is None:
        opts.out = str(Path("results") / name)
    if opts.storage is None:
        Path(opts.out).mkdir(parents=True, exist_ok=True)
        opts.storage = f"sqlite:///{Path(opts.out, 'study.db').as_posix()}"
    return opts


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def fail(opts: StudyOptions, err: BaseException) -> int:
    """Print a study's error cleanly (no traceback, no password) and return exit code 1."""
    print(f"{opts._study}.py: error: {clean_error(err, opts.storage)}", file=sys.stderr)
    return EXIT_FAILURE


def study_main(opts: StudyOptions, estimator, X, y=None, **kwargs: Any) -> int:
    """Run a study from its parsed options, print its summary, return an exit code.

    Parameters
    ----------
    opts : StudyOptions
        From :func:`study_options`.
    estimator, X, y, **kwargs
        Passed to :func:`tunekit.workflow.run_study`.

    Returns
    -------
    code : int
        0, 1 (the study failed; the reason is printed), 75 (the storage was
        lost), 130 (interrupted) or 143 (terminated).
    """
    # start-up: a study script imports this module before its signal handlers are in
    # place, and `tunekit --help` does too: the study's own modules (Optuna, TensorFlow)
    # come once it runs
    from tunekit import workflow
    from tunekit.storage import StorageError, connection_lost

    prog = f"{opts._study}.py"
    if _signals.stop_requested() is not None:  # came while the study started up
        return _interrupted(prog, _signals.stop_requested())
    try:
        outcome = workflow.run_study(
            estimator,
            X,
            y,
            storage=opts.storage,
            study_name=opts.study_name,
            out=None if opts.worker else opts.out,
            n_trials=opts.n_trials,
            timeout=opts.timeout,
            random_state=opts.seed,
            worker=opts.worker,
            verbose=0 if opts.quiet else 1,
            **{"title": _title(opts), **kwargs},
        )
    except KeyboardInterrupt as err:
        return _interrupted(prog, getattr(err, "signum", signal.SIGINT))
    except StorageError as err:  # the database went away for longer than the retries
        print(f"{prog}: error: {clean_error(err, opts.storage)}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as err:  # a clean message; the traceback with -v
        logger.debug("the study failed:", exc_info=True)
        print(f"{prog}: error: {clean_error(err, opts.storage)}", file=sys.stderr)
        return EXIT_STORAGE if connection_lost(err) else EXIT_FAILURE
    signum = _signals.stop_requested() or signal.SIGINT
    if opts.worker:
        return 128 + signum if outcome.interrupted else EXIT_OK
    _print_summary(outcome)
    return 128 + signum if outcome.interrupted else EXIT_OK


def _interrupted(prog: str, signum: int) -> int:
    print(f"{prog}: interrupted; run the same command again to continue", file=sys.stderr)
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def _title(opts: StudyOptions) -> str:
    first = (opts._description or "").strip().splitlines()
    data = f" ({opts.data})" if getattr(opts, "data", None) else ""
    return f"{opts._study}{data}: {first[0].rstrip('.')}" if first else opts._study


def _print_summary(outcome) -> None:
    summary = outcome.summary
    if summary is not None and len(summary):
        shown = summary.drop(columns=[c for c in summary.columns if summary[c].isna().all()])
        print(f"\nstudy {outcome.study_name!r} ({outcome.storage}): {outcome.n_finished} trials")
        print(shown.head(20).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if summary.attrs.get("baseline_summary"):
            print(f"baselines: {summary.attrs['baseline_summary']}")
    if outcome.report:
        print("\nreport:", ", ".join(str(p) for p in outcome.report.values() if p.suffix != ".png"))
        print("live view:", _dashboard_command(outcome.storage))
    if outcome.interrupted:
        print("interrupted: run the same command again to continue")


def _dashboard_command(storage: str) -> str:
    """``tunekit dashboard STORAGE``, with the install command when the extra is missing."""
    from tunekit.dashboard import INSTALL, command  # start-up: it loads Optuna

    missing = importlib.util.find_spec("optuna_dashboard") is None
    return command(storage) + (f"  (first: {INSTALL})" if missing else "")
