"""The ``tunekit`` command: parse the command line, then run one command."""

from __future__ import annotations

import sys

from tunekit import _signals
from tunekit.cli._common import PROG, configure_logging
from tunekit.cli.parser import build_parser, split_run_flags
from tunekit.cli.run import run
from tunekit.launch import EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["main"]


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
        interrupted, 143 terminated, 128 + N a study process killed by
        signal N (see :mod:`tunekit.launch`).
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
            args.study_args = split_run_flags(parser, args, extra)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging()
    if _signals.stop_requested() is not None:
        print(f"{PROG}: interrupted before {args.command} started", file=sys.stderr)
        return 128 + _signals.stop_requested()
    try:
        if args.command == "run":
            with _signals.handling():
                return run(args)
        _signals.restore_defaults()  # a report has no safe points: Ctrl-C stops it at once
        if args.command == "dashboard":
            from tunekit.cli.dashboard import dashboard  # start-up: it loads Optuna

            return dashboard(args)
        from tunekit.cli.report import report  # start-up: it loads Optuna and pandas

        return report(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
