"""Faults a study shared by worker processes must survive, with nothing lost.

Every test here starts real worker processes (``python -m tunekit.workers
SCRIPT``) on one study, on PostgreSQL (``TUNEKIT_TEST_POSTGRES_URL``; marked
``postgres``, skipped when unset) and on an SQLite file, then checks the
study's accounting: trials started, finished, failed and retried; unique trial
numbers; nothing RUNNING or WAITING at the end; every failed trial's parameters
run again in a later trial. Heartbeats are sped up through the environment
(interval 1 s, grace 3 s) so that a killed worker is noticed in seconds.
"""

import concurrent.futures
import datetime
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import uuid

import numpy as np
import optuna
import pytest
from _postgres import reachable_postgres_url
from _studies import wait_for_study
from sklearn.linear_model import LogisticRegression

import tunekit as tk
import tunekit.storage.heartbeats
import tunekit.workers
from tunekit.launch import EXIT_INTERRUPTED as EXIT_SIGINT
from tunekit.launch import EXIT_STORAGE
from tunekit.launch import EXIT_TERMINATED as EXIT_SIGTERM
from tunekit.report import cv_results_from_study
from tunekit.storage import make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.timeout(180)

FINISHED = ("COMPLETE", "PRUNED")
SPACE = {"C": tk.Float(0.01, 100.0, log=True)}  # the worker script's space
HEARTBEAT = {"TUNEKIT_HEARTBEAT_INTERVAL": "1", "TUNEKIT_GRACE_PERIOD": "3"}

WORKER_SCRIPT = '''
"""A tunekit worker: a study of a slow LogisticRegression, configured by the environment."""
import math
import os
import time

import numpy as np
import optuna
from sklearn.linear_model import LogisticRegression

import tunekit as tk


FITS = [0]


def gate():
    """Deterministic "mid-trial" for the tests, at fits of this process.

    ``HOLD_AT_FIT=k``: the k-th fit writes ``GATE_DIR/held-<worker>`` and waits (its
    trial RUNNING, heartbeats going on) until ``GATE_DIR/release-<worker>`` exists.
    ``AFTER=name``: the first fit waits until ``GATE_DIR/name`` exists.
    """
    FITS[0] += 1
    gate_dir, worker = os.environ["GATE_DIR"], os.environ["TUNEKIT_WORKER"]
    wait_for = None
    if FITS[0] == 1 and os.environ.get("AFTER"):
        wait_for = os.environ["AFTER"]
    if FITS[0] == int(os.environ.get("HOLD_AT_FIT", "0")):
        open(os.path.join(gate_dir, f"held-{worker}"), "w").close()
        wait_for = f"release-{worker}"
    deadline = time.monotonic() + 120
    while wait_for and not os.path.exists(os.path.join(gate_dir, wait_for)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{wait_for} never came")
        time.sleep(0.05)


class SlowLogisticRegression(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        time.sleep(float(os.environ.get("FIT_SECONDS", "0.2")))
        gate()
        return super().fit(X, y, sample_weight=sample_weight)


def score_or_nonfinite(estimator, X, y):
    """Accuracy, except NaN for large C and inf for small C (the NaN/inf test)."""
    if estimator.C > 3.0:
        return math.nan
    if estimator.C < 0.1:
        return math.inf
    return estimator.score(X, y)


rng = np.random.RandomState(0)
X = rng.normal(size=(80, 4))
y = (X[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
high = 100.0 if os.environ.get("SPACE") != "other" else 50.0
result = tk.search(
    SlowLogisticRegression(),
    X,
    y,
    space={"C": tk.Float(0.01, high, log=True)},
    strategy="optuna",
    storage=os.environ["STORAGE"],
    study_name=os.environ["STUDY"],
    n_trials=int(os.environ["N_TRIALS"]),
    scoring=score_or_nonfinite if os.environ.get("BAD_SCORES") else None,
    pruner=optuna.pruners.NopPruner(),
    cv=2,
    test_size=None,
    verbose=0,
)
if os.environ.get("REPORT_DIR"):
    tk.report.write_report(result, os.environ["REPORT_DIR"], formats=["json", "md"], plots=False)
'''


# ----------------------------------------------------------------- fixtures
def _data():
    """The worker script's data."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    return X, (X[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
BOTH = [POSTGRES, "sqlite"]
# the same test on PostgreSQL runs with the slow tests (CI runs them after the default suite)
SLOW_POSTGRES = pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])
# 12 to 17 s each on 2 cores: both storages with the slow tests (the default suite keeps the
# signal, soak and heartbeat tests of worker deaths)
SLOW_SQLITE = pytest.param("sqlite", marks=pytest.mark.slow)


@pytest.fixture(params=BOTH)
def backend(request, tmp_path):
    """``(storage URL, study name)``: a fresh study name, deleted afterwards."""
    if request.param == "postgres":
        url = reachable_postgres_url()
    else:
        url = f"sqlite:///{tmp_path / 'study.db'}"
    name = f"faults-{uuid.uuid4().hex[:12]}"
    yield url, name
    storage = make_storage(url, heartbeat_interval=0)
    if name in optuna.study.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "worker_study.py"
    path.write_text(WORKER_SCRIPT)
    return path


def start_worker(script, url, name, n_trials, index, tmp_path, plain=False, **env):
    """One worker process, its output in ``tmp_path/worker-<index>.log``.

    ``python -m tunekit.workers SCRIPT``, or with ``plain`` the script alone, as
    ``tunekit run --workers N`` starts its workers.
    """
    full_env = {
        **os.environ,
        **HEARTBEAT,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "STORAGE": url,
        "STUDY": name,
        "N_TRIALS": str(n_trials),
        "TUNEKIT_WORKER": str(index),
        "GATE_DIR": str(tmp_path),
        **{k: str(v) for k, v in env.items()},
    }
    log = open(tmp_path / f"worker-{index}.log", "ab")  # closed by finish()
    proc = subprocess.Popen(
        [sys.executable, str(script)]
        if plain
        else [sys.executable, "-m", "tunekit.workers", str(script)],
        env=full_env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        # a worker started from a shell that ignores SIGINT (nohup, CI runners) would
        # ignore Ctrl-C by design; the tests want the interactive behaviour
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.index = index
    proc.log_path = tmp_path / f"worker-{index}.log"
    proc.log_file = log
    return proc


def finish(procs, timeout=120):
    """Wait for every worker; return their exit statuses."""
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"worker {proc.pid} did not finish:\n{proc.log_path.read_text()[-3000:]}")
        finally:
            proc.log_file.close()
    return codes


def running_trial_of(study, *pids, min_finished=0, timeout=60):
    """Wait until each worker in ``pids`` is early in a trial (0.05-0.5 s in): "mid-trial"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = study.get_trials(deepcopy=False)
        if sum(t.state.name in FINISHED for t in trials) >= min_finished:
            owners = {}
            for t in trials:
                owner = str(t.user_attrs.get("tunekit_worker", "")).rpartition(":")[2]
                age = time.time() - t.datetime_start.timestamp()
                if t.state.name == "RUNNING" and t.params and 0.05 <= age <= 0.5:
                    owners[owner] = t.number
            if all(str(pid) in owners for pid in pids):
                return [owners[str(pid)] for pid in pids]
        time.sleep(0.02)
    pytest.fail(f"workers {pids} were never all mid-trial within {timeout} s")


