"""Signals stop a study at safe points only; a process dies with the one that launched it.

SIGINT (Ctrl-C) and SIGTERM never raise where they land. The handler only
records the signal; the study checks the record at safe points (an epoch's
end, a fold's end, between trials) and stops there, so a signal can never cut
a storage transaction in half. A second signal within :data:`QUIT_WINDOW`
seconds of the previous one quits at once (``os._exit``): the database rolls
back whatever transaction was open, and the trial that was running is failed
and retried once its heartbeat is stale.

Start-up: ``tunekit run`` and ``python -m tunekit.workers`` start their
children with SIGINT and SIGTERM *blocked*, so that a signal sent before the
child's handlers exist stays pending instead of killing it with a raw
``KeyboardInterrupt``; :func:`install` unblocks them once the handlers are
in place (first thing in every study script, before TensorFlow loads). The
launchers themselves block them first (:func:`hold`), before their own slow
imports, and keep them blocked while a child starts until it is on the list
of processes a signal is passed on to. A signal that reaches a launched
child before its script claims the handlers still stops it with the signal's
status, even where an import turned the ``KeyboardInterrupt`` into another
error.

Launchers also put their pid in ``TUNEKIT_PARENT_PID``: a child that sees it
asks Linux for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``) and watches
the parent's pid as well (other systems, or a parent gone before the request);
once the parent is gone it stops at the next safe point, and quits outright
if that takes longer than half the heartbeat grace period (10 s at most).

This module uses the standard library only: it must be importable before
anything heavy is.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

__all__ = [
    "HANDLED",
    "PARENT_ENV",
    "QUIT_WINDOW",
    "WORKER_ATTR",
    "WorkerInterrupted",
    "WorkerTerminated",
    "check_stop",
    "child_command",
    "child_env",
    "forwarding",
    "handling",
    "hold",
    "install",
    "interrupt_for",
    "prepare",
    "received",
    "restore_defaults",
    "run_path_main",
    "stop_requested",
    "worker_id",
]

HANDLED = (signal.SIGINT, signal.SIGTERM)
QUIT_WINDOW = 2.0  # seconds: a second signal this soon after the previous one quits at once
PARENT_ENV = "TUNEKIT_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: The trial user attribute that names the process running the trial (``host:pid``).
WORKER_ATTR = "tunekit_worker"


def worker_id() -> str:
    """``host:pid`` of this process, stored on each trial as ``user_attrs["tunekit_worker"]``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerInterrupted(KeyboardInterrupt):
    """A signal stopped the worker, raised at a safe point of the running trial.

    It derives from :class:`KeyboardInterrupt` so that the objective's own
    ``except Exception`` cannot swallow it and Optuna records the trial as
    FAIL. SIGINT raises this class, SIGTERM :class:`WorkerTerminated`.

    Attributes
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int, message: str | None = None) -> None:
        self.signum = int(signum)
        super().__init__(message or f"worker stopped by {signal.Signals(self.signum).name}")


class WorkerTerminated(WorkerInterrupted):
    """SIGTERM stopped the worker.

    Raised at a safe point of the running trial so that the trial is recorded
    as FAIL; :func:`tunekit.strategies.shared_study.optimize` then queues the trial again and
    ends the process with ``SystemExit(143)``: unlike Ctrl-C, no partial
    result is returned.
    """


def interrupt_for(signum: int) -> WorkerInterrupted:
    """The exception a stop by ``signum`` raises: SIGINT's or SIGTERM's class."""
    cls = WorkerInterrupted if signum == signal.SIGINT else WorkerTerminated
    return cls(signum)


class _State:
    """What the handler recorded. One per process; only the main thread handles signals."""

    def __init__(self) -> None:
        self.reset()
        self.installed = 0  # claims: :func:`install` (for good) and :func:`handling` scopes
        self.listeners: list[Callable[[int], None]] = []
        self.history: list[int] = []  # every signal handled in this process

    def reset(self) -> None:
        self.signum: int | None = None
        self.last = -float("inf")
        self.received: list[int] = []


_state = _State()


def _write(text: str) -> None:
    # os.write: a signal handler must not re-enter a buffered stream being written
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


def _handler(signum: int, frame) -> None:
    now = time.monotonic()
    repeat = _state.signum is not None and now - _state.last < QUIT_WINDOW
    _state.received.append(signum)
    _state.history.append(signum)
    _state.last = now
    if _state.listeners:  # a launcher: pass it on to the children, which stop themselves
        if _state.signum is None:
            _state.signum = signum
        for listener in list(_state.listeners):
            listener(signum)
        return
    if not _state.installed:  # nothing checks for a stop yet: behave as Python would,
        if _state.signum is None:  # and keep the stop, in case the exception is swallowed
            _state.signum = signum
        raise interrupt_for(signum)
    if repeat:
        _write(f"tunekit: {signal.Signals(signum).name} again: quitting now\n")
        os._exit(128 + signum)
    if _state.signum is None:
        _state.signum = signum
        _write(
            f"tunekit: {signal.Signals(signum).name} received: stopping at the next safe "
            f"point (signal again within {QUIT_WINDOW:g} s to quit at once)\n"
        )


def stop_requested() -> int | None:
    """The first signal received since the handlers were installed, or None."""
    return _state.signum


def received() -> list[int]:
    """Every signal handled in this process so far (first one first)."""
    return list(_state.history)


def check_stop() -> None:
    """Raise :class:`WorkerInterrupted` (or :class:`WorkerTerminated`) if a signal came.

    Call it at safe points only: never inside a storage transaction.
    """
    if _state.signum is not None:
        raise interrupt_for(_state.signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _set_handlers() -> dict:
    previous = {}
    for signum in HANDLED:
        old = signal.getsignal(signum)
        if old is signal.SIG_IGN and os.environ.get(PARENT_ENV) is None:
            continue  # deliberately ignored (nohup, background jobs): leave it so
        if old is not _handler:
            signal.signal(signum, _handler)
        previous[signum] = old
    return previous


def _unblock() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def prepare() -> None:
    """Put the handlers in place without claiming them, and unblock the signals.

    Until something claims them (:func:`install`, :func:`handling`), a
    signal acts as Python's default would: SIGINT raises
    :class:`WorkerInterrupted` (a :class:`KeyboardInterrupt`), SIGTERM
    :class:`WorkerTerminated`; a launched child's start-up signal, held back
    while it was blocked, arrives then. A launcher's ``TUNEKIT_PARENT_PID``
    makes this process die with its launcher. Main thread only.
    """
    if not _in_main_thread():
        return
    _set_handlers()
    _die_with_parent()
    _unblock()


def install() -> None:
    """Claim flag-only handlers for this process, for good, and unblock the signals.

    Call it first, before importing anything slow (TensorFlow): a signal sent
    during start-up is then recorded and honoured at the first safe point.
    Idempotent; does nothing outside the main thread.
    """
    if not _in_main_thread():
        return
    _set_handlers()
    _die_with_parent()
    _state.installed += 1  # claimed before unblocking: a held-back signal is recorded, not raised
    _unblock()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Flag-only handlers for the duration of the block (main thread only).

    Handlers already claimed by :func:`install` (or an outer block) are
    kept; otherwise the previous handlers are restored afterwards and the
    stop request is cleared, so that a later search in the same process
    starts afresh.
    """
    if not _in_main_thread():
        yield
        return
    outermost = _state.installed == 0
    previous = _set_handlers()
    _state.installed += 1
    _unblock()
    try:
        yield
    finally:
        _state.installed -= 1
        if outermost:
            for signum, old in previous.items():
                signal.signal(signum, signal.SIG_DFL if old is None else old)
            _state.reset()


