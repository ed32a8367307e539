"""tunekit.workflow: overfit_check (step 1), plans, and resumable studies."""

import multiprocessing
import os
import re
import socket
import time
from datetime import datetime
from types import SimpleNamespace

import optuna
import pytest
from _studies import share_a_plan
from optuna.trial import TrialState
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import tunekit as tk
from tunekit import workflow
from tunekit.exceptions import SearchFailedError
from tunekit.storage import queue
from tunekit.workflow import (
    Config,
    capacity_ladder,
    one_at_a_time,
    plan_space,
    run_study,
    runner,
)
from tunekit.workflow.plans import encode_params

optuna.logging.set_verbosity(optuna.logging.WARNING)

C_PLAN = [Config(f"C={c}", {"C": c}) for c in (0.001, 0.01, 0.1, 1.0)]


def storage(tmp_path, name="study.db"):
    return f"sqlite:///{tmp_path / name}"


def trials_of(url, name):
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


# ------------------------------------------------------------------ overfit_check
def test_overfit_check_passes_for_a_capable_model(binary_data):
    X, y = binary_data
    clf = tk.KerasClassifier(
        tk.builders.mlp,
        model__hidden=(32, 32),
        optimizer="adam",
        optimizer__learning_rate=0.02,
        random_state=0,
    )
    check = workflow.overfit_check(clf, X, y, n_samples=40, epochs=20)
    assert check.passed, check.message
    assert check.train_score >= 0.99 and check.subset_size == 40 and check.epochs == 20
    assert len(check.history["loss"]) == 20 and len(check.history["val_loss"]) == 20
    assert check.scoring == "accuracy" and 0.0 <= check.val_score <= 1.0
    assert str(check).startswith("passed: the model overfits 40 training samples")
    assert clf.get_params()["epochs"] == 1  # the estimator itself is never changed


@pytest.mark.parametrize(
    "params, epochs",
    [({"model__hidden": (1,), "model__l2": 10.0}, 5), ({"model__hidden": (4,)}, 1)],
    ids=["no-capacity", "one-epoch"],
)
def test_overfit_check_fails_for_a_crippled_model(params, epochs, multiclass_data):
    X, y = multiclass_data
    clf = tk.KerasClassifier(tk.builders.mlp, random_state=0, **params)
    check = workflow.overfit_check(clf, X, y, n_samples=60, epochs=epochs)
    assert not check.passed
    assert check.train_score < 0.99
    assert re.search(
        r"cannot overfit 60 training samples: training accuracy 0\.\d+ < 0\.99", str(check)
    )
    assert "Capacity or training is the problem" in check.message


@pytest.mark.parametrize(
    "estimator, kwargs",
    [(LogisticRegression(C=1e4, max_iter=2000), {}), (LinearRegression(), {})],
    ids=["classifier", "regressor"],
)
def test_overfit_check_works_for_any_estimator(estimator, kwargs, binary_data, regression_data):
    X, y = regression_data if isinstance(estimator, LinearRegression) else binary_data
    check = workflow.overfit_check(estimator, X, y, n_samples=30, **kwargs)
    assert check.passed and check.epochs is None and check.history == {}
    assert check.threshold == (0.95 if isinstance(estimator, LinearRegression) else 0.99)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 120}, r"n_samples must leave validation rows: n_samples=120 of 120"),
        ({"n_samples": 1}, r"n_samples must be an integer >= 2, got n_samples=1"),
        ({"epochs": 5}, r"epochs=5 needs an estimator with an epochs parameter"),
        ({"scoring": "roc_auc"}, r"threshold is needed with scoring='roc_auc'"),
    ],
)
def test_overfit_check_rejects_bad_arguments(kwargs, match, binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match=match):
        workflow.overfit_check(LogisticRegression(), X, y, **{"n_samples": 40, **kwargs})


