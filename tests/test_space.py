"""Float / Int / Choice / Space and their translations."""

import optuna
import pytest
from hypothesis import example, given, settings
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
# scipy's loguniform drew one unit in the last place above `high` on this narrow range
@example(dim=Float(203.76986572100236, 203.7698657210024, log=True), n=1, seed=0)
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


# ---------------------------------------------------------------- valid ranges, before search
RANGE_ERRORS = [
    ({"batch_size": Int(0, 64)}, ValueError,
     r"batch_size = Int\(.*\) allows batch_size=0, but batch_size must be an integer >= 1, "
     r"or None or -1"),
    ({"batch_size": Choice([32, 0])}, ValueError, r"allows batch_size=0, but batch_size must"),
    ({"batch_size": Int(-2, 8)}, ValueError, r"allows batch_size=-2"),
    ({"batch_size": Int(-1, 8)}, ValueError, r"allows batch_size=0"),  # -1 is valid, 0 is not
    ({"epochs": Int(-3, 10)}, ValueError,
     r"allows epochs=-3, but epochs must be an integer >= 1\. Narrow the dimension"),
    ({"epochs": Float(1.0, 10.0)}, TypeError, r"epochs must be an integer >= 1, but the space "
     r"gives it Float\(.*\), which draws real numbers\. Use Int"),
    ({"model__l2": Float(-1.0, 0.1)}, ValueError,
     r"allows model__l2=-1.0, but model__l2 must be a finite real number >= 0"),
    ({"model__l2": Choice([0.0, -1])}, ValueError, r"allows model__l2=-1, but"),
    ({"model__dropout": Float(0.0, 1.5)}, ValueError,
     r"allows model__dropout=1.5, but model__dropout must be a real number in \[0, 1\)"),
    ({"model__dropout": Float(0.0, 1.0)}, ValueError, r"allows model__dropout=1.0"),
    ({"model__noise": Float(0.0, 2.0)}, ValueError, r"model__noise must be a real number in \[0, "),
    ({"model__hidden": Float(1.0, 8.0)}, TypeError, r"Use a Choice of tuples"),
    ({"model__hidden": Choice([(16,), (16, 0)])}, ValueError, r"allows model__hidden=\(16, 0\)"),
    ({"model__hidden": Int(0, 8)}, ValueError, r"allows model__hidden=0"),
    ({"optimizer__learning_rate": Float(0.0, 0.1)}, ValueError,
     r"allows optimizer__learning_rate=0.0, but optimizer__learning_rate must be a Python "
     r"float \(1.0, not 1\) > 0"),
    ({"optimizer__learning_rate": Choice([0.1, 1])}, TypeError,
     r"allows optimizer__learning_rate=1, but .* must be a Python float \(1.0, not 1\) > 0"),
    ({"optimizer__learning_rate": Int(1, 3)}, TypeError, r"which draws integers\. Use Float"),
    ({"validation_fraction": Choice([0.1, 1.0])}, ValueError, r"real number in \(0, 1\)"),
    ({"early_stopping": Int(-1, 5)}, ValueError, r"allows early_stopping=-1"),
    ({"epochs": Choice(["10"])}, TypeError, r"allows epochs='10', but epochs must be an int"),
    ({"model__dropout": Choice([float("nan")])}, ValueError, r"allows model__dropout=nan"),
]


@pytest.mark.parametrize("dims, error, match", RANGE_ERRORS)
def test_check_params_refuses_values_outside_their_range(dims, error, match):
    with pytest.raises(error, match=match):
        Space(dims).check_params(tk.KerasClassifier(tk.builders.mlp))


def test_check_params_refuses_the_estimators_own_bad_knobs():
    """Values held by the estimator are checked too, unless the space replaces them."""
    est = tk.KerasClassifier(tk.builders.mlp, epochs=-3, model__l2=-1.0)
    with pytest.raises(ValueError, match=r"epochs=-3 is out of range: epochs must be an integ"):
        Space({"batch_size": [32]}).check_params(est)
    with pytest.raises(ValueError, match=r"model__l2=-1.0 is out of range"):
        Space({"epochs": Int(1, 3)}).check_params(est)
    Space({"epochs": Int(1, 3), "model__l2": [0.0]}).check_params(est)


@pytest.mark.parametrize(
    "dims",
    [
        {"batch_size": Choice([None, -1, 16]), "epochs": Int(1, 1)},
        {"model__dropout": Float(0.0, 0.999), "model__noise": Float(0.0, 1.0)},
        {"model__hidden": Choice([(), (8,), 4])},
        {"model__hidden": Int(1, 64, log=True), "early_stopping": Choice([None, 0, 5])},
        {"optimizer__learning_rate": Float(1e-5, 1e-1, log=True), "validation_fraction": [0.2]},
        dict(tk.spaces.overfitting()),
    ],
)
def test_check_params_accepts_valid_ranges(dims):
    Space(dims).check_params(tk.KerasClassifier(tk.builders.mlp))


def test_check_params_follows_pipelines_for_ranges():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), tk.KerasClassifier(tk.builders.mlp))
    Space({"kerasclassifier__model__dropout": Float(0.0, 0.5)}).check_params(pipe)
    with pytest.raises(ValueError, match=r"kerasclassifier__model__dropout=1.5, but"):
        Space({"kerasclassifier__model__dropout": [1.5]}).check_params(pipe)
    bad_step = make_pipeline(StandardScaler(), tk.KerasClassifier(tk.builders.mlp, epochs=0))
    with pytest.raises(ValueError, match=r"epochs=0 is out of range"):
        Space({"standardscaler__with_mean": [True]}).check_params(bad_step)


def test_ranges_apply_only_where_they_are_known():
    """A builder without ``param_ranges`` and a non-Keras estimator are not second-guessed."""
    from sklearn.linear_model import LogisticRegression

    def builder(input_shape, *, dropout=0.0):  # its own meaning of "dropout"
        raise AssertionError("never built by check_params")

    Space({"model__dropout": [2.0]}).check_params(tk.KerasClassifier(builder))
    Space({"C": Float(0.0, 1.0)}).check_params(LogisticRegression())
    with pytest.raises(ValueError, match=r"allows epochs=0"):  # the estimator's own still are
        Space({"epochs": [0]}).check_params(tk.KerasClassifier(builder))


def test_stepped_dimensions_give_optuna_an_aligned_top():
    """No Optuna warning about a range that is not a multiple of the step."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Int(150, 266, step=3).optuna().high == 264
        assert Float(0.0, 1.0, step=0.3).optuna().high == pytest.approx(0.9)
        trial = optuna.create_study().ask()
        assert Int(1, 10, step=4).suggest(trial, "p") in (1, 5, 9)