def held_mid_trial(study, *procs, timeout=120):
    """Wait until each worker of ``procs`` is held at its ``HOLD_AT_FIT``-th fit.

    Deterministic where :func:`running_trial_of` waits for a timing window: the worker
    script's fit says it is held with a marker and waits for :func:`release`, its trial
    RUNNING and its heartbeats going on. Returns the trial each worker holds.
    """
    deadline = time.monotonic() + timeout
    while not all((p.log_path.parent / f"held-{p.index}").exists() for p in procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            logs = [p.log_path.read_text()[-2000:] for p in procs]
            pytest.fail(f"workers {[p.index for p in procs]} were not all held mid-trial: {logs}")
        time.sleep(0.02)
    held = [trials_running_in(study, p.pid) for p in procs]
    assert all(len(numbers) == 1 for numbers in held), held
    return [numbers[0] for numbers in held]


def release(*procs):
    """Let workers held by the worker script's gate go on."""
    for proc in procs:
        (proc.log_path.parent / f"release-{proc.index}").touch()


def trials_running_in(study, *pids):
    """After a kill: the trials the killed workers left RUNNING."""
    wanted = {str(pid) for pid in pids}
    return sorted(
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "RUNNING"
        and str(t.user_attrs.get("tunekit_worker", "")).rpartition(":")[2] in wanted
    )


def accounting(study) -> dict:
    """Started, finished, failed and retried trials of ``study``, checked for consistency."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "trial numbers must be unique"
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states, f"a trial is still RUNNING: {states}"
    assert "WAITING" not in states, f"a queued retry never ran: {states}"
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    failed = [t for t in trials if t.state.name == "FAIL"]
    by_number = {t.number: t for t in trials}
    for retry in retries:  # a retry has its original's parameters
        original = by_number[retry.system_attrs["retry_history"][-1]]
        assert original.state.name == "FAIL"
        assert retry.params == original.params
        assert retry.number > original.number
    return {
        "started": len(trials),
        "finished": sum(s in FINISHED for s in states),
        "failed": len(failed),
        "retried": len(retries),
        "failed_numbers": sorted(t.number for t in failed),
    }


def assert_nothing_lost(study, killed: list[int]):
    """Each killed trial is FAIL and ran again, with the same parameters, in a later trial."""
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    for number in killed:
        assert by_number[number].state.name == "FAIL"
        again = [
            t
            for t in trials
            if number in (t.system_attrs.get("retry_history") or [])
            and t.params == by_number[number].params
        ]
        assert again, f"the parameters of killed trial {number} never ran again"
        assert again[-1].state.name in FINISHED


def report(test, counts, **setup):
    """One accounting line per test (shown with ``pytest -s``)."""
    print(f"\nACCOUNTING {test}: {json.dumps({**setup, **counts})}")


# ----------------------------------------------------------------- kill -9
@pytest.mark.parametrize("backend", [SLOW_POSTGRES, SLOW_SQLITE], indirect=True)
def test_kill_9_of_one_of_four_workers_loses_nothing(backend, script, tmp_path):
    url, name = backend
    n_trials, n_workers = 10, 4
    # the victim is held in its second trial (its third fit, cv=2); the others start
    # fitting once it is held, so that they cannot take every trial first
    gates = [{"AFTER": "held-1"}, {"HOLD_AT_FIT": 3}, {"AFTER": "held-1"}, {"AFTER": "held-1"}]
    procs = [
        start_worker(script, url, name, n_trials, i, tmp_path, FIT_SECONDS=0.3, **gates[i])
        for i in range(n_workers)
    ]
    study = wait_for_study(url, name)
    victim = procs[1]
    held_mid_trial(study, victim)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.time()
    victim.wait(timeout=10)
    (killed,) = trials_running_in(study, victim.pid)
    codes = finish(procs)
    assert codes[1] == -signal.SIGKILL
    assert [c for i, c in enumerate(codes) if i != 1] == [0] * (n_workers - 1), [
        p.log_path.read_text()[-2000:] for p in procs
    ]
    counts = accounting(study)
    assert counts["failed_numbers"] == [killed]
    assert counts["retried"] == 1
    assert n_trials <= counts["finished"] <= n_trials + n_workers - 1
    assert_nothing_lost(study, [killed])
    # nothing stays RUNNING past the grace period (3 s) by more than a trial or two
    failed = next(t for t in study.get_trials(deepcopy=False) if t.number == killed)
    counts["failed_after_kill_s"] = round(failed.datetime_complete.timestamp() - killed_at, 2)
    assert 2.0 <= counts["failed_after_kill_s"] <= 3 + 7
    report(f"kill -9 [{url.split(':')[0]}]", counts, target=n_trials, workers=n_workers)


# ----------------------------------------------------------------- SIGTERM / SIGINT
@pytest.mark.parametrize(
    "signum, status, backend, plain",
    [
        # a plain study script, as `tunekit run --workers N` starts it
        pytest.param(signal.SIGTERM, EXIT_SIGTERM, "postgres", True,
                     marks=[pytest.mark.postgres, pytest.mark.slow]),
        (signal.SIGTERM, EXIT_SIGTERM, "sqlite", False),
        # the same path as SIGTERM up to the exit
        # (slow: the SQLite runs of SIGTERM and of SIGINT stay in the default suite)
        pytest.param(signal.SIGINT, EXIT_SIGINT, "postgres", False,
                     marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
    indirect=["backend"],
)
def test_sigterm_and_sigint_fail_the_running_trial_and_queue_it_again(
    signum, status, backend, plain, script, tmp_path
):
    url, name = backend
    n_trials, n_workers = 6, 2
    procs = [
        start_worker(
            script,
            url,
            name,
            n_trials,
            i,
            tmp_path,
            plain=plain and i == 0,
            FIT_SECONDS=0.3,
            REPORT_DIR=tmp_path / f"report-{i}",
            # the victim is held in its second trial; the other starts once it is held
            **({"HOLD_AT_FIT": 3} if i == 0 else {"AFTER": "held-0"}),
        )
        for i in range(n_workers)
    ]
    study = wait_for_study(url, name)
    victim = procs[0]
    (killed,) = held_mid_trial(study, victim)
    stopped_at = time.monotonic()
    os.kill(victim.pid, signum)
    release(victim)  # the fit goes on to its fold's end, the next safe point
    assert victim.wait(timeout=30) == status, victim.log_path.read_text()[-3000:]
    exited_after = time.monotonic() - stopped_at
    # the trial stopped at its next safe point: a fold's end (FAIL, queued again) or, when
    # the signal came in its last fold, its end (COMPLETE); never left RUNNING
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    stopped = by_number[killed].state.name
    assert stopped in ("FAIL", "COMPLETE")
    codes = finish(procs)
    assert codes[1:] == [0] * (n_workers - 1)
    counts = accounting(study)
    assert counts["failed_numbers"] == ([killed] if stopped == "FAIL" else [])
    assert counts["retried"] == (stopped == "FAIL")
    assert n_trials <= counts["finished"] <= n_trials + n_workers - 1
    assert_nothing_lost(study, counts["failed_numbers"])
    if stopped == "FAIL":
        reason = study.trials[killed].user_attrs.get("failure_reason", "")
        assert signal.Signals(signum).name in reason
    log = victim.log_path.read_text()
    assert f"stopped by {signal.Signals(signum).name}" in log
    # SIGTERM stops at once: no result, no report. SIGINT is Ctrl-C: the worker returns
    # what finished (its report) and then exits with 130.
    assert (tmp_path / "report-0" / "leaderboard.json").exists() == (signum == signal.SIGINT)
    counts["worker_exit_seconds"] = round(exited_after, 2)
    counts["stopped_trial"] = stopped
    counts["worker"] = "plain script" if plain else "python -m tunekit.workers"
    name = signal.Signals(signum).name
    report(f"{name} [{url.split(':')[0]}]", counts, target=n_trials, workers=n_workers)


class _SlowLogisticRegression(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        time.sleep(0.3)
        return super().fit(X, y, sample_weight=sample_weight)


def test_in_process_sigterm_ends_with_status_143_and_restores_the_handlers(tmp_path):
    X, y = _data()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    kwargs = dict(space=SPACE, strategy="optuna", storage=url, study_name="s", cv=2, verbose=0)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sigint_before = signal.getsignal(signal.SIGINT)

    def terminate_mid_trial():
        running_trial_of(wait_for_study(url, "s"), os.getpid(), min_finished=1)
        os.kill(os.getpid(), signal.SIGTERM)

    try:
        killer = threading.Thread(target=terminate_mid_trial, daemon=True)
        killer.start()
        with pytest.raises(SystemExit) as info:
            tk.search(_SlowLogisticRegression(), X, y, n_trials=20, test_size=None, **kwargs)
        killer.join()
        assert info.value.code == EXIT_SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
        assert signal.getsignal(signal.SIGINT) is sigint_before
        states = [t.state.name for t in wait_for_study(url, "s").trials]
        assert "RUNNING" not in states  # stopped at a safe point
        if "FAIL" in states:  # at a fold's end: queued for the next run
            assert states.count("FAIL") == 1 and states[-1] == "WAITING"
    finally:
        signal.signal(signal.SIGTERM, before)


def test_no_handlers_outside_the_main_thread(tmp_path):
    X, y = _data()
    done = {}

    def run():
        done["result"] = tk.search(
            LogisticRegression(), X, y, space=SPACE, strategy="optuna", n_trials=2, cv=2,
            storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="t", verbose=0,
        )  # fmt: skip

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert len(done["result"].cv_results_["params"]) == 2


# ----------------------------------------------------------------- resume
@pytest.mark.parametrize("backend", [SLOW_POSTGRES, SLOW_SQLITE], indirect=True)
def test_resume_after_every_worker_died(backend, script, tmp_path):
    url, name = backend
    n_trials = 8
    # each worker finishes two trials and is held in its third (its fifth fit, cv=2)
    procs = [
        start_worker(script, url, name, n_trials, i, tmp_path, FIT_SECONDS=0.3, HOLD_AT_FIT=5)
        for i in range(2)
    ]
    study = wait_for_study(url, name)
    held_mid_trial(study, *procs)
    for proc in procs:  # both mid-trial, killed within the grace period
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finish(procs)
    killed = trials_running_in(study, *(p.pid for p in procs))
    assert len(killed) == 2
    before = {
        t.number: (t.params, t.value)
        for t in study.get_trials(deepcopy=False)
        if t.state.name in FINISHED
    }
    assert 3 <= len(before) < n_trials
    # a new worker: it must not redo finished trials, and must finish the dead ones' work
    (code,) = finish([start_worker(script, url, name, n_trials, 9, tmp_path, FIT_SECONDS=0.1)])
    assert code == 0
    trials = study.get_trials(deepcopy=False)
    for number, (params, value) in before.items():
        assert (trials[number].params, trials[number].value) == (params, value)
    new = [t for t in trials if t.number not in before and t.state.name in FINISHED]
    assert not [t for t in new if t.params in [p for p, _ in before.values()]]
    counts = accounting(study)
    assert sorted(counts["failed_numbers"]) == sorted(killed)
    assert counts["retried"] == 2
    assert n_trials <= counts["finished"] <= n_trials + len(killed)
    assert_nothing_lost(study, killed)
    counts["finished_before_resume"] = len(before)
    report(f"resume [{url.split(':')[0]}]", counts, target=n_trials, workers="2 killed + 1")


# ----------------------------------------------------------------- no heartbeat at all
class _ThreeGracePeriodsLater(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) + datetime.timedelta(days=1)


def test_a_trial_that_never_sent_a_heartbeat_is_repaired_even_at_the_target(backend, monkeypatch):
    """A worker that died between creating its trial and its first heartbeat."""
    url, name = backend
    X, y = _data()
    kwargs = dict(
        space=SPACE, strategy="optuna", storage=url, study_name=name, n_trials=2, cv=2,
        test_size=None, verbose=0,
    )  # fmt: skip
    tk.search(LogisticRegression(), X, y, **kwargs)
    study = wait_for_study(url, name)
    orphan = study.ask()  # no heartbeat: Optuna would never count it as stale
    orphan.suggest_float("C", 0.01, 100.0, log=True)
    later = types.SimpleNamespace(datetime=_ThreeGracePeriodsLater, timedelta=datetime.timedelta)
    monkeypatch.setattr(tunekit.storage.heartbeats, "datetime", later)
    tk.search(LogisticRegression(), X, y, **kwargs)  # the target is met: only the repair runs
    counts = accounting(study)
    assert counts["failed_numbers"] == [orphan.number] and counts["retried"] == 1
    assert counts["finished"] == 3
    assert_nothing_lost(study, [orphan.number])


# ----------------------------------------------------------------- incompatible studies
@pytest.mark.parametrize("backend", [POSTGRES], indirect=True)  # SQLite: test_search.py
def test_reusing_a_study_name_with_another_space_or_direction_is_refused(backend, script, tmp_path):
    url, name = backend
    X, y = _data()
    kwargs = dict(strategy="optuna", storage=url, study_name=name, cv=2, test_size=None, verbose=0)
    tk.search(LogisticRegression(), X, y, space=SPACE, n_trials=2, **kwargs)
    study = wait_for_study(url, name)
    before = ([t.params for t in study.trials], dict(study.user_attrs))
    # another space, from another worker process: it stops with the error, writes nothing
    (code,) = finish(
        [start_worker(script, url, name, 4, 1, tmp_path, FIT_SECONDS=0, SPACE="other")]
    )
    log = (tmp_path / "worker-1.log").read_text()
    assert code == 1 and "was created with a different search space" in log
    with pytest.raises(ValueError, match=r"was scored with 'accuracy', but this search .*roc_auc"):
        tk.search(LogisticRegression(), X, y, space=SPACE, n_trials=4, scoring="roc_auc", **kwargs)
    study = wait_for_study(url, name)
    assert ([t.params for t in study.trials], dict(study.user_attrs)) == before
    # a study of that name that minimizes: refused before any trial
    other = f"{name}-min"
    storage = make_storage(url, heartbeat_interval=0)
    optuna.create_study(study_name=other, storage=storage, direction="minimize")
    try:
        with pytest.raises(ValueError, match=r"minimizes, but tunekit maximizes.*study_name"):
            kwargs["study_name"] = other
            tk.search(LogisticRegression(), X, y, space=SPACE, n_trials=2, **kwargs)
        assert optuna.load_study(study_name=other, storage=storage).trials == []
    finally:
        optuna.delete_study(study_name=other, storage=storage)


# ----------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize("backend", [POSTGRES], indirect=True)
def test_nan_and_inf_scores_fail_and_are_never_the_best(backend, script, tmp_path):
    url, name = backend
    n_trials = 12
    procs = [
        start_worker(
            script,
            url,
            name,
            n_trials,
            i,
            tmp_path,
            FIT_SECONDS=0,
            BAD_SCORES=1,
            REPORT_DIR=tmp_path / f"report-{i}",
        )
        for i in range(2)
    ]
    assert finish(procs) == [0, 0], [p.log_path.read_text()[-2000:] for p in procs]
    study = wait_for_study(url, name)
    trials = study.get_trials(deepcopy=False)
    bad = [t for t in trials if not 0.1 <= t.params["C"] <= 3.0]
    good = [t for t in trials if 0.1 <= t.params["C"] <= 3.0]
    assert bad and good, "the sampler should have tried both kinds of C"
    assert all(t.state.name == "FAIL" for t in bad)
    assert all("non-finite score" in t.user_attrs["failure_reason"] for t in bad)
    assert all(t.state.name == "COMPLETE" and math.isfinite(t.value) for t in good)
    assert 0.1 <= study.best_trial.params["C"] <= 3.0
    results = cv_results_from_study(study)
    for row, number in enumerate(results["trial_number"]):
        expected = "FAIL" if trials[number] in bad else "COMPLETE"
        assert results["state"][row] == expected
        if expected == "FAIL":
            assert math.isnan(results["mean_test_score"][row])
            assert results["rank_test_score"][row] == max(results["rank_test_score"])
    board = json.loads((tmp_path / "report-0" / "leaderboard.json").read_text())
    # the written report ranks them last too (it was written by one worker, perhaps before
    # the other one finished its last trials: compare its own rows, not the final study's)
    states = [r["state"] for r in board["rows"] if r["state"] in ("COMPLETE", "FAIL")]
    assert states[0] == "COMPLETE" and "FAIL" in states
    assert states == sorted(states, key=lambda state: state == "FAIL")
    counts = {"started": len(trials), "failed": len(bad), "finished": len(good), "retried": 0}
    report(f"NaN/inf [{url.split(':')[0]}]", counts, target=n_trials, workers=2)


def test_optuna_inf_value_recorded_complete_is_reported_fail(backend):
    """Optuna stores an objective's inf as COMPLETE; the report still calls it FAIL."""
    url, name = backend
    storage = make_storage(url, heartbeat_interval=0)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    values = iter([0.5, math.inf, 0.7])
    study.optimize(lambda t: (t.suggest_float("C", 0.1, 1.0), next(values))[1], n_trials=3)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3  # Optuna's view
    results = cv_results_from_study(optuna.load_study(study_name=name, storage=storage))
    assert list(results["state"]) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert results["failure_reason"][1] == "non-finite score"
    assert results["rank_test_score"][2] == 1 and results["rank_test_score"][1] == 3


# ----------------------------------------------------------------- storage lost
class _Proxy:
    """A TCP relay to PostgreSQL that can be shut down: "the server stopped mid-run".

    The shared PostgreSQL server is never touched; stopping the relay closes
    every connection and refuses new ones, exactly as a stopped server would.
    """

    def __init__(self, target):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.mark.postgres
@pytest.mark.slow  # about 11 s; the default suite keeps the unreachable storage's errors
def test_database_lost_mid_run_is_a_clear_error_and_the_study_resumes(script, tmp_path):
    url = reachable_postgres_url()
    from sqlalchemy.engine import make_url

    real = make_url(url)
    proxy = _Proxy((real.host or "127.0.0.1", real.port or 5432))
    password = "hunter2secret"  # trust authentication ignores it; it must never be shown
    via_proxy = real.set(password=password, host="127.0.0.1", port=proxy.port)
    via_proxy = via_proxy.render_as_string(hide_password=False)
    name = f"faults-lost-{uuid.uuid4().hex[:12]}"
    report_dir = tmp_path / "report"
    try:
        worker = start_worker(
            script, via_proxy, name, 30, 0, tmp_path, FIT_SECONDS=0.3, REPORT_DIR=report_dir,
            TUNEKIT_RECONNECT_SECONDS=0,  # no reconnects: the relay's end is final here
        )  # fmt: skip
        study = wait_for_study(url, name)
        running_trial_of(study, worker.pid, min_finished=2)
        proxy.stop()
        (code,) = finish([worker], timeout=60)
        log = worker.log_path.read_text()
        assert code == EXIT_STORAGE, log[-3000:]
        assert "lost the Optuna storage postgresql" in log and "***" in log
        assert password not in log
        assert not report_dir.exists(), "no report may be written after a lost storage"
        assert "RUNNING" in [t.state.name for t in study.trials]  # the server never heard back
        finished_before = sum(t.state.name in FINISHED for t in study.trials)
        # the database is back: the same command resumes, the orphaned trial is retried
        (code,) = finish(
            [start_worker(script, url, name, finished_before + 2, 1, tmp_path, FIT_SECONDS=0.1)]
        )
        assert code == 0
        counts = accounting(study)
        assert counts["failed"] == 1 and counts["retried"] == 1
        assert_nothing_lost(study, counts["failed_numbers"])
        report(
            "storage lost mid-run [postgresql]",
            counts,
            target=f"30, then {finished_before + 2}",
            workers="1, then 1",
        )
    finally:
        proxy.stop()
        storage = make_storage(url, heartbeat_interval=0)
        if name in optuna.study.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.parametrize(
    "url, match",
    [
        ("postgresql://postgres:hunter2secret@127.0.0.1:1/test", r"Connection refused"),
        ("sqlite:////nonexistent-dir/tunekit/study.db", r"unable to open database file"),
    ],
)
def test_unreachable_storage_is_a_clear_error_before_any_trial(url, match, script, tmp_path):
    report_dir = tmp_path / "report"
    (code,) = finish(
        [start_worker(script, url, "s", 2, 0, tmp_path, FIT_SECONDS=0, REPORT_DIR=report_dir)]
    )
    log = (tmp_path / "worker-0.log").read_text()
    assert code == 1
    assert "cannot open the Optuna storage" in log and "hunter2secret" not in log
    assert "Check the URL, that the database server is running" in log
    assert not report_dir.exists()
    with pytest.raises(ValueError, match=match):
        make_storage(url)


# ----------------------------------------------------------------- signals at any instant
STUDY_SCRIPT = '''
"""A fault-test study: a slow logistic regression (FIT_SECONDS per fit, SCORE_SECONDS per
predict); SIGNAL_AT_WRITE=N sends SIGINT to itself from inside its N-th storage write."""
import os
import signal
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

import tunekit as tk
from tunekit import cli


class SlowLogisticRegression(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        time.sleep(float(os.environ.get("FIT_SECONDS", "0.2")))
        return super().fit(X, y, sample_weight=sample_weight)

    def predict(self, X):
        time.sleep(float(os.environ.get("SCORE_SECONDS", "0")))
        return super().predict(X)


def signal_at_write(n):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = [0]

    @event.listens_for(Engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            seen[0] += 1
            if seen[0] == n:  # the handler runs inside this transaction
                os.kill(os.getpid(), signal.SIGINT)


def main(argv=None):
    opts = cli.study_options("faulty", argv, description=__doc__, n_trials=(2, 4, 4))
    if os.environ.get("SIGNAL_AT_WRITE"):
        signal_at_write(int(os.environ["SIGNAL_AT_WRITE"]))
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    space = {"C": tk.Float(0.01, 100.0, log=True)}
    return cli.study_main(opts, SlowLogisticRegression(), X, y, space=space, cv=2, test_size=None)


if __name__ == "__main__":
    sys.exit(main())
'''
STOP_CODES = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}


