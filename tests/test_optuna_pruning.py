"""The batched path's reports go in one write per epoch, its verdicts from one read a batch.

A median pruner compares a trial with COMPLETE trials only, and no trial of a
batch completes before the batch ends: the verdicts equal ``trial.should_prune()``'s,
which reads the storage for every trial at every epoch. The reports stored are
``trial.report``'s.
"""

import math

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
    stored = {} if name == "in-memory" else {  # no name: an in-memory study, not the default file
        "storage": f"sqlite:///{tmp_path / name}.db", "study_name": name,
    }  # fmt: skip
    result = tk.search(est, X, y, space=SPACE, strategy="optuna", n_trials=14, cv=2,
                       test_size=None, baselines=False, verbose=0, random_state=0,
                       pruner=pruner, **stored)  # fmt: skip
    monkeypatch.setattr(optuna.Study, "get_trials", get_trials)
    trials = result.study_.get_trials()
    return [(t.state, t.value, dict(t.intermediate_values)) for t in trials], len(reads)


@pytest.mark.parametrize("reference", ["sqlite", "in-memory"])
def test_median_pruning_from_one_read_per_batch_equals_asking_each_trial(
    tmp_path, monkeypatch, reference
):
    """Against ``should_prune()`` on SQLite, and against Optuna's own ``trial.report`` and
    ``should_prune()`` on an in-memory study."""
    kwargs = dict(n_startup_trials=2, n_warmup_steps=1)
    direct, direct_reads = _study(tmp_path, "direct", optuna.pruners.MedianPruner(**kwargs),
                                  monkeypatch)  # fmt: skip
    name = "asked" if reference == "sqlite" else "in-memory"
    asked, asked_reads = _study(tmp_path, name, _AskedEachTime(**kwargs), monkeypatch)
    states = [state for state, _, _ in direct]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 2  # pruning happened
    assert [s for s, _, _ in asked] == states
    for (_, value, steps), (_, value2, steps2) in zip(direct, asked, strict=True):
        assert value == pytest.approx(value2, abs=1e-12)
        assert steps == pytest.approx(steps2, abs=1e-12)  # every report is still stored
    assert direct_reads < asked_reads / 2


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_one_epochs_reports_are_one_transaction_with_trial_reports_rows(kind, tmp_path):
    from _postgres import reachable_postgres_url
    from sqlalchemy import event

    from tunekit.storage import report_all
    from tunekit.storage.reconnect import rdb_backend

    url = f"sqlite:///{tmp_path / 'reports.db'}" if kind == "sqlite" else reachable_postgres_url()
    study = optuna.create_study(storage=url, direction="maximize")
    try:
        a, b, c = study.ask(), study.ask(), study.ask()
        a.report(0.25, 0)
        commits = []
        event.listen(rdb_backend(study._storage).engine, "commit", lambda conn: commits.append(1))
        # a's step 0 is already reported, and a step given twice keeps its first value, as
        # trial.report does; non-finite values are stored as Optuna stores them
        report_all([(a, 0, 0.9), (a, 1, 0.5), (b, 1, 0.7), (b, 1, 0.1), (b, 2, np.float32(0.3)),
                    (c, 0, float("nan")), (c, 1, float("inf")), (c, 2, float("-inf"))])  # fmt: skip
        assert len(commits) == 1
        back = {t.number: t.intermediate_values for t in optuna.load_study(
            study_name=study.study_name, storage=url).trials}  # fmt: skip
        assert back[a.number] == {0: 0.25, 1: 0.5}
        assert back[b.number] == pytest.approx({1: 0.7, 2: 0.3})
        assert back[c.number][1] == float("inf") and back[c.number][2] == float("-inf")
        assert math.isnan(back[c.number][0])
        study.tell(b, state=optuna.trial.TrialState.PRUNED)  # the pruned value: its last report
        assert optuna.load_study(study_name=study.study_name, storage=url).trials[1].value == (
            pytest.approx(0.3)
        )
        # a finished trial takes no report, as trial.report refuses it, and nothing is written
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            report_all([(a, 5, 0.1), (b, 3, 0.2)])
        again = optuna.load_study(study_name=study.study_name, storage=url).trials
        assert 5 not in again[0].intermediate_values and 3 not in again[1].intermediate_values
    finally:
        optuna.delete_study(study_name=study.study_name, storage=url)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_trials_parameters_are_one_transaction_with_suggests_rows(kind, tmp_path):
    from _postgres import reachable_postgres_url
    from sqlalchemy import event

    from tunekit.storage import make_storage, suggest_in_one_transaction
    from tunekit.storage.reconnect import rdb_backend

    url = f"sqlite:///{tmp_path / 'params.db'}" if kind == "sqlite" else reachable_postgres_url()
    storage = make_storage(url, heartbeat_interval=0)
    space = tk.Space(
        {
            "l2": tk.Float(1e-5, 1e-1, log=True),
            "units": tk.Int(4, 64, log=True),
            "act": tk.Choice(["relu", "tanh"]),
            "batch_size": tk.Choice([16, 32]),
        }
    )
    names, commits = [], []
    event.listen(rdb_backend(storage).engine, "commit", lambda conn: commits.append(1))
    try:
        studies = {}
        for way in ("optuna", "tunekit"):
            study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(3))
            names.append(study.study_name)
            drawn = []
            for _ in range(3):
                trial = study.ask()
                commits.clear()
                worker = {"worker": "w1"}
                drawn.append(space.suggest(trial) if way == "optuna"
                             else suggest_in_one_transaction(space, trial, worker))  # fmt: skip
                assert len(commits) == (4 if way == "optuna" else 1)  # the attribute too
                study.tell(trial, 0.5)
            studies[way] = (study, drawn)
        (a, drawn_a), (b, drawn_b) = studies["optuna"], studies["tunekit"]
        assert drawn_a == drawn_b  # the same draws, in the same order
        back_a = optuna.load_study(study_name=a.study_name, storage=url).trials
        back_b = optuna.load_study(study_name=b.study_name, storage=url).trials
        assert [t.params for t in back_a] == [t.params for t in back_b]
        assert [t.distributions for t in back_a] == [t.distributions for t in back_b]
        assert [t.user_attrs for t in back_b] == [{"worker": "w1"}] * 3
        # a parameter the study knows with other choices: refused as Optuna refuses it, and
        # none of the trial's parameters is written (Optuna's own writes would have kept
        # "units", drawn and written before "act")
        other = tk.Space({"units": tk.Int(4, 64, log=True), "act": tk.Choice(["relu", "elu"])})
        trial = b.ask()
        with pytest.raises(ValueError, match="dynamic value space"):
            suggest_in_one_transaction(other, trial)
        stored = optuna.load_study(study_name=b.study_name, storage=url).trials[-1]
        assert stored.params == {}
    finally:
        for name in names:
            optuna.delete_study(study_name=name, storage=url)