# ------------------------------------------------------------------------- plans
def test_one_at_a_time_changes_one_thing_per_configuration():
    plan = one_at_a_time(
        {"model__l2": 0.0, "model__dropout": 0.0, "batch_size": 32},
        {
            "L2": {"model__l2": 0.002},
            "dropout": {"model__dropout": 0.5},
            "big": {"batch_size": 512},
        },
    )
    assert [c.label for c in plan] == ["baseline", "L2", "dropout", "big"]
    base = plan[0].params
    for config in plan[1:]:
        changed = [k for k in base if config.params[k] != base[k]]
        assert len(changed) == 1
    space = plan_space(plan)
    assert space["batch_size"].values == (32, 512)
    assert space.contains(plan[2].params)


@pytest.mark.parametrize(
    "variants, match",
    [
        ({"x": {"model__l1": 0.1}}, r"variant 'x' sets \['model__l1'\], which the baseline"),
        ({"same": {"model__l2": 0.0}}, r"variant 'same' equals the baseline"),
    ],
)
def test_one_at_a_time_rejects_bad_variants(variants, match):
    with pytest.raises(ValueError, match=match):
        one_at_a_time({"model__l2": 0.0}, variants)


def test_plan_space_needs_the_same_parameters_everywhere():
    with pytest.raises(ValueError, match=r"every configuration of a plan must set the same"):
        plan_space([Config("a", {"C": 1.0}), Config("b", {"tol": 0.1})])
    with pytest.raises(ValueError, match=r"a plan needs at least one configuration"):
        plan_space([])
    ladder = capacity_ladder([(2,), (8, 8)])
    assert [c.label for c in ladder] == ["hidden=(2,)", "hidden=(8, 8)"]
    assert plan_space(ladder)["model__hidden"].values == ((2,), (8, 8))


# ---------------------------------------------------------------------- studies
def test_plan_study_resumes_without_rerunning_anything(binary_data, tmp_path):
    X, y = binary_data
    url = storage(tmp_path)
    kwargs = dict(storage=url, study_name="c", plan=C_PLAN, cv=3, verbose=0)
    first = run_study(LogisticRegression(), X, y, n_trials=2, **kwargs)
    assert first.n_finished == 2 and list(first.summary["configuration"]) == ["C=0.001", "C=0.01"]
    again = run_study(LogisticRegression(), X, y, out=tmp_path / "report", **kwargs)
    trials = trials_of(url, "c")
    assert [t.user_attrs["tunekit_label"] for t in trials] == [c.label for c in C_PLAN]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert again.n_finished == 4
    # every configuration has a held-out score, and the summary follows the plan
    assert again.summary["heldout_score"].notna().all()
    assert list(again.summary["configuration"]) == [c.label for c in C_PLAN]
    for name in ("leaderboard.md", "leaderboard.html", "param_scores.png", "summary.md"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "C=0.1" in (tmp_path / "report" / "summary.md").read_text()


@pytest.mark.filterwarnings("ignore:1 of 3 candidates failed")
def test_an_interrupted_configuration_runs_again(binary_data, tmp_path):
    X, y = binary_data
    url = storage(tmp_path)
    kwargs = dict(storage=url, study_name="c", plan=C_PLAN, cv=3, verbose=0)
    run_study(LogisticRegression(), X, y, n_trials=1, **kwargs)
    study = optuna.load_study(study_name="c", storage=url)
    encoded = encode_params(plan_space(C_PLAN), C_PLAN[1].params)
    study.add_trial(  # what Ctrl-C leaves behind: FAIL without a failure_reason
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL,
            params=encoded,
            distributions=plan_space(C_PLAN).to_optuna(),
            user_attrs={"tunekit_plan_params": encoded, "tunekit_label": C_PLAN[1].label},
        )
    )
    run_study(LogisticRegression(), X, y, n_trials=2, **kwargs)
    done = [
        t.user_attrs["tunekit_label"] for t in trials_of(url, "c") if t.state.name == "COMPLETE"
    ]
    assert done == ["C=0.001", "C=0.01"]


