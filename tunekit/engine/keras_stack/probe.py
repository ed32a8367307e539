"""Build every candidate's model, compare the models, group candidates by structure."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import keras
from keras.src.models.functional import Functional
from sklearn.base import clone

from tunekit.engine._backend import get_backend
from tunekit.engine.keras_stack._plan import (
    _LOSSES,
    _OPTIMIZERS,
    FOLDED_LAYERS,
    RANDOM_LAYERS,
    WEIGHTED_LAYERS,
    KerasGroup,
    _Plan,
)

__all__ = ["probe", "require_stackable"]

logger = logging.getLogger("tunekit.engine.keras_stack")


class _Fallback(Exception):
    """A reason why a model cannot stack."""


def _regularizer_strengths(reg, where: str) -> tuple[float, float]:
    if reg is None:
        return 0.0, 0.0
    kind = type(reg).__name__
    if kind not in ("L1", "L2", "L1L2"):
        raise _Fallback(f"{where} is a {kind}; only L1, L2 and L1L2 regularizers stack")
    cfg = reg.get_config()
    return float(cfg.get("l1", 0.0) or 0.0), float(cfg.get("l2", 0.0) or 0.0)


def _clean_config(cfg: Mapping, layer_tag: str, knobs: dict, layer) -> dict:
    out = {}
    for key, value in cfg.items():
        if key in ("name", "seed", "dtype"):
            continue
        if key.endswith("_regularizer"):
            where = f"{layer_tag}: {key}"
            if key == "activity_regularizer" and value is not None:
                raise _Fallback(f"{where} is set; activity regularizers do not stack")
            if value is None and key == "activity_regularizer":
                continue
            l1, l2 = _regularizer_strengths(getattr(layer, key, None), where)
            knobs[f"{layer_tag}.{key}.l1"] = l1
            knobs[f"{layer_tag}.{key}.l2"] = l2
            continue
        if key.endswith("_constraint") and value is not None:
            raise _Fallback(f"{layer_tag}: {key} is set; constraints do not stack")
        if key.endswith("_initializer") and isinstance(value, Mapping):
            inner = dict(value.get("config") or {})
            inner.pop("seed", None)
            value = (value.get("class_name"), _freeze(inner))
        out[key] = _freeze(value)
    return out


def _freeze(value):
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _layer_tag(i: int, layer) -> str:
    return f"layer {i} '{layer.name}' ({type(layer).__name__})"


def _check_layer(i: int, layer) -> str:
    """The layer's kind (weighted / random / folded) or raise with the reason."""
    kind = type(layer).__name__
    tag = _layer_tag(i, layer)
    if isinstance(layer, keras.Model):
        raise _Fallback(f"{tag}: nested models do not stack; build one flat model")
    if getattr(layer, "stateful", False):
        raise _Fallback(f"{tag}: stateful recurrent layers keep state across batches")
    if isinstance(layer, keras.layers.RNN) or kind in ("LSTM", "GRU", "SimpleRNN"):
        raise _Fallback(f"{tag}: recurrent layers are not covered by the stacked path")
    if type(layer).__module__.split(".")[0] != "keras":
        raise _Fallback(
            f"{tag}: a custom layer ({type(layer).__module__}.{kind}) cannot be vectorized"
        )
    if getattr(layer, "supports_masking", False) and kind in ("Embedding", "Masking"):
        if kind == "Masking" or getattr(layer, "mask_zero", False):
            raise _Fallback(f"{tag}: masking (mask_zero / Masking) does not stack")
    if kind in WEIGHTED_LAYERS:
        if kind.startswith("Conv"):
            if layer.data_format != "channels_last":
                raise _Fallback(f"{tag}: only data_format='channels_last' convolutions stack")
            if getattr(layer, "groups", 1) != 1:
                raise _Fallback(f"{tag}: grouped convolutions do not stack")
        if kind == "BatchNormalization":
            if getattr(layer, "renorm", False):
                raise _Fallback(f"{tag}: batch renormalization does not stack")
            if not layer.trainable:
                raise _Fallback(f"{tag}: a frozen BatchNormalization does not stack")
        if kind == "LayerNormalization" and getattr(layer, "rms_scaling", False):
            raise _Fallback(f"{tag}: rms_scaling does not stack")
        if not layer.trainable:
            raise _Fallback(f"{tag}: frozen layers (trainable=False) do not stack")
        return "weighted"
    if kind in RANDOM_LAYERS:
        if getattr(layer, "noise_shape", None) is not None:
            raise _Fallback(f"{tag}: a noise_shape does not stack")
        return "random"
    if kind in FOLDED_LAYERS:
        if layer.weights:
            raise _Fallback(f"{tag}: this layer has variables and cannot be folded")
        return "folded"
    if kind == "InputLayer":
        return "input"
    raise _Fallback(f"{tag}: this layer is not covered by the stacked path")


