"""Plans: named configurations run in order, one trial each (a baseline and one change at a
time, or growing capacity)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunekit.space import Choice, Space

__all__ = ["Config", "capacity_ladder", "encode_params", "one_at_a_time", "plan_space"]


@dataclass(frozen=True)
class Config:
    """One named configuration of a plan: estimator parameters and a label.

    Parameters
    ----------
    label : str
        A short name for reports, e.g. ``"L2 0.002"``.
    params : dict
        Estimator parameters, e.g. ``{"model__l2": 0.002}``.
    """

    label: str
    params: Mapping[str, Any]


def one_at_a_time(baseline: Mapping[str, Any], variants: Mapping[str, Mapping]) -> list[Config]:
    """The baseline, then each variant changing only its own parameters.

    Parameters
    ----------
    baseline : dict
        Every parameter the variants touch, at its "off" value, e.g.
        ``{"model__l2": 0.0, "model__dropout": 0.0, "batch_size": 32}``.
    variants : dict of str to dict
        Label to the parameters that differ from the baseline.

    Returns
    -------
    plan : list of Config
        ``baseline`` first, then the variants in order; every configuration
        sets every parameter of the baseline.

    Raises
    ------
    ValueError
        If a variant sets a parameter the baseline lacks, or equals the baseline.

    Examples
    --------
    >>> from tunekit.workflow import one_at_a_time
    >>> plan = one_at_a_time({"model__l2": 0.0, "model__dropout": 0.0},
    ...                      {"L2 0.002": {"model__l2": 0.002}})
    >>> [(c.label, dict(c.params)) for c in plan]
    [('baseline', {'model__l2': 0.0, 'model__dropout': 0.0}), ('L2 0.002', {'model__l2': 0.002, 'model__dropout': 0.0})]
    """  # noqa: E501
    plan = [Config("baseline", dict(baseline))]
    for label, change in variants.items():
        unknown = sorted(set(change) - set(baseline))
        if unknown:
            raise ValueError(
                f"variant {label!r} sets {unknown}, which the baseline does not have: every "
                "variant changes baseline parameters only. Add them to the baseline at their "
                "'off' value."
            )
        params = {**baseline, **change}
        if params == dict(baseline):
            raise ValueError(f"variant {label!r} equals the baseline: {dict(change)!r}")
        plan.append(Config(str(label), params))
    return plan


def capacity_ladder(widths: Sequence, name: str = "model__hidden") -> list[Config]:
    """Growing capacities, smallest first, for step 1 (see ``until_train_score``).

    Parameters
    ----------
    widths : sequence of tuple of int
        Hidden layer widths per rung, e.g. ``[(2,), (8,), (32,), (128, 128)]``.
    name : str, default="model__hidden"
        The parameter they set.

    Returns
    -------
    plan : list of Config
    """
    return [Config(f"hidden={tuple(w)}", {name: tuple(w)}) for w in widths]


def plan_space(plan: Sequence[Config]) -> Space:
    """The search space that holds exactly the plan's values (one ``Choice`` per parameter).

    Raises
    ------
    ValueError
        If the plan is empty or its configurations set different parameters.
    """
    if not plan:
        raise ValueError("a plan needs at least one configuration, got an empty plan")
    names = list(plan[0].params)
    values: dict[str, list] = {n: [] for n in names}
    for config in plan:
        if list(config.params) != names:
            raise ValueError(
                f"every configuration of a plan must set the same parameters; {config.label!r} "
                f"sets {sorted(config.params)}, the first sets {sorted(names)}. Build the plan "
                "with one_at_a_time(baseline, variants)."
            )
        for n, v in config.params.items():
            if not any(type(v) is type(u) and v == u for u in values[n]):
                values[n].append(v)
    return Space({n: Choice(vs) for n, vs in values.items()})


def encode_params(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's representation of ``params`` (what ``study.enqueue_trial`` needs)."""
    out = {}
    for name, value in params.items():
        dim = space[name]
        for option, encoded in zip(dim.values, dim.optuna().choices, strict=True):
            if type(option) is type(value) and option == value:
                out[name] = encoded
                break
    return out