@pytest.fixture
def study_script(tmp_path):
    path = tmp_path / "faulty.py"
    path.write_text(STUDY_SCRIPT)
    return path


def study_command(script, url, name, n_trials, *, launcher=False, worker=True, workers=1):
    """The study as a user starts it: the script itself, or through ``tunekit run``."""
    flags = ["--storage", url, "--study-name", name, "--n-trials", str(n_trials), "-q"]
    if launcher:
        extra = ["--workers", str(workers)] if workers > 1 else []
        return [sys.executable, "-m", "tunekit", "run", *extra, str(script), *flags]
    return [sys.executable, str(script), *flags, *(["--worker"] if worker else [])]


def start(command, tmp_path, label, **env):
    log = open(tmp_path / f"{label}.log", "ab")
    proc = subprocess.Popen(
        command,
        env={**os.environ, **HEARTBEAT, "TF_CPP_MIN_LOG_LEVEL": "3",
             **{k: str(v) for k, v in env.items()}},
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    proc.log_path, proc.log_file = tmp_path / f"{label}.log", log
    return proc


def sqlite_integrity(url) -> str:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def finished_trials(url, name) -> dict:
    """``{number: (params, value)}`` of the finished trials (empty before the study exists)."""
    storage = make_storage(url, heartbeat_interval=0)
    if name not in optuna.study.get_all_study_names(storage):
        return {}
    study = optuna.load_study(study_name=name, storage=storage)
    return {
        t.number: (t.params, t.value)
        for t in study.get_trials(deepcopy=False)
        if t.state.name in FINISHED
    }


def handlers_in(pid) -> bool:
    """Whether process ``pid`` catches SIGTERM: tunekit's handlers are installed."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:"))[7:], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def wait_for_handlers(proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not handlers_in(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def children(pid) -> list[int]:
    """The child processes of ``pid`` (Linux)."""
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def alive(pid) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def wait_for_children(proc, n, timeout=60):
    deadline = time.monotonic() + timeout
    while len(children(proc.pid)) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return children(proc.pid)


def reached(url, name, phase, proc, timeout=300) -> None:
    """Wait until a study's run reached ``phase`` (or ended): ``"study"`` (its storage holds
    the study), ``"running"`` (a trial with parameters RUNNING) or ``k`` (k trials finished)."""
    storage = make_storage(url, heartbeat_interval=0)
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"{name} never reached {phase!r}"
        if name in optuna.study.get_all_study_names(storage):
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
            if (
                phase == "study"
                or (phase == "running" and any(t.state.name == "RUNNING" and t.params
                                               for t in trials))
                or (isinstance(phase, int) and sum(t.state.name in FINISHED for t in trials)
                    >= phase)
            ):  # fmt: skip
                return
        time.sleep(0.02)


def interrupted_run(script, url, tmp_path, signum, delay, *, after=None, launcher=False,
                    workers=1, n_trials=3, **env):  # fmt: skip
    """Signal a fresh study ``delay`` s after its handlers are in (or after it reached the
    phase ``after``, see :func:`reached`); check how it stopped.

    Checks: the exit code, no traceback, nothing RUNNING, SQLite's integrity. Returns
    the study's name, the exit code and its finished trials, for :func:`check_resumed`.
    """
    name = f"faults-sig-{uuid.uuid4().hex[:10]}"
    command = study_command(script, url, name, n_trials, launcher=launcher, workers=workers)
    proc = start(command, tmp_path, f"run-{name}", **env)
    wait_for_handlers(proc)  # the launcher's own start-up (Python's) is not tunekit's to guard
    if launcher and workers > 1 and not delay:
        wait_for_children(proc, workers)  # the workers are starting: their signals held back
    if after is not None:
        reached(url, name, after, proc)
    time.sleep(delay)
    sent = proc.poll() is None
    if sent:
        proc.send_signal(signum)
    (code,) = finish([proc], timeout=120)
    log = proc.log_path.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    storage = make_storage(url, heartbeat_interval=0)
    running = []
    if name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert not running, log[-2000:]  # stopped at a safe point: nothing left RUNNING
    if url.startswith("sqlite"):
        assert sqlite_integrity(url) == "ok"
    if sent:
        assert code in (STOP_CODES[signum], 0), log[-3000:]  # 0: it had already finished
    return {"url": url, "name": name, "code": code if sent else "finished first",
            "before": finished_trials(url, name)}  # fmt: skip


def check_resumed(run, *, n_trials=3, workers=1) -> dict:
    """After a run of the same command: the study finished, no finished trial changed or
    ran twice, every interrupted trial ran again; its accounting."""
    url, name, before = run["url"], run["name"], run["before"]
    study = wait_for_study(url, name)
    counts = accounting(study)
    after = finished_trials(url, name)
    assert all(after[n] == before[n] for n in before), "a finished trial changed"
    params = [p for p, _ in after.values()]
    assert len(params) == len({json.dumps(p, sort_keys=True) for p in params}), "a duplicate"
    assert n_trials <= counts["finished"] <= n_trials + workers
    assert_nothing_lost(study, [n for n in counts["failed_numbers"] if study.trials[n].params])
    return {"code": run["code"], **counts}


def interrupt_and_resume(script, url, tmp_path, signum, delay, *, launcher=False, workers=1,
                         **env):  # fmt: skip
    """Signal a study ``delay`` s after its handlers are in, then run it again: a table row."""
    n_trials = 3
    run = interrupted_run(script, url, tmp_path, signum, delay, launcher=launcher,
                          workers=workers, n_trials=n_trials, **env)  # fmt: skip
    command = study_command(script, url, run["name"], n_trials)
    rerun = start(command, tmp_path, f"run-{run['name']}-again", FIT_SECONDS=0.05)
    assert finish([rerun], timeout=120) == [0], rerun.log_path.read_text()[-3000:]
    return check_resumed(run, n_trials=n_trials, workers=workers)


RESUME_ALL = """
import json, runpy, sys
script, n_trials, studies = sys.argv[1], sys.argv[2], sys.argv[3:]
main = runpy.run_path(script)["main"]  # not as __main__: each study is one call of main()
codes = {name: main(["--storage", url, "--study-name", name, "--n-trials", n_trials, "-q"])
         for url, name in zip(studies[::2], studies[1::2])}