def _graph_signature(model) -> tuple:
    layers = list(model.layers)
    index = {id(layer): i for i, layer in enumerate(layers)}
    if isinstance(model, keras.Sequential):
        return ("sequential",)
    edges = []
    for i, layer in enumerate(layers):
        for node in getattr(layer, "_inbound_nodes", []):
            srcs = []
            for t in node.input_tensors:
                hist = getattr(t, "_keras_history", None)
                if hist is None:
                    continue
                srcs.append((index.get(id(hist.operation), -1), hist.tensor_index))
            edges.append((i, tuple(srcs)))
    outs = []
    for t in model.outputs:
        hist = t._keras_history
        outs.append((index.get(id(hist.operation), -1), hist.tensor_index))
    return ("functional", tuple(edges), tuple(outs))


def _model_checks(model) -> None:
    if not isinstance(model, keras.Model):
        raise _Fallback(f"the builder returned a {type(model).__name__}, not a keras.Model")
    cls = type(model)
    if not isinstance(model, keras.Sequential) and not _is_functional(model):
        overrides = [
            name
            for name in ("train_step", "compute_loss", "call", "test_step")
            if name in vars(cls)
        ]
        if "train_step" in overrides or "compute_loss" in overrides:
            raise _Fallback(
                f"the model class {cls.__name__} overrides "
                f"{' and '.join(o for o in overrides if o in ('train_step', 'compute_loss'))}"
                "; a custom training step does not stack"
            )
        raise _Fallback(
            f"the model is a subclassed keras.Model ({cls.__name__}) whose call() is "
            "Python code; build it with the functional API or keras.Sequential"
        )
    for name in ("train_step", "compute_loss"):
        if name in vars(cls):
            raise _Fallback(
                f"the model class {cls.__name__} overrides {name}; a custom training "
                "step does not stack"
            )
    if len(model.inputs or ()) != 1 or len(model.outputs or ()) != 1:
        raise _Fallback(
            f"the model has {len(model.inputs or ())} inputs and {len(model.outputs or ())} "
            "outputs; only single-input, single-output models stack"
        )
    if len(model.outputs[0].shape) != 2:
        raise _Fallback(
            f"the model's output has shape {tuple(model.outputs[0].shape)}; only outputs of "
            "shape (batch, units) stack"
        )


def _is_functional(model) -> bool:
    return isinstance(model, Functional) and type(model).call is Functional.call


def _optimizer_of(model, knobs: dict) -> tuple[str, tuple]:
    opt = model.optimizer
    kind = type(opt).__name__
    if kind not in _OPTIMIZERS:
        raise _Fallback(
            f"optimizer {kind} does not stack; use rmsprop, adam or sgd (Keras defaults "
            "apart from the learning rate)"
        )
    cfg = opt.get_config()
    ref = type(opt)().get_config()
    lr = cfg.get("learning_rate")
    if not isinstance(lr, (int, float)):
        raise _Fallback(f"optimizer {kind} has a learning-rate schedule; only a constant stacks")
    diff = sorted(
        k for k in set(cfg) | set(ref) if k not in ("name", "learning_rate")
        and cfg.get(k) != ref.get(k)
    )
    if diff:
        raise _Fallback(
            f"optimizer {kind} differs from Keras's defaults in {', '.join(diff)}; only the "
            "learning rate is a per-member knob"
        )
    knobs["learning_rate"] = float(lr)
    return _OPTIMIZERS[kind], ()


