"""The arguments of :func:`tunekit.search`, each refused with its rule before any training."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.utils.multiclass import type_of_target

__all__ = ["ENGINES", "STRATEGIES", "validate"]

STRATEGIES = ("grid", "random", "halving", "optuna")
ENGINES = ("auto", "sklearn", "stacked")


def validate(options: dict) -> None:
    """``search()``'s arguments (a dict of them), each refused with its rule before any training."""
    strategy, engine, test_size = options["strategy"], options["engine"], options["test_size"]
    n_trials, refit_top = options["n_trials"], options["refit_top"]
    estimator, X, y = options["estimator"], options["X"], options["y"]
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}"
        )
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    if test_size is not None and not (
        (isinstance(test_size, float) and 0.0 < test_size < 1.0)
        or (_is_int(test_size) and test_size >= 1)
    ):
        raise ValueError(
            "test_size must be a fraction in (0, 1), a number of samples >= 1, or None to skip "
            f"the held-out test set; got test_size={test_size!r}"
        )
    if n_trials is not None and (not _is_int(n_trials) or n_trials < 1):
        raise ValueError(f"n_trials must be a positive integer or None, got {n_trials!r}")
    if not _is_int(refit_top) or refit_top < 0:
        raise ValueError(f"refit_top must be an integer >= 0, got {refit_top!r}")
    _validate_options(options)
    if y is None and (is_classifier(estimator) or is_regressor(estimator)):
        raise ValueError(
            f"{type(estimator).__name__} learns from targets, but y is None: pass "
            "search(estimator, X, y, ...)."
        )
    n_x, n_y = _n_samples(X), _n_samples(y)
    if n_x is None:
        raise ValueError(
            f"X must be an array-like of samples, shape (n_samples, n_features), but got "
            f"{type(X).__name__} {X!r:.80}"
        )
    if n_x is not None and n_y is not None and n_x != n_y:
        raise ValueError(
            f"X and y must hold the same number of samples, but X has {n_x} and y has {n_y}. "
            "Pass the targets of exactly the samples in X."
        )
    if y is not None and is_classifier(estimator):
        _check_labels(type(estimator).__name__, y)


def _check_labels(name: str, y) -> None:
    """Refuse a classifier's target that holds no class labels (read from y alone)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kind = type_of_target(y, input_name="y")
    except (TypeError, ValueError) as err:
        message = str(err)
        raise ValueError(
            message if " y " in f" {message} " else f"y cannot be read as labels: {message}"
        ) from None
    if kind in ("continuous", "continuous-multioutput", "unknown"):
        raise ValueError(
            f"{name} is a classifier and needs class labels in y, but y holds {kind} values "
            "(type_of_target). Use labels of one type (ints or strings), or KerasRegressor "
            "for a numeric target."
        )


def _n_samples(data) -> int | None:
    """The length of ``data`` along its first axis; ``None`` when it has none."""
    shape = getattr(data, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    try:
        return len(data)
    except TypeError:
        return None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_num(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return _is_num(value) and bool(np.isfinite(value))


def _validate_options(options: dict) -> None:
    """The rest of ``search()``'s options, each refused with its rule before any training."""
    cv, n_points, random_state = options["cv"], options["n_points"], options["random_state"]
    error_score, timeout, factor = options["error_score"], options["timeout"], options["factor"]
    resource, n_jobs, verbose = options["resource"], options["n_jobs"], options["verbose"]
    if (_is_int(cv) and cv < 2) or isinstance(cv, (bool, float, str)):
        raise ValueError(
            f"cv must be a number of folds >= 2, a splitter (e.g. StratifiedKFold(5)), an "
            f"iterable of (train, test) index arrays, or None for 5 folds; got cv={cv!r}"
        )
    if not _is_int(n_points) or n_points < 1:
        raise ValueError(f"n_points must be an integer >= 1 (grid points), got {n_points!r}")
    if random_state is not None and not isinstance(
        random_state, (np.random.RandomState, np.random.Generator)
    ) and not (_is_int(random_state) and 0 <= random_state < 2**32):
        raise ValueError(
            f"random_state must be None or an integer in [0, 2**32 - 1], got {random_state!r}"
        )
    if not (error_score == "raise" if isinstance(error_score, str) else _is_num(error_score)):
        raise ValueError(
            "error_score must be a number (the score of a failed fit, e.g. nan) or 'raise', "
            f"got {error_score!r}"
        )
    if timeout is not None and not (_is_real(timeout) and timeout >= 0):
        raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
    if not (_is_real(factor) and factor > 1):
        raise ValueError(f"factor must be a number > 1 (halving's reduction), got {factor!r}")
    if not isinstance(resource, str) or not resource:
        raise ValueError(
            f"resource must be 'n_samples', 'epochs' or a parameter name, got {resource!r}"
        )
    if n_jobs is not None and (not _is_int(n_jobs) or n_jobs == 0):
        raise ValueError(
            f"n_jobs must be None, a positive number of workers or -1 for all cores, "
            f"got {n_jobs!r}"
        )
    if not isinstance(verbose, bool) and (not _is_int(verbose) or verbose < 0):
        raise ValueError(f"verbose must be an integer >= 0, got {verbose!r}")
    _validate_ensemble(options)


def _validate_ensemble(options: dict) -> None:
    """``outer_cv``, ``oof_predictions`` and ``ensemble``, refused with their rules."""
    outer_cv, oof, ensemble = options["outer_cv"], options["oof_predictions"], options["ensemble"]
    if (_is_int(outer_cv) and outer_cv < 2) or isinstance(outer_cv, (bool, float, str)):
        raise ValueError(
            f"outer_cv needs at least 2 folds: give a number of outer folds >= 2, a splitter, "
            f"or None for no nested cross-validation; got outer_cv={outer_cv!r}"
        )
    if not isinstance(oof, bool):
        raise ValueError(f"oof_predictions must be True or False, got {oof!r}")
    if not isinstance(ensemble, bool) and not (_is_int(ensemble) and ensemble >= 1):
        raise ValueError(f"ensemble must be True, False or a size >= 1, got {ensemble!r}")
    if ensemble is not False and not oof:
        raise ValueError(
            "ensemble selection blends the candidates' out-of-fold predictions, but "
            "oof_predictions=False turns them off: pass oof_predictions=True (the default)"
        )
