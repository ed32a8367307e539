"""The ``tunekit`` command, and the command line every study in ``studies/`` shares.

``tunekit run studies/<name>.py [--workers N | --gpus 0,1] [study flags]``
runs a study script: once, or as several worker processes sharing the
study's storage (one per GPU with ``--gpus``), followed by one final run that
writes the report. ``tunekit report SOURCE`` renders a stored study or a
result directory.

Exit codes: 0 success, 1 runtime failure, 2 usage error (bad flags, missing
script, GPUs that are not there), 75 the study's storage was lost (run again
once the database is back), 130 interrupted (Ctrl-C) and 143 terminated
(SIGTERM): run the same command again to continue.

Signals: SIGINT and SIGTERM stop a study at its next safe point (an epoch's
or fold's end, or between trials), never inside a storage transaction; a
second one within 2 s quits at once. The handlers are installed first, before
TensorFlow loads, so a signal of the start-up window is honoured too; the
study processes ``tunekit run`` starts stop when it dies (see
:mod:`tunekit._signals`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tunekit import _signals

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "StudyOptions",
    "build_parser",
    "fail",
    "main",
    "study_main",
    "study_options",
    "study_parser",
    "visible_gpus",
]

logger = logging.getLogger("tunekit")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_STORAGE = 75  # EX_TEMPFAIL: the storage was lost; run again once it is back
PROG = "tunekit"

_EPILOG = """\
exit codes: 0 success, 1 runtime failure, 2 usage error, 75 storage lost, 130 interrupted,
143 terminated (run the same command again to continue: finished trials are kept and
never re-run)

examples:
  tunekit run studies/regularization.py
  tunekit run studies/tune.py --workers 2 --n-trials 40
  tunekit run studies/tune.py --gpus 0,1 --storage postgresql://user@host/db
  tunekit report results/regularization
  tunekit report sqlite:///results/tune/study.db --format csv --out tune.csv
  tunekit dashboard results/tune --port 8080
"""


def _configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for name in ("tunekit", "tunekit.report"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes and the like


# ------------------------------------------------------------------- studies
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
        type=_positive_int,
        metavar="N",
        help="finished trials the study should hold (plan studies: the first N configurations)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
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
    _configure_logging(verbose=opts.verbose, quiet=opts.quiet)
    from tunekit._quiet import import_keras

    import_keras(verbose=2 if opts.verbose else 1)  # TensorFlow's start-up lines hidden
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
    print(f"{opts._study}.py: error: {_clean(err, opts.storage)}", file=sys.stderr)
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
        print(f"{prog}: error: {_clean(err, opts.storage)}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as err:  # a clean message; the traceback with -v
        logger.debug("the study failed:", exc_info=True)
        print(f"{prog}: error: {_clean(err, opts.storage)}", file=sys.stderr)
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
    import importlib.util

    from tunekit.dashboard import INSTALL, command

    missing = importlib.util.find_spec("optuna_dashboard") is None
    return command(storage) + (f"  (first: {INSTALL})" if missing else "")


def _clean(err: BaseException, url: str | None) -> str:
    from tunekit.storage.urls import scrub

    text = str(err) or type(err).__name__
    return scrub(text, url) if url else text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


# ---------------------------------------------------------------------- GPUs
def visible_gpus() -> list[tuple[int, str]]:
    """The GPUs ``nvidia-smi -L`` lists, as ``(index, name)``; none without ``nvidia-smi``.

    Indices are ``nvidia-smi``'s (PCI bus order); ``tunekit run --gpus`` sets
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA numbers them the same way.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    gpus = []
    for line in done.stdout.splitlines():
        match = re.match(r"\s*GPU (\d+): (.*?)(?: \(UUID: [^)]*\))?\s*$", line)
        if match:
            gpus.append((int(match.group(1)), match.group(2)))
    return gpus


def _parse_gpus(text: str) -> tuple[list[int] | None, str | None]:
    """``"0,1"`` -> ``([0, 1], None)``; ``"all"`` -> ``(None, None)``; else ``(None, error)``."""
    if text.strip().lower() == "all":
        return None, None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        return None, (
            f"--gpus takes GPU indices such as 0 or 0,1 (see nvidia-smi -L) or all, got {text!r}"
        )
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        return None, f"--gpus lists a GPU twice: {text!r}; give each index once"
    return ids, None


