"""train_stack: member independence, freezing, early stopping, memory model, errors."""

import numpy as np
import pytest

from tunekit.engine import MemberSpec, StackConfig, forward_numpy, train_stack
from tunekit.engine.mlp.network import ACTIVATIONS, forward


def _config(**kw):
    base = dict(
        n_features=5,
        hidden=(6,),
        activation="relu",
        n_outputs=1,
        output_activation="sigmoid",
        optimizer="adam",
        batch_size=8,
        shuffle=False,
    )
    base.update(kw)
    return StackConfig(**base)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype("float32")
    y = (X[:, 0] - X[:, 1] > 0).astype("float32")
    return X, y


def test_member_is_unaffected_by_its_neighbours():
    """A member trains the same alone or next to members with other knobs and rows."""
    X, y = _data()
    me = MemberSpec(train_idx=np.arange(0, 50), epochs=3, l2=0.01, seed=3)
    alone = train_stack(_config(), [me], X, y)
    neighbours = [
        MemberSpec(train_idx=np.arange(10, 64), epochs=5, dropout=0.5, noise=0.2, seed=1),
        me,
        MemberSpec(
            train_idx=np.arange(30),
            epochs=1,
            l1=0.1,
            label_smoothing=0.2,
            learning_rate=0.1,
            seed=2,
        ),
    ]
    together = train_stack(_config(), neighbours, X, y)
    for a, b in zip(alone.weights[0], together.weights[1], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert together.n_epochs.tolist() == [5, 3, 1]


def test_a_member_draws_from_its_own_seeds_only():
    X, y = _data()
    twin = MemberSpec(train_idx=np.arange(64), epochs=2, dropout=0.3, noise=0.1, seed=0)
    other = MemberSpec(
        train_idx=np.arange(64), epochs=2, dropout=0.3, noise=0.1, seed=0, stream_seed=9
    )
    cfg = _config(shuffle=True)
    a = train_stack(cfg, [twin, twin, other], X, y)
    b = train_stack(cfg, [other, twin], X, y)  # another position, another stack size
    for wa, wb in zip(a.weights[0], b.weights[1], strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-6)
    for wa, wb in zip(a.weights[0], a.weights[1], strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-6)  # same seeds, same training
    # another stream seed: another batch order and other dropout masks
    assert not np.allclose(a.weights[0][0], a.weights[2][0])


@pytest.mark.parametrize("patience", [0, 1])
def test_stopped_member_is_frozen_at_its_best_epoch(patience):
    X, _y = _data(80)
    rng = np.random.default_rng(1)
    y_noise = (rng.uniform(size=80) < 0.5).astype("float32")  # pure noise: val loss rises
    overfit = MemberSpec(
        train_idx=np.arange(60),
        val_idx=np.arange(60, 80),
        epochs=30,
        patience=patience,
        learning_rate=0.05,
        seed=0,
    )
    steady = MemberSpec(train_idx=np.arange(60), epochs=30, learning_rate=1e-3, seed=1)
    res = train_stack(_config(hidden=(32,)), [overfit, steady], X, y_noise)
    val = res.history["val_loss"][:, 0]
    assert res.n_epochs[0] < 30 and res.n_epochs[1] == 30
    ran = int(res.n_epochs[0])
    best = int(np.nanargmin(val[:ran])) + 1
    assert res.best_epoch[0] == best
    assert ran == best + max(patience, 1) or ran == 30
    assert np.isnan(val[ran:]).all(), "a stopped member is no longer evaluated"
    assert "val_loss" in res.history and np.isnan(res.history["val_loss"][:, 1]).all()


def test_numpy_forward_matches_the_stacked_forward():
    from keras import ops

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 7, 5)).astype("float32")
    for act in sorted(ACTIVATIONS):
        params = [
            rng.normal(size=s).astype("float32") for s in [(2, 5, 4), (2, 4), (2, 4, 3), (2, 3)]
        ]
        logits = ops.convert_to_numpy(
            forward(
                [ops.convert_to_tensor(p) for p in params],
                ops.convert_to_tensor(X),
                {},
                activation=act,
                training=False,
            )
        )
        for m in range(2):
            probs = forward_numpy([p[m] for p in params], X[m], act, "softmax")
            z = logits[m] - logits[m].max(axis=1, keepdims=True)
            expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            np.testing.assert_allclose(probs, expected, atol=1e-5, err_msg=act)


