"""A trained member as a fitted scikit-learn estimator."""

from __future__ import annotations

import numpy as np
from keras import ops

from tunekit.engine.keras_stack.layers import _forward
from tunekit.engine.keras_stack.train import KerasStackResult
from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor

__all__ = [
    "EpochOutputs",
    "KerasStackMemberClassifier",
    "KerasStackMemberRegressor",
    "member_estimator",
]


class _KerasNetwork:
    """The member-axis forward pass of a stack's template model, in the estimator's encoding.

    ``known`` is a list of ``(X, outputs)`` pairs: the member's network
    outputs on those very arrays, already computed (by the stack's one pass
    for all members).
    """

    def __init__(self, plan, known: list | None = None):
        self.plan = plan
        self.known = known or []

    def _raw(self, member, X):
        for array, outputs in self.known or ():  # (None in members pickled before)
            if X is array:
                return outputs
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


def member_estimator(result: KerasStackResult, m: int, known: tuple | list | None = None):
    """Member ``m`` of a trained stack as a fitted scikit-learn estimator.

    Parameters
    ----------
    result : KerasStackResult
    m : int
        Position of the member in ``result.members``.
    known : (X, outputs), list of them, or None, default=None
        The member's network outputs on the array ``X`` (``result.outputs``'s),
        which its predictions on that same array then use.

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
    out._network = _KerasNetwork(plan, [known] if isinstance(known, tuple) else known)
    out.weights_ = result.weights[m]
    out.n_features_in_ = getattr(est, "n_features_in_", None)
    out.best_epoch_ = int(result.best_epoch[m])
    out.n_epochs_ = int(result.n_epochs[m])
    return out


class EpochOutputs:
    """Members of a stack after an epoch as estimators, their test rows predicted at once.

    In ``on_epoch_end``: one compiled member-axis pass (``result.outputs``)
    computes every listed member's network outputs on its rows of ``X``; each
    member's estimator then predicts its array ``x[m]`` from them, instead of
    an eager forward pass of its own.

    Parameters
    ----------
    result : KerasStackResult
        The stack's result so far, as ``on_epoch_end`` gets it.
    X : ndarray
        The rows the stack trains on (``train_group``'s ``X``).
    rows : dict
        Member position -> its row indices into ``X``.
    """

    def __init__(self, result: KerasStackResult, X, rows: dict):
        n = len(result.members)
        raws = result.outputs([rows.get(m, np.zeros(0, dtype=int)) for m in range(n)])
        self.x = {m: X[r] for m, r in rows.items()}
        self.estimators = {
            m: member_estimator(result, m, known=(self.x[m], raws[m])) for m in rows
        }
