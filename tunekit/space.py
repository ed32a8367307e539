"""One search space, translated for every strategy.

A :class:`Space` maps parameter names (``"model__l2"``, ``"batch_size"``,
``"kerasclassifier__model__dropout"`` in a pipeline) to dimensions:
:class:`Float`, :class:`Int` and :class:`Choice`. It translates to

- ``to_grid(n)``: a ``param_grid`` for :class:`~sklearn.model_selection.GridSearchCV`;
- ``to_distributions()``: ``param_distributions`` for
  :class:`~sklearn.model_selection.RandomizedSearchCV` and successive halving;
- ``to_optuna()``: ``{name: optuna.distributions.BaseDistribution}``;
- ``suggest(trial)``: ``{name: value}`` drawn from an :class:`optuna.trial.Trial`.

Every value any translation produces lies inside the space
(:meth:`Space.contains` checks it).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from tunekit._checks import (
    builder_of,
    check_bounds,
    check_estimator_params,
    check_options,
    ranges_for,
)

__all__ = ["Choice", "Dimension", "Float", "Int", "Space"]

_PRIMITIVES = (type(None), bool, int, float, str)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Dimension:
    """Base class of the search-space dimensions.

    Subclasses implement ``grid(n)``, ``distribution()``, ``optuna()``,
    ``suggest(trial, name)`` and ``contains(value)``; each must only produce
    values for which ``contains`` is true.
    """

    def grid(self, n: int) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def distribution(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def optuna(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def suggest(self, trial, name: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def contains(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_bounds(kind, low, high, log, step, *, integer: bool):
    for label, value in (("low", low), ("high", high)):
        ok = isinstance(value, numbers.Integral) if integer else _is_real(value)
        if not ok or isinstance(value, bool):
            need = "an integer" if integer else "a real number"
            raise TypeError(f"{kind}: `{label}` must be {need}, but got {label}={value!r}.")
        if not math.isfinite(value):
            raise ValueError(f"{kind}: `{label}` must be finite, but got {label}={value!r}.")
    if low > high:
        raise ValueError(f"{kind}: `low <= high` must hold, but got low={low!r}, high={high!r}.")
    if log and low <= 0:
        raise ValueError(
            f"{kind}: `low > 0` must hold for log=True, but got low={low!r}. "
            "Use a positive lower bound, e.g. 1e-6, or log=False."
        )
    if step is not None:
        if not _is_real(step) or step <= 0:
            raise ValueError(f"{kind}: `step > 0` must hold, but got step={step!r}.")
        if log and not (integer and step == 1):
            raise ValueError(
                f"{kind}: `step` and `log=True` cannot be combined, but got step={step!r}. "
                "Drop one of them."
            )
        if integer and not isinstance(step, numbers.Integral):
            raise TypeError(f"{kind}: `step` must be an integer, but got step={step!r}.")


@dataclass(frozen=True)
class Float(Dimension):
    """A real-valued dimension on ``[low, high]``.

    Parameters
    ----------
    low, high : float
        Inclusive bounds; ``low <= high`` must hold.
    log : bool, default=False
        Sample and grid on a log scale (``low > 0`` must hold). Use it for
        penalties and learning rates, which act multiplicatively.
    step : float or None, default=None
        Discretization: values are ``low + k * step`` with ``low + k * step <= high``.
        Cannot be combined with ``log``.

    Examples
    --------
    >>> Float(1e-5, 1e-1, log=True).grid(3)
    [1e-05, 0.001, 0.1]
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self):
        _check_bounds("Float", self.low, self.high, self.log, self.step, integer=False)

    def _n_steps(self) -> int:
        """How many steps fit in ``[low, high]``, in decimal arithmetic as Optuna counts them."""
        low, high, step = (Decimal(str(v)) for v in (self.low, self.high, self.step))
        return int((high - low) // step)

    def _steps(self) -> np.ndarray:
        values = self.low + self.step * np.arange(self._n_steps() + 1)
        return np.minimum(values, self.high)  # 0.1 + 2 * 0.1 is a hair above 0.3

    def _snap(self, value: float) -> float:
        if self.step is None:
            return float(min(max(value, self.low), self.high))
        steps = self._steps()
        return float(steps[np.argmin(np.abs(steps - value))])

    def grid(self, n: int) -> list[float]:
        if self.low == self.high:
            return [float(self.low)]
        if self.step is not None:
            steps = self._steps()
            if n >= len(steps):
                return [float(v) for v in steps]
            idx = np.unique(np.round(np.linspace(0, len(steps) - 1, n)).astype(int))
            return [float(steps[i]) for i in idx]
        if self.log:
            values = np.geomspace(self.low, self.high, n)
        else:
            values = np.linspace(self.low, self.high, n)
        values = [float(f"{v:.12g}") for v in values]
        values[0], values[-1] = float(self.low), float(self.high)
        return sorted({self._snap(v) for v in values})

    def distribution(self):
        from scipy import stats

        if self.step is not None or self.low == self.high:
            return self.grid(len(self._steps()) if self.step is not None else 1)
        if self.log:
            return _Within(stats.loguniform(self.low, self.high), self.low, self.high)
        return _Within(stats.uniform(self.low, self.high - self.low), self.low, self.high)

    def _top(self) -> float:
        """The largest value: ``high``, or the last step at or below it."""
        if self.step is None:
            return float(self.high)
        low, step = Decimal(str(self.low)), Decimal(str(self.step))
        return float(low + self._n_steps() * step)

    def optuna(self):
        from optuna.distributions import FloatDistribution

        return FloatDistribution(float(self.low), self._top(), log=self.log, step=self.step)

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self._top(), log=self.log, step=self.step)

    def contains(self, value) -> bool:
        if not _is_real(value) or not (self.low <= value <= self.high):
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return abs(k - round(k)) < 1e-6


