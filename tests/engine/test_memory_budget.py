"""The stacked engine's memory budget: the estimate, the split, the refusal, trial_batch."""

import logging
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import keras
import numpy as np
import optuna
import pytest
from sklearn.model_selection import StratifiedKFold

import tunekit as tk
from tunekit.engine import keras_stack as ks
from tunekit.engine import memory
from tunekit.engine.memory import MemberFootprint, split_stacks, stack_bytes
from tunekit.exceptions import MemoryBudgetError
from tunekit.strategies.fixed_list import StackedSearchCV
from tunekit.strategies.optuna_batch import _fitting_batch

GRID = {"model__l2": [0.0, 0.001, 0.01, 0.1]}
CV = StratifiedKFold(3, shuffle=True, random_state=0)


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 6)).astype("float32")
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


def _clf(**kw):
    params = dict(model__hidden=(8,), epochs=2, batch_size=16, optimizer="adam",
                  random_state=0, verbose=0)  # fmt: skip
    return tk.KerasClassifier(tk.builders.mlp, **{**params, **kw})


def _member(X, n_train):
    """One member of _clf()'s stack on X, as the engine sizes it."""
    config = SimpleNamespace(n_features=X.shape[1], hidden=(8,), n_outputs=1,
                             optimizer="adam", batch_size=16)  # fmt: skip
    return memory.mlp_footprint(config, n_train, False)


def _between(n, n_more, member, shared):
    """A budget that holds ``n`` members and not ``n_more``, whatever a few bytes of data."""
    return (stack_bytes(n, member, shared) + stack_bytes(n_more, member, shared)) // 2


