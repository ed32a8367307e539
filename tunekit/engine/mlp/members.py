"""An ``mlp()`` member as a fitted estimator: NumPy inference from its weights."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor
from tunekit.engine.mlp.network import forward_numpy
from tunekit.engine.mlp.trainer import StackConfig

__all__ = ["member_estimator", "member_outputs", "predict_members"]

_BLOCK_BYTES = 32 * 2**20  # member_outputs: one block's inputs (and activations), about


class _NumpyNetwork:
    """The forward pass and encodings of an ``mlp()`` member (its fitted attributes).

    ``known`` is a list of ``(X, outputs)`` pairs: the member's network outputs
    on those very arrays, already computed (by :func:`member_outputs`).
    """

    known: list | tuple = ()  # (members pickled before it existed)

    def __init__(self, known: list | None = None):
        self.known = known or []

    def outputs(self, member, X) -> np.ndarray:
        for array, outputs in self.known or ():
            if X is array:
                return outputs
        X = sp.csr_matrix(X, dtype="float32") if sp.issparse(X) else np.asarray(X, "float32")
        if X.ndim != 2 or X.shape[1] != member.n_features_in_:
            raise ValueError(
                f"X has shape {X.shape}, but this member was trained on "
                f"{member.n_features_in_} features"
            )
        return forward_numpy(member.weights_, X, member.activation_, member.output_activation_)

    def predict_proba(self, member, X) -> np.ndarray:
        return _probabilities(self.outputs(member, X))

    def predict(self, member, X) -> np.ndarray:
        classes = member.classes_ if isinstance(member, StackedMemberClassifier) else None
        return _decoded(self.outputs(member, X), classes, getattr(member, "y_ndim_", 1))


def _probabilities(out: np.ndarray) -> np.ndarray:
    """Class probabilities from a head's outputs (last axis: one sigmoid, or the softmax)."""
    if out.shape[-1] == 1:
        return np.concatenate([1.0 - out, out], axis=-1)
    return out


def _decoded(out: np.ndarray, classes: np.ndarray | None, y_ndim: int) -> np.ndarray:
    """Predictions from a head's outputs: labels (``classes``), else the target's values."""
    if classes is not None:
        return classes[np.argmax(_probabilities(out), axis=-1)]
    return out[..., 0] if out.shape[-1] == 1 and y_ndim == 1 else out


def member_outputs(config: StackConfig, params: list, X: np.ndarray, rows: dict) -> dict:
    """Each member's network outputs on its own rows of ``X``, in one pass per row count.

    The same arrays as each member's own forward pass (see
    :func:`~tunekit.engine.mlp.network.forward_numpy`), without a pass of its
    own per member: the members with as many rows share one matmul per layer,
    in blocks of members whose inputs take at most about 32 MiB.

    Parameters
    ----------
    config : StackConfig
        The stack's structure.
    params : list of ndarray
        The members' weights, member axis first (``get_weights()`` order).
    X : ndarray of shape (n_rows, n_features)
        Dense data the rows index.
    rows : dict of int -> ndarray of int
        Member (position on the member axis) -> its row positions in ``X``.

    Returns
    -------
    dict of int -> ndarray of shape (n_rows_of_member, n_outputs)
    """
    by_count: dict[int, list[int]] = {}
    for m, r in rows.items():
        by_count.setdefault(len(r), []).append(m)
    X = np.asarray(X, "float32")
    widest = max([X.shape[1], *(p.shape[-1] for p in params)])
    out = {}
    for n_rows, members in by_count.items():
        # members in blocks of at most about _BLOCK_BYTES of inputs (and of each
        # layer's activations): a block is a stack of the members' own products
        step = max(1, _BLOCK_BYTES // max(4 * n_rows * widest, 1))
        for lo in range(0, len(members), step):
            block = members[lo : lo + step]
            pick = np.asarray(block)
            weights = [p[pick] if k % 2 == 0 else p[pick][:, None, :] for k, p in enumerate(params)]
            x = X[np.stack([np.asarray(rows[m]) for m in block])]
            z = forward_numpy(weights, x, config.activation, config.output_activation)
            out.update(zip(block, z, strict=True))
    return out


def predict_members(
    config: StackConfig,
    params: list,
    X: np.ndarray,
    rows: dict,
    *,
    classes: np.ndarray | None = None,
    y_ndim: int = 1,
) -> dict:
    """Each member's predictions on its own rows of ``X``, in one pass per row count.

    The same arrays as ``member_estimator(...).predict(X[rows[m]])`` for every
    member ``m``, from :func:`member_outputs`.

    Parameters
    ----------
    config, params, X, rows
        As :func:`member_outputs`.
    classes : ndarray or None, default=None
        Class labels (classifiers); ``None`` for regressors.
    y_ndim : int, default=1
        The target's dimensions (regressors).

    Returns
    -------
    dict of int -> ndarray
        Member -> its predictions.
    """
    outputs = member_outputs(config, params, X, rows)
    return {m: _decoded(z, classes, y_ndim) for m, z in outputs.items()}


def member_estimator(
    config: StackConfig,
    weights: list,
    *,
    task: str,
    classes: np.ndarray | None = None,
    n_outputs: int = 1,
    y_ndim: int = 1,
    best_epoch: int,
    n_epochs: int,
    known: list | None = None,
):
    """A trained ``mlp()`` member as a fitted estimator a scorer can score.

    Parameters
    ----------
    config : StackConfig
        The member's stack.
    weights : list of ndarray
        Its weights in ``get_weights()`` order.
    task : {"binary", "multiclass", "regression"}
    classes : ndarray or None, default=None
        Class labels (classifiers).
    n_outputs, y_ndim : int, default=1
        Target columns and the target's dimensions (regressors).
    best_epoch, n_epochs : int
        1-based epoch whose weights were kept; epochs trained.
    known : list of (X, outputs) or None, default=None
        The member's network outputs on those very arrays
        (:func:`member_outputs`'s), which its predictions on them then use.

    Returns
    -------
    estimator : StackedMemberClassifier or StackedMemberRegressor
    """
    if task == "regression":
        est = StackedMemberRegressor()
        est.n_outputs_ = n_outputs
        est.y_ndim_ = y_ndim
    else:
        est = StackedMemberClassifier()
        est.classes_ = classes
    est.weights_ = weights
    est.n_features_in_ = config.n_features
    est.activation_ = config.activation
    est.output_activation_ = config.output_activation
    est.best_epoch_ = int(best_epoch)
    est.n_epochs_ = int(n_epochs)
    est._network = _NumpyNetwork(known)
    return est