def test_configurations_queued_by_a_process_that_is_gone_are_taken_over(binary_data, tmp_path):
    X, y = binary_data
    url = storage(tmp_path)
    kwargs = dict(storage=url, study_name="c", plan=C_PLAN, cv=3, verbose=0)
    run_study(LogisticRegression(), X, y, n_trials=1, **kwargs)
    study = optuna.load_study(study_name="c", storage=url)
    encoded = encode_params(plan_space(C_PLAN), C_PLAN[1].params)
    gone = {"host": socket.gethostname(), "pid": 2**22 + 12345, "time": time.time()}
    attrs = {"tunekit_token": "gone", "tunekit_plan_params": encoded, "tunekit_enqueued_by": gone}
    study.enqueue_trial(encoded, user_attrs=attrs)  # what Ctrl-C or --timeout leaves queued
    run_study(LogisticRegression(), X, y, **kwargs)
    trials = trials_of(url, "c")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.params["C"] for t in trials) == sorted(c.params["C"] for c in C_PLAN)


def _queued(host, pid, age):
    owner = {"host": host, "pid": pid, "time": time.time() - age}
    return SimpleNamespace(user_attrs={"tunekit_enqueued_by": owner}, state=TrialState.WAITING)


def _trial(state, host="elsewhere", completed=None):
    """A trial the same process (or another one, ``host``) queued an hour ago."""
    owner = {"host": host, "pid": 1, "time": time.time() - 3600}
    return SimpleNamespace(
        user_attrs={"tunekit_enqueued_by": owner},
        state=TrialState[state],
        datetime_complete=completed,
    )


# Built inside the test, not at collection: ages are relative to when the test runs.
ORPHAN_CASES = {
    "gone": (lambda: _queued(socket.gethostname(), 2**22 + 12345, 0), lambda: [], True),
    "alive": (lambda: _queued(socket.gethostname(), os.getpid(), 3600), lambda: [], False),
    "fresh": (lambda: _queued("elsewhere", 1, 5), lambda: [], False),
    "stale": (lambda: _queued("elsewhere", 1, 3600), lambda: [], True),
    "running": (lambda: _queued("elsewhere", 1, 3600), lambda: [_trial("RUNNING")], False),
    "just-finished": (
        lambda: _queued("elsewhere", 1, 3600),
        lambda: [_trial("COMPLETE", completed=datetime.now())],
        False,
    ),
    "others-run": (
        lambda: _queued("elsewhere", 1, 3600),
        lambda: [_trial("RUNNING", host="third")],
        True,
    ),
    "retry": (
        lambda: SimpleNamespace(user_attrs={}, state=TrialState.WAITING),
        lambda: [],
        True,
    ),
}


@pytest.mark.parametrize("case", list(ORPHAN_CASES))
def test_who_may_take_over_a_queued_configuration(case):
    queued, others, expected = ORPHAN_CASES[case]
    assert queue.orphaned(queued(), others()) is expected
    mine = case == "alive"  # queued by this very process: its own, never another's
    assert queue.held_by_another(queued(), others()) is (not expected and not mine)


def test_a_study_run_with_other_settings_is_refused(binary_data, tmp_path):
    X, y = binary_data
    kwargs = dict(storage=storage(tmp_path), study_name="c", plan=C_PLAN, cv=3, verbose=0)
    run_study(LogisticRegression(), X, y, n_trials=1, **kwargs)
    with pytest.raises(ValueError, match=r"was run with other settings.*max_iter: 100 -> 7"):
        run_study(LogisticRegression(max_iter=7), X, y, **kwargs)
    with pytest.raises(ValueError, match=r"other settings.*--study-name NAME"):
        run_study(LogisticRegression(), X[:100], y[:100], **kwargs)


def test_growing_capacity_stops_once_the_model_overfits(binary_data, tmp_path):
    X, y = binary_data
    ladder = [Config(f"depth {d}", {"max_depth": d}) for d in (1, 2, 8, 16, 32)]
    url = storage(tmp_path)
    outcome = run_study(
        DecisionTreeClassifier(random_state=0),
        X,
        y,
        storage=url,
        study_name="ladder",
        plan=ladder,
        until_train_score=1.0,
        cv=3,
        verbose=0,
    )
    labels = list(outcome.summary["configuration"])
    assert labels[:2] == ["depth 1", "depth 2"] and len(labels) < len(ladder)
    assert outcome.summary["train_score"].iloc[-1] == 1.0
    assert (outcome.summary["train_score"].iloc[:-1] < 1.0).all()