def restore_defaults() -> None:
    """Undo :func:`install`: Python's default handlers, and nothing recorded."""
    if not _in_main_thread() or not _state.installed:
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _state.installed = 0
    _state.reset()


@contextlib.contextmanager
def forwarding(forward: Callable[[int], None]) -> Iterator[None]:
    """In a launcher: pass each SIGINT/SIGTERM on through ``forward(signum)``.

    Signals received before the block (since the last stop request was
    cleared) are forwarded on entry, so that none is lost while the
    children start.
    """
    _state.listeners.append(forward)
    try:
        for signum in _state.received:
            forward(signum)
        yield
    finally:
        _state.listeners.remove(forward)


def hold() -> None:
    """Block SIGINT and SIGTERM until the handlers exist: first thing in an entry point.

    A signal of the start-up window (the imports that follow) then stays
    pending instead of raising a raw :class:`KeyboardInterrupt` or killing the
    process; :func:`install`, :func:`prepare` or :func:`handling` unblock it,
    and it reaches the handler. Main thread only.
    """
    if hasattr(signal, "pthread_sigmask") and _in_main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)


def blocked_for_children() -> contextlib.AbstractContextManager:
    """Block SIGINT/SIGTERM while starting children: they inherit the mask (see module doc)."""
    if not hasattr(signal, "pthread_sigmask") or not _in_main_thread():
        return contextlib.nullcontext()
    return _blocked()