def test_full_batch_and_uneven_folds():
    """Members with different row counts: each takes ceil(n / batch) steps of its own."""
    X, y = _data()
    members = [MemberSpec(train_idx=np.arange(n), epochs=2, seed=n) for n in (5, 17, 64)]
    res = train_stack(_config(batch_size=64), members, X, y)
    assert all(np.isfinite(w).all() for ws in res.weights for w in ws)
    assert res.history["loss"].shape == (2, 3)


def test_diverged_members_are_flagged_not_contagious():
    X, y = _data()
    members = [
        MemberSpec(train_idx=np.arange(64), epochs=3, learning_rate=lr, seed=0)
        for lr in (1e12, 1e-3)
    ]
    res = train_stack(_config(optimizer="sgd", hidden=(64, 64)), members, X, y)
    assert res.diverged.tolist() == [True, False]
    assert np.isnan(res.history["loss"][-1, 0]) and np.isfinite(res.history["loss"][-1, 1])
    alone = train_stack(_config(optimizer="sgd", hidden=(64, 64)), members[1:], X, y)
    np.testing.assert_allclose(alone.weights[0][0], res.weights[1][0], atol=1e-6)


def test_rejects_bad_members():
    X, y = _data()
    with pytest.raises(ValueError, match="no validation rows"):
        train_stack(_config(), [MemberSpec(train_idx=np.arange(10), patience=2)], X, y)
    with pytest.raises(ValueError, match="outside"):
        train_stack(_config(), [MemberSpec(train_idx=np.arange(100))], X, y)
    with pytest.raises(ValueError, match="X must have shape"):
        train_stack(_config(n_features=3), [MemberSpec(train_idx=np.arange(10))], X, y)
    with pytest.raises(ValueError, match="at least one member"):
        train_stack(_config(), [], X, y)


