"""How much memory a stack takes, how much there is, and how many members fit.

A stack's memory grows with its member count ``M``:
:func:`stack_bytes` estimates it from one member's :class:`MemberFootprint`
and the data every member shares. The budget (:func:`resolve_budget`) is a
fraction of the memory there is (:func:`available_memory`: the available RAM,
or on a GPU the smaller of that and the GPU's memory) unless the search's
``memory_budget`` says otherwise; :func:`members_that_fit` turns both into
the largest stack, and :func:`split_stacks` cuts a run's members into stacks
of at most that many, keeping a candidate's folds together when it can.

Nothing here imports TensorFlow or Keras at module level: the search checks
``memory_budget`` (:func:`check_memory_budget`) before anything is trained.
"""

from __future__ import annotations

import functools
import itertools
import numbers
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FRACTION",
    "OPTIMIZER_SLOTS",
    "MemberFootprint",
    "available_memory",
    "check_memory_budget",
    "describe",
    "gpu_memory",
    "members_that_fit",
    "mlp_footprint",
    "resolve_budget",
    "split_stacks",
    "stack_bytes",
]

#: Share of the memory there is that a stack may take when ``memory_budget`` is ``None``.
DEFAULT_FRACTION = 0.5
#: Optimizer slots per weight (Adam: first and second moments; RMSprop: one average).
OPTIMIZER_SLOTS = {"adam": 2, "rmsprop": 1, "sgd": 0}

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MemberFootprint:
    """What one member of a stack holds; :func:`stack_bytes` turns it into bytes.

    Attributes
    ----------
    n_params : int
        Weights of one member (trainable ones and state such as moving averages).
    n_slots : int
        Optimizer slots per weight (:data:`OPTIMIZER_SLOTS`).
    row_floats : int
        Floats one row makes on its way through the network: every layer's
        output, per sample.
    batch_size : int
        Rows per member per step.
    n_rows : int
        Rows the member's index arrays address: training plus validation rows.
    early_stopping : bool
        Whether a copy of the best weights is kept.
    input_floats : int, default=0
        Floats of one input row.
    weight_copies : int, default=5
        Copies of every weight the trainer holds besides the optimizer slots
        and the best weights (``5`` below): 5 on the ``mlp()`` trainer (XLA),
        20 measured on the any-builder trainer (TensorFlow's graph executor,
        which keeps more temporaries alive).
    activation_copies : int, default=3
        Copies of one row's activations (``3`` below); 4 on the any-builder trainer.
    """

    n_params: int
    n_slots: int
    row_floats: int
    batch_size: int
    n_rows: int
    early_stopping: bool = False
    input_floats: int = 0
    weight_copies: int = 5
    activation_copies: int = 3


def stack_bytes(n_members: int, member: MemberFootprint, data_bytes: int = 0) -> int:
    """Estimated peak memory of a stack of ``n_members`` members, in bytes.

    ``bytes = 2 D + M * 4 * (P * (5 + 3 S + 2 E) + B * (I + 3 A) + 12 R)``

    on the ``mlp()`` trainer (the any-builder trainer: ``20`` in place of ``5``
    and ``4 A`` in place of ``3 A``, see :class:`MemberFootprint`)

    with ``M`` members, ``D`` the bytes of the data every member shares (the
    fold copies of ``X`` and the encoded targets: a host copy and the
    device's), and per member, in float32 words:

    - ``P * (5 + 3 S + 2 E)``: its ``P`` weights, held as the weights, their
      gradients, the new weights of the update step and the host copies the
      engine reads between epochs and at the end (two); ``S`` optimizer slots
      per weight (Adam 2, RMSprop 1, SGD 0), each as the old slot, the new
      one and the update's temporaries; with early stopping (``E = 1``) the
      best weights and their new copy when a member improves;
    - ``B * (I + 3 A)``: one batch of ``B`` rows: its input, ``I`` floats a
      row, gathered once, and its activations, ``A`` floats a row (every
      layer's output), held as the values the forward pass keeps, the
      pre-activations, and their gradients in the backward pass;
    - ``12 R``: its index arrays over ``R`` training and validation rows: an
      int32 row index and a float32 mask per row in the host order, the
      step-major copy and the device tensor, plus the int64 rows it keeps
      and the shuffled order.

    The terms were measured against the growth of the process's resident
    memory while a stack trains on the CPU (``tests/engine/test_memory_budget.py``
    and ``docs/performance.md``, "Memory budget").

    Parameters
    ----------
    n_members : int
    member : MemberFootprint
    data_bytes : int, default=0
        ``D``.

    Returns
    -------
    bytes : int
    """
    m = member
    words = (
        m.n_params * (m.weight_copies + 3 * m.n_slots + 2 * int(m.early_stopping))
        + m.batch_size * (m.input_floats + m.activation_copies * m.row_floats)
        + 12 * m.n_rows
    )
    return int(2 * data_bytes + int(n_members) * 4 * words)


