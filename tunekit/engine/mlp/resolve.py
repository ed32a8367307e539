"""Which candidates can be stacked, and into which stacks.

A candidate is an estimator's parameters (``estimator.get_params()``) merged
with one candidate dict. It can be stacked when the builder is
:func:`tunekit.builders.mlp` and every parameter is one the engine
reproduces (or one that does not change training, such as ``verbose``).
Stackable candidates that share a *structure* (hidden widths, activation,
optimizer, batch size, shuffling, loss and output head) become one stack;
everything else is a per-member value (penalties, dropout, noise, label
smoothing, learning rate, epochs, early-stopping patience and validation
fraction), so a grid over those is a single compiled model.

:func:`resolve_params` needs no data: it is what ``can_stack`` answers from.
:func:`stack_config` completes a structure with what the data says (task,
feature count, output width).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tunekit.builders as builders
from tunekit.engine._backend import SUPPORTED_BACKENDS, backend_name
from tunekit.engine.mlp.network import ACTIVATIONS
from tunekit.engine.mlp.trainer import StackConfig
from tunekit.engine.optimizers import OPTIMIZERS

__all__ = [
    "IGNORED_PARAMS",
    "MEMBER_KNOBS",
    "Resolution",
    "resolve_params",
    "stack_config",
]

# mlp() knobs that may differ between the members of one stack.
MEMBER_KNOBS = (
    "l1",
    "l2",
    "dropout",
    "noise",
    "activation_noise",
    "weight_noise",
    "label_smoothing",
)

# Estimator parameters that do not change how a model trains, whatever their value.
IGNORED_PARAMS = frozenset(
    {"verbose", "metrics", "run_eagerly", "validation_batch_size", "warm_start", "random_state"}
)

# Parameters accepted only at their defaults (a test of the value).
_DEFAULT_ONLY = {
    "build_fn": lambda v: v is None,
    "callbacks": lambda v: v is None or (isinstance(v, (list, tuple)) and not v),
    "validation_split": lambda v: not isinstance(v, bool) and v == 0,
    "class_weight": lambda v: v is None,
    "model__compile_kwargs": lambda v: v is None,
}
_AUTO = "auto"  # an output knob the estimator fills in from the target

_LOSSES = {
    None: None,
    "binary_crossentropy": "binary",
    "categorical_crossentropy": "multiclass",
    "sparse_categorical_crossentropy": "multiclass",
    "mse": "regression",
    "mean_squared_error": "regression",
}
_HEAD_OF_TASK = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}


@dataclass(frozen=True)
class Resolution:
    """A candidate, read by the engine.

    Attributes
    ----------
    structure : tuple or None
        What members of one stack must share (hashable); ``None`` when the
        candidate cannot be stacked.
    member : dict
        The candidate's per-member values: ``epochs``, ``patience``,
        ``validation_fraction``, ``learning_rate`` and the :data:`MEMBER_KNOBS`.
    reason : str or None
        Why the candidate cannot be stacked (``None`` when it can).
    """

    structure: tuple | None
    member: dict = field(default_factory=dict)
    reason: str | None = None

    @property
    def stackable(self) -> bool:
        """Whether the engine can train this candidate."""
        return self.reason is None


def _real(name: str, value: Any, low: float, high: float, *, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} is not a real number")
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range")
    return float(value)


def _optimizer_name(optimizer: Any) -> str:
    if isinstance(optimizer, str):
        name = optimizer.lower()
    elif isinstance(optimizer, type):
        name = optimizer.__name__.lower()
    else:
        raise ValueError(
            f"optimizer={optimizer!r} is an instance; only names or classes of "
            f"{', '.join(OPTIMIZERS)} are stacked"
        )
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    return name


def resolve_params(params: Mapping[str, Any]) -> Resolution:
    """Read one candidate's full parameters.

    Parameters
    ----------
    params : mapping
        ``estimator.get_params()`` updated with one candidate dict.

    Returns
    -------
    resolution : Resolution
        Stackable or not, with the reason.
    """
    try:
        return _resolve(params)
    except (TypeError, ValueError) as err:
        return Resolution(structure=None, reason=str(err))


def _resolve(params: Mapping[str, Any]) -> Resolution:
    _check_model(params)
    knobs: dict[str, Any] = {}
    structure: dict[str, Any] = {
        "hidden": (16, 16),
        "activation": "relu",
        "output_units": _AUTO,
        "output_activation": _AUTO,
    }
    for key, value in params.items():
        if key in IGNORED_PARAMS or key == "model":
            continue
        if key in _DEFAULT_ONLY:
            if not _DEFAULT_ONLY[key](value):
                raise ValueError(f"{key}={value!r} is not supported (only its default)")
        elif key.startswith("model__"):
            _read_builder_param(key, value, structure, knobs)
        elif key in _STRUCTURE_READERS:
            _STRUCTURE_READERS[key](key, value, structure)
        elif key in _MEMBER_READERS:
            _MEMBER_READERS[key](key, value, knobs)
        else:
            raise ValueError(f"parameter {key!r} is not one the engine reproduces")
    return _resolution(structure, knobs)


def _check_model(params: Mapping[str, Any]) -> None:
    if backend_name() not in SUPPORTED_BACKENDS:
        raise ValueError(f"the Keras backend {backend_name()!r} is not supported")
    if "model" not in params:
        raise ValueError("the estimator has no 'model' parameter (not a tunekit/scikeras wrapper)")
    model = params["model"]
    if model is not None and model is not builders.mlp:
        raise ValueError(f"model={getattr(model, '__name__', model)!r} is not tunekit.builders.mlp")


def _read_builder_param(key: str, value: Any, structure: dict, knobs: dict) -> None:
    """A ``model__*`` parameter: a member knob or part of the structure."""
    name = key[len("model__") :]
    if name in MEMBER_KNOBS:
        high, open_ = {"dropout": (1.0, True), "label_smoothing": (1.0, True)}.get(
            name, (float("inf"), False)
        )
        knobs[name] = _real(key, value, 0.0, high, high_open=open_)
    elif name == "hidden":
        structure["hidden"] = builders._check_hidden(value)
    elif name == "activation":
        if value not in ACTIVATIONS:
            raise ValueError(f"model__activation={value!r} is not supported")
        structure["activation"] = value
    elif name in ("output_units", "output_activation"):
        structure[name] = value
    elif name == "input_shape":
        structure["input_shape"] = builders._check_input_shape(value)
    elif name not in ("seed", "name"):
        raise ValueError(f"{key} is not a knob the engine reproduces")


def _read_optimizer(key: str, value: Any, structure: dict) -> None:
    structure["optimizer"] = _optimizer_name(value)


def _read_loss(key: str, value: Any, structure: dict) -> None:
    if not (value is None or isinstance(value, str)) or value not in _LOSSES:
        raise ValueError(f"loss={value!r} is not supported")
    structure["loss"] = value


def _read_batch_size(key: str, value: Any, structure: dict) -> None:
    if value is None:
        value = 32
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"batch_size={value!r} is not an integer")
    if value != -1 and value < 1:
        raise ValueError(f"batch_size={value!r} is not positive")
    structure["batch_size"] = int(value)


def _read_shuffle(key: str, value: Any, structure: dict) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"shuffle={value!r} is not a bool")
    structure["shuffle"] = value


def _read_input_shape(key: str, value: Any, structure: dict) -> None:
    if value is not None:
        structure["input_shape"] = builders._check_input_shape(value)


def _read_learning_rate(key: str, value: Any, knobs: dict) -> None:
    knobs["learning_rate"] = _real(key, value, 0.0, float("inf"), high_open=False)


def _read_epochs(key: str, value: Any, knobs: dict) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"epochs={value!r} is not a positive integer")
    knobs["epochs"] = int(value)


def _read_early_stopping(key: str, value: Any, knobs: dict) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
    ):
        raise ValueError(f"early_stopping={value!r} is not None or an int >= 0")
    knobs["patience"] = None if value is None else int(value)


def _read_validation_fraction(key: str, value: Any, knobs: dict) -> None:
    knobs["validation_fraction"] = _real(key, value, 0.0, 1.0, high_open=True)


# Estimator parameters (other than ``model__*``) and what reads each: the
# structure every member of a stack shares, or a value of one member.
_STRUCTURE_READERS = {
    "optimizer": _read_optimizer,
    "loss": _read_loss,
    "batch_size": _read_batch_size,
    "shuffle": _read_shuffle,
    "input_shape": _read_input_shape,
}
_MEMBER_READERS = {
    "optimizer__learning_rate": _read_learning_rate,
    "epochs": _read_epochs,
    "early_stopping": _read_early_stopping,
    "validation_fraction": _read_validation_fraction,
}


def _resolution(structure: dict, knobs: dict) -> Resolution:
    """The stack key and the member values read from a candidate's parameters."""
    learning_rate = knobs.pop("learning_rate", None)
    if knobs.get("patience") is not None and not knobs.get("validation_fraction", 0.1) > 0:
        raise ValueError("early_stopping needs validation_fraction in (0, 1)")
    member = {k: 0.0 for k in MEMBER_KNOBS}
    member.update(epochs=1, patience=None, validation_fraction=0.1)
    member.update(knobs)
    member["learning_rate"] = learning_rate
    key = (
        structure["hidden"],
        structure["activation"],
        structure.get("optimizer", "rmsprop"),
        structure.get("batch_size", 32),
        structure.get("shuffle", True),
        structure.get("loss"),
        structure["output_units"],
        structure["output_activation"],
        structure.get("input_shape"),
    )
    return Resolution(structure=key, member=member)