@dataclass(frozen=True)
class Int(Dimension):
    """An integer dimension on ``[low, high]``.

    Parameters
    ----------
    low, high : int
        Inclusive bounds; ``low <= high`` must hold.
    log : bool, default=False
        Log-scaled (``low >= 1`` must hold); good for widths and epochs.
    step : int, default=1
        Values are ``low, low + step, ...`` up to ``high``. Must be 1 with ``log``.

    Examples
    --------
    >>> Int(5, 50).grid(4)
    [5, 20, 35, 50]
    """

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self):
        _check_bounds("Int", self.low, self.high, self.log, self.step, integer=True)

    def _values(self) -> np.ndarray:
        return np.arange(self.low, self.high + 1, self.step)

    def grid(self, n: int) -> list[int]:
        values = self._values()
        if n >= len(values):
            return [int(v) for v in values]
        if self.log:
            raw = np.geomspace(self.low, values[-1], n)
        else:
            raw = np.linspace(self.low, values[-1], n)
        snapped = {int(values[np.argmin(np.abs(values - v))]) for v in raw}
        return sorted(snapped)

    def distribution(self):
        from scipy import stats

        if self.log:
            return _IntLogUniform(self.low, self.high)
        if self.step == 1:
            return stats.randint(self.low, self.high + 1)
        return [int(v) for v in self._values()]

    def optuna(self):
        from optuna.distributions import IntDistribution

        top = int(self._values()[-1])  # optuna warns unless high - low is a multiple of step
        return IntDistribution(int(self.low), top, log=self.log, step=int(self.step))

    def suggest(self, trial, name: str) -> int:
        top = int(self._values()[-1])
        return trial.suggest_int(name, self.low, top, log=self.log, step=self.step)

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0


class _Within:
    """A scipy distribution whose draws never leave ``[low, high]`` (an ``rvs`` for scikit-learn).

    ``loguniform(low, high)`` draws ``exp(uniform(log low, log high))``, which rounding can
    put one unit in the last place beyond ``high`` on a narrow range; such a draw is
    clipped, the others are scipy's own.
    """

    def __init__(self, dist, low: float, high: float):
        self.dist, self.low, self.high = dist, float(low), float(high)

    def rvs(self, size=None, random_state=None):
        draws = np.clip(self.dist.rvs(size=size, random_state=random_state), self.low, self.high)
        return float(draws) if size is None else draws

    def __repr__(self):
        return f"{self.dist.dist.name}({self.low}, {self.high})"