def test_a_batch_larger_than_the_rows_trains_as_all_the_rows_in_one_step():
    """batch_size >= a member's rows is one step of all its rows, whatever the batch size."""
    X, y = _data()
    member = MemberSpec(train_idx=np.arange(40), epochs=3, dropout=0.3, noise=0.1, seed=4)
    runs = [train_stack(_config(batch_size=b, shuffle=True), [member], X, y) for b in (40, 64, 999)]
    for other in runs[1:]:
        for a, b in zip(runs[0].weights[0], other.weights[0], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(runs[0].history["loss"], other.history["loss"], rtol=1e-6)


def test_a_seated_member_with_more_rows_widens_the_step():
    """A stack whose one step held 30 rows seats a member of 50 (batch 64): it trains as alone."""
    X, y = _data()
    first = MemberSpec(train_idx=np.arange(30), epochs=1, dropout=0.1, seed=1)
    late = MemberSpec(train_idx=np.arange(50), epochs=3, dropout=0.2, seed=2)
    queue, left = [late], []

    def turnover(epoch, outcomes):
        left.extend(outcomes.values())
        return {m: queue.pop() for m in outcomes if queue}

    train_stack(_config(batch_size=64, shuffle=True), [first], X, y, turnover=turnover)
    alone = train_stack(_config(batch_size=64, shuffle=True), [late], X, y)
    assert [o.n_epochs for o in left] == [1, 3]
    for a, b in zip(left[1].weights, alone.weights[0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_one_trace_serves_stacks_of_every_shape():
    """Other member counts, steps and batch sizes reuse the traced epoch: XLA compiles each."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("traces are TensorFlow's; JAX traces each shape")
    from tunekit.engine.mlp.trainer import _compiled, static_key

    X, y = _data()
    shapes = [(2, 8), (3, 8), (1, 16), (4, 64)]
    for n_members, batch in shapes:
        members = [MemberSpec(train_idx=np.arange(20 + 7 * m), epochs=1, dropout=0.1, seed=m)
                   for m in range(n_members)]  # fmt: skip
        train_stack(_config(batch_size=batch), members, X, y)
    fns = _compiled(_config(), *static_key(members))
    assert fns.epoch._function.experimental_get_tracing_count() == 1


def test_the_engines_draws_are_uniform_and_standard_normal_per_member_seed():
    """Each member's numbers follow its distribution and come from its own seed alone."""
    from scipy import stats

    from tunekit.engine._backend import get_backend

    backend = get_backend()
    seeds = np.array([7, 3, 7], dtype="int32")  # members 0 and 2 share a seed
    for kind, law in (("uniform", stats.uniform.cdf), ("normal", stats.norm.cdf)):
        draws = np.asarray(getattr(backend, kind)((3, 200, 250), seeds, 5))
        np.testing.assert_array_equal(draws[0], draws[2])
        assert not np.array_equal(draws[0], draws[1])
        for member in draws[:2]:
            assert stats.kstest(member.ravel(), law).pvalue > 1e-3, kind
        again = np.asarray(getattr(backend, kind)((3, 200, 250), seeds, 6))
        assert not np.array_equal(draws, again)  # another counter, other numbers


def test_normal_draws_stay_finite_at_the_extreme_bits(monkeypatch):
    """The largest and smallest hashes map strictly inside (0, 1): no infinite noise."""
    import keras

    from tunekit.engine._backend import get_backend

    backend = get_backend()
    extremes = np.array([[0, 1, 255, 256, 511, 2**31, 2**32 - 512, 2**32 - 256, 2**32 - 1]],
                        dtype="uint32")  # fmt: skip
    bits = keras.ops.convert_to_tensor(extremes)
    monkeypatch.setattr(backend, "_bits", lambda shape, seeds, counter: (bits, None))
    values = np.asarray(backend.normal((1, 9), np.zeros(1, "int32"), 0))
    assert np.isfinite(values).all() and np.abs(values).max() < 6
    assert values[0, 0] < 0 < values[0, -1] and np.isclose(values[0, 0], -values[0, -1], rtol=1e-5)


@pytest.mark.parametrize(
    "head, n_outputs, classes, y_ndim",
    [
        ("sigmoid", 1, np.array(["no", "yes"]), 1),
        ("softmax", 3, np.array([2, 5, 7]), 1),
        ("linear", 1, None, 1),
        ("linear", 1, None, 2),
        ("linear", 2, None, 2),
    ],
)
def test_members_predicted_together_predict_as_each_member_alone(
    head, n_outputs, classes, y_ndim, monkeypatch
):
    """predict_members gives each member the very arrays its own estimator's predict gives,
    in one block of members per row count or in many (a small memory cap)."""
    from tunekit.engine import member_estimator, predict_members
    from tunekit.engine.mlp import members as mlp_members

    rng = np.random.default_rng(0)
    config = _config(hidden=(6, 4), n_outputs=n_outputs, output_activation=head)
    n_members = 7
    shapes = [(5, 6), (6,), (6, 4), (4,), (4, n_outputs), (n_outputs,)]
    params = [rng.normal(size=(n_members, *s)).astype("float32") for s in shapes]
    X = rng.normal(size=(40, 5)).astype("float32")
    sizes = [9, 10, 9, 3, 10, 10, 9]  # three row counts: three passes
    rows = {m: rng.choice(40, size=n, replace=False) for m, n in enumerate(sizes) if m != 4}
    task = "regression" if classes is None else ("binary" if head == "sigmoid" else "multiclass")
    together = predict_members(config, params, X, rows, classes=classes, y_ndim=y_ndim)
    assert sorted(together) == sorted(rows)  # member 4 was not asked for
    for m, r in rows.items():
        alone = member_estimator(
            config, [p[m] for p in params], task=task, classes=classes,
            n_outputs=n_outputs, y_ndim=y_ndim, best_epoch=1, n_epochs=1,
        ).predict(X[r])  # fmt: skip
        assert together[m].dtype == alone.dtype
        np.testing.assert_array_equal(together[m], alone)
    if classes is not None:  # the members disagree: the test compares real predictions
        assert len({tuple(together[m]) for m in (0, 2, 6)}) > 1
    monkeypatch.setattr(mlp_members, "_BLOCK_BYTES", 1)  # one member per block
    blocked = predict_members(config, params, X, rows, classes=classes, y_ndim=y_ndim)
    for m in rows:
        np.testing.assert_array_equal(blocked[m], together[m])