def stack_config(
    structure: tuple, *, task: str, n_features: int, n_outputs: int, n_train_max: int
) -> StackConfig:
    """Complete a stack structure with what the data says.

    Parameters
    ----------
    structure : tuple
        :attr:`Resolution.structure`.
    task : {"binary", "multiclass", "regression"}
    n_features : int
        Width of ``X``.
    n_outputs : int
        1 for binary, the number of classes for multiclass, the number of
        target columns for regression.
    n_train_max : int
        Largest member training set (the batch size when ``batch_size=-1``).

    Returns
    -------
    config : StackConfig

    Raises
    ------
    ValueError
        When the structure contradicts the data (a loss for another task, an
        output layer that does not fit the target, a declared input shape that
        is not ``X``'s): the candidates then go through the standard path,
        which reports the problem in its own words.
    """
    (hidden, activation, optimizer, batch_size, shuffle, loss, units, head, shape) = structure
    if task not in _HEAD_OF_TASK:
        raise ValueError(f"task {task!r} is not stacked")
    if _LOSSES[loss] not in (None, task):
        raise ValueError(f"loss={loss!r} does not fit a {task} target")
    want_head = _HEAD_OF_TASK[task]
    if units != _AUTO and units != n_outputs:
        raise ValueError(f"model__output_units={units!r} does not fit {n_outputs} outputs")
    if head != _AUTO and head != want_head and not (want_head == "linear" and head is None):
        raise ValueError(f"model__output_activation={head!r} does not fit a {task} target")
    if shape is not None and tuple(shape) != (n_features,):
        raise ValueError(f"input_shape={shape!r} does not match X's {n_features} features")
    return StackConfig(
        n_features=int(n_features),
        hidden=tuple(hidden),
        activation=activation,
        n_outputs=int(n_outputs),
        output_activation=want_head,
        optimizer=optimizer,
        batch_size=int(n_train_max if batch_size == -1 else batch_size),
        shuffle=bool(shuffle),
    )