def dense_net(input_shape, units=6, dropout=0.0, output_units=1, output_activation="sigmoid"):
    """A builder mlp()'s trainer does not take: the any-builder path stacks it."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(units, activation="tanh")(inputs)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(output_units, activation=output_activation)(x))


def _search(budget):
    X, y = _data()
    return StackedSearchCV(_clf(), GRID, cv=CV, refit=False, memory_budget=budget).fit(X, y)


# ---------------------------------------------------------------------- the estimate
def test_stack_bytes_is_the_documented_formula():
    m = MemberFootprint(n_params=1000, n_slots=2, row_floats=50, batch_size=32, n_rows=400,
                        early_stopping=True, input_floats=20)  # fmt: skip
    per_member = 4 * (1000 * (5 + 3 * 2 + 2 * 1) + 32 * (20 + 3 * 50) + 12 * 400)
    assert stack_bytes(7, m, data_bytes=10_000) == 2 * 10_000 + 7 * per_member
    sgd = MemberFootprint(1000, 0, 50, 32, 400, False)
    assert stack_bytes(1, sgd) == 4 * (1000 * 5 + 32 * 3 * 50 + 12 * 400)
    # the number of weights of mlp(): (6*8 + 8) + (8*1 + 1), Adam's two slots
    X, _ = _data()
    member = _member(X, 60)
    assert (member.n_params, member.n_slots, member.input_floats, member.row_floats) == (
        65, 2, 6, 8 + 1,
    )  # fmt: skip


def test_split_keeps_a_candidates_folds_together():
    assert split_stacks([3, 3, 3, 3], 7) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert split_stacks([3, 3], 100) == [[0, 1, 2, 3, 4, 5]]
    # one family larger than the cap: its folds go to stacks of their own
    assert split_stacks([1, 5], 2) == [[0], [1, 2], [3, 4], [5]]


@pytest.mark.parametrize(
    "value, expected",
    [(2**20, 2**20), ("4GB", 4 * 2**30), ("512MiB", 512 * 2**20), ("1.5k", 1536), ("100", 100)],
)
def test_memory_budget_in_bytes(value, expected):
    assert memory.resolve_budget(value) == (expected, "memory_budget")


@pytest.mark.parametrize("value", [0, -5, 0.0, 1.5, "lots", "-1GB", True, [1]])
def test_bad_memory_budget_is_refused_with_the_rule(value):
    with pytest.raises((TypeError, ValueError), match="memory_budget must be None"):
        memory.check_memory_budget(value)


def test_default_budget_is_half_of_the_ram_or_of_the_gpu(monkeypatch):
    monkeypatch.setattr(memory, "_ram_available", lambda: 8 * 2**30)
    monkeypatch.setattr(memory, "gpu_memory", lambda: None)
    budget, source = memory.resolve_budget(None)
    assert budget == 4 * 2**30 and "available RAM" in source
    assert memory.resolve_budget(0.25)[0] == 2 * 2**30
    monkeypatch.setattr(memory, "gpu_memory", lambda: 2 * 2**30)  # a GPU smaller than the RAM
    budget, source = memory.resolve_budget(None)
    assert budget == 2**30 and "GPU memory" in source


def test_gpu_memory_is_none_on_this_cpu_build_or_a_positive_size():
    gpu = memory.gpu_memory()
    assert gpu is None or gpu > 0
    there, _ = memory.available_memory()
    assert there > 0


# ---------------------------------------------------------------------- the split
def test_a_small_budget_splits_the_stack_and_keeps_the_scores(caplog):
    X, y = _data()
    n_train = max(len(tr) for tr, _ in CV.split(X, y))
    shared = X.nbytes + 4 * len(y)  # X and its 0/1 targets as float32
    member = _member(X, n_train)
    budget = _between(6, 7, member, shared)  # 2 candidates x 3 folds
    plain = _search(None)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        split = _search(budget)
    assert plain.groups_[0].stacks == [12]
    assert split.groups_[0].stacks == [6, 6]
    assert "12 members in 2 stacks of 6 members" in caplog.text
    for key in ("split0_test_score", "split1_test_score", "split2_test_score",
                "mean_train_score", "split0_n_epochs"):  # fmt: skip
        np.testing.assert_array_equal(split.cv_results_[key], plain.cv_results_[key], key)


def test_any_builder_stacks_split_too_with_the_same_scores():
    X, y = _data()
    est = tk.KerasClassifier(dense_net, epochs=2, batch_size=16, random_state=0, verbose=0)
    grid = {"model__dropout": [0.0, 0.1, 0.2, 0.3]}
    n_train = max(len(tr) for tr, _ in CV.split(X, y))
    (group,) = ks.probe(est, [{}], X, y)
    member = ks.footprint(group, n_train, False)
    assert member.n_params == 6 * 6 + 6 + 6 + 1 and member.input_floats == 6
    assert member.row_floats == 6 + 6 + 1 and member.weight_copies == 20
    budget = _between(6, 7, member, X.nbytes + y.nbytes)
    runs = [StackedSearchCV(est, grid, cv=CV, refit=False, memory_budget=b).fit(X, y)
            for b in (None, budget)]  # fmt: skip
    assert [g.stacks for g in runs[0].groups_] == [[12]]
    assert [g.stacks for g in runs[1].groups_] == [[6, 6]]
    np.testing.assert_allclose(
        runs[1].cv_results_["mean_test_score"], runs[0].cv_results_["mean_test_score"]
    )


def test_a_budget_no_member_fits_is_refused_before_training():
    X, y = _data()
    search = StackedSearchCV(_clf(), GRID, cv=CV, refit=False, memory_budget=5000)
    with pytest.raises(MemoryBudgetError, match=r"one member of .* needs about .* MiB \(65 "
                       r"weights.* budget of 0\.0 MiB \(memory_budget\)"):  # fmt: skip
        search.fit(X, y)
    groups = search._stacked.groups_
    assert groups[0].stacks == [] and groups[0].n_members == 0  # nothing trained


def test_search_refuses_a_bad_memory_budget_before_training():
    X, y = _data()
    with pytest.raises(ValueError, match="memory_budget must be None"):
        tk.search(_clf(), X, y, space={"model__l2": [0.0, 0.1]}, memory_budget="much")
    # tk.search hands the budget to the stacked evaluator of grid, random and halving
    with pytest.raises(MemoryBudgetError, match=r"budget of 0\.0 MiB \(memory_budget\)"):
        tk.search(_clf(), X, y, space={"model__l2": [0.0, 0.1]}, memory_budget="4KB",
                  baselines=False, verbose=0)  # fmt: skip


def test_trial_batch_larger_than_the_budget_is_reduced(caplog):
    X, y = _data()
    splits = list(CV.split(X, y))
    n_train = max(len(tr) for tr, _ in splits)
    budget = _between(9, 10, _member(X, n_train), X.nbytes + 4 * len(y))  # 3 trials
    search = SimpleNamespace(estimator=_clf(), memory_budget=budget)
    objective = SimpleNamespace(X=X, y=y, splits=splits)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        assert _fitting_batch(search, objective, 8) == 3
    assert "trial_batch: 8 trials x 3 folds do not fit" in caplog.text
    assert "batches of 3 trial(s) instead" in caplog.text
    assert _fitting_batch(search, objective, 2) == 2  # fits: kept, not an error
    search.memory_budget = None
    assert _fitting_batch(search, objective, 8) == 8
    search.memory_budget = 5000  # not one member: refused before any trial is asked
    with pytest.raises(MemoryBudgetError, match="one member of the estimator's candidates"):
        _fitting_batch(search, objective, 8)


def test_an_optuna_search_runs_its_trials_in_batches_that_fit(caplog):
    X, y = _data()
    n_train = len(y) // 2  # cv=2
    budget = _between(4, 5, _member(X, n_train), X.nbytes + 4 * len(y))  # 2 trials x 2 folds
    with caplog.at_level(logging.INFO, logger="tunekit"):
        result = tk.search(
            _clf(epochs=2), X, y, space={"model__l2": tk.Float(1e-4, 1e-1, log=True)},
            strategy="optuna", cv=2, test_size=None, n_trials=4, trial_batch=4,
            memory_budget=budget, baselines=False, verbose=0,
            pruner=optuna.pruners.NopPruner(),
        )  # fmt: skip
    assert "batches of 2 trial(s) instead" in caplog.text
    trials = result.study_.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert {t.user_attrs["engine"] for t in trials} == {"stacked"}


# ---------------------------------------------------------------------- the measurement
_MEASURE = textwrap.dedent(
    """
    import os, sys, threading, time
    import numpy as np
    import tunekit.engine as engine
    from tunekit.engine.memory import mlp_footprint, stack_bytes

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    M, F, H, N, B = 48, 256, (512, 512), 256, 64
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, F)).astype("float32")
    Y = (X[:, :1] > 0).astype("float32")
    config = engine.StackConfig(F, H, "relu", 1, "sigmoid", "adam", B)
    members = [engine.MemberSpec(train_idx=np.arange(N), epochs=1, seed=m) for m in range(M)]
    small = engine.StackConfig(4, (3,), "relu", 1, "sigmoid", "adam", 8)
    engine.train_stack(small, members[:2], X[:, :4], Y)  # TensorFlow's own start-up, once
    base, peak, done = rss(), [0], []

    def watch():
        while not done:
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    thread = threading.Thread(target=watch)
    thread.start()
    result = engine.train_stack(config, members, X, Y, on_epoch_end=lambda *a: None)
    peak[0] = max(peak[0], rss())
    done.append(1)
    thread.join()
    estimate = stack_bytes(M, mlp_footprint(config, N, False), X.nbytes + Y.nbytes)
    print(peak[0] - base, estimate)
    """
)


_MEASURE_ANY_BUILDER = textwrap.dedent(
    """
    import os, threading, time
    import keras, numpy as np
    import tunekit as tk
    from tunekit.engine import keras_stack as ks
    from tunekit.engine.memory import stack_bytes

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def conv_net(input_shape, filters=64, output_units=1, output_activation="sigmoid"):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu")(inputs)
        x = keras.layers.Conv1D(filters, 5, padding="same", activation="relu")(x)
        x = keras.layers.GlobalAveragePooling1D()(x)
        out = keras.layers.Dense(output_units, activation=output_activation)(x)
        return keras.Model(inputs, out)

    M, N = 32, 256
    X = np.random.default_rng(0).normal(size=(N, 64, 8)).astype("float32")
    y = (X[:, 0, 0] > 0).astype(int)
    est = tk.KerasClassifier(conv_net, epochs=2, batch_size=32, optimizer="adam", verbose=0)
    (group,) = ks.probe(est, [{}], X, y)
    ks.train_group(group, [ks.KerasMember(0, np.arange(16), seed=0)], X, y)  # start-up
    members = [ks.KerasMember(0, np.arange(N), seed=m) for m in range(M)]
    base, peak, done = rss(), [0], []

    def watch():
        while not done:
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    thread = threading.Thread(target=watch)
    thread.start()
    ks.train_group(group, members, X, y, on_epoch_end=lambda *a: None)
    peak[0] = max(peak[0], rss())
    done.append(1)
    thread.join()
    print(peak[0] - base, stack_bytes(M, ks.footprint(group, N, False), X.nbytes + y.nbytes))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("script", [_MEASURE, _MEASURE_ANY_BUILDER], ids=["mlp", "any-builder"])
def test_estimate_is_within_a_factor_of_two_of_the_measured_rss_growth(script):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=600, check=True).stdout  # fmt: skip
    growth, estimate = map(int, out.split()[-2:])
    assert estimate > 300 * 2**20  # a stack big enough to stand out of TensorFlow's noise
    assert estimate / 2 <= growth <= estimate * 2, (growth, estimate)