class _IntLogUniform:
    """Integers drawn log-uniformly from ``[low, high]`` (an ``rvs`` for scikit-learn)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = int(low), int(high)

    def rvs(self, size=None, random_state=None):
        from scipy import stats
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        draws = stats.loguniform(self.low - 0.5 if self.low > 1 else 1, self.high + 0.5).rvs(
            size=size, random_state=rng
        )
        out = np.clip(np.round(draws), self.low, self.high).astype(int)
        return int(out) if size is None else out

    def __repr__(self):
        return f"IntLogUniform({self.low}, {self.high})"


def _encode_choice(value) -> Any:
    return value if isinstance(value, _PRIMITIVES) else repr(value)


@dataclass(frozen=True)
class Choice(Dimension):
    """A categorical dimension over a list of values.

    Values may be any objects scikit-learn can set as parameters, e.g.
    ``Choice([(16,), (16, 16), (64, 64)])`` for layer widths. For Optuna,
    values other than ``None``, bool, int, float and str are stored as their
    ``repr`` and decoded back by :meth:`suggest`.

    Parameters
    ----------
    values : sequence
        At least one value; no duplicates.

    Examples
    --------
    >>> Choice([32, 64, 128]).grid(2)
    [32, 64, 128]
    """

    values: tuple

    def __init__(self, values: Sequence):
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(
                f"Choice: `values` must be a list of options, but got {values!r}. "
                f"Single values need to be wrapped in a list: Choice([{values!r}])."
            )
        values = tuple(values)
        if not values:
            raise ValueError("Choice: `values` must hold at least one option, but got [].")
        encoded = [_encode_choice(v) for v in values]
        if len(set(map(repr, encoded))) != len(encoded):
            raise ValueError(f"Choice: `values` must be distinct, but got {list(values)!r}.")
        object.__setattr__(self, "values", values)

    def grid(self, n: int) -> list:
        return list(self.values)

    def distribution(self) -> list:
        return list(self.values)

    def optuna(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution([_encode_choice(v) for v in self.values])

    def suggest(self, trial, name: str):
        encoded = trial.suggest_categorical(name, [_encode_choice(v) for v in self.values])
        return self.decode(encoded)

    def decode(self, encoded):
        """The option whose Optuna encoding is ``encoded``."""
        for value in self.values:
            if _encode_choice(value) == encoded and type(_encode_choice(value)) is type(encoded):
                return value
        raise ValueError(f"{encoded!r} is not one of the options {list(self.values)!r}")

    def contains(self, value) -> bool:
        return any(_same(value, v) for v in self.values)


def _same(a, b) -> bool:
    if type(a) is not type(b) and not (_is_real(a) and _is_real(b)):
        return False
    try:
        return bool(a == b)
    except Exception:
        return a is b


class Space(Mapping):
    """A named set of dimensions with one translation per search strategy.

    Parameters
    ----------
    dimensions : dict of str to Dimension
        Parameter name to :class:`Float`, :class:`Int` or :class:`Choice`. A
        list or tuple is taken as a :class:`Choice`.

    Examples
    --------
    >>> import tunekit as tk
    >>> space = tk.Space({"model__l2": tk.Float(1e-4, 1e-2, log=True),
    ...                   "batch_size": tk.Choice([32, 64])})
    >>> space.to_grid(n=3)
    {'model__l2': [0.0001, 0.001, 0.01], 'batch_size': [32, 64]}
    """

    def __init__(self, dimensions: Mapping[str, Dimension | Sequence]):
        if not isinstance(dimensions, Mapping):
            raise TypeError(
                f"Space expects a dict of name -> Float/Int/Choice, got {type(dimensions).__name__}"
            )
        dims = {}
        for name, dim in dimensions.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"Space: parameter names must be non-empty strings, got {name!r}")
            if isinstance(dim, (list, tuple)):
                dim = Choice(dim)
            if not isinstance(dim, Dimension):
                raise TypeError(
                    f"Space: {name!r} must be a Float, Int or Choice (or a list of options), "
                    f"but got {dim!r}. Single values need to be wrapped in a list: [{dim!r}]."
                )
            dims[name] = dim
        self._dims = dims

    # Mapping protocol
    def __getitem__(self, name: str) -> Dimension:
        return self._dims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dims)

    def __len__(self) -> int:
        return len(self._dims)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self._dims.items())
        return f"Space({{{inner}}})"

    # translations
    def to_grid(self, n: int = 3) -> dict[str, list]:
        """A ``param_grid``: ``n`` points per numeric dimension, every option per choice.

        Parameters
        ----------
        n : int, default=3
            Points per numeric dimension (log-spaced for ``log=True``). Integer
            and stepped dimensions may give fewer when they have fewer values.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"to_grid: `n >= 1` must hold, but got n={n!r}.")
        return {name: dim.grid(int(n)) for name, dim in self._dims.items()}

    def to_distributions(self) -> dict[str, Any]:
        """``param_distributions`` for ``RandomizedSearchCV`` and successive halving."""
        return {name: dim.distribution() for name, dim in self._dims.items()}

    def to_optuna(self) -> dict[str, Any]:
        """``{name: optuna.distributions.BaseDistribution}``."""
        return {name: dim.optuna() for name, dim in self._dims.items()}

    def suggest(self, trial) -> dict[str, Any]:
        """Draw one value per dimension from an :class:`optuna.trial.Trial`."""
        return {name: dim.suggest(trial, name) for name, dim in self._dims.items()}

    def decode(self, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
        """Turn an Optuna trial's ``params`` back into estimator parameter values."""
        out = {}
        for name, value in optuna_params.items():
            dim = self._dims.get(name)
            out[name] = dim.decode(value) if isinstance(dim, Choice) else value
        return out

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether every value of ``params`` lies inside its dimension."""
        return all(
            name in self._dims and self._dims[name].contains(v) for name, v in params.items()
        )

    def prefixed(self, prefix: str) -> Space:
        """The same space with every name prefixed, e.g. for a pipeline step.

        >>> Space({"model__l2": [0.0, 0.01]}).prefixed("kerasclassifier__").to_grid()
        {'kerasclassifier__model__l2': [0.0, 0.01]}
        """
        return Space({prefix + name: dim for name, dim in self._dims.items()})

    def check_params(self, estimator) -> None:
        """Refuse names the estimator does not accept and values outside their range.

        A name is accepted when ``estimator.get_params()`` has it, or when it
        is a routed Keras parameter (``model__*``, ``optimizer__*``, ``fit__*``,
        ...) of a tunekit / scikeras estimator, with ``model__<knob>`` checked
        against the builder's signature. Pipelines are followed step by step.

        Then every value a dimension can produce is checked against the valid
        range of its parameter (``batch_size`` and ``epochs`` >= 1, ``dropout``
        in ``[0, 1)``, penalties >= 0, a learning rate > 0, ...; the table is
        ``tunekit._checks``), and so are the parameters the estimator itself
        holds and the space does not set. It needs no data and trains nothing.

        Parameters
        ----------
        estimator : estimator
            The estimator (or pipeline) the space will be searched on.

        Raises
        ------
        ValueError
            For an unknown name ("did you mean ...?"), or a value outside its
            range, naming the parameter, the value and the valid range.
        TypeError
            For a dimension of the wrong kind, e.g. a ``Float`` for ``epochs``.

        Examples
        --------
        >>> import tunekit as tk
        >>> clf = tk.KerasClassifier(tk.builders.mlp)
        >>> tk.Space({"batch_size": tk.Int(0, 64)}).check_params(clf)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the space's dimension batch_size = Int(...) allows batch_size=0, but ...
        """
        for name in self._dims:
            problem = _param_problem(estimator, name)
            if problem:
                raise ValueError(problem)
        for prefix, target in _keras_estimators(estimator):
            table = ranges_for(target)
            for name, dim in self._dims.items():
                rule = table.get(name[len(prefix) :]) if name.startswith(prefix) else None
                if rule is not None:
                    _check_dimension(name, dim, rule)
            own = [name[len(prefix) :] for name in self._dims if name.startswith(prefix)]
            check_estimator_params(target, skip=own)


def _check_dimension(name: str, dim: Dimension, rule) -> None:
    if isinstance(dim, Choice):
        check_options(name, dim.values, rule, shown=repr(dim))
    elif isinstance(dim, (Float, Int)):
        integer = isinstance(dim, Int)
        check_bounds(
            name, rule, dim.low, dim.high, integer=integer,
            step=dim.step if integer else None, shown=repr(dim),
        )  # fmt: skip


def _keras_estimators(estimator, prefix: str = "") -> list[tuple[str, Any]]:
    """``(prefix, estimator)`` for the Keras estimators in ``estimator`` (pipeline steps too)."""
    if hasattr(estimator, "_routing_prefixes"):
        return [(prefix, estimator)]
    found = []
    for name, value in estimator.get_params(deep=False).items():
        if hasattr(value, "get_params") and not isinstance(value, type):
            found += _keras_estimators(value, f"{prefix}{name}__")
    for name, value in getattr(estimator, "steps", None) or []:
        if hasattr(value, "get_params"):
            found += _keras_estimators(value, f"{prefix}{name}__")
    return found


_ROUTED = ("model", "fit", "compile", "predict", "optimizer", "loss", "metrics", "callbacks")


def _param_problem(estimator, name: str) -> str | None:
    params = estimator.get_params(deep=True)
    if name in params:
        return None
    head, sep, rest = name.partition("__")
    if sep and head in params and hasattr(params[head], "get_params"):
        return _param_problem(params[head], rest)
    if sep and head in _ROUTED and hasattr(estimator, "_routing_prefixes"):
        if head != "model" or "__" in rest:
            return None
        build_fn = builder_of(estimator)
        if build_fn is None:
            return None
        import inspect

        sig = inspect.signature(build_fn)
        if rest in sig.parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
        ):
            return None
        knobs = [f"model__{p}" for p in sig.parameters if p not in ("input_shape",)]
        return _unknown_message(name, estimator, knobs + list(params))
    return _unknown_message(name, estimator, list(params))


def _unknown_message(name: str, estimator, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Invalid parameter {name!r} for estimator {type(estimator).__name__}: it is not one of "
        f"its parameters nor a knob of its builder.{hint} "
        "Check the names with estimator.get_params().keys()."
    )
