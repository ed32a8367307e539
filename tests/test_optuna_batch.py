"""Optuna trials in batches on the stacked engine: lockstep folds, per-epoch pruning, resume.

The pruning tests run on both trainers: ``mlp()``'s and any builder's
(``engine.keras_stack``, here a builder of the same network written by hand).
"""

import os
import signal

import numpy as np
import optuna
import pytest
from _builders import dense as _dense
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tunekit as tk

SPACE = {"model__dropout": tk.Float(0.0, 0.4), "model__l2": tk.Float(1e-5, 1e-2, log=True)}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


def _clf(builder="mlp", **kw):
    params = dict(epochs=4, batch_size=16, random_state=0, verbose=0)
    if builder == "mlp":
        params["model__hidden"] = (6,)
    params.update(kw)
    return tk.KerasClassifier(tk.builders.mlp if builder == "mlp" else _dense, **params)


def _search(estimator, X, y, **kw):
    params = dict(
        space=SPACE, strategy="optuna", cv=2, test_size=None, verbose=0, baselines=False,
        n_trials=5,
    )
    params.update(kw)
    return tk.search(estimator, X, y, **params)


def test_trials_run_in_batches_on_the_engine(data):
    X, y = data
    result = _search(make_pipeline(StandardScaler(), _clf()), X, y,
                     space=tk.Space(SPACE).prefixed("kerasclassifier__"),
                     pruner=optuna.pruners.NopPruner(), trial_batch=3)
    trials = result.study_.get_trials()
    assert len(trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs["engine"] == "stacked" for t in trials)
    assert result.engine_ == "stacked"
    for t in trials:  # the objective's record, written in one go per trial
        assert len(t.user_attrs["cv_test_scores"]) == 2
        assert t.user_attrs["n_epochs"] == [4, 4]
        assert t.value == pytest.approx(np.mean(t.user_attrs["cv_test_scores"]))
    assert np.isfinite(result.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("builder", ["mlp", "any"])
def test_pruning_freezes_members_mid_stack(builder, data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    # prune every trial whose fold mean is below 1.1 (all) from the first epoch on
    with pytest.raises(tk.TunekitError):
        _search(_clf(builder, epochs=6), X, y, storage=storage, study_name="p",
                pruner=optuna.pruners.ThresholdPruner(lower=1.1), trial_batch=5)
    study = optuna.load_study(study_name="p", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 5
    assert {t.state for t in trials} == {optuna.trial.TrialState.PRUNED}
    for t in trials:
        assert t.user_attrs["n_epochs"] == [1, 1]  # frozen after the epoch it was pruned at
        assert list(t.intermediate_values) == [1]


def test_resume_runs_only_the_missing_trials(data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    first = _search(_clf(), X, y, storage=storage, study_name="r", n_trials=3)
    before = {t.number: t.params for t in first.study_.get_trials()}
    second = _search(_clf(), X, y, storage=storage, study_name="r", n_trials=5)
    trials = second.study_.get_trials()
    assert len(trials) == 5
    assert {t.number: t.params for t in trials if t.number in before} == before


@pytest.mark.parametrize(
    "value, error, match",
    [(0, ValueError, "trial_batch must be >= 1"), (2.5, TypeError, "positive integer")],
)
def test_a_bad_batch_size_is_refused_before_any_trial(data, tmp_path, value, error, match):
    X, y = data
    storage = f"sqlite:///{tmp_path / 'b.db'}"
    with pytest.raises(error, match=match):
        _search(_clf(), X, y, storage=storage, study_name="b", trial_batch=value)
    assert "b" not in optuna.get_all_study_names(storage)


class _PruneAllButFirst(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return trial.number > 0


@pytest.mark.parametrize("builder", ["mlp", "any"])
def test_all_folds_report_together_at_every_epoch(builder, data):
    X, y = data
    result = _search(_clf(builder, epochs=4), X, y, n_trials=3, trial_batch=1,
                     pruner=_PruneAllButFirst())  # fmt: skip
    assert list(result.cv_results_["state"]) == ["COMPLETE", "PRUNED", "PRUNED"]
    assert all(t.user_attrs["engine"] == "stacked" for t in result.study_.trials)
    first, pruned = result.study_.trials[0], result.study_.trials[1]
    # one report per epoch: the mean of both folds' test scores at that epoch
    assert sorted(first.intermediate_values) == [1, 2, 3, 4]
    curves = first.user_attrs["cv_test_scores"]
    assert first.intermediate_values[4] == pytest.approx(np.mean(curves))
    assert list(pruned.intermediate_values) == [1]
    assert pruned.user_attrs["n_epochs"] == [1, 1]


class _TerminateAtFirstReport(optuna.pruners.BasePruner):
    """Sends this process SIGTERM when the first trial reports its first epoch."""

    def prune(self, study, trial):
        if trial.number == 0 and max(trial.intermediate_values) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return False


@pytest.mark.parametrize("builder", ["mlp", "any"])
def test_a_stop_request_ends_the_stack_at_the_next_epoch(builder, data, tmp_path):
    X, y = data
    storage = f"sqlite:///{tmp_path / 's.db'}"
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as info:
            _search(_clf(builder, epochs=8), X, y, n_trials=3, trial_batch=3, storage=storage,
                    study_name="s", pruner=_TerminateAtFirstReport())  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, before)
    assert info.value.code == 143
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3
    for t in trials:  # stopped after epoch 2 of 8: reports of epoch 1 only
        assert t.user_attrs["failure_reason"] == "interrupted at epoch 2"
        assert sorted(t.intermediate_values) == [1]


class _EnqueuesOnce(optuna.pruners.BasePruner):
    """Never prunes; at its first verdict another handle on the study queues one trial."""

    def __init__(self, url, name, params):
        self.url, self.name, self.params, self.done = url, name, params, False

    def prune(self, study, trial):
        if not self.done:
            self.done = True
            optuna.load_study(study_name=self.name, storage=self.url).enqueue_trial(self.params)
        return False


def test_asks_read_the_queue_only_while_it_holds_trials(data, tmp_path, monkeypatch):
    """A queued trial is taken, also one queued mid-run; an empty queue is not read per ask."""
    from tunekit.storage import queue

    reads = []
    pop = queue._pop_waiting_trial_id
    monkeypatch.setattr(queue, "_pop_waiting_trial_id", lambda s: reads.append(1) or pop(s))
    X, y = data
    url, name = f"sqlite:///{tmp_path / 'q.db'}", "q"
    before = optuna.create_study(study_name=name, storage=url, direction="maximize")
    planned = [
        {"model__dropout": 0.1, "model__l2": 1e-4},
        {"model__dropout": 0.3, "model__l2": 1e-3},
    ]
    for params in planned:
        before.enqueue_trial(params)
    later = {"model__dropout": 0.2, "model__l2": 2e-3}
    result = _search(_clf(epochs=3), X, y, storage=url, study_name=name, n_trials=10,
                     trial_batch=3, pruner=_EnqueuesOnce(url, name, later))  # fmt: skip
    trials = result.study_.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * len(trials)
    ran = [t.params for t in trials]
    for params in [*planned, later]:  # the plan's trials and the one queued mid-run all ran
        assert sum(p == pytest.approx(params) for p in ran) == 1
    assert len(trials) == 10
    # the queue was read while it held trials, not once for each of the 10 asks
    assert 0 < len(reads) < len(trials)