print("CODES " + json.dumps(codes))
"""


def resume_all(script, runs, tmp_path, n_trials=3) -> dict:
    """Run the study script once per study, in one process (one TensorFlow start-up)."""
    studies = [x for run in runs for x in (run["url"], run["name"])]
    command = [sys.executable, "-c", RESUME_ALL, str(script), str(n_trials), *studies]
    proc = start(command, tmp_path, "resume-all", FIT_SECONDS=0.05)
    assert finish([proc], timeout=600) == [0], proc.log_path.read_text()[-3000:]
    line = next(x for x in proc.log_path.read_text().splitlines() if x.startswith("CODES "))
    return json.loads(line[6:])


def _instants(n, seed, span):
    rng = np.random.RandomState(seed)
    return sorted(float(t) for t in rng.uniform(0.0, span, size=n))


@pytest.mark.slow  # the twenty-instant test covers the same ground; CI runs both
@pytest.mark.timeout(600)  # six TensorFlow start-ups: over 3 min at a load of 20 on 2 cores
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_signal_at_three_instants_stops_at_a_safe_point_and_resumes(
    backend, study_script, tmp_path
):
    """The workers' start-up (signals held back until their handlers exist), training,
    and a storage transaction (the handler runs inside it); SIGINT and SIGTERM."""
    url, _ = backend
    rows = [
        interrupt_and_resume(study_script, url, tmp_path, signal.SIGINT, 0.0, launcher=True,
                             workers=2),
        interrupt_and_resume(study_script, url, tmp_path, signal.SIGTERM, 2.5),
        interrupt_and_resume(study_script, url, tmp_path, signal.SIGINT, 0.0,
                             SIGNAL_AT_WRITE=20, FIT_SECONDS=1.0),
    ]  # fmt: skip
    # the start-up signal is honoured (not lost: the workers never finish the study)
    assert rows[0]["code"] == EXIT_SIGINT
    assert rows[2]["code"] == EXIT_SIGINT
    for row, what in zip(rows, ("workers' start-up", "training", "in a transaction"), strict=True):
        row["at"] = what
    report("signals at 3 instants [sqlite]", {"runs": rows}, target=3, workers="2, 1, 1")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_signal_at_twenty_random_instants(backend, study_script, tmp_path):
    """Through ``tunekit run``: start-up, training, scoring, storage writes and the report.

    Each instant is a fresh study, signalled, then resumed; the twenty resumes run in one
    process, one study script call each, to keep the test's TensorFlow start-ups down.
    """
    shared, _ = backend
    # how long start-up takes depends on the machine's load: each instant is a random time
    # after one of five points of the run, so that every phase is hit on any machine
    # (the launcher's handlers in; the storage open; a trial training; one trial finished;
    # the target reached, the report being written)
    phases = [None, "study", "running", 1, 3]
    instants = _instants(20, seed=0, span=2.0)

    def one(i):
        signum, after = (signal.SIGINT, signal.SIGTERM)[i % 2], phases[i % len(phases)]
        url = f"sqlite:///{tmp_path / f'study-{i}.db'}" if shared.startswith("sqlite") else shared
        run = interrupted_run(study_script, url, tmp_path, signum, instants[i], after=after,
                              launcher=True, SCORE_SECONDS=0.05)  # fmt: skip
        return {"after": after or "handlers", "at_s": round(instants[i], 2),
                "signal": signal.Signals(signum).name, **run}  # fmt: skip

    # the runs are independent studies: a few at a time, each signalled at its own instant
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(one, range(len(instants))))
    codes = resume_all(study_script, runs, tmp_path)
    assert set(codes.values()) == {0}, codes
    rows = [{k: r[k] for k in ("after", "at_s", "signal")} | check_resumed(r) for r in runs]
    assert any(r["code"] in (EXIT_SIGINT, EXIT_SIGTERM) for r in rows)
    report(f"signals at 20 instants [{shared.split(':')[0]}]", {"runs": rows}, target=3, workers=1)


STARTUP_INSTANTS = [round(0.05 * k, 2) for k in range(1, 31)]  # 0.05 s to 1.5 s


def tunekit_command() -> str:
    """The ``tunekit`` console script of this environment, as a user runs it."""
    exe = os.path.join(os.path.dirname(sys.executable), "tunekit")
    if not os.path.exists(exe):
        pytest.skip("the tunekit console script is not installed next to this Python")
    return exe


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    "launcher",
    ["tunekit run", "tunekit run --workers 2", "workers -n 2"],
    ids=["tunekit-run", "tunekit-run-workers-2", "python-m-workers-2"],
)
def test_no_signal_of_the_first_second_and_a_half_is_lost(launcher, study_script, tmp_path):
    """A launcher signalled 0.05 s to 1.5 s after it was started, every 0.05 s.

    ``tunekit run`` (the console script) with one worker and with two, and
    ``python -m tunekit.workers -n 2``.

    The study would run for minutes (400 trials); each run must stop in seconds
    with the signal's own status (130 SIGINT, 143 SIGTERM), with nothing RUNNING in
    the storage. A signal in the interpreter's own start-up, before any of tunekit
    runs, may end it outright (killed, or Python's "Fatal Python error" at start-up):
    also never lost, and counted.
    """
    url = f"sqlite:///{tmp_path / 'study.db'}"
    if launcher.startswith("tunekit run"):
        command = [tunekit_command(), *launcher.split()[1:], str(study_script)]
    else:
        command = [sys.executable, "-m", "tunekit.workers", "-n", "2", str(study_script)]
    rows, outright = [], 0
    for i, delay in enumerate(STARTUP_INSTANTS):
        signum = (signal.SIGINT, signal.SIGTERM)[i % 2]
        name = f"startup-{i}"
        flags = ["--storage", url, "--study-name", name, "--n-trials", "400", "-q"]
        if launcher.startswith("workers"):
            flags.append("--worker")
        began = time.monotonic()
        proc = start([*command, *flags], tmp_path, name, FIT_SECONDS=0.05)
        time.sleep(max(0.0, began + delay - time.monotonic()))
        late = round(time.monotonic() - began - delay, 3)
        assert proc.poll() is None, proc.log_path.read_text()[-2000:]
        proc.send_signal(signum)
        (code,) = finish([proc], timeout=90)  # a lost signal: the study runs for minutes
        log = proc.log_path.read_text()
        # in the interpreter's own start-up, before any of tunekit runs: killed by SIGTERM, or
        # SIGINT's KeyboardInterrupt makes Python's initialisation fail (status 1)
        in_python = code == -signum or (code == 1 and log.startswith("Fatal Python error: init"))
        assert code == 128 + signum or in_python, f"at {delay} s, {signum!r}: {code}\n{log[-3000:]}"
        outright += in_python
        finished, running = 0, []
        if name in optuna.study.get_all_study_names(make_storage(url, heartbeat_interval=0)):
            trials = wait_for_study(url, name).get_trials(deepcopy=False)
            finished = sum(t.state.name in FINISHED for t in trials)
            running = [t.number for t in trials if t.state.name == "RUNNING"]
        assert not running, f"at {delay} s: trials {running} left RUNNING\n{log[-2000:]}"
        took = round(time.monotonic() - began, 1)
        rows.append({"at_s": delay, "late_s": late, "signal": signal.Signals(signum).name,
                     "code": code, "finished": finished, "s": took})  # fmt: skip
    report(f"signals in the first 1.5 s [{launcher}, sqlite]",
           {"runs": rows, "in_python_start_up": outright}, target=400)  # fmt: skip


@pytest.mark.slow  # about 20 s: two study start-ups
def test_a_second_signal_within_two_seconds_quits_at_once(study_script, tmp_path):
    """Mid-fit (a 60 s fit): the second Ctrl-C does not wait for the safe point."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    name = "faults-twice"
    proc = start(study_command(study_script, url, name, 3), tmp_path, "twice", FIT_SECONDS=60)
    study = wait_for_study(url, name)
    deadline = time.monotonic() + 120
    while not [t for t in study.get_trials(deepcopy=False) if t.params]:
        assert time.monotonic() < deadline and proc.poll() is None, proc.log_path.read_text()
        time.sleep(0.1)
    time.sleep(0.5)  # inside the first fit
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    (code,) = finish([proc], timeout=20)  # far less than the fit: it did not wait for it
    log = proc.log_path.read_text()
    assert code == EXIT_SIGINT and "SIGINT again: quitting now" in log, log[-2000:]
    assert "Traceback" not in log
    assert sqlite_integrity(url) == "ok"
    # the trial it left RUNNING is failed once its heartbeat is stale (3 s) and run again
    time.sleep(4)
    rerun = start(study_command(study_script, url, name, 3), tmp_path, "twice-again",
                  FIT_SECONDS=0.05)  # fmt: skip
    assert finish([rerun]) == [0], rerun.log_path.read_text()[-3000:]
    counts = accounting(wait_for_study(url, name))
    assert counts["failed"] == 1 and counts["retried"] == 1 and counts["finished"] == 3
    assert_nothing_lost(wait_for_study(url, name), counts["failed_numbers"])
    report("second Ctrl-C within 2 s [sqlite]", {"code": code, **counts}, target=3, workers=1)


@pytest.mark.parametrize(
    "launcher", [pytest.param("tunekit run", marks=pytest.mark.slow),
                 pytest.param("python -m tunekit.workers", marks=pytest.mark.slow)]
)
def test_the_workers_stop_when_their_launcher_is_killed(launcher, study_script, tmp_path):
    """``kill -9`` of the launcher: no study process survives it (parent-death signal)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    name = "faults-orphans"
    flags = ["--storage", url, "--study-name", name, "--n-trials", "40", "-q"]
    if launcher == "tunekit run":
        command = [sys.executable, "-m", "tunekit", "run", "--workers", "2", str(study_script)]
    else:
        command = [sys.executable, "-m", "tunekit.workers", "-n", "2", str(study_script)]
        flags.append("--worker")
    # both workers stop at once: a retry one of them takes up while stopping fails again,
    # so this test allows more than one retry per trial (TUNEKIT_MAX_RETRY)
    proc = start([*command, *flags], tmp_path, "launcher", FIT_SECONDS=0.3, TUNEKIT_MAX_RETRY=3)
    workers = wait_for_children(proc, 2)
    assert len(workers) == 2
    study = wait_for_study(url, name, timeout=300)
    deadline = time.monotonic() + 300
    while sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False)) < 1:
        assert time.monotonic() < deadline, proc.log_path.read_text()[-3000:]
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    proc.log_file.close()
    deadline = time.monotonic() + 3 + 10  # the grace period, and the time a stop may take
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"study processes {survivors} outlived their launcher"
    time.sleep(4)  # heartbeats of any trial a worker could not close go stale
    rerun = start(study_command(study_script, url, name, 6), tmp_path, "after", FIT_SECONDS=0,
                  TUNEKIT_MAX_RETRY=3)  # fmt: skip
    assert finish([rerun]) == [0], rerun.log_path.read_text()[-3000:]
    study = wait_for_study(url, name)
    counts = accounting(study)
    assert_nothing_lost(study, [n for n in counts["failed_numbers"] if study.trials[n].params])
    params = [json.dumps(t.params) for t in study.trials if t.state.name in FINISHED]
    assert len(params) == len(set(params)), "a finished trial ran again"
    report(f"launcher killed [{launcher}, sqlite]", counts, target=6, workers=2)


# ----------------------------------------------------------------- a real PostgreSQL restart
class OwnPostgres:
    """A PostgreSQL server of the test's own, on a free loopback port (never the shared one).

    ``initdb`` into a temporary directory, run as the ``postgres`` user when the
    tests run as root; trust authentication; stopped and deleted afterwards.
    """

    def __init__(self):
        import glob
        import pwd
        import shutil
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
        if not found[-1]:
            pytest.skip("initdb is not installed (PostgreSQL server binaries)")
        self.bin = os.path.dirname(found[-1])
        self.user = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a postgres user to run the server as")
            self.user = ["runuser", "-u", "postgres", "--"]
        self.root = tempfile.mkdtemp(prefix="tunekit-pg-")
        os.chmod(self.root, 0o755)
        if self.user:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = os.path.join(self.root, "data")
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args, check=True):
        return subprocess.run(
            [*self.user, os.path.join(self.bin, tool), *args],
            capture_output=True, text=True, timeout=120, check=check, cwd=self.root,
        )  # fmt: skip

    def _ctl(self, *args):
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=60"
        )
        log = os.path.join(self.root, "server.log")
        return self._run("pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", *args)

    def start(self):
        self._ctl("start")

    def stop(self):
        self._ctl("stop", "-m", "fast")

    def close(self):
        import shutil

        self._run("pg_ctl", "-D", self.data, "stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres():
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()


def unique_finished(study) -> None:
    """No candidate finished twice, and every failed one with parameters ran again."""
    trials = study.get_trials(deepcopy=False)
    params = [json.dumps(t.params, sort_keys=True) for t in trials if t.state.name in FINISHED]
    assert len(params) == len(set(params)), "a trial ran twice"
    assert_nothing_lost(study, [t.number for t in trials if t.state.name == "FAIL" and t.params])


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_ride_out_a_real_postgresql_restart(own_postgres, script, tmp_path):
    url, name, n_trials = own_postgres.url, "faults-restart", 12
    procs = [
        start_worker(script, url, name, n_trials, i, tmp_path, FIT_SECONDS=0.3)
        for i in range(3)
    ]
    study = wait_for_study(url, name, timeout=300)
    deadline = time.monotonic() + 300
    while sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # a restart: pg_ctl stop -m fast cuts every connection; the server stays down until a
    # worker has found it unreachable (however fast the machine restarts it), then starts
    own_postgres.stop()
    deadline = time.monotonic() + 120
    while not any("unreachable" in p.log_path.read_text() for p in procs):
        assert time.monotonic() < deadline, "no worker saw the server go away"
        assert all(p.poll() is None for p in procs), [p.log_path.read_text() for p in procs]
        time.sleep(0.05)
    own_postgres.start()
    codes = finish(procs, timeout=180)
    logs = [p.log_path.read_text() for p in procs]
    failed = [f"worker {i} exited {c}:\n{logs[i][-6000:]}" for i, c in enumerate(codes) if c]
    assert not failed, "\n".join(failed)
    study = wait_for_study(url, name)
    counts = accounting(study)  # nothing RUNNING or WAITING, numbers unique
    assert n_trials <= counts["finished"] <= n_trials + 2
    unique_finished(study)
    report("PostgreSQL restart -m fast [own server]", counts, target=n_trials, workers=3)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_server_down_past_the_retry_budget_exits_75_then_resumes(
    own_postgres, study_script, tmp_path
):
    password = "hunter2secret"  # trust authentication ignores it; it must never be shown
    url = own_postgres.url.replace("postgres@", f"postgres:{password}@")
    name, n_trials = "faults-down", 40
    command = study_command(study_script, url, name, n_trials, launcher=True, workers=2)
    proc = start(command, tmp_path, "down", FIT_SECONDS=0.3, TUNEKIT_RECONNECT_SECONDS=3)
    study = wait_for_study(own_postgres.url, name, timeout=300)
    deadline = time.monotonic() + 300
    while sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False)) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.log_path.read_text()
        time.sleep(0.2)
    own_postgres.stop()
    (code,) = finish([proc], timeout=120)
    log = proc.log_path.read_text()
    assert code == 75, log[-3000:]
    assert "the study's storage was lost" in log
    assert sum(f"[worker {i}] " in log and "lost the Optuna storage" in log for i in (0, 1))
    assert password not in log
    own_postgres.start()
    time.sleep(4)  # the trials the workers could not close go stale (grace 3 s)
    rerun = start(study_command(study_script, url, name, 6), tmp_path, "back", FIT_SECONDS=0)
    assert finish([rerun]) == [0], rerun.log_path.read_text()[-3000:]
    study = wait_for_study(own_postgres.url, name)
    counts = accounting(study)
    unique_finished(study)
    report("PostgreSQL down past the budget [own server]", {"code": code, **counts},
           target=f"{n_trials}, then 6", workers="2, then 1")  # fmt: skip


# ----------------------------------------------------------------- soak
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_soak(tmp_path, storage, workers, n_trials, arms="batched"):
    out = tmp_path / f"soak-{storage}-{workers}.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "soak.py"), "--storage", storage,
         "--workers", str(workers), "--n-trials", str(n_trials), "--arms", arms,
         "--json", str(out)],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("storage", ["sqlite", POSTGRES])
def test_a_small_soak_finishes_every_trial_once(storage, tmp_path):
    if storage == "postgres":
        reachable_postgres_url()
    (row,) = run_soak(tmp_path, storage, workers=2, n_trials=8)
    assert 8 <= row["finished"] <= 9 and row["not_unique"] == 0 and row["left_running"] == 0
    assert row["statements_per_trial"] > 0 and row["commits_per_trial"] > 0
    report(f"small soak [{storage}]", row, target=8, workers=2)


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("storage", ["sqlite", POSTGRES])
def test_soak_of_eight_workers_and_two_hundred_trials(storage, tmp_path):
    if storage == "postgres":
        reachable_postgres_url()
    rows = run_soak(tmp_path, storage, workers=8, n_trials=200)
    assert all(r["ok"] for r in rows)
    report(f"soak [{storage}]", rows[0], target=200, workers=8)
