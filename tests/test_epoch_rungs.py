"""Successive halving on epochs as one run: survivors train on from their weights, exactly."""

import logging
import threading

import numpy as np
import pytest
from _builders import dense as _dense

import tunekit as tk
from tunekit.api import make_evaluator
from tunekit.evaluators import EpochRungs
from tunekit.space import Space
from tunekit.strategies.sklearn_search import SearchSettings, make_search

SPACE = Space({"model__l2": tk.Float(1e-5, 1e-2, log=True), "model__dropout": tk.Float(0.05, 0.4)})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(90, 5)).astype("float32")
    y = (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=90) > 0).astype(int)
    return X, y


def _halving(estimator, continue_rungs=True, n_trials=9):
    settings = SearchSettings(scoring=None, cv=2, n_trials=n_trials, random_state=0,
                              resource="epochs", factor=3, n_jobs=1, verbose=0,
                              error_score=np.nan, return_train_score=True)  # fmt: skip
    search = make_search("halving", estimator, SPACE, settings, make_evaluator("auto", estimator))
    search.set_params(continue_rungs=continue_rungs, refit=False)
    return search


def _mlp(**kw):
    return tk.KerasClassifier(tk.builders.mlp, model__hidden=(6,), epochs=9, batch_size=16,
                              random_state=0, verbose=0, **kw)  # fmt: skip


def test_one_run_equals_the_rungs_trained_from_scratch_with_fewer_member_epochs(data, caplog):
    X, y = data
    one = _halving(_mlp())
    assert isinstance(one._evaluator(), EpochRungs)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        one.fit(X, y)
    assert "each rung trains from scratch" not in caplog.text
    assert not [t for t in threading.enumerate() if t.name == "tunekit-halving"]  # closed
    apart = _halving(_mlp(), continue_rungs=False).fit(X, y)
    a, b = one.cv_results_, apart.cv_results_
    assert one.n_resources_ == apart.n_resources_ == [1, 3, 9]
    for key in ("iter", "n_resources", "params", "split0_n_epochs", "split1_n_epochs"):
        assert list(a[key]) == list(b[key]), key
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "mean_train_score"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, err_msg=key)
    # member-epochs: each candidate's last rung (one run) against the sum over the rungs
    last = {}
    for params, epochs in zip(a["params"], a["n_resources"], strict=True):
        key = tuple(sorted((k, v) for k, v in params.items() if k != "epochs"))
        last[key] = max(last.get(key, 0), int(epochs))
    assert one.n_epochs_trained_ == 2 * sum(last.values())  # 2 folds
    assert apart.n_epochs_trained_ == 2 * int(np.sum(a["n_resources"]))
    assert one.n_trained_ == 2 * 9 and apart.n_trained_ == 2 * len(a["params"])
    # the curves: a survivor's rows run to its rung, its epochs' losses as trained from scratch
    order = ["candidate", "fold", "epoch"]
    curves_a = one.epoch_curves_.sort_values(order).reset_index(drop=True)
    curves_b = apart.epoch_curves_.sort_values(order).reset_index(drop=True)
    assert curves_a[order].equals(curves_b[order])
    np.testing.assert_allclose(curves_a["train_loss"], curves_b["train_loss"], rtol=1e-5)


def test_early_stopping_keeps_a_stack_per_rung_and_says_why(data, caplog):
    X, y = data
    search = _halving(_mlp(early_stopping=1, validation_fraction=0.25), n_trials=3)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        search.fit(X, y)
    assert ("successive halving on epochs: each rung trains from scratch: early stopping"
            in caplog.text)  # fmt: skip
    assert search.n_epochs_trained_ <= 2 * int(np.sum(search.cv_results_["n_resources"]))


def test_any_builder_keeps_a_stack_per_rung_and_says_why(data, caplog):
    X, y = data
    est = tk.KerasClassifier(_dense, epochs=3, batch_size=16, random_state=0, verbose=0)
    search = _halving(est, n_trials=3)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        search.fit(X, y)
    assert "any builder's trainer keeps a stack per rung" in caplog.text
    assert sorted(set(search.cv_results_["n_resources"])) == [1, 3]
