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
"""

from tunekit.evaluators._base import CURVE_COLUMNS, Evaluation, Evaluator, epoch_families
from tunekit.evaluators.stacked import StackedEvaluator, can_stack, stack_plan
from tunekit.evaluators.standard import StandardEvaluator

__all__ = [
    "CURVE_COLUMNS",
    "Evaluation",
    "Evaluator",
    "StackedEvaluator",
    "StandardEvaluator",
    "can_stack",
    "epoch_families",
    "stack_plan",
]
