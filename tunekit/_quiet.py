"""A quiet terminal: tunekit's own lines (progress, summary, report paths), not TensorFlow's.

TensorFlow 2.21 prints its C++ start-up lines (oneDNN, CUDA drivers, CPU
features) through absl *before* ``TF_CPP_MIN_LOG_LEVEL`` is read, so setting
the variable does not hide them. :func:`import_keras` imports Keras (and so
its backend) with file descriptor 2 pointed at a temporary file, then writes
back to stderr every captured line that is not one of those start-up lines.
Searches hide TensorFlow's "retracing" warnings and restore the logger levels
and warnings filters they found (:func:`restoring_global_state`).

None of this happens when the user asked for TensorFlow's output: with
``verbose >= 2`` (``--verbose``), or when ``TF_CPP_MIN_LOG_LEVEL``,
``TF_CPP_MAX_VLOG_LEVEL`` or ``TF_CPP_VMODULE`` was set by the user. In a
process where Keras was already imported (a notebook), whatever TensorFlow
printed stays printed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

__all__ = [
    "TF_LOG_VARIABLES",
    "FitProgress",
    "import_keras",
    "is_noise",
    "quiet_child_env",
    "restoring_global_state",
    "show_tf_logs",
    "user_wants_tf_logs",
]

#: Environment variables through which a user asks TensorFlow for its C++ logs.
TF_LOG_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
#: Set beside ``TF_CPP_MIN_LOG_LEVEL`` when tunekit (not the user) set it, so that
#: worker processes inheriting the environment stay quiet too.
_MARKER = "TUNEKIT_QUIET_TF"
_HIDDEN = ("tensorflow", "absl")  # errors only during a search
_RESTORED = (*_HIDDEN, "optuna", "tunekit", "h5py")  # levels put back when it returns
_ASKED = {"tf_logs": False}  # set by show_tf_logs(): --verbose of a study script

_NOISE = re.compile(
    "|".join(
        [
            r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
            r"^[IWE]\d{4} [\d:.]+\s+\d+ \S+\.(?:cc|h):\d+\] ",  # absl's C++ log lines
            r"^To enable the following instructions: .*rebuild TensorFlow",
            r"^WARNING: Logging before InitGoogleLogging\(\) is written to STDERR",
        ]
    )
)


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's C++ start-up log lines."""
    return bool(_NOISE.match(line))


def show_tf_logs() -> None:
    """Show TensorFlow's output in this process from now on (a study's ``--verbose``).

    Keras is imported on first use, not when a study's options are parsed (a study
    of a scikit-learn estimator never starts TensorFlow); this makes that later
    import show what TensorFlow prints.
    """
    _ASKED["tf_logs"] = True


def quiet_child_env() -> dict[str, str]:
    """The environment a launcher gives the study processes it starts.

    TensorFlow's C++ logs at warnings and above hidden, marked as tunekit's
    doing (so that each child still imports Keras through :func:`import_keras`,
    without the start-up lines); nothing when the user set a TensorFlow
    logging variable or asked for TensorFlow's output, which the children
    inherit as they are.
    """
    if _ASKED["tf_logs"] or user_wants_tf_logs():
        return {}
    return {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), _MARKER: "1"}


def user_wants_tf_logs(verbose: int = 1) -> bool:
    """Whether TensorFlow's own output should be shown.

    Parameters
    ----------
    verbose : int, default=1
        tunekit's verbosity: 2 and more shows TensorFlow's lines.

    Returns
    -------
    wanted : bool
        ``verbose >= 2``, :func:`show_tf_logs` called, or a TensorFlow
        logging variable set by the user (not by tunekit).
    """
    if verbose >= 2 or _ASKED["tf_logs"]:
        return True
    if os.environ.get(_MARKER) == "1":
        return False
    return any(name in os.environ for name in TF_LOG_VARIABLES)


def import_keras(verbose: int = 1) -> Any:
    """Import Keras (and its backend) without TensorFlow's C++ start-up lines.

    Parameters
    ----------
    verbose : int, default=1
        2 and more: import as usual, showing everything.

    Returns
    -------
    keras : module
    """
    if "keras" in sys.modules or user_wants_tf_logs(verbose):
        import keras

        return keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # after absl starts: warnings hidden
    os.environ[_MARKER] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras

            tf = sys.modules.get("tensorflow")
            if tf is not None:  # CUDA's cuInit line comes with the first device query
                tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.flush()
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode("utf-8", errors="replace").splitlines(True)
                if not is_noise(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return keras


def restoring_global_state(search: Callable) -> Callable:
    """Decorate a search: TensorFlow's warnings hidden, global logging state restored.

    During the call the ``tensorflow`` and ``absl`` loggers log errors only
    (their retracing warnings are noise to a search that builds many models)
    unless ``verbose >= 2`` or the user set TensorFlow's log variables. On
    return the loggers' levels and the warnings filters are as they were.
    """

    @functools.wraps(search)
    def wrapper(*args, **kwargs):
        verbose = kwargs.get("verbose", 1)
        loggers = [logging.getLogger(name) for name in _RESTORED]
        levels = [lg.level for lg in loggers]
        try:
            with warnings.catch_warnings():
                if not user_wants_tf_logs(verbose):
                    for lg in loggers[: len(_HIDDEN)]:
                        lg.setLevel(max(lg.level, logging.ERROR))
                return search(*args, **kwargs)
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)

    return wrapper


class FitProgress:
    """A progress bar over whole fits, with an ETA when the number of fits is known.

    A scorer that also scores the training folds calls :meth:`update` with
    halves; the bar moves by whole fits only.

    Parameters
    ----------
    total : int or None
        Fits expected (candidates times folds); ``None``: unknown, no ETA.
    desc, unit : str
        The bar's label and unit.
    """

    def __init__(self, total: int | None = None, desc: str = "fits", unit: str = "fit"):
        self.desc, self.unit, self._total = desc, unit, total
        self.bar = None  # drawn once there is something to show: never an empty bar first
        self.done = 0.0
        self.shown = 0

    def _drawn(self):
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self._total, desc=self.desc, unit=self.unit, leave=False,
                            dynamic_ncols=True)  # fmt: skip
        return self.bar

    @property
    def total(self) -> int | None:
        """Fits expected so far (a search adds each batch's); ``None``: unknown."""
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        self._drawn().total = value

    def refresh(self) -> None:
        """Redraw the bar (after ``total`` changed)."""
        self._drawn().refresh()

    def update(self, amount: float = 1) -> None:
        """Count ``amount`` fits (halves add up); the bar shows whole ones."""
        self.done += amount
        whole = int(self.done + 1e-9)
        if whole > self.shown:
            self._drawn().update(whole - self.shown)
            self.shown = whole

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()