# ------------------------------------------------------------------- tunekit run
def _find_script(text: str) -> Path | None:
    for candidate in (Path(text), Path("studies") / text, Path("studies") / f"{text}.py"):
        if candidate.is_file():
            return candidate
    return None


def _exit_code(code: int) -> int:
    """A child's exit status as ours: 0, 1, 2, 75, 130 (SIGINT) or 143 (SIGTERM)."""
    known = (EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_STORAGE, EXIT_INTERRUPTED, EXIT_TERMINATED)
    if code in known:
        return code
    if code == -signal.SIGINT:
        return EXIT_INTERRUPTED
    if code == -signal.SIGTERM:
        return EXIT_TERMINATED
    return EXIT_FAILURE


def _pump(stream, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()
    stream.close()


def _forward(procs: list[subprocess.Popen], signum: int) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signum)


def _wait(procs: list[subprocess.Popen]) -> list[int]:
    """Wait for the processes, passing SIGINT (Ctrl-C) and SIGTERM on to them.

    The children run in their own sessions, so a terminal's Ctrl-C reaches
    them once, from here: each stops at its next safe point (its running
    trial is queued again) and exits; a second Ctrl-C within 2 s reaches
    them too and they quit at once.
    """
    with _signals.forwarding(lambda signum: _forward(procs, signum)):
        return [p.wait() for p in procs]


