"""The batched path's pruning verdicts come from one read of the study per batch.

A median pruner compares a trial with COMPLETE trials only, and no trial of a
batch completes before the batch ends: the verdicts equal ``trial.should_prune()``'s,
which reads the storage for every trial at every epoch.
"""

import numpy as np
import optuna
import pytest

import tunekit as tk

SPACE = {"model__dropout": tk.Float(0.0, 0.5), "model__l2": tk.Float(1e-5, 1e-1, log=True)}


class _AskedEachTime(optuna.pruners.MedianPruner):
    """The median pruner under another name: asked through ``trial.should_prune()``."""

    def prune(self, study, trial):
        return super().prune(study, trial)


def _study(tmp_path, name, pruner, monkeypatch):
    reads = []
    get_trials = optuna.Study.get_trials

    def counted(self, *args, **kwargs):
        reads.append(1)
        return get_trials(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "get_trials", counted)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 4)).astype("float32")
    y = (X[:, 0] - X[:, 2] + 0.5 * rng.normal(size=80) > 0).astype(int)
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=6, batch_size=16,
                             verbose=0, random_state=0)  # fmt: skip
    result = tk.search(est, X, y, space=SPACE, strategy="optuna", n_trials=14, cv=2,
                       test_size=None, baselines=False, verbose=0, random_state=0,
                       storage=f"sqlite:///{tmp_path / name}.db", study_name=name,
                       pruner=pruner)  # fmt: skip
    monkeypatch.setattr(optuna.Study, "get_trials", get_trials)
    trials = result.study_.get_trials()
    return [(t.state, t.value, dict(t.intermediate_values)) for t in trials], len(reads)


def test_median_pruning_from_one_read_per_batch_equals_asking_each_trial(tmp_path, monkeypatch):
    kwargs = dict(n_startup_trials=2, n_warmup_steps=1)
    direct, direct_reads = _study(tmp_path, "direct", optuna.pruners.MedianPruner(**kwargs),
                                  monkeypatch)  # fmt: skip
    asked, asked_reads = _study(tmp_path, "asked", _AskedEachTime(**kwargs), monkeypatch)
    states = [state for state, _, _ in direct]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 2  # pruning happened
    assert [s for s, _, _ in asked] == states
    for (_, value, steps), (_, value2, steps2) in zip(direct, asked, strict=True):
        assert value == pytest.approx(value2, abs=1e-12)
        assert steps == pytest.approx(steps2, abs=1e-12)  # every report is still stored
    assert direct_reads < asked_reads / 2