def members_that_fit(budget: int, member: MemberFootprint, data_bytes: int = 0) -> int:
    """The most members whose stack fits ``budget`` bytes (0 when not even one does)."""
    one = stack_bytes(1, member, 0)
    return max(0, int((int(budget) - 2 * int(data_bytes)) // max(one, 1)))


def split_stacks(families: list[int], cap: int) -> list[list[int]]:
    """Cut members into stacks of at most ``cap``, a family's members together if they fit.

    Parameters
    ----------
    families : list of int
        Members of each family (a candidate and its folds), in stack order.
    cap : int
        Most members per stack (>= 1).

    Returns
    -------
    stacks : list of list of int
        Per stack, the member positions (0 to ``sum(families) - 1``) it trains.
        A family larger than ``cap`` is cut into stacks of its own.
    """
    stacks: list[list[int]] = []
    current: list[int] = []
    start = 0
    for size in families:
        members = list(range(start, start + size))
        start += size
        if len(current) + size > cap and current:
            stacks.append(current)
            current = []
        while len(members) > cap:  # one family alone is too big: its folds go apart
            stacks.append(members[:cap])
            members = members[cap:]
        current.extend(members)
    if current:
        stacks.append(current)
    return stacks


# ---------------------------------------------------------------------- the budget
def check_memory_budget(memory_budget) -> None:
    """Reject a ``memory_budget`` that is not ``None``, a fraction, a byte count or a size.

    Raises
    ------
    TypeError, ValueError
        With the rule and the value.
    """
    _parse(memory_budget)


def _parse(memory_budget) -> tuple[str, float]:
    """``("fraction", f)``, ``("bytes", n)`` or ``("default", DEFAULT_FRACTION)``."""
    if memory_budget is None:
        return "default", DEFAULT_FRACTION
    if isinstance(memory_budget, bool):
        raise TypeError(_rule(memory_budget))
    if isinstance(memory_budget, numbers.Integral):
        if memory_budget < 1:
            raise ValueError(_rule(memory_budget))
        return "bytes", int(memory_budget)
    if isinstance(memory_budget, numbers.Real):
        if not 0 < float(memory_budget) <= 1:
            raise ValueError(_rule(memory_budget))
        return "fraction", float(memory_budget)
    if isinstance(memory_budget, str):
        match = _SIZE.match(memory_budget)
        if match is None or float(match.group(1)) <= 0:
            raise ValueError(_rule(memory_budget))
        return "bytes", int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise TypeError(_rule(memory_budget))


def _rule(value) -> str:
    return (
        "memory_budget must be None (half of the memory there is), a fraction in (0, 1] "
        "of it (0.25), a number of bytes (2**30) or a size string ('4GB', '512MiB'), "
        f"got {value!r}"
    )


def resolve_budget(memory_budget=None) -> tuple[int, str]:
    """The budget of one stack in bytes, and where it comes from (for messages).

    Parameters
    ----------
    memory_budget : None, float, int or str
        ``None``: :data:`DEFAULT_FRACTION` of :func:`available_memory`; a float
        in (0, 1]: that fraction of it; an int: bytes; a string: a size
        (``"4GB"``, ``"512MiB"``; K, M, G, T are powers of 1,024).

    Returns
    -------
    budget : int
    source : str
    """
    kind, value = _parse(memory_budget)
    if kind == "bytes":
        return int(value), "memory_budget"
    there, where = available_memory()
    return int(value * there), f"{value:g} of the {where} ({describe(there)})"


def available_memory() -> tuple[int, str]:
    """Bytes a new stack can use now, and what they are.

    The RAM the system says is available (``MemAvailable`` in ``/proc/meminfo``,
    capped by the process's cgroup limit); on a GPU, the smaller of that and
    the GPU's total memory (the weights live on the GPU, their host copies in
    RAM).
    """
    ram = _ram_available()
    gpu = gpu_memory()
    if gpu is not None and gpu < ram:
        return gpu, "GPU memory"
    return ram, "available RAM"


def _ram_available() -> int:
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if free is None:  # not Linux: the free pages
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_room()
    return int(free if limit is None else min(free, limit))


def _cgroup_room() -> int | None:
    """What the cgroup (v2) still lets this process take, or ``None`` without a limit."""
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(int(limit) - used, 0)


def gpu_memory() -> int | None:
    """Total memory of the GPU the engine trains on, or ``None`` without a GPU.

    Asks the active backend: JAX reports its device's ``bytes_limit``;
    TensorFlow lists its GPUs and ``nvidia-smi`` gives the first visible one's
    total memory.
    """
    # the backend is imported here, not at module level: checking memory_budget
    # must not import TensorFlow
    import keras

    name = keras.backend.backend()
    if name == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "gpu":
            return None
        stats = device.memory_stats() or {}
        return stats.get("bytes_limit")
    if name != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return _nvidia_smi_total()


@functools.cache  # a GPU's total memory does not change: asked once per process
def _nvidia_smi_total() -> int | None:
    if shutil.which("nvidia-smi") is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits",
             "-i", visible],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        return int(float(out.split()[0]) * 2**20)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def describe(n_bytes: float) -> str:
    """``n_bytes`` as a short size for messages (MiB, or GiB from 10 GiB on)."""
    if n_bytes < 10 * 2**30:
        return f"{n_bytes / 2**20:,.1f} MiB"
    return f"{n_bytes / 2**30:,.1f} GiB"


def mlp_footprint(config, n_rows: int, early_stopping: bool) -> MemberFootprint:
    """One member of an ``mlp()`` stack (``config``: a :class:`StackConfig`)."""
    widths = [int(config.n_features), *map(int, config.hidden), int(config.n_outputs)]
    n_params = sum(a * b + b for a, b in itertools.pairwise(widths))
    return MemberFootprint(
        n_params=n_params,
        n_slots=OPTIMIZER_SLOTS.get(config.optimizer, 2),
        row_floats=sum(widths[1:]),
        input_floats=widths[0],
        batch_size=int(config.batch_size),
        n_rows=int(n_rows),
        early_stopping=bool(early_stopping),
    )
