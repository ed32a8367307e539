"""The stacked trainer of :func:`tunekit.builders.mlp`, written in raw tensors.

- :mod:`~tunekit.engine.mlp.resolve`: which candidates the trainer reproduces,
  and the structure that members of one stack share;
- :mod:`~tunekit.engine.mlp.network`: the network with a member axis;
- :mod:`~tunekit.engine.mlp.trainer`: the epoch loop (:func:`train_stack`);
- :mod:`~tunekit.engine.mlp.members`: a trained member as a fitted estimator.

Its public names are exported by :mod:`tunekit.engine`.
"""
