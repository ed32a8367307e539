"""Float / Int / Choice / Space and their translations."""

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import ParameterGrid, ParameterSampler

import tunekit as tk
from tunekit.space import Choice, Float, Int, Space

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    "factory, error, match",
    [
        (lambda: Float(1.0, 0.0), ValueError,
         r"`low <= high` must hold, but got low=1.0, high=0.0"),
        (lambda: Float(0.0, 1.0, log=True), ValueError, r"`low > 0` must hold for log=True"),
        (lambda: Float(0.0, 1.0, step=0), ValueError, r"`step > 0` must hold, but got step=0"),
        (lambda: Float(1e-3, 1.0, log=True, step=0.1), ValueError, r"cannot be combined"),
        (lambda: Float(0.0, float("inf")), ValueError, r"`high` must be finite"),
        (lambda: Float("0", 1.0), TypeError, r"`low` must be a real number"),
        (lambda: Int(5, 1), ValueError, r"`low <= high` must hold, but got low=5, high=1"),
        (lambda: Int(1.5, 3), TypeError, r"`low` must be an integer"),
        (lambda: Int(0, 10, log=True), ValueError, r"`low > 0` must hold"),
        (lambda: Choice([]), ValueError, r"at least one option"),
        (lambda: Choice(32), TypeError, r"Single values need to be wrapped in a list"),
        (lambda: Choice([1, 1]), ValueError, r"must be distinct"),
        (lambda: Space({"batch_size": 32}), TypeError, r"wrapped in a list: \[32\]"),
    ],
)
def test_invalid_dimensions_state_rule_and_value(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_design_example_translations():
    space = tk.Space({
        "model__l2": tk.Float(1e-5, 1e-1, log=True),
        "model__dropout": tk.Float(0.0, 0.5),
        "batch_size": tk.Choice([32, 64, 128, 256]),
        "epochs": tk.Int(5, 50),
    })
    grid = space.to_grid(n=3)
    assert grid == {
        "model__l2": [1e-05, 0.001, 0.1],
        "model__dropout": [0.0, 0.25, 0.5],
        "batch_size": [32, 64, 128, 256],
        "epochs": [5, 27, 50],
    }
    assert len(ParameterGrid(grid)) == 3 * 3 * 4 * 3
    dists = space.to_optuna()
    assert isinstance(dists["model__l2"], optuna.distributions.FloatDistribution)
    assert dists["model__l2"].log
    assert isinstance(dists["epochs"], optuna.distributions.IntDistribution)
    assert isinstance(dists["batch_size"], optuna.distributions.CategoricalDistribution)
    for params in ParameterSampler(space.to_distributions(), n_iter=20, random_state=0):
        assert space.contains(params), params


def test_choice_of_tuples_round_trips_through_optuna():
    space = Space({"model__hidden": Choice([(16,), (16, 16)]), "model__l2": Float(0.0, 0.1)})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        params = space.suggest(trial)
        assert space.contains(params)
        seen.add(params["model__hidden"])
        study.tell(trial, 0.0)
        assert space.decode(trial.params)["model__hidden"] == params["model__hidden"]
    assert seen == {(16,), (16, 16)}


def test_suggest_with_a_fixed_trial():
    space = Space({"model__dropout": Float(0.0, 0.5), "epochs": Int(1, 9)})
    trial = optuna.trial.FixedTrial({"model__dropout": 0.2, "epochs": 3})
    assert space.suggest(trial) == {"model__dropout": 0.2, "epochs": 3}


def test_lists_are_taken_as_choices_and_prefix_works():
    space = Space({"model__dropout": [0.0, 0.5]}).prefixed("kerasclassifier__")
    assert space.to_grid() == {"kerasclassifier__model__dropout": [0.0, 0.5]}


def test_overfitting_space_covers_the_lecture():
    space = tk.spaces.overfitting()
    assert {"model__l2", "model__l1", "model__dropout", "model__noise",
            "model__activation_noise", "model__label_smoothing", "batch_size",
            "epochs"} == set(space)
    assert space["model__l2"].contains(0.002)  # Listing 5.13
    assert space["model__dropout"].contains(0.5)  # the lecture's typical rate
    assert "model__label_smoothing" not in tk.spaces.overfitting(label_smoothing=False)
    assert set(tk.spaces.overfitting(prefix="k__")) == {"k__" + name for name in space}


def test_check_params_suggests_the_right_name():
    est = tk.KerasClassifier(tk.builders.mlp)
    Space({"model__l2": [0.0], "batch_size": [32], "optimizer__learning_rate": [0.1]}
          ).check_params(est)
    with pytest.raises(ValueError, match=r"'model__dropuot'.*Did you mean 'model__dropout'"):
        Space({"model__dropuot": [0.1]}).check_params(est)
    with pytest.raises(ValueError, match=r"'bach_size'.*Did you mean 'batch_size'"):
        Space({"bach_size": [32]}).check_params(est)


def test_check_params_follows_pipelines():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), tk.KerasClassifier(tk.builders.mlp))
    Space({"kerasclassifier__model__dropout": [0.1]}).check_params(pipe)
    with pytest.raises(ValueError, match=r"Did you mean 'model__dropout'"):
        Space({"kerasclassifier__model__dropot": [0.1]}).check_params(pipe)


# ---------------------------------------------------------------- property test
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def float_dims(draw):
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(min_value=1e-8, max_value=1e3))
        high = draw(st.floats(min_value=low, max_value=low * 1e6))
        return Float(low, high, log=True)
    low = draw(finite)
    high = draw(st.floats(min_value=low, max_value=low + 1e6))
    step = draw(st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e3)))
    if step is not None and (high - low) / step > 1e5:
        step = None
    return Float(low, high, step=step)


@st.composite
def int_dims(draw):
    log = draw(st.booleans())
    low = draw(st.integers(min_value=1 if log else -1000, max_value=1000))
    high = draw(st.integers(min_value=low, max_value=low + 5000))
    step = 1 if log else draw(st.integers(min_value=1, max_value=50))
    return Int(low, high, log=log, step=step)


choice_dims = st.lists(
    st.one_of(st.integers(-5, 5), st.text(max_size=3), st.tuples(st.integers(1, 64)),
              st.none(), st.booleans()),
    min_size=1, max_size=6, unique_by=lambda v: (type(v).__name__, repr(v)),
).map(Choice)

dims = st.one_of(float_dims(), int_dims(), choice_dims)


@settings(max_examples=60, deadline=None)
@given(dim=dims, n=st.integers(min_value=1, max_value=7), seed=st.integers(0, 2**16))
def test_every_translation_stays_inside_the_space(dim, n, seed):
    space = Space({"p": dim})
    for value in space.to_grid(n)["p"]:
        assert dim.contains(value), (dim, value)
    for params in ParameterSampler(space.to_distributions(), n_iter=5, random_state=seed):
        assert dim.contains(params["p"]), (dim, params)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(3):
        trial = study.ask()
        value = space.suggest(trial)["p"]
        assert dim.contains(value), (dim, value)
        study.tell(trial, 0.0)
    fixed = study.ask(space.to_optuna())
    assert dim.contains(space.decode(fixed.params)["p"])
