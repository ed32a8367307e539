"""The ``tunekit`` command, and the command line every study in ``studies/`` shares.

``tunekit run studies/<name>.py [--workers N | --gpus 0,1] [study flags]``
runs a study script: once, or as several worker processes sharing the
study's storage (one per GPU with ``--gpus``), followed by one final run that
writes the report. ``tunekit report SOURCE`` renders a stored study or a
result directory; ``tunekit dashboard SOURCE`` serves Optuna Dashboard.

Exit codes: 0 success, 1 runtime failure, 2 usage error (bad flags, missing
script, GPUs that are not there), 75 the study's storage was lost (run again
once the database is back), 130 interrupted (Ctrl-C) and 143 terminated
(SIGTERM): run the same command again to continue; 128 + N a study process
killed by signal N (137: ``kill -9``). The table: :mod:`tunekit.launch`.

Signals: SIGINT and SIGTERM stop a study at its next safe point (an epoch's
or fold's end, or between trials), never inside a storage transaction; a
second one within 2 s quits at once. The handlers are installed first, before
TensorFlow loads, so a signal of the start-up window is honoured too; the
study processes ``tunekit run`` starts stop when it dies (see
:mod:`tunekit._signals`).

Modules: :mod:`~tunekit.cli.parser` (the argument parser),
:mod:`~tunekit.cli.command` (:func:`main`), one module per command
(:mod:`~tunekit.cli.run`, :mod:`~tunekit.cli.report`,
:mod:`~tunekit.cli.dashboard`), and :mod:`~tunekit.cli.study` (the study
scripts' command line: :func:`study_options`, :func:`study_main`).
"""

import signal
from importlib import import_module
from typing import TYPE_CHECKING

__all__ = [
    "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STORAGE", "EXIT_TERMINATED", "EXIT_USAGE",
    "StudyOptions", "build_parser", "fail", "main", "study_main", "study_options", "study_parser",
    "visible_gpus",
]  # fmt: skip

# name -> module that defines it, loaded on first use (PEP 562): the ``tunekit`` console
# script imports this package, and blocks the signals in :func:`main` before the rest loads
_LAZY = {
    "build_parser": "tunekit.cli.parser",
    **dict.fromkeys(["StudyOptions", "fail", "study_main", "study_options", "study_parser"],
                    "tunekit.cli.study"),
    **dict.fromkeys(["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STORAGE",
                     "EXIT_TERMINATED", "EXIT_USAGE", "visible_gpus"], "tunekit.launch"),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the ``tunekit`` command (:func:`tunekit.cli.command.main`).

    With ``argv=None`` (the process's own command line, as the console script
    calls it), SIGINT and SIGTERM are blocked first, before the command's
    modules load, and unblocked once its handlers are in place: a signal of
    that window is held back and honoured, never lost and never a traceback.
    """
    if argv is None and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
    return import_module("tunekit.cli.command").main(argv)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tunekit.cli' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from tunekit.cli.parser import build_parser
    from tunekit.cli.study import StudyOptions, fail, study_main, study_options, study_parser
    from tunekit.launch import (
        EXIT_FAILURE,
        EXIT_INTERRUPTED,
        EXIT_OK,
        EXIT_STORAGE,
        EXIT_TERMINATED,
        EXIT_USAGE,
        visible_gpus,
    )
