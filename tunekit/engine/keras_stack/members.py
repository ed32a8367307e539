"""A trained member as a fitted scikit-learn estimator."""

from __future__ import annotations

import numpy as np
from keras import ops
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from tunekit.engine.keras_stack.layers import _forward
from tunekit.engine.keras_stack.train import KerasStackResult

__all__ = ["KerasStackMemberClassifier", "KerasStackMemberRegressor", "member_estimator"]


# ---------------------------------------------------------------------- members as estimators
class _StackMember(BaseEstimator):
    """One trained member as a fitted scikit-learn estimator (inference on the stack path)."""

    def fit(self, X, y=None):
        """Not available: members are trained by :func:`train_group`.

        Raises
        ------
        TypeError
            Always.
        """
        raise TypeError(
            f"{type(self).__name__} is a member trained inside a stack and cannot be fit on "
            "its own; fit tunekit.KerasClassifier / KerasRegressor with its parameters instead"
        )

    def _raw(self, X):
        plan = self._plan
        est = plan.estimator
        Xa = np.asarray(est.feature_encoder_.transform(np.asarray(X)))
        want = tuple(plan.model.inputs[0].shape[1:])
        if Xa.ndim < 2 or tuple(Xa.shape[1:]) != want:
            raise ValueError(
                f"X has samples of shape {tuple(Xa.shape[1:])}, but this member was trained "
                f"on samples of shape {want}; pass data with the training shape"
            )
        dtype = "int32" if "int" in plan.input_dtype else "float32"
        flat = [ops.convert_to_tensor(w[None]) for w in self.weights_]
        outs = []
        for lo in range(0, len(Xa), 4096):
            xb = ops.convert_to_tensor(Xa[lo : lo + 4096].astype(dtype)[None])
            ctx = {"state": {}, "knobs": {}, "keys": None, "counter": 0, "row_weight": None}
            outs.append(np.asarray(ops.convert_to_numpy(_forward(plan, flat, xb, ctx, False)))[0])
        return np.concatenate(outs, axis=0)


class KerasStackMemberClassifier(ClassifierMixin, _StackMember):
    """A classifier trained as one member of a stack.

    Attributes
    ----------
    weights_ : list of ndarray
        The member's weights in ``model.get_weights()`` order.
    classes_ : ndarray
    n_features_in_ : int
    best_epoch_, n_epochs_ : int
    """

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``."""
        raw = self._raw(X)
        return self._plan.estimator.target_encoder_.inverse_transform(raw, return_proba=True)

    def predict(self, X):
        """Predicted labels."""
        return self._plan.estimator.target_encoder_.inverse_transform(self._raw(X))


class KerasStackMemberRegressor(RegressorMixin, _StackMember):
    """A regressor trained as one member of a stack (see the classifier's attributes)."""

    def predict(self, X):
        """Predicted values."""
        return self._plan.estimator.target_encoder_.inverse_transform(self._raw(X))


def member_estimator(result: KerasStackResult, m: int):
    """Member ``m`` of a trained stack as a fitted scikit-learn estimator.

    Parameters
    ----------
    result : KerasStackResult
    m : int
        Position of the member in ``result.members``.

    Returns
    -------
    estimator : KerasStackMemberClassifier or KerasStackMemberRegressor
        ``predict`` (and ``predict_proba`` for classifiers) in the encoding of
        the tunekit estimator (``classes_``, binary probabilities as two columns).
    """
    plan = result.group._plan
    est = plan.estimator
    if plan.task == "classifier":
        out = KerasStackMemberClassifier()
        out.classes_ = est.classes_
    else:
        out = KerasStackMemberRegressor()
    out._plan = plan
    out.weights_ = result.weights[m]
    out.n_features_in_ = getattr(est, "n_features_in_", None)
    out.best_epoch_ = int(result.best_epoch[m])
    out.n_epochs_ = int(result.n_epochs[m])
    return out
