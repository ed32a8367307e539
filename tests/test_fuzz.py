"""Generated bad input: every case works, fails before training, or is a NaN row.

Hypothesis draws search spaces, estimator knobs, ``tunekit.search()``
arguments and ``X``/``y`` of every shape, dtype and value (ragged, object,
NaN, inf, empty, one row, one class, huge). Each case must do one of three
things:

- work: here, reach training (the training calls are replaced by a sentinel
  that stops the run at once, so most properties train nothing);
- raise ``ValueError``/``TypeError`` before training, naming the argument;
- for what only training can judge (divergence), finish with a NaN row whose
  ``failure_reason`` says why.

The expectations (:data:`SPEC`) are written here independently of the
library's own range table. Each property runs 50 examples by default; the
``slow`` variant runs 1,000.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from unittest import mock

import keras
import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import ParameterSampler

import tunekit as tk
import tunekit.engine
from tunekit._checks import check_estimator_params
from tunekit.exceptions import SearchFailedError

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.timeout(1800)

settings.register_profile(
    "tunekit-fuzz",
    max_examples=50,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("tunekit-fuzz-slow", settings.get_profile("tunekit-fuzz"),
                          max_examples=1000)
PROFILES = [
    pytest.param("tunekit-fuzz", id="50"),
    pytest.param("tunekit-fuzz-slow", id="1000", marks=pytest.mark.slow),
]


def run(profile: str, check, *strategies):
    """Run ``check`` as a Hypothesis property under ``profile``."""
    settings.get_profile(profile)(given(*strategies)(check))()


# ---------------------------------------------------------------- what training means here
class Trained(BaseException):
    """Raised where training would start; a BaseException so no fit loop swallows it."""


@contextmanager
def no_training():
    """Replace Keras's ``Model.fit`` and the stacked engine's trainer by :class:`Trained`."""

    def stop(*args, **kwargs):
        raise Trained

    with (
        mock.patch.object(keras.Model, "fit", stop),
        mock.patch.object(tunekit.engine, "train_stack", stop),
    ):
        yield


def outcome(call):
    """``"trained"`` or the exception ``call`` raised before training."""
    with no_training(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except Trained:
            return "trained"
        except Exception as err:  # classified by the caller
            return err
    return "returned"


def assert_clear_error(err, names, context):
    """``err`` is a ValueError/TypeError raised by tunekit or naming one of ``names``."""
    assert isinstance(err, (ValueError, TypeError)), (context, repr(err))
    assert not isinstance(err, SearchFailedError), (context, err)
    message = str(err)
    if "X" in names and re.match(r"Found array with 0 (feature|sample)\(s\) \(shape=", message):
        return  # scikit-learn's own wording for an empty X, with X's shape
    assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z])", message) for n in names), (
        f"the message does not name any of {names}: {message!r}",
        context,
    )


# ---------------------------------------------------------------- the expectations
def _int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    ) and math.isfinite(v)


def _non_negative(v):
    return _real(v) and v >= 0


def _unit(v):
    return _real(v) and 0 <= v < 1


def _widths(v):
    if _int(v):
        return v >= 1
    return isinstance(v, tuple) and all(_int(w) and w >= 1 for w in v)


SPEC = {
    "epochs": lambda v: _int(v) and v >= 1,
    "batch_size": lambda v: v is None or (_int(v) and (v >= 1 or v == -1)),
    "early_stopping": lambda v: v is None or (_int(v) and v >= 0),
    "validation_fraction": lambda v: _real(v) and 0 < v < 1,
    # Keras's optimizers take a Python float only: not 1, not np.float32(0.1)
    "optimizer__learning_rate": lambda v: isinstance(v, float) and _real(v) and v > 0,
    "model__l1": _non_negative,
    "model__l2": _non_negative,
    # Keras's GaussianNoise takes a standard deviation in [0, 1] only
    "model__noise": lambda v: _real(v) and 0 <= v <= 1,
    "model__activation_noise": lambda v: _real(v) and 0 <= v <= 1,
    "model__weight_noise": _non_negative,
    "model__dropout": _unit,
    "model__label_smoothing": _unit,
    "model__hidden": _widths,
}
INTEGER_PARAMS = {"epochs", "batch_size", "early_stopping", "model__hidden"}
FLOAT_PARAMS = {"optimizer__learning_rate"}

# values that sit on or just past the edges of every range above
EDGES = [0, 1, 2, -1, -3, 0.0, 0.5, 0.999, 1.0, 1.5, -1e-9, 1e-12, 1e308, 1e-320,
         float("nan"), float("inf"), -float("inf"), None, True, "0.1", (16,), (0,), (), 2.0]
values = st.one_of(
    st.sampled_from(EDGES),
    st.integers(-5, 600),
    st.floats(-2.0, 2.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.tuples(st.integers(-2, 8)),
)


def clf(**kwargs):
    kwargs = {"epochs": 1, "model__hidden": (3,), **kwargs}
    return tk.KerasClassifier(tk.builders.mlp, random_state=0, **kwargs)


def _data(n=40, d=3):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, d)).astype("float32")
    return X, (X[:, 0] > 0).astype(int)


X, Y = _data()


# ---------------------------------------------------------------- 1. Space definitions
@st.composite
def dimensions(draw, name):
    kind = draw(st.sampled_from(["float", "int", "choice"]))
    if kind == "choice":
        return tk.Choice(draw(st.lists(values, min_size=1, max_size=4,
                                       unique_by=lambda v: (type(v).__name__, repr(v)))))
    if kind == "int":
        low = draw(st.integers(-4, 300))
        high = draw(st.integers(low, low + 200))
        return tk.Int(low, high, step=draw(st.integers(1, 7)))
    low = draw(st.sampled_from([-1.0, -1e-6, 0.0, 1e-9, 0.1, 0.5, 0.999, 1.0, 2.0, 1e300]))
    high = draw(st.sampled_from([low, low + 1e-9, low + 0.4, low + 1.0, 1e305]).filter(
        lambda h: h >= low and math.isfinite(h)))
    log = low > 0 and draw(st.booleans())
    return tk.Float(low, high, log=log)


@st.composite
def spaces(draw):
    names = draw(st.lists(st.sampled_from(sorted(SPEC)), min_size=1, max_size=3, unique=True))
    return tk.Space({name: draw(dimensions(name)) for name in names})


def _dimension_ok(name, dim) -> bool:
    ok = SPEC[name]
    if isinstance(dim, tk.Choice):
        return all(ok(v) for v in dim.values)
    if isinstance(dim, tk.Int):
        values = range(dim.low, dim.high + 1, dim.step)
        return name not in FLOAT_PARAMS and all(ok(int(v)) for v in values)
    return name not in INTEGER_PARAMS and ok(float(dim.low)) and ok(float(dim.high))


def _space_case(space):
    est = clf()
    bad = [name for name, dim in space.items() if not _dimension_ok(name, dim)]
    try:
        space.check_params(est)
    except (TypeError, ValueError) as err:
        assert bad, f"a valid space was refused: {space!r}: {err}"
        assert_clear_error(err, bad, space)
        return
    assert not bad, f"check_params accepted {space!r}, whose {bad} can draw invalid values"
    # every value any translation draws is valid, and the estimator takes it
    drawn = [dict(zip(space, combo, strict=True))
             for combo in zip(*space.to_grid(n=3).values(), strict=False)]
    drawn += list(ParameterSampler(space.to_distributions(), n_iter=3, random_state=0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn.append(space.suggest(study.ask()))
    for params in drawn:
        for name, value in params.items():
            assert SPEC[name](value), (space, name, value)
        check_estimator_params(clf(**params))


@pytest.mark.parametrize("profile", PROFILES)
def test_space_definitions(profile):
    """A space is refused, naming the parameter, exactly when it can draw an invalid value."""
    run(profile, _space_case, spaces())


# ---------------------------------------------------------------- 2. the estimator's knobs
knob_sets = st.dictionaries(st.sampled_from(sorted(SPEC)), values, min_size=1, max_size=3)


def _knobs_case(knobs):
    bad = [name for name, value in knobs.items() if not SPEC[name](value)]
    result = outcome(lambda: clf(**knobs).fit(X, Y))
    if not bad:
        if isinstance(result, ValueError) and knobs.get("early_stopping") is not None:
            # a valid fraction can still leave no sample for training or validation
            assert_clear_error(result, ["validation_fraction"], knobs)
            return
        assert result == "trained", (knobs, result)
        return
    assert result != "trained", f"{knobs} reached training though {bad} are invalid"
    # the message names the knob as the estimator spells it or as the builder does
    assert_clear_error(result, bad + [b.removeprefix("model__") for b in bad], knobs)


@pytest.mark.parametrize("profile", PROFILES)
def test_estimator_knobs_are_checked_before_training(profile):
    run(profile, _knobs_case, knob_sets)


# ---------------------------------------------------------------- 3. search() arguments
N_SEARCH = 80
X_SEARCH, Y_SEARCH = _data(N_SEARCH)
SEARCH_SPACE = {"model__dropout": tk.Choice([0.0, 0.2])}
NAN = float("nan")

# name: (strategy of values, predicate of the valid ones)
SEARCH_ARGS = {
    "strategy": (st.sampled_from(["grid", "random", "halving", "optuna", "Grid", "", None, 1]),
                 lambda v: v in ("grid", "random", "halving", "optuna")),
    "engine": (st.sampled_from(["auto", "sklearn", "stacked", "fast", None]),
               lambda v: v in ("auto", "sklearn", "stacked")),
    "cv": (st.one_of(st.integers(-1, 6), st.sampled_from([None, 2.5, "5", True, 10**6])),
           lambda v: v is None or (_int(v) and 2 <= v <= 6)),
    "test_size": (st.one_of(st.floats(-0.5, 1.5), st.integers(-2, 30),
                            st.sampled_from([None, NAN, True, "0.2", 0.0, 1.0, 80, 200])),
                  lambda v: v is None or (isinstance(v, float) and 0 < v < 1)
                  or (_int(v) and 1 <= v < N_SEARCH)),
    "n_trials": (st.one_of(st.integers(-2, 3), st.sampled_from([None, 2.0, "3", True])),
                 lambda v: v is None or (_int(v) and v >= 1)),
    "refit_top": (st.one_of(st.integers(-2, 3), st.sampled_from([1.0, None, True])),
                  lambda v: _int(v) and v >= 0),
    "n_points": (st.one_of(st.integers(-1, 3), st.sampled_from([2.0, None, "3", True])),
                 lambda v: _int(v) and v >= 1),
    "random_state": (st.one_of(st.integers(-5, 2**33), st.sampled_from([None, 1.5, "0"])),
                     lambda v: v is None or (_int(v) and 0 <= v < 2**32)),
    "scoring": (st.sampled_from([None, "accuracy", "roc_auc", "neg_log_loss", "nope", 3]),
                lambda v: v in (None, "accuracy", "roc_auc", "neg_log_loss")),
    "error_score": (st.sampled_from([NAN, 0.0, -1, "raise", "x", None]),
                    lambda v: v == "raise" or _int(v) or (isinstance(v, float))),
    # timeout=0 is valid (a resumed study adds no trial) but leaves a fresh study empty
    "timeout": (st.sampled_from([None, 10.0, 60, -1.0, "5", NAN]),
                lambda v: v is None or (_real(v) and v >= 0)),
    "factor": (st.sampled_from([3, 2, 1.5, 1, 0, -1, "3", NAN]),
               lambda v: _real(v) and v > 1),
    "resource": (st.sampled_from(["n_samples", "epochs", "nope", None]),
                 lambda v: isinstance(v, str)),  # "nope": only halving reads it (below)
    "n_jobs": (st.sampled_from([1, None, 0, "1", 1.0]),
               lambda v: v is None or (_int(v) and v == 1)),
    # verbose=None or "1" fails in tunekit._quiet before search() starts (reported apart)
    "verbose": (st.sampled_from([0, 1, 2, True, -1]),
                lambda v: (_int(v) and v >= 0) or isinstance(v, bool)),
}
search_kwargs = st.fixed_dictionaries(
    {}, optional={name: strategy for name, (strategy, _) in SEARCH_ARGS.items()}
)


def _search_case(kwargs):
    # halving without n_trials is a defect of its own (test_bad_inputs.py pins it)
    assume(kwargs.get("strategy") != "halving" or kwargs.get("n_trials") is not None)
    bad = [name for name, value in kwargs.items() if not SEARCH_ARGS[name][1](value)]
    if kwargs.get("strategy") == "halving" and kwargs.get("resource") == "nope":
        bad.append("resource")
    if kwargs.get("strategy") == "optuna" and "n_jobs" in kwargs and kwargs["n_jobs"] is None:
        bad.append("n_jobs")  # all cores: worker processes, which need a shared storage

    def call():
        tk.search(clf(), X_SEARCH, Y_SEARCH, space=SEARCH_SPACE, **{"verbose": 0, **kwargs})

    result = outcome(call)
    if bad:
        assert result != "trained", f"{kwargs} reached training though {bad} are invalid"
        # more folds than samples: scikit-learn names cv's number of folds n_splits; a valid
        # test_size too small for a stratified split may be refused first
        data_names = ["test_size"] * _too_few_to_hold_out(kwargs)
        assert_clear_error(result, bad + ["n_splits"] * ("cv" in bad) + data_names, kwargs)
    elif result != "trained":
        # valid arguments may still ask too much of the data: then the message says which
        assert _too_few_per_fold(kwargs) or _too_few_to_hold_out(kwargs), (kwargs, result)
        assert_clear_error(result, ["cv", "n_splits", "test_size", "min_resources"], kwargs)


def _n_test(kwargs) -> int:
    test_size = kwargs.get("test_size", 0.2)
    if test_size is None or not SEARCH_ARGS["test_size"][1](test_size):
        return 0
    return math.ceil(test_size * N_SEARCH) if isinstance(test_size, float) else test_size


def _too_few_to_hold_out(kwargs) -> bool:
    """Whether a valid test_size leaves fewer samples than there are classes on either side
    of the stratified split: held out, or left for the search (test_size=0.984375 leaves 1)."""
    test_size = kwargs.get("test_size", 0.2)
    n_test = _n_test(kwargs)
    return SEARCH_ARGS["test_size"][1](test_size) and test_size is not None and (
        n_test < 2 or N_SEARCH - n_test < 2)


def _too_few_per_fold(kwargs) -> bool:
    """Whether the search part leaves fewer samples per class than folds (for a few rounds)."""
    per_class = min(np.bincount(Y_SEARCH)) * (N_SEARCH - _n_test(kwargs)) / N_SEARCH
    folds = kwargs.get("cv") or 5
    return per_class < 3 * folds


@pytest.mark.parametrize("kwargs", [
    {"cv": 10**6, "test_size": 0.984375},  # found by the 1,000-example run: both are refused,
    {"test_size": 0.984375},  # and the split, checked first, names test_size
    {"test_size": 79},
])  # fmt: skip
def test_a_test_size_that_leaves_the_search_one_row_is_named(kwargs):
    _search_case(kwargs)


@pytest.mark.parametrize("profile", PROFILES)
def test_search_arguments(profile):
    """Bad arguments to ``tunekit.search`` are refused before training, naming the argument."""
    run(profile, _search_case, search_kwargs)


# ---------------------------------------------------------------- 4. X and y
# kind: (X maker from (rng, n, d), whether such an X is valid)
def _floats(rng, n, d):
    return rng.normal(size=(n, d)).astype("float32")


def _poke(value):
    def make(rng, n, d):
        X = _floats(rng, n, d).astype("float64")
        X[rng.randint(max(n, 1)) if n else slice(0), rng.randint(d)] = value
        return X

    return make


def _ragged(rng, n, d):
    rows = _floats(rng, max(n, 2), d).tolist()
    rows[rng.randint(len(rows))].append(1.0)
    return rows[: max(n, 2)]


def _objects(rng, n, d):
    X = _floats(rng, max(n, 1), d).astype(object)
    X[rng.randint(len(X)), rng.randint(d)] = [None, "a", b"x", (1, 2)][rng.randint(4)]
    return X


X_KINDS = {
    "float32": (_floats, True),
    "float64": (lambda rng, n, d: _floats(rng, n, d).astype("float64"), True),
    "int": (lambda rng, n, d: rng.randint(-5, 5, size=(n, d)), True),
    "bool": (lambda rng, n, d: rng.rand(n, d) > 0.5, True),
    "list": (lambda rng, n, d: _floats(rng, n, d).tolist(), True),
    "3-D": (lambda rng, n, d: _floats(rng, n, d)[:, :, None], True),
    "huge but float32": (lambda rng, n, d: _floats(rng, n, d) * np.float32(1e30), True),
    "nan": (_poke(np.nan), False),
    "inf": (_poke(-np.inf), False),
    "beyond float32": (_poke(1e300), False),
    "beyond float32 (int)": (lambda rng, n, d: np.full((n, d), 2**62, dtype=np.int64), None),
    "ragged": (_ragged, False),
    "object": (_objects, False),
    "strings": (lambda rng, n, d: np.full((n, d), "abc"), False),
    "1-D": (lambda rng, n, d: _floats(rng, n, d)[:, 0], False),
    "no features": (lambda rng, n, d: np.zeros((n, 0), "float32"), False),
    "scalar": (lambda rng, n, d: np.float32(1.0), False),
}


# kind: (y maker from (rng, n), whether such a y is valid)
def _binary(rng, n):
    return np.arange(n) % 2


Y_KINDS = {
    "binary": (_binary, True),
    "labels": (lambda rng, n: np.where(_binary(rng, n) == 1, "yes", "no"), True),
    "three classes": (lambda rng, n: np.arange(n) % 3, True),
    "column": (lambda rng, n: _binary(rng, n)[:, None], True),
    "one class": (lambda rng, n: np.zeros(n, int), False),
    "nan": (lambda rng, n: np.where(_binary(rng, n) == 1, np.nan, 0.0), False),
    "continuous": (lambda rng, n: rng.normal(size=n), False),
    "too short": (lambda rng, n: _binary(rng, n)[:-1], False),
    "too long": (lambda rng, n: np.arange(n + 1) % 2, False),
    "mixed types": (lambda rng, n: np.array([0, "a"] * (n // 2) + [0] * (n % 2), object), False),
    "None": (lambda rng, n: None, False),
}


@st.composite
def datasets(draw):
    x_kind = draw(st.sampled_from(sorted(X_KINDS)))
    y_kind = draw(st.sampled_from(sorted(Y_KINDS)))
    n = draw(st.sampled_from([0, 1, 2, 3, 5, 12, 24]))
    d = draw(st.sampled_from([1, 3]))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    return x_kind, y_kind, n, d, X_KINDS[x_kind][0](rng, n, d), Y_KINDS[y_kind][0](rng, n)


def _data_case(case):
    x_kind, y_kind, n, d, X_bad, y_bad = case

    def call():
        tk.search(clf(), X_bad, y_bad, space=SEARCH_SPACE, cv=2, test_size=None, verbose=0)

    result = outcome(call)
    x_ok, y_ok = X_KINDS[x_kind][1], Y_KINDS[y_kind][1]
    small = n < 12  # too few samples for two stratified folds of each class
    context = (x_kind, y_kind, n, d, result)
    if x_ok and y_ok and not small:
        assert result == "trained", context
        return
    if x_ok is False or y_ok is False:
        assert result != "trained", f"bad data reached training: {context}"
    if result == "trained":
        return
    names = (["X"] * (x_ok is not True) + ["y"] * (not y_ok)
             + ["cv", "n_splits", "X", "y"] * small)
    assert_clear_error(result, names or ["X", "y"], context)


@pytest.mark.parametrize("profile", PROFILES)
def test_data_shapes_dtypes_and_values(profile):
    """Bad X/y is refused before training with a message naming X or y; good X/y trains."""
    run(profile, _data_case, datasets())


# ---------------------------------------------------------------- 5. what only training judges
# every example trains (about a second a fit): fewer examples, and no shrinking
settings.register_profile("tunekit-fuzz-train", settings.get_profile("tunekit-fuzz"),
                          max_examples=5, phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.register_profile("tunekit-fuzz-train-slow", settings.get_profile("tunekit-fuzz-train"),
                          max_examples=200)
TRAIN_PROFILES = [
    pytest.param("tunekit-fuzz-train", id="5"),
    pytest.param("tunekit-fuzz-train-slow", id="200", marks=pytest.mark.slow),
]
X_REG, _ = _data(16)
Y_REG = 2 * X_REG[:, 0]

training_cases = st.tuples(
    st.integers(0, 37),  # X scaled by 10**k: finite in float32, its square need not be
    st.integers(0, 30),  # y scaled by 10**k
    st.lists(st.sampled_from([1e-3, 0.1, 10.0, 1e6, 1e20]), min_size=1, max_size=2,
             unique=True),
)


def _training_case(case):
    x_scale, y_scale, rates = case
    X_big = X_REG * np.float32(10.0**x_scale)
    y_big = Y_REG * np.float32(10.0**y_scale)
    reg = tk.KerasRegressor(tk.builders.mlp, model__hidden=(3,), epochs=1, random_state=0)
    space = {"optimizer__learning_rate": tk.Choice(rates)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = tk.search(reg, X_big, y_big, space=space, cv=2, test_size=None,
                               engine="sklearn", verbose=0)
        except SearchFailedError as err:
            # every candidate diverged, or the chosen one's refit did and none could stand
            # in: the error names the divergence (never a bare DivergedError)
            assert "training diverged" in str(err), (case, str(err))
            return
    cv = result.cv_results_
    for state, reason, mean in zip(cv["state"], cv["failure_reason"], cv["mean_test_score"],
                                   strict=True):
        if state == "COMPLETE":  # a non-finite score never completes, never ranks
            assert np.isfinite(mean), (case, state, mean)
        else:  # a failed row says why: the divergence, its epoch and loss
            assert np.isnan(mean) and reason, (case, state, reason)


@pytest.mark.parametrize("profile", TRAIN_PROFILES)
def test_divergence_becomes_a_nan_row_with_its_reason(profile):
    """Finite values too large to train on end as NaN rows whose reason says 'diverged'."""
    run(profile, _training_case, training_cases)