def test_workers_share_a_plan_and_run_each_configuration_once(binary_data, tmp_path):
    # spawned workers import their target's module: tests/_studies.py leaves Keras out (this
    # module's `from tunekit import workflow` starts TensorFlow: 6 s of each worker's start)
    X, y = binary_data
    url = storage(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=share_a_plan, args=(url, X, y)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    trials = trials_of(url, "shared")
    labels = sorted(t.user_attrs["tunekit_label"] for t in trials)
    assert labels == sorted(f"depth {d}" for d in range(1, 9))  # each once, none off the plan
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs["tunekit_token"] for t in trials}) == 2  # both took their share


@pytest.mark.slow  # the SQLite test above runs the same plan in the default suite
@pytest.mark.postgres
def test_workers_share_a_plan_on_postgresql(binary_data):
    import uuid

    from _postgres import postgres_url

    url = postgres_url()
    if not url:
        pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    name = f"shared-{uuid.uuid4().hex[:8]}"
    X, y = binary_data
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=share_a_plan, args=(url, X, y, name)) for _ in range(2)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
            assert p.exitcode == 0
        trials = trials_of(url, name)
        labels = sorted(t.user_attrs["tunekit_label"] for t in trials)
        assert labels == sorted(f"depth {d}" for d in range(1, 9))
    finally:
        if name in optuna.get_all_study_names(storage=url):
            optuna.delete_study(study_name=name, storage=url)


def test_learning_curve_scores_the_rows_trained_on(binary_data, tmp_path):
    X, y = binary_data
    url = storage(tmp_path)
    kwargs = dict(storage=url, study_name="curve", train_sizes=[0.25, 1.0], cv=3, verbose=0)
    outcome = run_study(DecisionTreeClassifier(random_state=0), X, y, out=tmp_path / "r", **kwargs)
    summary = outcome.summary
    assert list(summary["configuration"]) == ["n_train=20", "n_train=80"]
    assert (summary["train_score"] == 1.0).all()  # a tree fits what it saw, whatever its size
    assert summary["val_score"].iloc[0] < summary["val_score"].iloc[1]
    assert (tmp_path / "r" / "overfitting_gap.png").stat().st_size > 0
    again = run_study(DecisionTreeClassifier(random_state=0), X, y, **kwargs)
    assert again.n_finished == 2 and len(trials_of(url, "curve")) == 2


def test_learning_curve_copes_with_folds_of_unequal_size(multiclass_data, tmp_path):
    X, y = multiclass_data  # 150 rows in 4 folds: 112 or 113 training rows, 3 classes
    outcome = run_study(
        DecisionTreeClassifier(random_state=0),
        X,
        y,
        storage=storage(tmp_path),
        study_name="curve",
        train_sizes=[0.5, 1.0],
        cv=4,
        verbose=0,
    )
    assert list(outcome.summary["configuration"]) == ["n_train=56", "n_train=112"]
    assert (outcome.summary["state"] == "COMPLETE").all()


def test_space_study_writes_the_report(binary_data, tmp_path):
    X, y = binary_data
    outcome = run_study(
        LogisticRegression(),
        X,
        y,
        storage=storage(tmp_path),
        study_name="space",
        space={"C": tk.Float(1e-3, 10.0, log=True)},
        scale=True,
        n_trials=3,
        cv=3,
        out=tmp_path / "r",
        verbose=0,
    )
    assert outcome.n_finished == 3 and len(outcome.summary) == 3
    assert outcome.summary["heldout_score"].notna().sum() == 3
    md = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "| rank" in md and "mean_val_score" in md


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"space": {"C": [1.0]}, "plan": C_PLAN}, r"exactly one of space=, plan= or train_sizes="),
        ({}, r"exactly one of space=, plan= or train_sizes=, got none"),
        ({"space": {"C": [1.0]}, "until_train_score": 0.9}, r"until_train_score needs a plan="),
        ({"plan": C_PLAN, "rank_by": "best"}, r"rank_by must be 'cv', 'heldout' or 'plan'"),
        ({"plan": C_PLAN, "n_trials": 0}, r"n_trials must be a positive integer or None, got 0"),
        ({"train_sizes": [0.0, 1.0]}, r"train_sizes must be fractions of the training fold"),
    ],
)
def test_run_study_rejects_bad_arguments(kwargs, match, binary_data, tmp_path):
    X, y = binary_data
    with pytest.raises(ValueError, match=match):
        run_study(LogisticRegression(), X, y, storage=storage(tmp_path), study_name="x", **kwargs)


