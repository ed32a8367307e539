"""The stacked evaluator: candidates x folds trained as members of one compiled model.

Every (candidate, fold) pair whose candidate the engine can reproduce
(:func:`tunekit.engine.resolve_params`) becomes a *member*; members that share
a structure (architecture, optimizer, batch size) train side by side
(:func:`tunekit.engine.train_stack`). A pipeline ending in a tunekit
estimator stacks too: its other steps are fitted on each fold's training rows
and transform that fold's rows, so each (fold, preprocessing variant) is one
transformed copy of ``X``. Candidates that ``mlp()``'s trainer cannot
reproduce go to the any-builder trainer (:mod:`tunekit.engine.keras_stack`)
when their built models stack, to the standard evaluator otherwise; all land
in the same entries.

Seeds follow the standard path's rule: with an integer ``random_state`` on
the estimator, every member starts from that seed (initial weights, batch
order, dropout and noise draws, the early-stopping split), whatever stack or
position it trains in; with ``None``, every member draws fresh seeds.

Modules, one job each:

- :mod:`~tunekit.evaluators.stacked.grouping`: which candidates stack together;
- :mod:`~tunekit.evaluators.stacked.data`: the target's encoding, the copies of
  ``X``, the validation rows carved from a training fold;
- :mod:`~tunekit.evaluators.stacked.seeds`: the seed rule;
- :mod:`~tunekit.evaluators.stacked.runs`: what both runs share;
- :mod:`~tunekit.evaluators.stacked.mlp_run`: an ``mlp()`` stack run;
- :mod:`~tunekit.evaluators.stacked.keras_run`: the any-builder run;
- :mod:`~tunekit.evaluators.stacked.evaluator`: :class:`StackedEvaluator`.

The members are the engine's estimators
(:class:`~tunekit.engine.members.StackedMemberClassifier`,
:class:`~tunekit.engine.members.StackedMemberRegressor`). The engine's
trainers load on first use (:mod:`tunekit.engine`), so importing this
package does not import TensorFlow.
"""

from tunekit.engine.members import StackedMemberClassifier, StackedMemberRegressor
from tunekit.evaluators.stacked.data import carve_validation
from tunekit.evaluators.stacked.evaluator import StackedEvaluator
from tunekit.evaluators.stacked.grouping import (
    MAX_STACK_MEMBERS,
    CandidateGroup,
    can_stack,
    candidate_list,
    split_params,
    split_pipeline,
    stack_plan,
)

__all__ = [
    "MAX_STACK_MEMBERS",
    "CandidateGroup",
    "StackedEvaluator",
    "StackedMemberClassifier",
    "StackedMemberRegressor",
    "can_stack",
    "candidate_list",
    "carve_validation",
    "split_params",
    "split_pipeline",
    "stack_plan",
]