def _loss_of(model, knobs: dict) -> tuple[str, bool]:
    loss = model.loss
    if isinstance(loss, (list, tuple, Mapping)):
        raise _Fallback("several losses do not stack")
    if isinstance(loss, str):
        name, cfg = loss, {}
    elif isinstance(loss, keras.losses.Loss):
        name = type(loss).__name__
        cfg = loss.get_config()
        if name == "LossFunctionWrapper":
            name = getattr(loss.fn, "__name__", "?")
            cfg = {**cfg, **(getattr(loss, "_fn_kwargs", {}) or {})}
    elif callable(loss):
        name, cfg = getattr(loss, "__name__", repr(loss)), {}
    else:
        raise _Fallback(f"loss {loss!r} does not stack")
    if name not in _LOSSES:
        raise _Fallback(
            f"loss {name} does not stack; binary / categorical / sparse categorical "
            "cross-entropy, mean squared and mean absolute error do"
        )
    canonical = _LOSSES[name]
    reduction = cfg.get("reduction", "sum_over_batch_size")
    if reduction not in ("sum_over_batch_size", "auto", None):
        raise _Fallback(f"loss reduction {reduction!r} does not stack")
    if cfg.get("axis", -1) != -1:
        raise _Fallback("a loss axis other than -1 does not stack")
    if canonical == "sparse_categorical_crossentropy" and cfg.get("ignore_class") is not None:
        raise _Fallback("ignore_class does not stack")
    knobs["label_smoothing"] = float(cfg.get("label_smoothing", 0.0) or 0.0)
    return canonical, bool(cfg.get("from_logits", False))


def _weight_slots(layers: list) -> list:
    slots = []
    for i, layer in enumerate(layers):
        for var in layer.weights:
            init = getattr(layer, f"{var.name}_initializer", None)
            slots.append((i, var.name, tuple(var.shape), bool(var.trainable), init))
    return slots


def _check_fit_params(est) -> None:
    params = est.get_params(deep=False)
    for key in ("callbacks", "class_weight", "validation_split"):
        value = params.get(key)
        if value not in (None, 0, 0.0):
            raise _Fallback(f"estimator parameter {key}={value!r} does not stack")
    for key, value in params.items():
        if key.startswith("fit__") and key not in ("fit__shuffle", "fit__verbose"):
            raise _Fallback(f"estimator parameter {key}={value!r} does not stack")


def _build(estimator, params: Mapping, X, y):
    est = clone(estimator).set_params(**params)
    est.initialize(X, y)
    est._ensure_compiled_model()
    return est


