"""Stack the models of *any* Keras builder: many members, one compiled training step.

:mod:`tunekit.engine`'s core path reproduces :func:`tunekit.builders.mlp` in raw
tensors. This package is the general path: it finds out what a builder does by
calling it, then trains many members of the built model side by side, with a
member axis on every variable, in one compiled program.

Technique
---------
The built model is *cloned with a member axis on every variable*: a kernel of
shape ``(in, out)`` becomes ``(M, in, out)``, a batch is ``(M, B, ...)``, and
every covered layer has a member-axis implementation written in
:mod:`keras.ops` (Dense and convolutions as batched matrix products over
im2col patches, BatchNormalization with masked per-member moments, Embedding
as a gather into a per-member table). Layers without variables whose call is
per sample and deterministic (pooling, Flatten, Reshape, activations, merges,
padding, ...) run unchanged with the member axis folded into the batch axis.
The functional graph is walked with the model's own node order, so skip
connections and merges work. Loss functions are Keras's own; the optimizers
are :mod:`tunekit.engine.optimizers` (Keras's RMSprop, Adam and SGD
arithmetic with a per-member learning rate). An epoch is one compiled call
(``tf.function`` on TensorFlow, XLA optional; ``jax.jit`` on JAX).
``docs/performance.md`` ("Any builder on the stacked engine") gives the
measurements behind the choice: per step, the member axis ran 3x to 7x faster
than ``tf.vectorized_map`` over ``model.stateless_call``.

API for a search
----------------
::

    groups = probe(estimator, candidates, X, y)       # list[KerasGroup]
    require_stackable(groups, candidates)             # engine="stacked": ValueError if not
    for group in groups:
        if not group.stackable:                       # group.reason names the cause
            ...                                       # standard path
            continue
        members = [KerasMember(candidate=c, train_idx=tr, val_idx=va, seed=s)
                   for c in group.indices for (tr, va, s) in my_splits(c)]
        result = train_group(group, members, X, y, on_epoch_end=None)
        for m, member in enumerate(members):
            est = member_estimator(result, m)         # predict / predict_proba / classes_
            score = scorer(est, X[test], y[test])

- :func:`probe` builds every candidate's model through the estimator (so
  ``model__*`` parameters, ``meta``, ``compile_kwargs``, the optimizer and
  the loss are exactly what ``fit`` would use), compares the built models and
  groups candidate indices by *structure*: the layer graph and every layer
  config, apart from dropout / noise rates, L1/L2 regularizer strengths,
  initializer seeds, the learning rate and label smoothing, which become
  per-member *knobs* (:attr:`KerasGroup.knobs`). A group that cannot stack
  carries :attr:`KerasGroup.reason`, naming the layer or the cause.
- :func:`train_group` trains members (:class:`KerasMember`: candidate, rows,
  validation rows, seed) in lockstep. A member's initial weights (drawn with
  the model's own initializers), batch order and dropout / noise draws come
  from its own seed only, never from its position in the stack.
  :class:`FitOverrides` overrides the group's epochs, batch size or
  shuffling for one call.
- :func:`member_estimator` gives a fitted scikit-learn estimator of one member,
  and :class:`EpochOutputs` the members after an epoch, predicted in one pass,
  with the tunekit estimator's encodings (``classes_``, ``predict_proba``).

What the caller does: pass ``y`` holding every class to :func:`probe`; carve a
member's ``val_idx`` from its training fold when ``group.patience[c]`` is set
(as the estimators do: ``ceil(validation_fraction * n)`` rows, stratified for
classifiers); give each member a seed derived from the search's seed and the
(candidate, fold) pair only; read ``result.n_epochs``, ``result.best_epoch``
and ``result.fit_time / len(members)`` for ``cv_results_``. Fallbacks are
logged at INFO on ``tunekit.engine.keras_stack``;
:func:`require_stackable` is the ``engine="stacked"`` check.

Modules: :mod:`~tunekit.engine.keras_stack.probe` (what stacks),
:mod:`~tunekit.engine.keras_stack.layers` (member-axis layers, losses),
:mod:`~tunekit.engine.keras_stack.train` (the compiled epoch, early stopping),
:mod:`~tunekit.engine.keras_stack.members` (members as estimators).

Covered layers: see :data:`WEIGHTED_LAYERS`, :data:`RANDOM_LAYERS` and
:data:`FOLDED_LAYERS`. Anything else (recurrent layers, custom layers with
variables, ``Lambda``, subclassed models, a custom ``train_step``, masking,
constraints, activity regularizers, optimizers other than default-configured
RMSprop / Adam / SGD, callbacks, class weights) makes the group fall back.
"""

from tunekit.engine.keras_stack._plan import (
    FOLDED_LAYERS,
    RANDOM_LAYERS,
    WEIGHTED_LAYERS,
    KerasGroup,
    footprint,
)
from tunekit.engine.keras_stack.members import (
    EpochOutputs,
    KerasStackMemberClassifier,
    KerasStackMemberRegressor,
    member_estimator,
)
from tunekit.engine.keras_stack.probe import probe, require_stackable
from tunekit.engine.keras_stack.train import (
    FitOverrides,
    KerasMember,
    KerasStackResult,
    member_initial_weights,
    train_group,
)

__all__ = [
    "FOLDED_LAYERS",
    "RANDOM_LAYERS",
    "WEIGHTED_LAYERS",
    "EpochOutputs",
    "FitOverrides",
    "KerasGroup",
    "KerasMember",
    "KerasStackMemberClassifier",
    "KerasStackMemberRegressor",
    "KerasStackResult",
    "footprint",
    "member_estimator",
    "member_initial_weights",
    "probe",
    "require_stackable",
    "train_group",
]
