"""The stacked training engine: many members of one architecture in one compiled model.

Small Keras models spend their training time on per-step overhead, not on
arithmetic. The engine trains many *members* (candidates x folds that share
an architecture, optimizer and batch size) side by side as one model whose
weights carry a member axis, with one optimizer step updating every member
independently. See ``docs/performance.md`` for how it works and when it
applies; :class:`tunekit.strategies.fixed_list.StackedSearchCV` is the
scikit-learn-style search built on it.

Two trainers share the optimizers (:mod:`~tunekit.engine.optimizers`), the
backend glue (:mod:`~tunekit.engine._backend`), early stopping
(:mod:`~tunekit.engine.early_stopping`) and the member estimators
(:mod:`~tunekit.engine.members`):

- :mod:`tunekit.engine.mlp`: :func:`tunekit.builders.mlp` in raw tensors.
  :func:`resolve_params` and :func:`stack_config` say which candidates stack
  together (:mod:`~tunekit.engine.mlp.resolve`); :class:`StackConfig`,
  :class:`MemberSpec`, :func:`train_stack` and :class:`StackResult` train a
  stack (:mod:`~tunekit.engine.mlp.trainer`); :func:`forward_numpy` is a
  member's inference pass (:mod:`~tunekit.engine.mlp.network`) and
  :func:`member_estimator` a trained member as a fitted estimator
  (:func:`member_outputs` and :func:`predict_members`: many members'
  outputs and predictions in one pass);
  :func:`sparse_refusal` says when a scipy sparse X, which the trainer
  densifies a batch at a time (:mod:`~tunekit.engine.mlp.sparse_rows`),
  does not fit its memory cap;
- :mod:`tunekit.engine.keras_stack`: the models of any Keras builder.

:mod:`~tunekit.engine.memory` estimates a stack's memory and cuts the
members into stacks that fit the budget (it imports no TensorFlow).

The names are loaded on first use (PEP 562), so that the evaluators can import
this package while ``import tunekit`` stays free of TensorFlow; loading one
imports Keras.
"""

from importlib import import_module

__all__ = [
    "IGNORED_PARAMS",
    "MEMBER_KNOBS",
    "MemberOutcome",
    "MemberSpec",
    "Resolution",
    "Resume",
    "StackConfig",
    "StackResult",
    "forward_numpy",
    "member_estimator",
    "member_outputs",
    "predict_members",
    "resolve_params",
    "sparse_refusal",
    "stack_config",
    "static_key",
    "train_stack",
]

# name -> the module that defines it (or the subpackage itself), imported on first access
_LAZY = {
    **dict.fromkeys(
        ("IGNORED_PARAMS", "MEMBER_KNOBS", "Resolution", "resolve_params", "stack_config"),
        "tunekit.engine.mlp.resolve",
    ),
    **dict.fromkeys(
        ("MemberSpec", "StackConfig", "static_key", "train_stack"), "tunekit.engine.mlp.trainer"
    ),
    **dict.fromkeys(("MemberOutcome", "Resume", "StackResult"), "tunekit.engine.result"),
    "forward_numpy": "tunekit.engine.mlp.network",
    **dict.fromkeys(
        ("member_estimator", "member_outputs", "predict_members"), "tunekit.engine.mlp.members"
    ),
    "sparse_refusal": "tunekit.engine.mlp.sparse_rows",
    "keras_stack": "tunekit.engine.keras_stack",
    "memory": "tunekit.engine.memory",
    "mlp": "tunekit.engine.mlp",
}


def __getattr__(name):
    # The one place the evaluators load the trainers (and Keras): this keeps
    # `import tunekit` free of TensorFlow.
    if name not in _LAZY:
        raise AttributeError(f"module 'tunekit.engine' has no attribute {name!r}")
    module = import_module(_LAZY[name])
    globals()[name] = value = (
        module if module.__name__.endswith(f".{name}") else getattr(module, name)
    )
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
