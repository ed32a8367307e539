"""An ``mlp()`` member as a fitted estimator: NumPy inference from its weights."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor
from tunekit.engine.mlp.network import forward_numpy
from tunekit.engine.mlp.trainer import StackConfig

__all__ = ["member_estimator"]


class _NumpyNetwork:
    """The forward pass and encodings of an ``mlp()`` member (its fitted attributes)."""

    def outputs(self, member, X) -> np.ndarray:
        X = sp.csr_matrix(X, dtype="float32") if sp.issparse(X) else np.asarray(X, "float32")
        if X.ndim != 2 or X.shape[1] != member.n_features_in_:
            raise ValueError(
                f"X has shape {X.shape}, but this member was trained on "
                f"{member.n_features_in_} features"
            )
        return forward_numpy(member.weights_, X, member.activation_, member.output_activation_)

    def predict_proba(self, member, X) -> np.ndarray:
        out = self.outputs(member, X)
        if out.shape[1] == 1:
            return np.hstack([1.0 - out, out])
        return out

    def predict(self, member, X) -> np.ndarray:
        if isinstance(member, StackedMemberClassifier):
            return member.classes_[np.argmax(self.predict_proba(member, X), axis=1)]
        out = self.outputs(member, X)
        return out[:, 0] if member.n_outputs_ == 1 and member.y_ndim_ == 1 else out


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
    est._network = _NumpyNetwork()
    return est
