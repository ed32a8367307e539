"""A trained member as a fitted scikit-learn estimator: one set for both trainers.

A member's predictions come from its *network* (``_network``), the object
that knows the trainer's forward pass and encodings: NumPy inference for the
``mlp()`` trainer (:func:`tunekit.engine.mlp.members.member_estimator`), the
member-axis Keras graph for any builder
(:func:`tunekit.engine.keras_stack.member_estimator`). This module imports
neither Keras nor the trainers.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["StackedMemberClassifier", "StackedMemberRegressor"]


class _Member(BaseEstimator):
    """One trained member, as a fitted scikit-learn estimator."""

    def fit(self, X, y=None):
        """Not available: members are trained by the stacked engine.

        Raises
        ------
        TypeError
            Always; fit ``tunekit.KerasClassifier`` / ``KerasRegressor`` instead.
        """
        raise TypeError(
            f"{type(self).__name__} is a member trained inside a stacked model and cannot be "
            "fit on its own; fit tunekit.KerasClassifier / KerasRegressor with the member's "
            "parameters instead"
        )

    def _network_of(self):
        check_is_fitted(self, "weights_")
        return self._network


class StackedMemberClassifier(ClassifierMixin, _Member):
    """A classifier trained as one member of a stack (scores cross-validation).

    Attributes
    ----------
    weights_ : list of ndarray
        The member's weights in ``keras.Model.get_weights()`` order.
    classes_ : ndarray
        Class labels.
    n_features_in_ : int
    activation_, output_activation_ : str
        The hidden and output activations (``mlp()`` members only).
    best_epoch_, n_epochs_ : int
    """

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``."""
        return self._network_of().predict_proba(self, X)

    def predict(self, X):
        """Predicted labels."""
        return self._network_of().predict(self, X)


class StackedMemberRegressor(RegressorMixin, _Member):
    """A regressor trained as one member of a stack (scores cross-validation).

    Its attributes are :class:`StackedMemberClassifier`'s, without ``classes_``.
    """

    def predict(self, X):
        """Predicted values, ``(n_samples,)`` for one target."""
        return self._network_of().predict(self, X)
