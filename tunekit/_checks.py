"""The valid range of every knob tunekit knows, checked before any training.

One table per owner:

- :data:`ESTIMATOR_RANGES`: the parameters of :class:`tunekit.KerasClassifier`
  and :class:`tunekit.KerasRegressor` (``epochs``, ``batch_size``, early
  stopping, the optimizer's learning rate, ...);
- :data:`MLP_RANGES`: the knobs of :func:`tunekit.builders.mlp`, reached as
  ``model__<knob>`` on an estimator.

:func:`tunekit.builders.mlp` checks its arguments against :data:`MLP_RANGES`,
the estimators check their parameters at the start of ``fit``
(:func:`check_estimator_params`), and :meth:`tunekit.Space.check_params`
checks every value a dimension can produce (:func:`check_bounds`,
:func:`check_options`), so that
a space allowing ``batch_size=0`` or ``model__dropout=1.5`` is refused before
a search starts. A builder declares its own table as a ``param_ranges``
attribute (see :mod:`tunekit.builders`).

This module is a leaf: it imports nothing from tunekit and nothing heavy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ESTIMATOR_RANGES",
    "MLP_RANGES",
    "Interval",
    "Shape",
    "builder_of",
    "check_bounds",
    "check_estimator_params",
    "check_options",
    "check_value",
    "ranges_for",
]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fmt(bound: float) -> str:
    return repr(int(bound)) if float(bound).is_integer() else repr(float(bound))


@dataclass(frozen=True)
class Interval:
    """A number in ``low .. high``, plus a few special values.

    Parameters
    ----------
    integer : bool
        Whether the value must be an integer (``bool`` is never accepted).
    low, high : float
        Bounds; ``-inf`` / ``inf`` for none. Non-finite numbers are never valid.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    special : tuple
        Values accepted besides the interval, e.g. ``None`` or ``-1``.
    meaning : str
        What the special values mean, shown in the message.
    other_types : bool
        Whether callables (an optimizer's learning rate schedule, say) are
        left to their owner instead of refused.
    python_float : bool
        Whether only Python floats are valid (Keras's optimizers refuse the
        int ``1`` and NumPy ``float32`` scalars for a learning rate).
    """

    integer: bool
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    special: tuple = ()
    meaning: str = ""
    other_types: bool = False
    python_float: bool = False

    def describe(self) -> str:
        """The rule in words: ``"an integer >= 1, or -1 (...)"``."""
        kind = "an integer" if self.integer else "a real number"
        if not self.integer and (self.low == -math.inf or self.high == math.inf):
            kind = "a finite real number"
        if self.python_float:
            kind = "a Python float (1.0, not 1)"
        parts = []
        if self.low > -math.inf:
            parts.append(f"{'>' if self.low_open else '>='} {_fmt(self.low)}")
        if self.high < math.inf:
            parts.append(f"{'<' if self.high_open else '<='} {_fmt(self.high)}")
        rule = f"{kind} {' and '.join(parts)}" if parts else kind
        if self.low > -math.inf and self.high < math.inf:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            rule = f"{kind} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        if self.special:
            rule += f", or {' or '.join(map(repr, self.special))}"
            if self.meaning:
                rule += f" ({self.meaning})"
        return rule

    def accepts(self, value) -> bool:
        """Whether ``value`` is valid (type and range)."""
        for special in self.special:
            if special is None and value is None:
                return True
            if special is not None and _is_real(value) and value == special:
                return _is_int(value) or not self.integer
        if not self._typed(value):
            return False
        return self.contains_number(value)

    def _typed(self, value) -> bool:
        if self.python_float:
            return isinstance(value, float)
        return _is_int(value) if self.integer else _is_real(value)

    def contains_number(self, value: float) -> bool:
        """Whether the number ``value`` lies in the interval (types aside)."""
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, name: str, value) -> None:
        """Raise ``TypeError`` or ``ValueError`` unless ``value`` is valid for ``name``."""
        if self.accepts(value) or (self.other_types and callable(value)):
            return
        if not self._typed(value):
            raise TypeError(
                f"{name}={value!r} has the wrong type: {name} must be {self.describe()}, "
                f"not {type(value).__name__}."
            )
        raise ValueError(
            f"{name}={value!r} is out of range: {name} must be {self.describe()}. "
            "Pass a value in that range."
        )


@dataclass(frozen=True)
class Shape:
    """A tuple of positive integers (an int is taken as a 1-tuple).

    Parameters
    ----------
    what : str
        What the tuple holds, for the message ("layer widths").
    example : str
        An example, for the message ("(16, 16)").
    allow_empty : bool
        Whether ``()`` is valid.
    """

    what: str
    example: str
    allow_empty: bool = False

    def describe(self) -> str:
        empty = "" if self.allow_empty else "non-empty "
        return f"a {empty}tuple of positive integers ({self.what}), e.g. {self.example}"

    def normalize(self, name: str, value) -> tuple[int, ...]:
        """``value`` as a tuple of ints; ``TypeError``/``ValueError`` when invalid."""
        if _is_int(value):
            value = (int(value),)
        if not isinstance(value, (str, bytes, Mapping)) and hasattr(value, "__iter__"):
            value = tuple(value)  # numpy arrays, TensorShape, lists
        if not isinstance(value, tuple):
            raise TypeError(
                f"{name}={value!r} has the wrong type: {name} must be {self.describe()}."
            )
        if any(not _is_int(v) for v in value):
            raise TypeError(
                f"{name}={value!r} holds a value that is not an integer: {name} must be "
                f"{self.describe()}."
            )
        if (not value and not self.allow_empty) or any(v < 1 for v in value):
            raise ValueError(
                f"{name}={value!r} is out of range: {name} must be {self.describe()}."
            )
        return tuple(int(v) for v in value)

    def accepts(self, value) -> bool:
        """Whether ``value`` is valid."""
        try:
            self.normalize("value", value)
        except (TypeError, ValueError):
            return False
        return True

    def check(self, name: str, value) -> None:
        """Raise ``TypeError`` or ``ValueError`` unless ``value`` is valid for ``name``."""
        self.normalize(name, value)


Rule = Interval | Shape

_POSITIVE_INT = Interval(integer=True, low=1)
_BATCH = Interval(
    integer=True,
    low=1,
    special=(None, -1),
    meaning="None: Keras's default of 32; -1: the whole training set in one batch",
)
_FRACTION_OPEN = Interval(integer=False, low=0.0, high=1.0, low_open=True, high_open=True)
_PROBABILITY = Interval(integer=False, low=0.0, high=1.0, high_open=True)
_NON_NEGATIVE = Interval(integer=False, low=0.0)
_STDDEV = Interval(integer=False, low=0.0, high=1.0)  # keras.layers.GaussianNoise's own rule
_POSITIVE = Interval(integer=False, low=0.0, low_open=True)
_POSITIVE_OR_NONE = Interval(
    integer=False, low=0.0, low_open=True, special=(None,), meaning="off"
)

#: Parameters of tunekit's estimators (and scikeras's routed fit/optimizer
#: parameters) with their valid ranges.
ESTIMATOR_RANGES: Mapping[str, Rule] = {
    "epochs": _POSITIVE_INT,
    "batch_size": _BATCH,
    "fit__batch_size": _BATCH,
    "predict__batch_size": _BATCH,
    "validation_batch_size": _BATCH,
    "fit__validation_batch_size": _BATCH,
    "early_stopping": Interval(
        integer=True, low=0, special=(None,), meaning="no early stopping"
    ),
    "validation_fraction": _FRACTION_OPEN,
    "validation_split": _PROBABILITY,
    "fit__validation_split": _PROBABILITY,
    "optimizer__learning_rate": Interval(
        integer=False, low=0.0, low_open=True, other_types=True, python_float=True
    ),
    "optimizer__momentum": Interval(integer=False, low=0.0, high=1.0, python_float=True),
    "optimizer__rho": _PROBABILITY,
    "optimizer__beta_1": _PROBABILITY,
    "optimizer__beta_2": _PROBABILITY,
    "optimizer__epsilon": _POSITIVE,
    "optimizer__clipnorm": _POSITIVE_OR_NONE,
    "optimizer__clipvalue": _POSITIVE_OR_NONE,
    "optimizer__global_clipnorm": _POSITIVE_OR_NONE,
    "optimizer__weight_decay": Interval(
        integer=False, low=0.0, special=(None,), meaning="off"
    ),
}

#: Knobs of :func:`tunekit.builders.mlp` with their valid ranges.
MLP_RANGES: Mapping[str, Rule] = {
    "input_shape": Shape("the shape of one sample", "(20,)"),
    "hidden": Shape("the widths of the hidden layers", "(16, 16)", allow_empty=True),
    "l1": _NON_NEGATIVE,
    "l2": _NON_NEGATIVE,
    "dropout": _PROBABILITY,
    "noise": _STDDEV,
    "activation_noise": _STDDEV,
    "weight_noise": _NON_NEGATIVE,
    "label_smoothing": _PROBABILITY,
    "output_units": _POSITIVE_INT,
}


def check_value(name: str, value, rule: Rule) -> None:
    """Raise ``TypeError`` or ``ValueError`` naming ``name`` unless ``value`` obeys ``rule``."""
    rule.check(name, value)


def builder_of(estimator) -> Callable | None:
    """The builder function of a scikeras-style estimator (``None`` for a model instance)."""
    model = getattr(estimator, "model", None)
    if model is None:
        resolve = getattr(estimator, "_check_model_param", None)
        if resolve is None:
            return None
        try:
            return resolve()
        except Exception:  # no builder at all: scikeras says so at fit
            return None
    return model if callable(model) and not hasattr(model, "fit") else None


def ranges_for(estimator) -> dict[str, Rule]:
    """The range table of ``estimator``'s parameters: its own and its builder's.

    Empty for estimators that are not Keras wrappers (they check themselves).
    """
    if not hasattr(estimator, "_routing_prefixes"):
        return {}
    table = dict(ESTIMATOR_RANGES)
    builder_ranges = getattr(builder_of(estimator), "param_ranges", None) or {}
    table.update({f"model__{knob}": rule for knob, rule in builder_ranges.items()})
    return table


def check_estimator_params(estimator, skip: Sequence[str] = ()) -> None:
    """Check every parameter of a Keras estimator that has a known range.

    Parameters
    ----------
    estimator : KerasClassifier, KerasRegressor or a scikeras wrapper
    skip : sequence of str, default=()
        Names not to check (those a search space will set).

    Raises
    ------
    TypeError, ValueError
        Naming the first invalid parameter, its value and its valid range.
    """
    table = ranges_for(estimator)
    if not table:
        return
    params = estimator.get_params(deep=False)
    for name, rule in table.items():
        if name in params and name not in skip:
            rule.check(name, params[name])


def check_options(name: str, options, rule: Rule, *, shown: str) -> None:
    """Refuse a choice of values if one of them is outside ``rule``.

    Parameters
    ----------
    name : str
        The parameter's name as the space spells it.
    options : iterable
        The choice's values.
    rule : Interval or Shape
    shown : str
        The dimension as the message shows it.

    Raises
    ------
    TypeError, ValueError
        Naming the parameter, the option and the valid range.
    """
    for value in options:
        try:
            rule.check(name, value)
        except (TypeError, ValueError) as err:
            raise type(err)(
                f"the space's dimension {name} = {shown} allows {name}={value!r}, but {name} "
                f"must be {rule.describe()}. Remove that option before searching."
            ) from None


def check_bounds(
    name: str, rule: Rule, low, high, *, integer: bool, step=None, shown: str
) -> None:
    """Refuse a numeric dimension ``[low, high]`` that can produce a value outside ``rule``.

    Parameters
    ----------
    name : str
        The parameter's name as the space spells it.
    rule : Interval or Shape
    low, high : int or float
        The dimension's inclusive bounds.
    integer : bool
        Whether the dimension draws integers (``Int``) or real numbers (``Float``).
    step : int or None, default=None
        An integer dimension's step.
    shown : str
        The dimension as the message shows it.

    Raises
    ------
    TypeError
        When the dimension draws reals for an integer parameter, or numbers
        for a tuple.
    ValueError
        Naming the parameter, a value the dimension allows and the valid range.
    """
    if isinstance(rule, Shape):
        if not integer:
            raise TypeError(
                f"{name} must be {rule.describe()}, but the space gives it {shown}, which "
                f"draws real numbers. Use a Choice of tuples, e.g. Choice([{rule.example}])."
            )
        rule = _POSITIVE_INT  # an int n is taken as the 1-tuple (n,)
    if rule.python_float and integer:
        raise TypeError(
            f"{name} must be {rule.describe()}, but the space gives it {shown}, which draws "
            "integers. Use Float(low, high) or a Choice of floats."
        )
    if rule.integer and not integer:
        raise TypeError(
            f"{name} must be {rule.describe()}, but the space gives it {shown}, which draws "
            f"real numbers. Use Int(low, high) or a Choice of integers."
        )
    bad = _first_outside(rule, low, high, int(step or 1)) if integer else next(
        (b for b in (low, high) if not rule.accepts(float(b))), None
    )
    if bad is not None:
        raise ValueError(
            f"the space's dimension {name} = {shown} allows {name}={bad!r}, but {name} must "
            f"be {rule.describe()}. Narrow the dimension to that range before searching."
        )


def _first_outside(rule: Interval, low: int, high: int, step: int) -> int | None:
    """A value of ``range(low, high + 1, step)`` that ``rule`` refuses, or ``None``."""
    last = low + (high - low) // step * step
    # walk in from each end past the special values (a few at most) to the interval
    for value, direction in ((low, step), (last, -step)):
        while low <= value <= last and not rule.contains_number(value):
            if not rule.accepts(value):
                return value
            value += direction
    return None
