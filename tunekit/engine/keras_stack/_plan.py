"""What every part of the stacked path shares: covered layers, a stack's plan, a group."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tunekit.engine.memory import OPTIMIZER_SLOTS, MemberFootprint

#: Layers with variables, each with a member-axis implementation here.
WEIGHTED_LAYERS = (
    "Dense",
    "Conv1D",
    "Conv2D",
    "BatchNormalization",
    "LayerNormalization",
    "Embedding",
)
#: Random layers whose rate is a per-member knob.
RANDOM_LAYERS = {"Dropout": "rate", "GaussianNoise": "stddev", "GaussianDropout": "rate"}
#: Layers without variables that act on each sample alone, deterministically:
#: they run unchanged on ``(M * B, ...)``.
FOLDED_LAYERS = (
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "Concatenate",
    "Cropping1D",
    "Cropping2D",
    "ELU",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Identity",
    "LeakyReLU",
    "MaxPooling1D",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "ReLU",
    "Reshape",
    "Softmax",
    "Subtract",
    "UpSampling1D",
    "UpSampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
)
_OPTIMIZERS = {"RMSprop": "rmsprop", "Adam": "adam", "SGD": "sgd"}
_LOSSES = {
    "binary_crossentropy": "binary_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "mean_squared_error": "mean_squared_error",
    "mse": "mean_squared_error",
    "MeanSquaredError": "mean_squared_error",
    "mean_absolute_error": "mean_absolute_error",
    "mae": "mean_absolute_error",
    "MeanAbsoluteError": "mean_absolute_error",
}


@dataclass
class _Plan:
    """What a stack's compiled program needs: the template model and its pieces."""

    model: Any
    estimator: Any
    layers: list
    kinds: list
    weight_slots: list  # (layer index, variable name, shape, trainable, initializer)
    knob_names: tuple
    optimizer: str
    loss: str
    from_logits: bool
    input_dtype: str
    task: str
    signature: tuple = ()
    compiled: dict = field(default_factory=dict)


@dataclass
class KerasGroup:
    """Candidates whose built models share one structure (a stack), or a fallback.

    Attributes
    ----------
    indices : list of int
        Positions of the candidates in the candidate list.
    reason : str or None
        Why these candidates cannot stack (``None`` for a stack). It names the
        layer (``"layer 'lstm' (LSTM): ..."``) or the cause.
    knobs : dict of int -> dict of str -> float
        Per candidate, its per-member knob values (``"<layer>.rate"``,
        ``"<layer>.kernel_regularizer.l2"``, ``"learning_rate"``,
        ``"label_smoothing"``, ...).
    epochs, patience : dict of int -> int or None
        Per candidate, its ``epochs`` and ``early_stopping`` patience.
    batch_size : int
        Rows per member per step (the estimator's ``batch_size``; ``None`` there
        is Keras's 32, ``-1`` each member's whole training fold).
    shuffle : bool
        Whether members reshuffle their rows every epoch (``fit__shuffle``).
    """

    indices: list[int]
    reason: str | None = None
    knobs: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=dict)
    patience: dict = field(default_factory=dict)
    batch_size: int = 32
    shuffle: bool = True
    _plan: Any = field(default=None, repr=False)

    @property
    def stackable(self) -> bool:
        """Whether the group trains on the stacked path."""
        return self.reason is None




def footprint(group: KerasGroup, n_rows: int, early_stopping: bool) -> MemberFootprint:
    """One member of ``group``'s stack, for :func:`tunekit.engine.memory.stack_bytes`.

    Its weights are the built model's variables; a row's floats are every
    layer's output's per sample, plus a convolution's patches (its output
    positions x kernel size x input channels: the member-axis convolution is a
    matrix product over them); a layer whose output shape is unknown counts as
    none; ``n_rows`` are its training and validation rows. This trainer runs on
    TensorFlow's graph executor, which was measured to hold more copies of the
    weights and activations than the ``mlp()`` trainer's XLA program
    (``weight_copies=20``, ``activation_copies=4``).
    """
    plan = group._plan
    n_params = sum(math.prod(slot[2]) for slot in plan.weight_slots)
    row = 0
    for layer in plan.layers:
        if type(layer).__name__ == "InputLayer":  # the input: input_floats
            continue
        try:
            outputs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
            row += sum(math.prod(t.shape[1:]) for t in outputs)
            if type(layer).__name__ in ("Conv1D", "Conv2D"):  # im2col patches
                positions = math.prod(layer.output.shape[1:-1])
                row += positions * math.prod(layer.kernel_size) * int(layer.input.shape[-1])
        except (AttributeError, ValueError, TypeError):  # no single output shape to read
            continue
    batch = int(group.batch_size)
    return MemberFootprint(
        n_params=int(n_params),
        n_slots=OPTIMIZER_SLOTS.get(plan.optimizer, 2),
        row_floats=int(row),
        input_floats=int(sum(math.prod(t.shape[1:]) for t in plan.model.inputs)),
        weight_copies=20,
        activation_copies=4,
        batch_size=int(n_rows) if batch == -1 else batch,
        n_rows=int(n_rows),
        early_stopping=bool(early_stopping),
    )