def _probe_one(estimator, params: Mapping, X, y) -> tuple[_Plan, dict, dict]:
    """Build one candidate; return its plan (with signature), knob values and loop params."""
    est = _build(estimator, params, X, y)
    _check_fit_params(est)
    model = est.model_
    _model_checks(model)
    layers = list(model.layers)
    knobs: dict = {}
    sig = [type(model).__name__, _graph_signature(model)]
    kinds = []
    for i, layer in enumerate(layers):
        kind = _check_layer(i, layer)
        kinds.append(kind)
        tag = f"layer{i}"
        cfg = dict(layer.get_config())
        if kind == "random":
            attr = RANDOM_LAYERS[type(layer).__name__]
            knobs[f"{tag}.{attr}"] = float(cfg.pop(attr))
        sig.append((type(layer).__name__, _freeze(_clean_config(cfg, tag, knobs, layer))))
        sig.append(tuple((tuple(w.shape), w.trainable) for w in layer.weights))
    sig.append(tuple((tuple(t.shape), str(t.dtype)) for t in model.inputs))
    optimizer, _ = _optimizer_of(model, knobs)
    loss, from_logits = _loss_of(model, knobs)
    p = est.get_params(deep=False)
    batch_size = p.get("batch_size")
    batch_size = 32 if batch_size is None else int(batch_size)
    shuffle = bool(p.get("fit__shuffle", True))
    sig += [optimizer, loss, from_logits, batch_size, shuffle]
    task = getattr(est, "_estimator_type_name", "") or "regressor"
    plan = _Plan(
        model=model,
        estimator=est,
        layers=layers,
        kinds=kinds,
        weight_slots=_weight_slots(layers),
        knob_names=tuple(sorted(knobs)),
        optimizer=optimizer,
        loss=loss,
        from_logits=from_logits,
        input_dtype=str(model.inputs[0].dtype),
        task=task,
        signature=tuple(sig),
    )
    loop = {
        "epochs": int(p.get("epochs") or 1),
        "patience": p.get("early_stopping"),
        "batch_size": batch_size,
        "shuffle": shuffle,
    }
    return plan, knobs, loop


def probe(estimator, candidates: Sequence[Mapping], X_sample, y_sample) -> list[KerasGroup]:
    """Build every candidate's model and group the candidates by structure.

    Parameters
    ----------
    estimator : tunekit.KerasClassifier or tunekit.KerasRegressor
        The base estimator; ``candidates`` are applied with ``set_params``.
    candidates : sequence of dict
        One parameter dict per candidate.
    X_sample : array-like
        Rows of the data (every row of ``X`` is fine: nothing is trained). Its
        sample shape fixes the input shape the builder receives.
    y_sample : array-like
        Targets for ``X_sample``; they must hold every class (they fit the
        target encoder that members use to encode and decode labels).

    Returns
    -------
    groups : list of KerasGroup
        Stacks in order of their first candidate, then one fallback group per
        candidate that cannot stack (its ``reason`` set). Every fallback is
        logged at INFO level on ``tunekit.engine.keras_stack``.
    """
    get_backend()  # raises for unsupported backends
    stacks: dict = {}
    groups: list[KerasGroup] = []
    fallbacks: list[KerasGroup] = []
    for c, params in enumerate(candidates):
        try:
            plan, knobs, loop = _probe_one(estimator, params, X_sample, y_sample)
        except _Fallback as why:
            reason = str(why)
            logger.info("candidate %d falls back to the standard path: %s", c, reason)
            fallbacks.append(KerasGroup([c], reason=reason))
            continue
        group = stacks.get(plan.signature)
        if group is None:
            group = KerasGroup(
                [], batch_size=loop["batch_size"], shuffle=loop["shuffle"], _plan=plan
            )
            stacks[plan.signature] = group
            groups.append(group)
        group.indices.append(c)
        group.knobs[c] = knobs
        group.epochs[c] = loop["epochs"]
        group.patience[c] = loop["patience"]
    return groups + fallbacks


def require_stackable(groups: Sequence[KerasGroup], candidates: Sequence[Mapping]) -> None:
    """Raise the ``engine="stacked"`` error if some candidate cannot stack.

    Parameters
    ----------
    groups : list of KerasGroup
        From :func:`probe`.
    candidates : sequence of dict
        The candidates given to :func:`probe` (quoted in the message).

    Raises
    ------
    ValueError
        Naming the first candidate that falls back, its parameters and the
        layer or cause, before any training.
    """
    bad = [g for g in groups if not g.stackable]
    if not bad:
        return
    first = bad[0]
    c = first.indices[0]
    more = sum(len(g.indices) for g in bad) - 1
    tail = f" ({more} more candidate(s) cannot stack either)" if more else ""
    raise ValueError(
        f"engine='stacked' needs every candidate to stack, but candidate {c} "
        f"{dict(candidates[c])!r} cannot: {first.reason}{tail}. Use engine='auto' to train "
        "such candidates the standard way, or change the builder."
    )
