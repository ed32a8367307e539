"""Evaluators: how a batch of candidates is cross-validated.

A strategy (:mod:`tunekit.strategies`) proposes candidates; an evaluator
trains and scores each (candidate, fold) and returns an
:class:`~tunekit.evaluators._base.Evaluation` in one schema:

- :class:`StandardEvaluator` fits and scores with scikit-learn's semantics
  (``clone``, ``set_params``, ``fit``, score, ``error_score``);
- :class:`StackedEvaluator` trains the candidates the engine can reproduce as
  members of one compiled model (:mod:`tunekit.engine`) and hands the rest to
  a :class:`StandardEvaluator`.

Both read candidates that differ only in ``epochs`` from one run, and both
record every fold's test score after every epoch.

What strategies share with the evaluators is exported here too:
:func:`main_score` (the number a curve row records), :func:`final_estimator`,
:func:`is_keras_estimator`, :func:`candidate_list` (a grid or a list of
candidate dicts) and :func:`carve_validation` (the early-stopping split of a
training fold), and the out-of-fold predictions' helpers (:mod:`tunekit.evaluators.oof`).
"""

from tunekit.evaluators._base import (
    CURVE_COLUMNS,
    Evaluation,
    Evaluator,
    epoch_families,
    final_estimator,
    main_score,
)
from tunekit.evaluators.epoch_rungs import EpochRungs
from tunekit.evaluators.oof import assemble, common_shape, pop_predictions, predictions_of
from tunekit.evaluators.stacked import (
    StackedEvaluator,
    can_stack,
    candidate_list,
    carve_validation,
    stack_plan,
)
from tunekit.evaluators.standard import StandardEvaluator, is_keras_estimator

__all__ = [
    "CURVE_COLUMNS",
    "EpochRungs",
    "Evaluation",
    "Evaluator",
    "StackedEvaluator",
    "StandardEvaluator",
    "assemble",
    "can_stack",
    "candidate_list",
    "carve_validation",
    "common_shape",
    "epoch_families",
    "final_estimator",
    "is_keras_estimator",
    "main_score",
    "pop_predictions",
    "predictions_of",
    "stack_plan",
]
