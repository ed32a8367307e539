"""Which candidates stack together, which go the standard path, and why."""

import keras
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit.engine import resolve_params, stack_config
from tunekit.strategies.fixed_list import can_stack, stack_plan


def _clf(**kw):
    return tk.KerasClassifier(tk.builders.mlp, model__hidden=(8,), epochs=2, **kw)


def test_per_member_knobs_share_one_stack():
    grid = {
        "model__l2": [0.0, 0.002],
        "model__dropout": [0.0, 0.5],
        "model__noise": [0.0, 0.1],
        "optimizer__learning_rate": [1e-3, 1e-2],
        "epochs": [2, 5],
        "early_stopping": [None, 3],
    }
    plan = stack_plan(_clf(), grid)
    assert len(plan) == 1 and plan[0].stacked and len(plan[0].indices) == 64
    assert can_stack(_clf(), grid)


def test_structures_split_into_stacks():
    cands = [
        {"model__hidden": (8,)},
        {"model__hidden": (4, 4)},
        {"model__hidden": (8,)},
        {"batch_size": 16},
        {"optimizer": "adam"},
    ]
    plan = stack_plan(_clf(), cands)
    assert [g.indices for g in plan] == [[0, 2], [1], [3], [4]]
    assert all(g.stacked for g in plan)


@pytest.mark.parametrize(
    ("estimator", "candidate", "reason"),
    [
        (_clf(), {"optimizer": "adagrad"}, "optimizer='adagrad' is not one of"),
        (_clf(), {"optimizer": keras.optimizers.Adam()}, "is an instance"),
        (_clf(), {"model__compile_kwargs": {"loss": "mse"}}, "only its default"),
        (_clf(), {"fit__shuffle": False}, "not one the engine reproduces"),
        (_clf(), {"optimizer__momentum": 0.9}, "not one the engine reproduces"),
        (_clf(), {"loss": "hinge"}, "loss='hinge' is not supported"),
        (_clf(), {"model__dropout": 1.5}, "out of range"),
        (_clf(), {"model__activation": "mish"}, "model__activation='mish' is not supported"),
        (_clf(), {"model__hidden": "16"}, "hidden must be a tuple"),
        (_clf(), {"callbacks": [keras.callbacks.TerminateOnNaN()]}, "only its default"),
        (tk.KerasClassifier(lambda input_shape: None), {}, "is not tunekit.builders.mlp"),
    ],
)
def test_unstackable_candidates_say_why(estimator, candidate, reason):
    plan = stack_plan(estimator, [candidate])
    assert not plan[0].stacked
    assert reason in plan[0].reason
    assert not can_stack(estimator, [candidate])


def test_pipelines_stack_unless_a_candidate_replaces_the_last_step():
    pipe = make_pipeline(StandardScaler(), _clf())
    assert can_stack(pipe, {"kerasclassifier__model__l2": [0.0, 0.1]})
    assert can_stack(pipe, {"standardscaler__with_std": [True, False]})
    plan = stack_plan(pipe, [{"kerasclassifier": _clf()}])
    assert not plan[0].stacked and "replaces the step 'kerasclassifier'" in plan[0].reason
    nested = make_pipeline(StandardScaler(), make_pipeline(StandardScaler(), _clf()))
    assert not can_stack(nested, [{}])


def test_defaults_follow_keras_and_the_estimator():
    res = resolve_params({**_clf().get_params(deep=False), "batch_size": None})
    assert res.stackable
    cfg = stack_config(res.structure, task="multiclass", n_features=3, n_outputs=4, n_train_max=100)
    assert (cfg.batch_size, cfg.optimizer, cfg.output_activation, cfg.n_outputs) == (
        32,
        "rmsprop",
        "softmax",
        4,
    )
    full = resolve_params({**_clf().get_params(deep=False), "batch_size": -1})
    assert (
        stack_config(
            full.structure, task="binary", n_features=3, n_outputs=1, n_train_max=77
        ).batch_size
        == 77
    )
    assert res.member["learning_rate"] is None and res.member["epochs"] == 2


@pytest.mark.parametrize(
    ("params", "task", "match"),
    [
        ({"loss": "binary_crossentropy"}, "regression", "does not fit a regression"),
        ({"model__output_units": 3}, "binary", "does not fit 1 outputs"),
        ({"model__output_activation": "sigmoid"}, "multiclass", "does not fit a multiclass"),
        ({"input_shape": (7,)}, "binary", "does not match X's 3 features"),
    ],
)
def test_structures_that_contradict_the_data(params, task, match):
    res = resolve_params({**_clf().get_params(deep=False), **params})
    assert res.stackable
    with pytest.raises(ValueError, match=match):
        stack_config(
            res.structure,
            task=task,
            n_features=3,
            n_outputs=1 if task != "multiclass" else 3,
            n_train_max=10,
        )


def test_candidates_must_be_dicts():
    with pytest.raises(TypeError, match="candidate 1 must be a dict"):
        stack_plan(_clf(), [{"model__l2": 0.1}, ("model__l2", 0.2)])
    with pytest.raises(TypeError, match="param grid"):
        stack_plan(_clf(), "model__l2")
    with pytest.raises(ValueError, match="candidates is empty"):
        stack_plan(_clf(), [])
    assert not can_stack(_clf(), "model__l2")


def test_regression_head_is_linear():
    reg = tk.KerasRegressor(tk.builders.mlp, model__hidden=(4,))
    res = resolve_params(reg.get_params(deep=False))
    cfg = stack_config(
        res.structure, task="regression", n_features=2, n_outputs=2, n_train_max=np.int64(5)
    )
    assert cfg.output_activation == "linear" and cfg.loss == "mean_squared_error"