def _popen(argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    from tunekit.workers import start_child

    env = {**os.environ, **env, **_signals.child_env()}  # the child dies with us
    return start_child(argv, env=env, **kwargs)


def _run_script(script: Path, args: list[str], env: dict[str, str]) -> int:
    proc = _popen(_signals.child_command(str(script), args), env)
    return _exit_code(_wait([proc])[0])


def _worker_tag(i: int) -> str:
    """``TUNEKIT_WORKER`` for worker ``i``: distinct sampler seeds (see tunekit.workers).

    A tag already set (one per machine, e.g. ``box1``) is kept as a prefix, so that
    workers on several machines sharing a study differ too.
    """
    machine = os.environ.get("TUNEKIT_WORKER", "").strip()
    return f"{machine}-{i}" if machine else str(i)


def _run_workers(script: Path, args: list[str], envs: list[dict[str, str]]) -> int:
    procs, pumps = [], []
    for i, env in enumerate(envs):
        if _signals.stop_requested() is not None:
            break  # stopped while starting: start no more
        proc = _popen(
            _signals.child_command(str(script), [*args, "--worker"]),
            {**env, "TUNEKIT_WORKER": _worker_tag(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {i}] "), daemon=True)
        pump.start()
        procs.append(proc)
        pumps.append(pump)
        logger.info("worker %d started (pid %d)%s", i, proc.pid, _describe_env(env))
    codes = _wait(procs)
    for pump in pumps:
        pump.join(timeout=5)
    return _workers_status(codes)


def _workers_status(codes: list[int]) -> int:
    """One exit status for the workers' statuses: a stop first, then a failure, else 0."""
    failed = [(i, c) for i, c in enumerate(codes) if c != 0]
    for stop in (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_STORAGE):
        if any(_exit_code(c) == stop for _, c in failed):
            return stop
    if _signals.stop_requested() is not None:
        return 128 + _signals.stop_requested()
    if failed:
        text = ", ".join(f"worker {i} exited with code {c}" for i, c in failed)
        print(f"{PROG} run: error: {text}; see its output above", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _run_ray_workers(
    args: argparse.Namespace, script: Path, study_args: list[str], base: dict[str, str]
) -> int:
    """``--ray ADDRESS``: the workers as Ray tasks sharing the study (see tunekit._ray)."""
    from tunekit import _ray

    n_workers = args.workers if args.workers > 1 else None  # None: one per cluster CPU
    try:
        codes = _ray.run_workers(
            script,
            [*study_args, "--worker"],
            address=args.ray,
            n_workers=n_workers,
            env=base,
            tag=_worker_tag,
            stop_requested=_signals.stop_requested,
        )
    except (ImportError, ConnectionError, ValueError) as err:
        print(f"{PROG} run: error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return _workers_status(codes)


def _describe_env(env: dict[str, str]) -> str:
    if "CUDA_VISIBLE_DEVICES" in env:
        return f" on GPU {env['CUDA_VISIBLE_DEVICES']}"
    return ""


def _cmd_run(args: argparse.Namespace) -> int:
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
    base = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    final_env = dict(base)
    if args.ray is not None:
        code = _run_ray_workers(args, script, study_args, base)
        return _after_workers(code, script, study_args, final_env)
    if args.gpus is not None:
        ids, problem = _parse_gpus(args.gpus)
        if problem:
            print(f"{PROG} run: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        gpus = visible_gpus()
        visible = [i for i, _ in gpus]
        ids = visible if ids is None else ids
        missing = [i for i in ids if i not in visible]
        if missing or not ids:
            seen = (
                ", ".join(f"{i} ({name})" for i, name in gpus)
                if gpus
                else "none (nvidia-smi -L lists no GPU, or nvidia-smi is not installed)"
            )
            asked = args.gpus if ids else "all"
            print(
                f"{PROG} run: error: --gpus {asked} asks for GPU(s) "
                f"{', '.join(map(str, missing)) or 'all'} that this machine does not have; "
                f"visible GPUs: {seen}. Use indices from nvidia-smi -L, or run on the CPU "
                "without --gpus (--workers N for several processes).",
                file=sys.stderr,
            )
            return EXIT_USAGE
        gpu_env = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        envs = [{**base, **gpu_env, "CUDA_VISIBLE_DEVICES": str(i)} for i in ids]
        final_env = {**base, **gpu_env, "CUDA_VISIBLE_DEVICES": str(ids[0])}
    elif args.workers > 1:
        per = str(max(1, (os.cpu_count() or 1) // args.workers))
        threads = {
            "TF_NUM_INTRAOP_THREADS": per,
            "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": per,
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        }
        envs = [{**base, **threads} for _ in range(args.workers)]
    else:
        return _run_script(script, study_args, final_env)
    logger.info("%s: %d workers share the study", script, len(envs))
    code = _run_workers(script, study_args, envs)
    return _after_workers(code, script, study_args, final_env)


def _after_workers(code: int, script: Path, study_args: list[str], final_env: dict) -> int:
    """After the workers: the final run that writes the report, or why there is none."""
    if code != EXIT_OK:
        if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
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
    return _run_script(script, study_args, final_env)


# ------------------------------------------------------------- tunekit dashboard
def _cmd_dashboard(args: argparse.Namespace) -> int:
    from tunekit import dashboard

    try:
        dashboard.serve(
            args.source,
            host=args.host,
            port=args.port,
            announce=lambda line: print(line, flush=True),
        )
    except (ImportError, dashboard.DashboardError) as err:
        print(f"{PROG} dashboard: error: {_clean(err, args.source)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# ---------------------------------------------------------------- tunekit report
def _cmd_report(args: argparse.Namespace) -> int:
    from tunekit import report
    from tunekit.report import ReportError
    from tunekit.storage.urls import redact_url

    source = args.source
    try:
        obj = report.load(source, study=args.study)
        if args.out is None:
            text = report.render(obj, args.format or "md")
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return EXIT_OK
        out = Path(args.out)
        if out.is_dir() or (not out.suffix and args.format is None):
            written = report.write_report(obj, out)
            print("\n".join(str(p) for p in written.values()))
        else:
            print(report.write(obj, out, format=args.format))
    except ReportError as err:
        print(f"{PROG} report: error: {_clean(err, source)}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(
            f"{PROG} report: error: cannot write {args.out!r} for {redact_url(source)}: "
            f"{_clean(err, source)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


# ------------------------------------------------------------------------ parser
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code (2), with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``tunekit`` argument parser (subcommands ``run``, ``report`` and ``dashboard``)."""
    from tunekit._version import __version__

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
    run = sub.add_parser(
        "run",
        help="run a study script (resumable)",
        description="Run a study script. Flags after the script go to the study (--storage, "
        "--study-name, --n-trials, --timeout, --seed, --out, --smoke, --full; see "
        "'python studies/NAME.py --help'). With --workers or --gpus several worker "
        "processes share the study's storage, then one final run writes the report.",
        epilog="Ctrl-C (or SIGTERM) stops the study at its next safe point; twice within 2 s "
        "quits at once. Run the same command again to continue an interrupted study. Exit "
        "codes: 0 success, 1 failure, 2 usage error (also: --gpus asks for GPUs that are not "
        "there), 75 storage lost (run again once the database is back), 130 interrupted, "
        "143 terminated.",
        allow_abbrev=False,
    )
    parallel = run.add_mutually_exclusive_group()
    parallel.add_argument(
        "--workers",
        type=_positive_int,
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
    run.add_argument("script", help="a study script, e.g. studies/tune.py (or just tune)")
    run.add_argument("study_args", nargs=argparse.REMAINDER, help="flags for the study")
    rep = sub.add_parser(
        "report",
        help="render a stored study or a result directory",
        description="Render the leaderboard of a study storage (sqlite:///..., "
        "postgresql://...) or of a result directory written by a study. Nothing is "
        "unpickled and passwords are never printed.",
        epilog="Without --out the leaderboard is printed (Markdown by default). --out FILE "
        "writes one file (format from --format or the suffix); --out DIR writes the full "
        "report (Markdown, HTML, CSV, JSON, PNG plots).",
    )
    rep.add_argument("source", help="storage URL, SQLite file or result directory")
    rep.add_argument("--study", metavar="NAME", help="study to read when the storage has several")
    rep.add_argument(
        "--format", choices=("md", "html", "csv", "json"), help="output format (default: md)"
    )
    rep.add_argument("--out", metavar="PATH", help="file or directory to write")
    dash = sub.add_parser(
        "dashboard",
        help="watch a study live in Optuna Dashboard",
        description="Start Optuna Dashboard on this machine for a study storage "
        "(sqlite:///..., postgresql://...), an SQLite file or a study's result directory, "
        "and serve it until Ctrl-C. Needs pip install 'tunekit[dashboard]'.",
        epilog="The page polls the storage: start it before or while a study runs. On "
        "another machine, bind localhost and open an SSH tunnel (ssh -L 8080:localhost:8080 "
        "HOST) rather than --host 0.0.0.0.",
    )
    dash.add_argument("source", help="storage URL, SQLite file or result directory")
    dash.add_argument(
        "--port", type=int, default=8080, metavar="N", help="port (default: 8080; 0: any free)"
    )
    dash.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``tunekit`` command.

    Parameters
    ----------
    argv : list of str or None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    code : int
        0 success, 1 runtime failure, 2 usage error, 75 storage lost, 130
        interrupted, 143 terminated.
    """
    if argv is None:  # the process's own command line: the handlers go in first
        _signals.install()
    return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "run":
            # run's own flags may also follow the script: take them out of its arguments
            args.study_args = _split_run_flags(parser, args, extra)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging()
    if _signals.stop_requested() is not None:
        print(f"{PROG}: interrupted before {args.command} started", file=sys.stderr)
        return 128 + _signals.stop_requested()
    try:
        if args.command == "run":
            with _signals.handling():
                return _cmd_run(args)
        _signals.restore_defaults()  # a report has no safe points: Ctrl-C stops it at once
        if args.command == "dashboard":
            return _cmd_dashboard(args)
        return _cmd_report(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


def _split_run_flags(parser, args, extra) -> list[str]:
    rest = list(args.study_args) + list(extra)
    out = []
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, value = token.partition("=")
        if name in ("--workers", "--gpus", "--ray"):
            if not eq:
                if i + 1 >= len(rest):
                    parser.error(f"argument {name}: expected one argument")
                value = rest[i + 1]
                i += 1
            if name == "--workers":
                try:
                    args.workers = _positive_int(value)
                except argparse.ArgumentTypeError as err:
                    parser.error(f"argument --workers: {err}")
            elif name == "--ray":
                args.ray = value
            else:
                args.gpus = value
            i += 1
            continue
        out.append(token)
        i += 1
    if args.gpus is not None and args.workers != 1:
        parser.error("argument --gpus: not allowed with argument --workers (one worker per GPU)")
    if args.gpus is not None and args.ray is not None:
        parser.error(
            "argument --ray: not allowed with argument --gpus (Ray places the workers; "
            "give GPUs to the cluster's nodes instead)"
        )
    return out
