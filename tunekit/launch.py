"""The one launcher: study processes, their GPUs and signals, and one table of exit codes.

``tunekit run``, ``python -m tunekit.workers`` and ``tunekit run --ray`` start
their study processes here:

* **Processes.** :func:`start_child` starts a study process in its own
  session (a terminal's Ctrl-C reaches it once, from its launcher) with
  SIGINT and SIGTERM blocked until its handlers are in place, so that no
  signal of its start-up is lost; ``TUNEKIT_PARENT_PID`` makes it die with
  its launcher, even one killed by ``kill -9`` (see :mod:`tunekit._signals`).
* **Signals.** :func:`run_workers` and :func:`run_child` pass every SIGINT
  and SIGTERM the launcher receives on to the processes it started: each
  stops at its next safe point (its running trial is queued again); a second
  signal within 2 s reaches them too and they quit at once.
* **Worker tags.** Worker ``i`` gets ``TUNEKIT_WORKER=<i>`` (``<tag>-<i>``
  when this process already has a tag, e.g. one per machine): distinct
  sampler seeds (:func:`tunekit.strategies.shared_study.worker_seed`).
* **GPUs.** :func:`gpu_ids` reads ``--gpus 0,1`` (or ``all``) and checks it
  against ``nvidia-smi -L``; :func:`gpu_env` gives a process one GPU.
* **Ray.** :func:`run_ray_workers` runs the workers as Ray tasks, one CPU
  each, each running the study in a child process with the same guarantees.

Exit codes, one table for every launcher and for a study script:

====== ===================================================================
code   meaning
====== ===================================================================
0      success
1      runtime failure
2      usage error (bad flags, a missing script, GPUs that are not there)
75     the study's storage was lost (``EX_TEMPFAIL``): run again once it is back
130    interrupted (SIGINT, Ctrl-C): run the same command again to continue
143    terminated (SIGTERM): run the same command again to continue
128+N  a study process was killed by signal N (137: ``kill -9`` or the
       out-of-memory killer), as a shell reports it
====== ===================================================================

A launcher passes a child's exit status on unchanged, and a child killed by
signal N as 128 + N (:func:`exit_status`). Of several workers
(:func:`combined_status`), a stop counts first (130, 143, then 75), then a
signal the launcher itself received, then the first failed worker's status.

This module imports the standard library only (Ray, through
:mod:`tunekit.backends`, on first use): the command line starts without
TensorFlow or Optuna.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tunekit import _signals

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "FORWARDED_ENV_PREFIXES",
    "combined_status",
    "exit_status",
    "gpu_env",
    "gpu_ids",
    "launch",
    "run_child",
    "run_ray_workers",
    "run_workers",
    "start_child",
    "thread_env",
    "visible_gpus",
    "worker_tag",
]

logger = logging.getLogger("tunekit")

# ------------------------------------------------------------------ exit codes
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STORAGE = 75  # EX_TEMPFAIL: the storage was lost; run again once it is back
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
_STOPS = (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_STORAGE)  # in the order they count


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it: 128 + N when signal N killed it.

    Parameters
    ----------
    returncode : int
        :attr:`subprocess.Popen.returncode`: negative when a signal killed
        the child.

    Returns
    -------
    status : int
        ``returncode`` itself, or ``128 + N`` for a child killed by signal N
        (130 SIGINT, 137 SIGKILL, 143 SIGTERM).

    Examples
    --------
    >>> from tunekit.launch import exit_status
    >>> exit_status(-9), exit_status(75)
    (137, 75)
    """
    return 128 - returncode if returncode < 0 else returncode


def combined_status(returncodes: Sequence[int]) -> int:
    """One exit status for several workers (see the module's table).

    A stop first (130, then 143, then 75: run the same command again), then a
    signal this process received, then the first failed worker's status
    (:func:`exit_status`), else 0.
    """
    statuses = [exit_status(code) for code in returncodes]
    for stop in _STOPS:
        if stop in statuses:
            return stop
    if _signals.stop_requested() is not None:
        return 128 + _signals.stop_requested()
    failed = [status for status in statuses if status != EXIT_OK]
    return failed[0] if failed else EXIT_OK