def test_a_study_where_everything_fails_says_so(binary_data, tmp_path):
    X, y = binary_data
    plan = [Config("bad", {"solver": "no-such-solver"})]
    with pytest.raises(SearchFailedError, match=r"no-such-solver|failed"):
        run_study(
            LogisticRegression(),
            X,
            y,
            storage=storage(tmp_path),
            study_name="x",
            plan=plan,
            cv=3,
            verbose=0,
        )


# ------------------------------------------------------------------ disk trouble
def _no_space(real_fdopen):
    """``os.fdopen`` whose files fail to write as on a full disk (ENOSPC)."""
    import errno

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])  # half of it made it to the disk
            raise OSError(errno.ENOSPC, "No space left on device")

    return lambda fd, mode="r", *args, **kwargs: Full(real_fdopen(fd, mode, *args, **kwargs))


@pytest.mark.parametrize("trouble", ["full", "unwritable"])
def test_disk_trouble_names_the_path_and_the_report_can_be_rebuilt(
    trouble, binary_data, tmp_path, monkeypatch
):
    import tunekit.report._io as report_io
    from tunekit import cli

    X, y = binary_data
    url, name = f"sqlite:///{tmp_path / 'study.db'}", "disk"
    out = tmp_path / "report"
    if trouble == "full":
        monkeypatch.setattr(report_io.os, "fdopen", _no_space(os.fdopen))
        match = r"cannot write .*report.*No space left on device \(ENOSPC\)"
    else:  # a file where the directory should be: nothing can be created in it
        (tmp_path / "blocker").write_text("")
        out = tmp_path / "blocker" / "report"
        match = r"cannot write the report to .*blocker.*Not a directory"
    kwargs = dict(storage=url, study_name=name, space={"C": tk.Float(0.1, 10.0, log=True)},
                  n_trials=2, cv=2, test_size=None, verbose=0)  # fmt: skip
    if trouble == "unwritable":  # refused before any training
        with pytest.raises(OSError, match=r"cannot write the report to .*blocker.*Nothing was"):
            run_study(LogisticRegression(), X, y, out=out, **kwargs)
        assert not os.path.exists(tmp_path / "study.db")  # no study was even opened
        monkeypatch.setattr(runner, "check_writable", lambda out: None)  # it breaks later
    with pytest.raises(OSError, match=match) as info:
        run_study(LogisticRegression(), X, y, out=out, **kwargs)
    monkeypatch.undo()
    message = str(info.value)
    assert "2 finished trials of study 'disk' are intact" in message
    assert f"tunekit report {url} --study disk --out {out}" in message
    # nothing half-written: no temporary file, and each file there is whole
    leftovers = list(out.glob(".*.tmp")) if out.is_dir() else []
    assert leftovers == []
    for path in out.glob("*.json") if out.is_dir() else []:
        json_text = path.read_text()
        assert json_text.endswith("\n") and json_text.strip()
    # the study is intact and the report is rebuilt from it later
    study = optuna.load_study(study_name=name, storage=url)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    rebuilt = tmp_path / "rebuilt"
    assert cli.main(["report", url, "--study", name, "--out", str(rebuilt)]) == 0
    assert (rebuilt / "leaderboard.md").read_text().count("| ") > 2
    # the study command says the same, with exit status 1 and no traceback
    if trouble == "full":
        monkeypatch.setattr(report_io.os, "fdopen", _no_space(os.fdopen))
    opts = cli.study_options("disk", ["--storage", url, "--study-name", name, "--n-trials", "2",
                                      "--out", str(out), "-q"])  # fmt: skip
    assert cli.study_main(opts, LogisticRegression(), X, y, space=kwargs["space"], cv=2,
                          test_size=None) == 1  # fmt: skip
