"""The stacked path for any Keras builder (tunekit.engine.keras_stack)."""

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import get_scorer

import tunekit as tk
from tunekit.engine import keras_stack as ks

DOCS = Path(__file__).resolve().parents[2] / "docs"


# ---------------------------------------------------------------------- builders
def conv1d_net(input_shape, filters=4, dropout=0.0, noise=0.0, l2=0.0, output_units=1,
               output_activation="sigmoid"):
    inputs = keras.Input(input_shape)
    x = keras.layers.GaussianNoise(noise)(inputs)
    x = keras.layers.Conv1D(filters, 3, padding="same", activation="relu",
                            kernel_regularizer=keras.regularizers.L2(l2))(x)
    x = keras.layers.Conv1D(filters, 3, strides=2, activation="tanh")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def bn_net(input_shape, units=6, output_units=1, output_activation="sigmoid"):
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Dense(units, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dense(output_units, activation=output_activation),
    ])


def embed_net(input_shape, dim=4, output_units=3, output_activation="softmax"):
    inputs = keras.Input(input_shape, dtype="int32")
    x = keras.layers.Embedding(20, dim)(inputs)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def conv2d_net(input_shape, filters=3, dropout=0.0, output_units=3,
               output_activation="softmax"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(filters, (2, 3), strides=(1, 2), dilation_rate=1)(x)
    x = keras.layers.AveragePooling2D(1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def skip_net(input_shape, units=5, output_units=1, output_activation="linear"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Reshape((input_shape[0], 1))(inputs)
    x = keras.layers.Conv1D(2, 2, padding="causal", dilation_rate=2)(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    h = keras.layers.Dense(units, activation="tanh")(inputs)
    h = keras.layers.GaussianDropout(0.0)(h)
    x = keras.layers.Concatenate()([x, h])
    y = keras.layers.Dense(units + 2)(x)
    x = keras.layers.Add()([x, y])
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)


def signals(n=60, length=10, channels=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, length, channels)).astype("float32")
    y = (X[:, : length // 2, 0].mean(axis=1) > 0).astype(int)
    return X, y


# ---------------------------------------------------------------------- probing
def test_probe_groups_by_structure_and_reads_knobs():
    X, y = signals()
    est = tk.KerasClassifier(conv1d_net, epochs=2, batch_size=8)
    candidates = [
        {"model__dropout": 0.0, "model__l2": 0.0},
        {"model__dropout": 0.5, "model__l2": 0.01, "optimizer__learning_rate": 0.01},
        {"model__filters": 6},
        {"model__noise": 0.2},
    ]
    groups = ks.probe(est, candidates, X, y)
    assert [g.indices for g in groups] == [[0, 1, 3], [2]]
    assert all(g.stackable for g in groups)
    knobs = groups[0].knobs
    assert knobs[1]["learning_rate"] == pytest.approx(0.01)
    assert knobs[0]["learning_rate"] == pytest.approx(0.001)
    rate = [k for k in knobs[1] if k.endswith(".rate")]
    assert [knobs[c][rate[0]] for c in (0, 1)] == [0.0, 0.5]
    l2 = [k for k in knobs[1] if k.endswith("kernel_regularizer.l2") and knobs[1][k] > 0]
    assert len(l2) == 1 and knobs[1][l2[0]] == pytest.approx(0.01)
    stddev = [k for k in knobs[3] if k.endswith(".stddev")]
    assert knobs[3][stddev[0]] == pytest.approx(0.2)
    assert groups[0].epochs == {0: 2, 1: 2, 3: 2}
    assert groups[0].batch_size == 8


class _Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.w


class _CustomStep(keras.Model):
    def train_step(self, data):  # pragma: no cover - never trained here
        return super().train_step(data)


def _lstm(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(input_shape)
    x = keras.layers.LSTM(3)(inputs)
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


def _stateful(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(batch_shape=(8, *input_shape))
    x = keras.layers.SimpleRNN(3, stateful=True)(inputs)
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


def _custom_layer(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(_Scale()(inputs))
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


def _custom_step(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(output_units, activation=output_activation)(x)
    return _CustomStep(inputs, x)


def _lambda(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


def _masked(input_shape, output_units=1, output_activation="sigmoid"):
    inputs = keras.Input(input_shape[:1], dtype="int32")
    x = keras.layers.Embedding(10, 2, mask_zero=True)(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


@pytest.mark.parametrize(
    ("builder", "params", "match"),
    [
        (_lstm, {}, r"layer 1 'lstm.*' \(LSTM\): recurrent layers are not covered"),
        (_stateful, {}, r"\(SimpleRNN\): stateful recurrent layers"),
        (_custom_layer, {}, r"\(_Scale\): a custom layer .*cannot be vectorized"),
        (_custom_step, {}, r"_CustomStep overrides train_step"),
        (_lambda, {}, r"\(Lambda\): this layer is not covered"),
        (_masked, {}, r"masking \(mask_zero / Masking\) does not stack"),
        (conv1d_net, {"optimizer": "sgd", "optimizer__momentum": 0.9},
         r"optimizer SGD differs from Keras's defaults in momentum"),
        (conv1d_net, {"optimizer": "adamw"}, r"optimizer AdamW does not stack"),
        (conv1d_net, {"loss": "hinge"}, r"loss hinge does not stack"),
    ],
)
def test_probe_names_the_reason_a_builder_falls_back(builder, params, match):
    X, y = signals(n=16)
    if builder is _masked:
        X = np.random.RandomState(0).randint(0, 10, size=(16, 10))
    est = tk.KerasClassifier(builder, batch_size=8, **params)
    (group,) = ks.probe(est, [{}], X, y)
    assert not group.stackable
    assert re.search(match, group.reason), group.reason


def test_fallback_is_logged_and_stacked_engine_raises(caplog):
    X, y = signals(n=16)
    est = tk.KerasClassifier(_lstm, batch_size=8)
    with caplog.at_level(logging.INFO, logger="tunekit.engine.keras_stack"):
        groups = ks.probe(est, [{"epochs": 1}, {"epochs": 2}], X, y)
    assert "candidate 0 falls back to the standard path: layer 1" in caplog.text
    with pytest.raises(ValueError, match=r"engine='stacked' needs every candidate to stack, "
                       r"but candidate 0 \{'epochs': 1\} cannot: layer 1 'lstm.*' \(LSTM\).*"
                       r"1 more candidate"):
        ks.require_stackable(groups, [{"epochs": 1}, {"epochs": 2}])
    with pytest.raises(ValueError, match="this group cannot stack"):
        ks.train_group(groups[0], [ks.KerasMember(0, np.arange(8))], X, y)


def test_require_stackable_passes_for_stackable_groups():
    X, y = signals(n=16)
    groups = ks.probe(tk.KerasClassifier(conv1d_net, batch_size=8), [{}], X, y)
    assert ks.require_stackable(groups, [{}]) is None


# ---------------------------------------------------------------------- forward pass
@pytest.mark.parametrize(
    ("builder", "task"),
    [(conv2d_net, "multiclass"), (embed_net, "multiclass"), (skip_net, "regression"),
     (conv1d_net, "binary")],
)
def test_member_inference_matches_keras_with_the_same_weights(builder, task):
    rng = np.random.RandomState(0)
    if builder is conv2d_net:
        X = rng.normal(size=(40, 6, 7, 2)).astype("float32")
    elif builder is embed_net:
        X = rng.randint(0, 20, size=(40, 5))
    elif builder is skip_net:
        X = rng.normal(size=(40, 6)).astype("float32")
    else:
        X, _ = signals(n=40)
    y = rng.randint(0, 3, size=40) if task == "multiclass" else rng.randint(0, 2, size=40)
    if task == "regression":
        y = rng.normal(size=40).astype("float32")
        est = tk.KerasRegressor(builder, epochs=1, batch_size=16)
    else:
        est = tk.KerasClassifier(builder, epochs=1, batch_size=16)
    (group,) = ks.probe(est, [{}], X, y)
    assert group.stackable, group.reason
    members = [ks.KerasMember(0, np.arange(30), seed=s) for s in (1, 2)]
    result = ks.train_group(group, members, X, y)
    for m in range(2):
        model = builder(X.shape[1:])
        model.set_weights(result.weights[m])
        expected = model.predict(X, verbose=0)
        member = ks.member_estimator(result, m)
        got = member.predict_proba(X) if task != "regression" else member.predict(X)
        if task == "binary":
            expected = np.hstack([1 - expected, expected])
        np.testing.assert_allclose(got, expected.reshape(got.shape), atol=2e-5)
    assert not np.allclose(result.weights[0][0], result.weights[1][0])  # own seeds


# ---------------------------------------------------------------------- equivalence
def _keras_reference(builder, build_kwargs, X, Y, weights, optimizer, loss, epochs, batch_size):
    model = builder(X.shape[1:], **build_kwargs)
    model.set_weights(weights)
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(X, Y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    return model.get_weights()


EQUIVALENCE = {
    "conv1d": (conv1d_net, {"l2": 0.01}, "rmsprop",
               keras.losses.BinaryCrossentropy(label_smoothing=0.1)),
    "batchnorm": (bn_net, {}, "adam", "binary_crossentropy"),
    "embedding": (embed_net, {}, "sgd", "sparse_categorical_crossentropy"),
}


@pytest.mark.parametrize("case", list(EQUIVALENCE))
def test_member_weights_match_keras_fit_after_3_epochs(case):
    builder, build_kwargs, optimizer, loss = EQUIVALENCE[case]
    rng = np.random.RandomState(0)
    if builder is embed_net:
        X = rng.randint(0, 20, size=(110, 5))
        y = rng.randint(0, 3, size=110)
    elif builder is bn_net:
        X = rng.normal(size=(110, 5)).astype("float32")
        y = (X[:, 0] > 0).astype(int)
    else:
        X, y = signals(n=110)
    params = {f"model__{k}": v for k, v in build_kwargs.items()}
    est = tk.KerasClassifier(builder, epochs=3, batch_size=16, optimizer=optimizer,
                             loss=loss, **params)
    (group,) = ks.probe(est, [{}], X, y)
    train = np.arange(101)  # 101 rows, batch 16: a partial last batch
    init = ks.member_initial_weights(group, 5)
    other = ks.KerasMember(0, np.arange(40, 110), seed=9)
    member = ks.KerasMember(0, train, seed=5, initial_weights=init)
    result = ks.train_group(group, [other, member], X, y,
                            overrides=ks.FitOverrides(shuffle=False))
    Y = y[train].astype("float32")[:, None] if builder is not embed_net else y[train]
    expected = _keras_reference(builder, build_kwargs, X[train], Y, init, optimizer,
                                keras.losses.get(loss) if isinstance(loss, str) else loss,
                                3, 16)
    assert len(result.weights[1]) == len(expected)
    for got, want in zip(result.weights[1], expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    if builder is bn_net:  # per-member moving statistics moved, and differ between members
        mean = 3  # Dense kernel, gamma, beta, moving_mean, moving_variance, Dense kernel, bias
        assert not np.allclose(result.weights[1][mean], 0.0)
        assert not np.allclose(result.weights[0][mean], result.weights[1][mean])


def test_member_does_not_depend_on_its_stack():
    X, y = signals(n=80)
    est = tk.KerasClassifier(conv1d_net, epochs=2, batch_size=8,
                             model__dropout=0.3, model__noise=0.1)
    (group,) = ks.probe(est, [{}, {"model__dropout": 0.0}], X, y)
    rng = np.random.RandomState(3)
    target = ks.KerasMember(0, np.arange(60), seed=123)
    others = [ks.KerasMember(c, rng.choice(80, 50, replace=False), seed=7 + c)
              for c in (1, 0, 1, 0)]
    alone = ks.train_group(group, [target], X, y)
    stacked = ks.train_group(group, [*others[:2], target, *others[2:]], X, y)
    for a, b in zip(alone.weights[0], stacked.weights[2], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    again = ks.train_group(group, [ks.KerasMember(1, np.arange(60), seed=123)], X, y)
    assert not np.allclose(again.weights[0][0], alone.weights[0][0])  # dropout rate matters
    rate = next(k for k in group.knobs[0] if k.endswith(".rate"))
    override = ks.KerasMember(0, np.arange(60), seed=123, knobs={rate: 0.0})
    same = ks.train_group(group, [override], X, y)
    for a, b in zip(same.weights[0], again.weights[0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match=r"member 0 sets knobs \['dropout'\], which this group"):
        ks.train_group(group, [ks.KerasMember(0, np.arange(60), knobs={"dropout": 0.1})], X, y)


@pytest.mark.parametrize("shape", [(6, 16, 6), (6, 6, 4), (5, 8, 3)])
def test_each_members_random_draws_come_from_its_own_key_whatever_the_shapes(shape):
    # (M, B, U) with M equal to U or B: keras.ops.add on TensorFlow took the member-axis
    # keys for a bias there, and every member got the first one's dropout mask
    from tunekit.engine.keras_stack.layers import _uniform

    keys = np.arange(11, 11 + shape[0], dtype="int32") * 7919
    together = np.asarray(_uniform(keras.ops.convert_to_tensor(keys), shape, 3, 0))
    assert together.shape == shape
    for m in range(len(keys)):
        alone = _uniform(keras.ops.convert_to_tensor(keys[m : m + 1]), (1, *shape[1:]), 3, 0)
        np.testing.assert_array_equal(together[m], np.asarray(alone)[0])
    assert not np.array_equal(together[0], together[1])


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_per_member_restores_the_best_epoch():
    X, y = signals(n=90)
    est = tk.KerasClassifier(conv1d_net, epochs=6, batch_size=8, optimizer__learning_rate=0.05)
    (group,) = ks.probe(est, [{}], X, y)
    snapshots = []
    members = [
        ks.KerasMember(0, np.arange(60), val_idx=np.arange(60, 75), seed=1, patience=0),
        ks.KerasMember(0, np.arange(60), seed=2),
    ]

    def record(epoch, result):
        snapshots.append([w.copy() for w in result.weights[0]])

    result = ks.train_group(group, members, X, y, on_epoch_end=record)
    assert result.n_epochs[1] == 6 and result.best_epoch[1] == 6
    val = result.history["val_loss"][:, 0]
    n = result.n_epochs[0]
    assert len(snapshots) == result.history["loss"].shape[0]
    best = int(np.nanargmin(val[:n]))
    assert result.best_epoch[0] == best + 1
    assert n == 6 or n == best + 2  # patience 0: stops one epoch after the best
    for got, want in zip(result.weights[0], snapshots[best], strict=True):
        np.testing.assert_allclose(got, want)
    assert np.isnan(result.history["val_loss"][:, 1]).all()


def test_early_stopping_needs_validation_rows():
    X, y = signals(n=30)
    est = tk.KerasClassifier(conv1d_net, epochs=2, batch_size=8, early_stopping=1)
    (group,) = ks.probe(est, [{}], X, y)
    assert group.patience == {0: 1}
    with pytest.raises(ValueError, match="member 0 has early-stopping patience 1 but no val_idx"):
        ks.train_group(group, [ks.KerasMember(0, np.arange(20))], X, y)


# ---------------------------------------------------------------------- members as estimators
def test_member_estimator_speaks_the_estimators_encoding():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 8, 2)).astype("float32")
    y = np.array(["cat", "dog", "eel"])[rng.randint(0, 3, size=60)]
    est = tk.KerasClassifier(conv1d_net, epochs=1, batch_size=16)
    (group,) = ks.probe(est, [{}], X, y)
    result = ks.train_group(group, [ks.KerasMember(0, np.arange(50), seed=0)], X, y)
    member = ks.member_estimator(result, 0)
    assert list(member.classes_) == ["cat", "dog", "eel"]
    proba = member.predict_proba(X[50:])
    assert proba.shape == (10, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(member.predict(X[50:])) <= {"cat", "dog", "eel"}
    assert 0.0 <= get_scorer("accuracy")(member, X[50:], y[50:]) <= 1.0
    assert get_scorer("neg_log_loss")(member, X[50:], y[50:]) < 0
    with pytest.raises(ValueError, match=r"X has samples of shape \(8, 3\), but this member"):
        member.predict(np.zeros((2, 8, 3), dtype="float32"))
    with pytest.raises(TypeError, match="cannot be fit on its own"):
        member.fit(X, y)


@pytest.mark.parametrize(("builder", "task"), [(bn_net, "binary"), (embed_net, "multiclass")])
def test_one_pass_after_an_epoch_predicts_as_each_member_alone(builder, task):
    """EpochOutputs: every member's outputs on its own rows (of different counts, one member
    left out) in one compiled pass, equal to the member's own forward pass, at every epoch."""
    rng = np.random.RandomState(0)
    if builder is embed_net:
        X, y = rng.randint(0, 20, size=(70, 5)), rng.randint(0, 3, size=70)
    else:
        X, y = rng.normal(size=(70, 4)).astype("float32"), rng.randint(0, 2, size=70)
    (group,) = ks.probe(tk.KerasClassifier(builder, epochs=3, batch_size=16), [{}], X, y)
    members = [ks.KerasMember(0, np.arange(s, 40 + s), seed=s) for s in range(4)]
    rows = {0: np.arange(40, 70), 1: np.arange(0, 9), 3: np.arange(5, 50)}
    checked = []

    def on_epoch_end(epoch, result):
        out = ks.EpochOutputs(result, X, rows)
        assert sorted(out.estimators) == [0, 1, 3]
        for m, r in rows.items():
            alone = ks.member_estimator(result, m).predict_proba(X[r])
            np.testing.assert_allclose(out.estimators[m].predict_proba(out.x[m]), alone,
                                       rtol=1e-5, atol=1e-6)  # fmt: skip
            # another array of the same rows takes the member's own pass
            np.testing.assert_allclose(out.estimators[m].predict_proba(X[r].copy()), alone)
        checked.append(epoch)

    ks.train_group(group, members, X, y, on_epoch_end=on_epoch_end)
    assert checked == [0, 1, 2]


def test_the_kept_weights_pass_predicts_as_each_member_alone():
    """After training (``result.outputs``) and as members leave a refilled stack
    (``outcomes.outputs``), one compiled pass runs each member's kept weights, the best
    epoch's for an early-stopped one: equal to the member's own forward pass."""
    from tunekit.engine.result import Leaving

    X, y = signals(n=90)
    est = tk.KerasClassifier(conv1d_net, epochs=6, batch_size=8, optimizer__learning_rate=0.05)
    (group,) = ks.probe(est, [{}], X, y)
    members = [
        ks.KerasMember(0, np.arange(60), val_idx=np.arange(60, 75), seed=1, patience=0),
        ks.KerasMember(0, np.arange(60), seed=2),
    ]
    rows = {0: np.arange(75, 90), 1: np.arange(0, 7)}

    def check(estimator_of, outputs):
        got = outputs(rows)
        for m, r in rows.items():
            x = X[r]
            alone = estimator_of(m, None).predict_proba(X[r])
            member = estimator_of(m, (x, got[m]))
            assert member._network._raw(member, x) is got[m]  # the pass's outputs, not its own
            np.testing.assert_allclose(member.predict_proba(x), alone, rtol=1e-5, atol=1e-6)

    result = ks.train_group(group, members, X, y)
    assert result.best_epoch[0] < result.n_epochs[0]  # kept weights are not the last ones
    empty = np.zeros(0, dtype=int)
    check(
        lambda m, known: ks.member_estimator(result, m, known),
        lambda r: dict(enumerate(result.outputs([r.get(m, empty) for m in range(2)]))),
    )

    left = {}

    def turnover(epoch, outcomes):
        assert isinstance(outcomes, Leaving)
        for m, outcome in outcomes.items():
            left[m] = outcome
            one = ks.KerasStackResult(
                weights=[outcome.weights], n_epochs=np.array([outcome.n_epochs]),
                best_epoch=np.array([outcome.best_epoch]), group=group,
            )  # fmt: skip
            got = outcomes.outputs({m: rows[m]})
            assert list(got) == [m]
            x = X[rows[m]]
            np.testing.assert_allclose(
                ks.member_estimator(one, 0, (x, got[m])).predict_proba(x),
                ks.member_estimator(one, 0).predict_proba(X[rows[m]]), rtol=1e-5, atol=1e-6,
            )  # fmt: skip
        return {}

    ks.train_group(group, members, X, y, turnover=turnover)
    assert sorted(left) == [0, 1] and left[0].best_epoch < left[0].n_epochs


def test_train_group_rejects_members_of_other_candidates():
    X, y = signals(n=20)
    (group,) = ks.probe(tk.KerasClassifier(conv1d_net, batch_size=8), [{}], X, y)
    with pytest.raises(ValueError, match=r"member 0 has candidate=3, which is not in this group"):
        ks.train_group(group, [ks.KerasMember(3, np.arange(8))], X, y)
    with pytest.raises(ValueError, match=r"train_idx outside \[0, 20\)"):
        ks.train_group(group, [ks.KerasMember(0, np.arange(8) + 15)], X, y)


# ---------------------------------------------------------------------- docs and JAX
def test_builders_guide_stacking_example_runs(tmp_path, monkeypatch):
    text = (DOCS / "builders.md").read_text()
    section = text.split("## Builders that stack", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    exec(compile(block, "builders.md", "exec"), namespace)
    assert namespace["groups"][0].stackable
    assert not namespace["groups"][-1].stackable
    assert 0.0 <= namespace["score"] <= 1.0


_JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    import tunekit as tk
    from tunekit.engine import keras_stack as ks
    from tests.engine.test_keras_stack import EQUIVALENCE, _keras_reference, signals
    for case in ("conv1d", "batchnorm"):
        builder, kw, opt, loss = EQUIVALENCE[case]
        X, y = signals(n=110) if case == "conv1d" else (None, None)
        if X is None:
            rng = np.random.RandomState(0)
            X = rng.normal(size=(110, 5)).astype("float32"); y = (X[:, 0] > 0).astype(int)
        est = tk.KerasClassifier(builder, epochs=3, batch_size=16, optimizer=opt, loss=loss,
                                 **{f"model__{k}": v for k, v in kw.items()})
        (g,) = ks.probe(est, [{}], X, y)
        init = ks.member_initial_weights(g, 5)
        r = ks.train_group(g, [ks.KerasMember(0, np.arange(101), seed=5, initial_weights=init)],
                           X, y, overrides=ks.FitOverrides(shuffle=False))
        want = _keras_reference(builder, kw, X[:101], y[:101].astype("float32")[:, None], init,
                                opt, keras.losses.get(loss) if isinstance(loss, str) else loss,
                                3, 16)
        gap = max(float(np.max(np.abs(a - b))) for a, b in zip(r.weights[0], want))
        assert gap < 1e-5, (case, gap)
        print(case, "max gap", gap)
    """
)


def test_equivalence_on_jax():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", _JAX_SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "batchnorm max gap" in proc.stdout
