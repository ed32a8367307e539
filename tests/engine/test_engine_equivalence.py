"""A stacked member trains exactly like a separately trained Keras model.

Given the same initial weights and batch order (``shuffle=False``), a member's
final weights match those of ``tunekit.builders.mlp()`` trained by
``keras.Model.fit`` to ``ATOL = 1e-5`` (float32, 3 epochs), while other
members with different knobs train in the same stack. Runs on the
TensorFlow backend in process and on JAX in a subprocess (skipped when JAX is
not installed). Run this file as a script to print the largest differences
under the current ``KERAS_BACKEND``.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tunekit.builders import mlp
from tunekit.engine import MemberSpec, StackConfig, train_stack

ATOL = 1e-5

CASES = {
    # name: (optimizer, head, loss, learning rate)
    "sgd-binary": ("sgd", "binary", "binary_crossentropy", 0.05),
    "rmsprop-binary": ("rmsprop", "binary", "binary_crossentropy", None),
    "adam-binary": ("adam", "binary", "binary_crossentropy", 0.01),
    "rmsprop-multiclass": ("rmsprop", "multiclass", "categorical_crossentropy", 0.005),
    "sgd-regression": ("sgd", "regression", "mean_squared_error", 0.01),
}
# The JAX subprocess checks a subset (each case compiles twice: ~5 s apiece).
JAX_CASES = ("rmsprop-binary", "sgd-regression")


def _data(head):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(150, 6)).astype("float32")
    if head == "binary":
        Y = (X[:, :1] + 0.5 * X[:, 1:2] > 0).astype("float32")
    elif head == "multiclass":
        Y = np.eye(3, dtype="float32")[np.digitize(X[:, 0], [-0.4, 0.4])]
    else:
        Y = (X @ rng.normal(size=(6, 1))).astype("float32")
    return X, Y


def _make_optimizer(name, lr):
    cls = {
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
    }[name]
    return cls() if lr is None else cls(learning_rate=lr)


def run_case(name, epochs=3, batch=16):
    """Train one member in a stack and its Keras twin; return the largest weight gap."""
    optimizer, head, loss, lr = CASES[name]
    X, Y = _data(head)
    units, activation = {
        "binary": (1, "sigmoid"),
        "multiclass": (3, "softmax"),
        "regression": (1, "linear"),
    }[head]
    rows = np.random.default_rng(1).permutation(150)[:101]  # 101 rows: a partial last batch
    keras.utils.set_random_seed(0)
    model = mlp(
        (6,), hidden=(8, 4), l1=0.001, l2=0.01, output_units=units, output_activation=activation
    )
    model.compile(optimizer=_make_optimizer(optimizer, lr), loss=loss)
    initial = model.get_weights()
    model.fit(X[rows], Y[rows], batch_size=batch, epochs=epochs, shuffle=False, verbose=0)

    config = StackConfig(
        n_features=6,
        hidden=(8, 4),
        activation="relu",
        n_outputs=units,
        output_activation=activation,
        optimizer=optimizer,
        batch_size=batch,
        shuffle=False,
    )
    twin = MemberSpec(
        train_idx=rows, epochs=epochs, l1=0.001, l2=0.01, learning_rate=lr, initial_weights=initial
    )
    others = [  # different rows, knobs and epochs in the same stack
        MemberSpec(
            train_idx=np.arange(40),
            epochs=epochs + 2,
            l2=0.1,
            dropout=0.5,
            noise=0.3,
            learning_rate=lr,
            seed=1,
        ),
        MemberSpec(
            train_idx=np.arange(60, 150),
            epochs=1,
            weight_noise=0.1,
            activation_noise=0.2,
            learning_rate=lr,
            seed=2,
        ),
    ]
    result = train_stack(config, [others[0], twin, others[1]], X, Y, random_state=0)
    gap = max(
        float(np.abs(a - b).max())
        for a, b in zip(result.weights[1], model.get_weights(), strict=True)
    )
    return {"gap": gap, "n_epochs": result.n_epochs.tolist()}


def run_early_stopping(patience=2, epochs=25):
    """Early stopping of one member against Keras's EarlyStopping callback."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 6)).astype("float32")
    Y = (rng.uniform(size=(90, 1)) < 0.5).astype("float32")  # noise: it overfits fast
    train, val = np.arange(60), np.arange(60, 90)
    keras.utils.set_random_seed(0)
    model = mlp((6,), hidden=(32,))
    model.compile(optimizer=keras.optimizers.RMSprop(0.02), loss="binary_crossentropy")
    initial = model.get_weights()
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    hist = model.fit(
        X[train],
        Y[train],
        validation_data=(X[val], Y[val]),
        batch_size=16,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[stopper],
    )
    config = StackConfig(
        n_features=6,
        hidden=(32,),
        activation="relu",
        n_outputs=1,
        output_activation="sigmoid",
        optimizer="rmsprop",
        batch_size=16,
        shuffle=False,
    )
    twin = MemberSpec(
        train_idx=train,
        val_idx=val,
        epochs=epochs,
        patience=patience,
        learning_rate=0.02,
        initial_weights=initial,
    )
    slow = MemberSpec(train_idx=train, epochs=epochs, learning_rate=1e-4, seed=5)
    result = train_stack(config, [slow, twin], X, Y)
    gap = max(
        float(np.abs(a - b).max())
        for a, b in zip(result.weights[1], model.get_weights(), strict=True)
    )
    val_gap = float(
        np.nanmax(
            np.abs(
                result.history["val_loss"][: len(hist.history["val_loss"]), 1]
                - np.array(hist.history["val_loss"])
            )
        )
    )
    return {
        "gap": gap,
        "val_gap": val_gap,
        "keras": [int(stopper.best_epoch) + 1, len(hist.history["loss"])],
        "stack": [int(result.best_epoch[1]), int(result.n_epochs[1])],
        "others": [int(result.best_epoch[0]), int(result.n_epochs[0])],
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_member_matches_keras_fit(name):
    out = run_case(name)
    assert out["gap"] < ATOL, f"{name}: max |w_stack - w_keras| = {out['gap']:.2e}"
    assert out["n_epochs"] == [5, 3, 1]


def test_early_stopping_matches_keras_callback():
    out = run_early_stopping()
    assert out["stack"] == out["keras"]
    assert out["keras"][1] < 25, "the scenario must actually stop early"
    assert out["gap"] < ATOL
    assert out["val_gap"] < ATOL
    assert out["others"] == [25, 25], "a member without early stopping runs all its epochs"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_member_matches_keras_fit_on_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, __file__, *JAX_CASES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and set(out["cases"]) == set(JAX_CASES)
    for name, case in out["cases"].items():
        assert case["gap"] < ATOL, f"jax {name}: gap {case['gap']:.2e}"
    es = out["early_stopping"]
    assert es["stack"] == es["keras"] and es["gap"] < ATOL


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(CASES)
    report = {
        "backend": keras.backend.backend(),
        "cases": {name: run_case(name) for name in names},
        "early_stopping": run_early_stopping(),
    }
    print(json.dumps(report))