@contextlib.contextmanager
def _blocked() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def child_env() -> dict[str, str]:
    """Environment entries a launcher gives its children: they die with it."""
    return {PARENT_ENV: str(os.getpid())}


# ------------------------------------------------------------------ parent death
def _quit_delay() -> float:
    """Seconds a child may take to stop after its parent died: half the grace period."""
    try:
        grace = float(os.environ.get("TUNEKIT_GRACE_PERIOD", "") or 30)
    except ValueError:
        grace = 30.0
    return max(1.0, min(10.0, grace / 2))


def _die_with_parent() -> None:
    raw = os.environ.pop(PARENT_ENV, None)  # popped: grandchildren have other parents
    if not raw or not raw.isdigit():
        return
    parent = int(raw)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="tunekit-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    if _state.signum is None:  # the parent-death signal did not come (or not on Linux)
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_quit_delay())
    _write("tunekit: the launcher is gone and this process did not stop in time: quitting\n")
    os._exit(128 + signal.SIGTERM)


# ------------------------------------------------------------------ child entry point
def run_path_main(argv: list[str] | None = None) -> None:
    """``python -m tunekit._signals SCRIPT [ARGS...]``: run SCRIPT as ``__main__``.

    The handlers are put in place (:func:`prepare`: the signals a launcher
    blocked are unblocked) before anything of the script runs, so a launcher
    can start any script this way without losing a signal of its start-up
    window: a study claims them at once (flag-only, honoured at its first
    safe point); before that, or in a script that never does, a signal stops
    it as Python's default would, but with a one-line message.
    ``sys.argv`` and ``sys.path[0]`` are as for ``python SCRIPT ARGS``.
    """
    import runpy

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        raise SystemExit("usage: python -m tunekit._signals SCRIPT [ARGS...]")
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    try:
        prepare()  # a signal held back during start-up arrives here
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit:
        raise
    except BaseException as err:
        # before the script claimed the signals: the stop's status, no traceback, also where
        # an import turned the KeyboardInterrupt into another error (numpy's ImportError)
        signum = getattr(err, "signum", None) or _state.signum
        if signum is None and not isinstance(err, KeyboardInterrupt):
            raise
        signum = signum or signal.SIGINT
        first = (str(err).strip().splitlines() or [""])[0]
        why = "" if isinstance(err, KeyboardInterrupt) else f" ({type(err).__name__}: {first})"
        name = os.path.basename(argv[0])
        _write(f"{name}: interrupted by {signal.Signals(signum).name}{why}\n")
        raise SystemExit(128 + signum) from None


def child_command(script: str, args: list[str]) -> list[str]:
    """The command a launcher runs a study script with (see :func:`run_path_main`)."""
    return [sys.executable, "-m", "tunekit._signals", str(script), *args]


if __name__ == "__main__":
    # the imported module, not this ``__main__`` copy, holds the state the script sees
    from tunekit._signals import run_path_main as _run

    _run()
