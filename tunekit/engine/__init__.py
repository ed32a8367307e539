"""The stacked training engine: many members of one architecture in one compiled model.

Small Keras models spend their training time on per-step overhead, not on
arithmetic. The engine trains many *members* (candidates x folds that share
an architecture, optimizer and batch size) side by side as one model whose
weights carry a member axis, with one optimizer step updating every member
independently. See ``docs/performance.md`` for how it works and when it
applies; :class:`tunekit.strategies.stacked.StackedSearchCV` is the
scikit-learn-style search built on it.

Public pieces:

- :class:`StackConfig`, :class:`MemberSpec`, :func:`train_stack`,
  :class:`StackResult`: train a stack (:mod:`tunekit.engine.trainer`);
- :func:`resolve_params`, :func:`stack_config`: which candidates can be
  stacked together (:mod:`tunekit.engine.plan`);
- :func:`forward_numpy`: a member's inference pass (:mod:`tunekit.engine.network`).

Importing this package imports Keras (it needs the backend), nothing more.
"""

from tunekit.engine.network import forward_numpy
from tunekit.engine.plan import (
    IGNORED_PARAMS,
    MEMBER_KNOBS,
    Resolution,
    resolve_params,
    stack_config,
)
from tunekit.engine.trainer import MemberSpec, StackConfig, StackResult, train_stack

__all__ = [
    "IGNORED_PARAMS",
    "MEMBER_KNOBS",
    "MemberSpec",
    "Resolution",
    "StackConfig",
    "StackResult",
    "forward_numpy",
    "resolve_params",
    "stack_config",
    "train_stack",
]
