"""A trained member as a fitted scikit-learn estimator."""

from __future__ import annotations

import numpy as np
from keras import ops

from tunekit.engine.keras_stack.layers import _forward
from tunekit.engine.keras_stack.train import KerasStackResult
from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor

__all__ = ["KerasStackMemberClassifier", "KerasStackMemberRegressor", "member_estimator"]


class _KerasNetwork:
    """The member-axis forward pass of a stack's template model, in the estimator's encoding."""

    def __init__(self, plan):
        self.plan = plan

    def _raw(self, member, X):
        plan = self.plan
        est = plan.estimator
        Xa = np.asarray(est.feature_encoder_.transform(np.asarray(X)))
        want = tuple(plan.model.inputs[0].shape[1:])
        if Xa.ndim < 2 or tuple(Xa.shape[1:]) != want:
            raise ValueError(
                f"X has samples of shape {tuple(Xa.shape[1:])}, but this member was trained "
                f"on samples of shape {want}; pass data with the training shape"
            )
        dtype = "int32" if "int" in plan.input_dtype else "float32"
        flat = [ops.convert_to_tensor(w[None]) for w in member.weights_]
        outs = []
        for lo in range(0, len(Xa), 4096):
            xb = ops.convert_to_tensor(Xa[lo : lo + 4096].astype(dtype)[None])
            ctx = {"state": {}, "knobs": {}, "keys": None, "counter": 0, "row_weight": None}
            outs.append(np.asarray(ops.convert_to_numpy(_forward(plan, flat, xb, ctx, False)))[0])
        return np.concatenate(outs, axis=0)

    def predict_proba(self, member, X):
        raw = self._raw(member, X)
        return self.plan.estimator.target_encoder_.inverse_transform(raw, return_proba=True)

    def predict(self, member, X):
        return self.plan.estimator.target_encoder_.inverse_transform(self._raw(member, X))


#: The any-builder path's members are the engine's one set of member estimators.
KerasStackMemberClassifier = StackedMemberClassifier
KerasStackMemberRegressor = StackedMemberRegressor


def member_estimator(result: KerasStackResult, m: int):
    """Member ``m`` of a trained stack as a fitted scikit-learn estimator.

    Parameters
    ----------
    result : KerasStackResult
    m : int
        Position of the member in ``result.members``.

    Returns
    -------
    estimator : StackedMemberClassifier or StackedMemberRegressor
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
    out._network = _KerasNetwork(plan)
    out.weights_ = result.weights[m]
    out.n_features_in_ = getattr(est, "n_features_in_", None)
    out.best_epoch_ = int(result.best_epoch[m])
    out.n_epochs_ = int(result.n_epochs[m])
    return out
