"""The ``tunekit`` argument parser: ``run``, ``report`` and ``dashboard``."""

from __future__ import annotations

import argparse
import sys

from tunekit._version import __version__
from tunekit.cli._common import PROG, positive_int
from tunekit.launch import EXIT_USAGE

__all__ = ["build_parser", "split_run_flags"]

_EPILOG = """\
exit codes: 0 success, 1 runtime failure, 2 usage error, 75 storage lost, 130 interrupted,
143 terminated (run the same command again to continue: finished trials are kept and
never re-run), 128+N a study process killed by signal N (137: kill -9, out of memory)

examples:
  tunekit run studies/regularization.py
  tunekit run studies/tune.py --workers 2 --n-trials 40
  tunekit run studies/tune.py --gpus 0,1 --storage postgresql://user@host/db
  tunekit report results/regularization
  tunekit report sqlite:///results/tune/study.db --format csv --out tune.csv
  tunekit dashboard results/tune --port 8080
"""

_RUN_FLAGS = ("--workers", "--gpus", "--ray")  # run's own flags, also after the script


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code (2), with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``tunekit`` argument parser (subcommands ``run``, ``report`` and ``dashboard``)."""
    parser = _Parser(
        prog=PROG,
        description="Tune and cross-validate Keras models the scikit-learn way: run the "
        "studies in studies/ (resumable, on one machine, several workers or GPUs) and "
        "report their results.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_run(sub)
    _add_report(sub)
    _add_dashboard(sub)
    return parser


# argparse rewraps these texts: their line breaks are not kept
_RUN_HELP = "run a study script (resumable)"
_RUN_DESCRIPTION = """\
Run a study script. Flags after the script go to the study (--storage, --study-name,
--n-trials, --timeout, --seed, --out, --smoke, --full; see 'python studies/NAME.py --help').
With --workers or --gpus several worker processes share the study's storage, then one final
run writes the report."""
_RUN_EPILOG = """\
Ctrl-C (or SIGTERM) stops the study at its next safe point; twice within 2 s quits at once.
Run the same command again to continue an interrupted study. Exit codes: 0 success, 1
failure, 2 usage error (also: --gpus asks for GPUs that are not there), 75 storage lost (run
again once the database is back), 130 interrupted, 143 terminated, 128+N a study process
killed by signal N (137: kill -9)."""
_REPORT_HELP = "render a stored study or a result directory"
_REPORT_DESCRIPTION = """\
Render the leaderboard of a study storage (sqlite:///..., postgresql://...) or of a result
directory written by a study. Nothing is unpickled and passwords are never printed."""
_REPORT_EPILOG = """\
Without --out the leaderboard is printed (Markdown by default). --out FILE writes one file
(format from --format or the suffix); --out DIR writes the full report (Markdown, HTML, CSV,
JSON, PNG plots)."""
_DASHBOARD_HELP = "watch a study live in Optuna Dashboard"
_DASHBOARD_DESCRIPTION = """\
Start Optuna Dashboard on this machine for a study storage (sqlite:///..., postgresql://...),
an SQLite file or a study's result directory, and serve it until Ctrl-C. Needs pip install
'tunekit[dashboard]'."""
_DASHBOARD_EPILOG = """\
The page polls the storage: start it before or while a study runs. On another machine, bind
localhost and open an SSH tunnel (ssh -L 8080:localhost:8080 HOST) rather than --host
0.0.0.0."""


def _add_run(sub) -> None:
    run = sub.add_parser(
        "run", help=_RUN_HELP, description=_RUN_DESCRIPTION, epilog=_RUN_EPILOG, allow_abbrev=False
    )
    parallel = run.add_mutually_exclusive_group()
    parallel.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes on this machine sharing the study (default: 1)",
    )
    parallel.add_argument(
        "--gpus",
        metavar="IDS",
        help="one worker per GPU, e.g. 0,1 or all (indices from nvidia-smi -L); each sees "
        "only its GPU (CUDA_VISIBLE_DEVICES) with memory growth on",
    )
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the workers as tasks on a Ray cluster (HOST:6379 as `ray start --head` "
        "prints it, ray://HOST:10001 or auto), one CPU each: --workers N of them (default: "
        "one per CPU of the cluster); the study's --storage must be reachable from every "
        "node. Needs pip install 'tunekit[ray]'",
    )
    run.add_argument(
        "--mlflow",
        metavar="URI",
        help="log the study's searches to MLflow: a tracking URI, or a folder for a local "
        "store (e.g. mlruns). Needs pip install 'tunekit[mlflow]'",
    )
    run.add_argument("script", help="a study script, e.g. studies/tune.py (or just tune)")
    run.add_argument("study_args", nargs=argparse.REMAINDER, help="flags for the study")


def _add_report(sub) -> None:
    rep = sub.add_parser(
        "report", help=_REPORT_HELP, description=_REPORT_DESCRIPTION, epilog=_REPORT_EPILOG
    )
    rep.add_argument("source", help="storage URL, SQLite file or result directory")
    rep.add_argument("--study", metavar="NAME", help="study to read when the storage has several")
    rep.add_argument(
        "--format", choices=("md", "html", "csv", "json"), help="output format (default: md)"
    )
    rep.add_argument("--out", metavar="PATH", help="file or directory to write")


def _add_dashboard(sub) -> None:
    dash = sub.add_parser(
        "dashboard",
        help=_DASHBOARD_HELP,
        description=_DASHBOARD_DESCRIPTION,
        epilog=_DASHBOARD_EPILOG,
    )
    dash.add_argument("source", help="storage URL, SQLite file or result directory")
    dash.add_argument(
        "--port", type=int, default=8080, metavar="N", help="port (default: 8080; 0: any free)"
    )
    dash.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )


def split_run_flags(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> list[str]:
    """The study's flags of ``tunekit run``, with run's own flags (also after the script)
    taken out into ``args``."""
    rest = list(args.study_args) + list(extra)
    out = []
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, value = token.partition("=")
        if name not in _RUN_FLAGS:
            out.append(token)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(rest):
                parser.error(f"argument {name}: expected one argument")
            value = rest[i + 1]
            i += 1
        if name == "--workers":
            try:
                args.workers = positive_int(value)
            except argparse.ArgumentTypeError as err:
                parser.error(f"argument --workers: {err}")
        elif name == "--ray":
            args.ray = value
        else:
            args.gpus = value
        i += 1
    if args.gpus is not None and args.workers != 1:
        parser.error("argument --gpus: not allowed with argument --workers (one worker per GPU)")
    if args.gpus is not None and args.ray is not None:
        parser.error(
            "argument --ray: not allowed with argument --gpus (Ray places the workers; "
            "give GPUs to the cluster's nodes instead)"
        )
    return out
