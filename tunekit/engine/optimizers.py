"""Stateless, per-member versions of Keras's RMSprop, Adam and SGD.

The update rules are element-wise, so one joint step over stacked weights is
exactly a separate step of every member. Each rule repeats the arithmetic of
``keras.optimizers.<Name>.update_step`` (Keras 3) operation for operation,
with three additions:

- the learning rate is a ``(M,)`` tensor, so it can differ per member;
- the step counter is per member (Adam's bias correction uses it);
- ``mask`` (``(M,)``, 1 = update) freezes a member: its weights *and* its
  slots keep their values, which is what a separately trained model that has
  stopped (early stopping, fewer epochs, no rows in this step) would show.
  Masking the gradient instead would not do: Adam moves a weight even when
  its gradient is zero.

Defaults are Keras's: RMSprop ``rho=0.9, epsilon=1e-7``; Adam
``beta_1=0.9, beta_2=0.999, epsilon=1e-7``; SGD without momentum. Default
learning rates: 0.001 for RMSprop and Adam, 0.01 for SGD.
"""

from __future__ import annotations

from keras import ops

__all__ = ["DEFAULT_LEARNING_RATES", "OPTIMIZERS", "apply_updates", "init_state"]

DEFAULT_LEARNING_RATES = {"rmsprop": 0.001, "adam": 0.001, "sgd": 0.01}
OPTIMIZERS = tuple(DEFAULT_LEARNING_RATES)

_RHO, _RMS_EPS = 0.9, 1e-7
_BETA_1, _BETA_2, _ADAM_EPS = 0.9, 0.999, 1e-7


def _member(x, like):
    return ops.reshape(x, (-1,) + (1,) * (len(like.shape) - 1))


def init_state(name: str, params: list) -> dict:
    """Zero slots for every weight, plus a per-member step counter.

    Parameters
    ----------
    name : {"rmsprop", "adam", "sgd"}
    params : list of tensors with a leading member axis

    Returns
    -------
    state : dict
        ``{"step": (M,) float32, "slots": [list of tensors per slot kind]}``.
    """
    n_members = params[0].shape[0]
    n_slots = {"rmsprop": 1, "adam": 2, "sgd": 0}[name]
    return {
        "step": ops.zeros((n_members,), dtype="float32"),
        "slots": [[ops.zeros_like(p) for p in params] for _ in range(n_slots)],
    }


def apply_updates(name: str, params: list, grads: list, state: dict, learning_rate, mask):
    """One optimizer step for every member whose ``mask`` is 1.

    Parameters
    ----------
    name : {"rmsprop", "adam", "sgd"}
    params, grads : list of tensors
        Stacked weights and their gradients.
    state : dict
        From :func:`init_state` or a previous call.
    learning_rate : tensor of shape (M,)
    mask : tensor of shape (M,), bool
        Members to update.

    Returns
    -------
    params, state
        The new weights and slots (unchanged where ``mask`` is False).
    """
    step = state["step"]
    new_params, new_slots = [], [[] for _ in state["slots"]]
    for j, (p, g) in enumerate(zip(params, grads, strict=True)):
        lr = _member(learning_rate, p)
        keep = _member(mask, p)
        if name == "sgd":
            updated = p - g * lr
            slots = []
        elif name == "rmsprop":
            velocity = state["slots"][0][j]
            velocity_new = _RHO * velocity + (1 - _RHO) * ops.square(g)
            updated = p - (lr * g) / ops.sqrt(velocity_new + _RMS_EPS)
            slots = [(velocity, velocity_new)]
        elif name == "adam":
            m, v = state["slots"][0][j], state["slots"][1][j]
            local_step = _member(step + 1.0, p)
            beta_1_power = ops.power(ops.cast(_BETA_1, "float32"), local_step)
            beta_2_power = ops.power(ops.cast(_BETA_2, "float32"), local_step)
            alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            m_new = m + (g - m) * (1 - _BETA_1)
            v_new = v + (ops.square(g) - v) * (1 - _BETA_2)
            updated = p - (m_new * alpha) / (ops.sqrt(v_new) + _ADAM_EPS)
            slots = [(m, m_new), (v, v_new)]
        else:
            raise ValueError(f"unsupported optimizer {name!r}; expected one of {OPTIMIZERS}")
        new_params.append(ops.where(keep, updated, p))
        for k, (old, new) in enumerate(slots):
            new_slots[k].append(ops.where(keep, new, old))
    new_step = ops.where(mask, step + 1.0, step)
    return new_params, {"step": new_step, "slots": new_slots}
