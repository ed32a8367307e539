"""scikit-learn estimators for Keras models: :class:`KerasClassifier`, :class:`KerasRegressor`.

This is the only module of tunekit that imports scikeras. The estimators are
subclasses of scikeras's wrappers that fix what scikeras 0.13 gets wrong under
current scikit-learn and add what tuning needs:

- they are a classifier / regressor to scikit-learn (``__sklearn_tags__``), so
  ``GridSearchCV(cv=5)`` stratifies and probability scorers work;
- the builder receives an explicit ``input_shape`` (from ``X`` or declared on
  the estimator) and its output layer and loss are inferred from the target;
- bad input is rejected before any training, with messages that say the rule,
  the value and the fix;
- ``random_state`` seeds the fit without turning TensorFlow op determinism on
  for the rest of the process;
- a fit whose loss becomes NaN or infinite stops with :class:`DivergedError`;
- ``early_stopping`` watches a validation split carved from the data passed to
  ``fit`` (inside cross-validation: from the training fold) and restores the
  best weights.
"""

from tunekit.estimators.wrappers import KerasClassifier, KerasEstimator, KerasRegressor

__all__ = ["KerasClassifier", "KerasEstimator", "KerasRegressor"]

# the public path, in reprs and pickles, whichever module of the package defines them
for _cls in (KerasClassifier, KerasEstimator, KerasRegressor):
    _cls.__module__ = __name__
del _cls
