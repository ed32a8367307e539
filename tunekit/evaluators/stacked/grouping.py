"""Candidate grouping: which candidates train together in one stack, and why not.

A candidate is stacked with the others that share its structure
(:func:`tunekit.engine.resolve_params`); a pipeline's candidates are read
through its last step, whose parameters carry the pipeline's prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sklearn.base import BaseEstimator
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline

import tunekit.engine as engine

__all__ = [
    "MAX_STACK_MEMBERS",
    "CandidateGroup",
    "can_stack",
    "candidate_list",
    "split_params",
    "split_pipeline",
    "stack_plan",
]

#: Largest number of members trained in one stacked model, however small they
#: are; below it, the memory budget decides (:mod:`tunekit.evaluators.stacked.budget`).
MAX_STACK_MEMBERS = 2048


@dataclass
class CandidateGroup:
    """A stack of candidates of one structure, or one candidate for the standard path.

    Attributes
    ----------
    indices : list of int
        Where the group's candidates stand in the batch of candidates.
    structure : tuple or None
        The shared structure (see :func:`tunekit.engine.resolve_params`);
        ``None`` for the standard path.
    reason : str or None
        Why these candidates take the standard path (``None`` for a stack).
    fit_time : float
        Wall time of the group's training, set by :class:`StackedSearchCV`.
    n_members : int
        Members trained (candidates x folds), set by :class:`StackedSearchCV`.
    epoch_times : list of float
        Wall time of every compiled epoch call of the group's stacks (the
        first of each stack includes compilation).
    stacks : list of int
        Members of each compiled stack the group trained, in order: more than
        one when the memory budget (or ``MAX_STACK_MEMBERS``) split the group.
    """

    indices: list[int]
    structure: tuple | None = None
    reason: str | None = None
    fit_time: float = 0.0
    n_members: int = 0
    epoch_times: list = field(default_factory=list)
    stacks: list = field(default_factory=list)
    keras: object = None  # the any-builder path's group (tunekit.engine.keras_stack)

    @property
    def stacked(self) -> bool:
        """Whether this group runs on the stacked engine."""
        return self.reason is None


def candidate_list(candidates) -> list[dict]:
    """The candidate parameter dicts of a grid or of an iterable of dicts.

    Parameters
    ----------
    candidates : dict of lists, or iterable of dicts
        A parameter grid (as for ``GridSearchCV``), or one dict per candidate.

    Returns
    -------
    candidates : list of dict

    Raises
    ------
    TypeError
        If ``candidates`` is neither, or one candidate is not a dict.
    ValueError
        If there is no candidate.
    """
    if isinstance(candidates, Mapping):
        return list(ParameterGrid(candidates))
    if isinstance(candidates, str) or not isinstance(candidates, Iterable):
        raise TypeError(
            "candidates must be a param grid (a dict of lists, as for GridSearchCV) or an "
            f"iterable of parameter dicts (one per candidate), got {type(candidates).__name__}"
        )
    out = []
    for i, cand in enumerate(candidates):
        if not isinstance(cand, Mapping):
            raise TypeError(
                f"candidate {i} must be a dict of parameter values, got {cand!r}; pass a "
                "dict of lists to expand a grid, or a list of dicts, one per candidate"
            )
        out.append(dict(cand))
    if not out:
        raise ValueError("candidates is empty: there is nothing to search")
    return out


def split_pipeline(estimator):
    """``(preprocessing, final, prefix)``: a pipeline's steps before its last one, the last
    step and the prefix of its parameters (``""``, ``None`` for a bare estimator)."""
    if not isinstance(estimator, Pipeline):
        return None, estimator, ""
    name, final = estimator.steps[-1]
    inner, _, _ = split_pipeline(final)
    if inner is not None:  # a pipeline nested as the last step: not unpacked
        return estimator, final, None
    return (estimator[:-1] if len(estimator.steps) > 1 else None), final, f"{name}__"


def split_params(candidate: Mapping, prefix: str) -> tuple[dict, dict]:
    """A candidate's preprocessing parameters and its last step's (prefix removed)."""
    pre, final = {}, {}
    for key, value in candidate.items():
        if prefix and key.startswith(prefix):
            final[key[len(prefix) :]] = value
        elif not prefix:
            final[key] = value
        else:
            pre[key] = value
    return pre, final


def stack_plan(estimator: BaseEstimator, candidates) -> list[CandidateGroup]:
    """Group candidates into stacks; list the rest with the reason.

    Parameters
    ----------
    estimator : estimator object
        A :class:`tunekit.KerasClassifier` or :class:`tunekit.KerasRegressor`
        (any estimator whose ``get_params()`` the engine understands), or a
        :class:`~sklearn.pipeline.Pipeline` ending in one: its other steps'
        parameters make fold data, not stacks.
    candidates : dict of lists, or iterable of dicts
        A parameter grid, or the candidate parameter dicts.

    Returns
    -------
    groups : list of CandidateGroup
        Stacks first (in order of their first candidate), then one group per
        candidate that cannot be stacked.
    """
    cands = candidate_list(candidates)
    _, final, prefix = split_pipeline(estimator)
    stacks: dict[tuple, CandidateGroup] = {}
    singles = []
    if prefix is None:
        reason = "a pipeline nested as the last step of a pipeline is not stacked"
        return [CandidateGroup([i], None, reason) for i in range(len(cands))]
    base = final.get_params(deep=False)
    step = prefix[:-2]
    for i, cand in enumerate(cands):
        if step and step in cand:
            singles.append(CandidateGroup([i], None, f"the candidate replaces the step {step!r}"))
            continue
        _, own = split_params(cand, prefix)
        res = engine.resolve_params({**base, **own})
        if res.stackable:
            stacks.setdefault(res.structure, CandidateGroup([], res.structure)).indices.append(i)
        else:
            singles.append(CandidateGroup([i], None, res.reason))
    return [*stacks.values(), *singles]


def can_stack(estimator: BaseEstimator, candidates) -> bool:
    """Whether every candidate can run on the stacked engine.

    ``True`` means the stacked evaluator will train every candidate stacked (the data
    may still send a candidate to the standard path, e.g. a loss that does not
    fit the target; results are the same schema either way).

    Parameters
    ----------
    estimator : estimator object
    candidates : dict of lists, or iterable of dicts

    Returns
    -------
    stackable : bool
    """
    try:
        return all(group.stacked for group in stack_plan(estimator, candidates))
    except (TypeError, ValueError):
        return False
