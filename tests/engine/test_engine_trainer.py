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