# ------------------------------------------------------------------ GPUs
def visible_gpus() -> list[tuple[int, str]]:
    """The GPUs ``nvidia-smi -L`` lists, as ``(index, name)``; none without ``nvidia-smi``.

    Indices are ``nvidia-smi``'s (PCI bus order); :func:`gpu_env` sets
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


def _parse_gpus(text: str) -> list[int] | None:
    """``"0,1"`` -> ``[0, 1]``; ``"all"`` -> ``None``; else :class:`ValueError`."""
    if text.strip().lower() == "all":
        return None
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(
            f"--gpus takes GPU indices such as 0 or 0,1 (see nvidia-smi -L) or all, got {text!r}"
        )
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--gpus lists a GPU twice: {text!r}; give each index once")
    return ids


def gpu_ids(text: str) -> list[int]:
    """The GPUs ``--gpus TEXT`` asks for, checked against :func:`visible_gpus`.

    Parameters
    ----------
    text : str
        GPU indices as ``nvidia-smi -L`` numbers them (``"0"``, ``"0,1"``),
        or ``"all"``.

    Returns
    -------
    ids : list of int
        One worker's GPU each.

    Raises
    ------
    ValueError
        For malformed text, or GPUs this machine does not have; the message
        names the requested and the visible GPUs.
    """
    ids = _parse_gpus(text)
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
        asked = text if ids else "all"
        raise ValueError(
            f"--gpus {asked} asks for GPU(s) {', '.join(map(str, missing)) or 'all'} that this "
            f"machine does not have; visible GPUs: {seen}. Use indices from nvidia-smi -L, or "
            "run on the CPU without --gpus (--workers N for several processes)."
        )
    return ids


def gpu_env(index: int) -> dict[str, str]:
    """Environment entries that give a process GPU ``index`` alone, with memory growth on."""
    return {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": str(index),
    }


def thread_env(n_workers: int) -> dict[str, str]:
    """Environment entries that share this machine's cores among ``n_workers`` processes."""
    per = str(max(1, (os.cpu_count() or 1) // n_workers))
    return {
        "TF_NUM_INTRAOP_THREADS": per,
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": per,
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


# ------------------------------------------------------------------ processes
def worker_tag(i: int) -> str:
    """``TUNEKIT_WORKER`` for worker ``i``: distinct sampler seeds for workers of one study.

    A tag already set (one per machine, e.g. ``box1``) is kept as a prefix, so
    that workers on several machines sharing a study differ too.
    """
    machine = os.environ.get("TUNEKIT_WORKER", "").strip()
    return f"{machine}-{i}" if machine else str(i)


def start_child(argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start one study process in its own session, with the guarantees of a worker.

    Its own session: a terminal's Ctrl-C reaches it once, from its launcher.
    SIGINT and SIGTERM are blocked until its handlers are in place, so none
    is lost during its start-up (:mod:`tunekit._signals`); ``kwargs`` go to
    :class:`subprocess.Popen` (``env`` should include
    :func:`tunekit._signals.child_env` for the child to die with us).
    """
    with _signals.blocked_for_children():
        return subprocess.Popen(list(argv), start_new_session=True, **kwargs)


def _pump(stream, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()
    stream.close()


def _describe(env: Mapping[str, str]) -> str:
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    return f" on GPU {gpu}" if gpu is not None else ""


def _wait_for(procs: list[subprocess.Popen], start) -> list[int]:
    """Start the processes (``start()`` returns the next one, or None), wait for them.

    Each SIGINT/SIGTERM this process receives is passed on to the processes
    started so far; once one came, no more are started. Signals stay blocked
    from the check for a stop until the new process is in ``procs``: one that
    comes while a process starts is handled after it is there, and reaches it.
    """

    def forward(signum: int) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    with _signals.forwarding(forward):
        while True:
            with _signals.blocked_for_children():
                if _signals.stop_requested() is not None:  # stopped: start no more
                    break
                proc = start()
                if proc is None:
                    break
                procs.append(proc)
        return [proc.wait() for proc in procs]


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run one study process (``argv``, with ``env`` on top of ours) and wait for it.

    Returns
    -------
    status : int
        Its exit status (:func:`exit_status`); 128 + signal when this process
        was stopped before the child started.
    """
    started: list[subprocess.Popen] = []

    def start():
        if started:
            return None
        return start_child(argv, env={**os.environ, **env, **_signals.child_env()})

    codes = _wait_for(started, start)
    return exit_status(codes[0]) if codes else 128 + _signals.stop_requested()


def run_workers(
    argv: Sequence[str], envs: Sequence[Mapping[str, str]], *, label: bool = False
) -> list[int]:
    """Run one worker process per entry of ``envs``, each running ``argv``; wait for them.

    Parameters
    ----------
    argv : sequence of str
        The command every worker runs.
    envs : sequence of mappings
        Worker ``i``'s environment entries, on top of this process's; each
        worker also gets ``TUNEKIT_WORKER`` (:func:`worker_tag`).
    label : bool, default=False
        Prefix each line a worker prints with ``[worker i]`` (on stderr);
        otherwise the workers write to this process's own streams.

    Returns
    -------
    returncodes : list of int
        One per worker started (:func:`combined_status` makes them one).
    """
    procs: list[subprocess.Popen] = []
    pumps: list[threading.Thread] = []
    output = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def start():
        i = len(procs)
        if i == len(envs):
            return None
        env = {**os.environ, **envs[i], **_signals.child_env(), "TUNEKIT_WORKER": worker_tag(i)}
        proc = start_child(argv, env=env, **(output if label else {}))
        if label:
            pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {i}] "))
            pump.daemon = True
            pump.start()
            pumps.append(pump)
        logger.info("worker %d started (pid %d)%s", i, proc.pid, _describe(envs[i]))
        return proc

    codes = _wait_for(procs, start)
    for pump in pumps:
        pump.join(timeout=5)
    return codes


def launch(
    argv: Sequence[str],
    n_workers: int,
    *,
    gpus: Sequence[int | str] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``n_workers`` processes running ``argv`` and wait for them.

    Each worker gets ``TUNEKIT_WORKER`` (:func:`worker_tag`) and, with
    ``gpus``, its own GPU (round robin, :func:`gpu_env`). SIGTERM and SIGINT
    received by this process are passed on to every worker (which stop at
    their next safe point: the running trial is failed and queued again), and
    the workers stop when this process dies (even by ``kill -9``).

    Parameters
    ----------
    argv : sequence of str
        The command each worker runs.
    n_workers : int
        How many workers.
    gpus : sequence of int or str, or None
        GPU indices (``nvidia-smi -L``'s), given out round robin.
    env : mapping or None
        Environment entries for every worker.

    Returns
    -------
    status : int
        0 when every worker succeeded, else :func:`combined_status` of
        theirs (128 + signal for a worker killed by a signal).
    """
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"the number of workers must be an integer >= 1, got {n_workers!r}")
    envs = [
        {**(env or {}), **(gpu_env(gpus[i % len(gpus)]) if gpus else {})} for i in range(n_workers)
    ]
    with _signals.handling():
        return combined_status(run_workers(argv, envs))


# ------------------------------------------------------------------ Ray tasks
FORWARDED_ENV_PREFIXES = ("TUNEKIT_", "TF_", "KERAS_")  # the driver's settings a task gets


def _forwarded_env(env: Mapping[str, str]) -> dict[str, str]:
    """The driver's tunekit/TensorFlow/Keras settings, plus ``env``: what a task gets."""
    own = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    own.pop(_signals.PARENT_ENV, None)  # the driver's own launcher, not the task's
    return {**own, **env}


def _study_worker(script: str, args: list[str], cwd: str, env: dict[str, str]) -> dict:
    """One study worker, run inside a Ray task: the script in a child process.

    The child dies with this Ray worker (``TUNEKIT_PARENT_PID``); a cancelled
    task (``ray.cancel``) stops it at its next safe point.
    """
    node = socket.gethostname()
    if not os.path.isfile(script):
        return {
            "code": EXIT_USAGE,
            "node": node,
            "error": f"no study script {script!r} on node {node}: every node of the cluster "
            "needs the project at the same path (and tunekit installed)",
        }
    workdir = cwd if os.path.isdir(cwd) else os.path.dirname(script)
    child_env = {**os.environ, **env, **_signals.child_env()}
    proc = start_child(_signals.child_command(script, args), env=child_env, cwd=workdir)
    try:
        while proc.poll() is None:  # not proc.wait(): ray.cancel's interrupt needs Python code
            time.sleep(0.2)
    except KeyboardInterrupt:  # ray.cancel(): stop the study at its next safe point
        proc.send_signal(signal.SIGINT)
    return {"code": exit_status(proc.wait()), "node": node, "error": None}


def run_ray_workers(
    script: str | os.PathLike,
    args: Sequence[str],
    *,
    address: str,
    n_workers: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> list[int]:
    """Run a study script as ``n_workers`` Ray tasks sharing its storage; wait for them.

    Each task runs the script in a child process with the guarantees of a
    worker of ``tunekit run --workers N``: signals stop it at a safe point, a
    killed worker's trial is failed and retried once its heartbeat is stale,
    and the child dies with the task's Ray worker. A stop this process
    receives cancels the tasks, which stops each study at its next safe point.

    Parameters
    ----------
    script : str or path-like
        The study script; every node needs it at the same absolute path.
    args : sequence of str
        The script's arguments (``--worker`` included): the storage they name
        must be reachable from every node (PostgreSQL for several machines).
    address : str
        The Ray cluster's address (see :func:`tunekit.backends.check_reachable`).
    n_workers : int or None, default=None
        Tasks to start, one CPU each; ``None``: one per CPU of the cluster.
    env : mapping or None
        Environment entries for every worker, on top of the driver's
        ``TUNEKIT_*``, ``TF_*`` and ``KERAS_*`` variables.
    timeout : float or None, default=None
        Seconds to wait for the address to answer.

    Returns
    -------
    returncodes : list of int
        Each worker's exit status (see the module's table; 2 when the script
        is missing on its node).

    Raises
    ------
    ImportError, ConnectionError, ValueError
        See :func:`tunekit.backends.connect`.
    """
    # every worker's lines, not one of each: Ray's deduplication takes lines that differ
    # only in numbers (trial 3 / trial 4, worker 0 / worker 1) for repeats
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # read when ray is first imported
    # optional dependency: Ray, which connect() imports (and the command line's start-up
    # goes without the backends)
    from tunekit.backends import connect

    with connect(address, timeout=timeout, log_to_driver=True) as ray:
        count = n_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of workers must be an integer >= 1, got {n_workers!r}")
        task = ray.remote(num_cpus=1, max_retries=3)(_study_worker)
        path, cwd = str(Path(script).resolve()), os.getcwd()
        refs = [
            task.remote(
                path,
                list(args),
                cwd,
                _forwarded_env({**(env or {}), "TUNEKIT_WORKER": worker_tag(i)}),
            )
            for i in range(count)
        ]
        logger.info("%s: %d worker task(s) on the Ray cluster share the study", script, count)
        return _collect(ray, refs)


def _collect(ray, refs: list) -> list[int]:
    """Wait for the worker tasks; cancel them once a stop is requested."""
    from ray.exceptions import RayError, TaskCancelledError  # optional dependency: Ray

    pending, cancelled = list(refs), False
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        if not cancelled and _signals.stop_requested() is not None:
            for ref in pending:
                ray.cancel(ref)
            cancelled = True
    codes = []
    for i, ref in enumerate(refs):
        try:
            done = ray.get(ref)
        except TaskCancelledError:
            codes.append(EXIT_INTERRUPTED)
            continue
        except RayError as err:  # the task's worker or node died and its retries ran out
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            print(f"worker {i}: its Ray task failed: {first}", file=sys.stderr)
            codes.append(EXIT_FAILURE)
            continue
        if done["error"]:
            print(f"worker {i}: {done['error']}", file=sys.stderr)
        codes.append(done["code"])
    return codes
