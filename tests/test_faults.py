"""Faults a study shared by worker processes must survive, with nothing lost.

Every test here starts real worker processes (``python -m tunekit.workers
SCRIPT``) on one study, on PostgreSQL (``TUNEKIT_TEST_POSTGRES_URL``; marked
``postgres``, skipped when unset) and on an SQLite file, then checks the
study's accounting: trials started, finished, failed and retried; unique trial
numbers; nothing RUNNING or WAITING at the end; every failed trial's parameters
run again in a later trial. Heartbeats are sped up through the environment
(interval 1 s, grace 3 s) so that a killed worker is noticed in seconds.
"""

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
from _postgres import postgres_url
from sklearn.linear_model import LogisticRegression

import tunekit as tk
import tunekit.workers
from tunekit.report import cv_results_from_study
from tunekit.storage import make_storage
from tunekit.workers import EXIT_SIGINT, EXIT_SIGTERM, EXIT_STORAGE

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


class SlowLogisticRegression(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        time.sleep(float(os.environ.get("FIT_SECONDS", "0.2")))
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


def _postgres_or_skip() -> str:
    url = postgres_url()
    if not url:
        pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    try:
        make_storage(url, heartbeat_interval=0)
    except ValueError as err:
        pytest.skip(f"PostgreSQL is not reachable: {err}")
    return url


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
BOTH = [POSTGRES, "sqlite"]


@pytest.fixture(params=BOTH)
def backend(request, tmp_path):
    """``(storage URL, study name)``: a fresh study name, deleted afterwards."""
    if request.param == "postgres":
        url = _postgres_or_skip()
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


def open_study(url, name, timeout=60):
    """The study as the test sees it (no heartbeats of its own), once a worker made it."""
    storage = make_storage(url, heartbeat_interval=0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in optuna.study.get_all_study_names(storage):
            return optuna.load_study(study_name=name, storage=storage)
        time.sleep(0.2)
    pytest.fail(f"no worker created study {name!r} within {timeout} s")


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
def test_kill_9_of_one_of_four_workers_loses_nothing(backend, script, tmp_path):
    url, name = backend
    n_trials, n_workers = 10, 4
    procs = [
        start_worker(script, url, name, n_trials, i, tmp_path, FIT_SECONDS=0.3)
        for i in range(n_workers)
    ]
    study = open_study(url, name)
    victim = procs[1]
    running_trial_of(study, victim.pid, min_finished=2)
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
        pytest.param(signal.SIGTERM, EXIT_SIGTERM, "postgres", True, marks=pytest.mark.postgres),
        (signal.SIGTERM, EXIT_SIGTERM, "sqlite", False),
        # the same path as SIGTERM up to the exit
        pytest.param(signal.SIGINT, EXIT_SIGINT, "postgres", False, marks=pytest.mark.postgres),
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
        )
        for i in range(n_workers)
    ]
    study = open_study(url, name)
    victim = procs[0]
    (killed,) = running_trial_of(study, victim.pid, min_finished=1)
    stopped_at = time.monotonic()
    os.kill(victim.pid, signum)
    assert victim.wait(timeout=30) == status, victim.log_path.read_text()[-3000:]
    exited_after = time.monotonic() - stopped_at
    # the trial is FAIL the moment the worker is gone: no grace period to wait for
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert by_number[killed].state.name == "FAIL"
    codes = finish(procs)
    assert codes[1:] == [0] * (n_workers - 1)
    counts = accounting(study)
    assert counts["failed_numbers"] == [killed]
    assert counts["retried"] == 1
    assert n_trials <= counts["finished"] <= n_trials + n_workers - 1
    assert_nothing_lost(study, [killed])
    reason = study.trials[killed].user_attrs.get("failure_reason", "")
    assert signal.Signals(signum).name in reason
    log = victim.log_path.read_text()
    assert f"stopped by {signal.Signals(signum).name}" in log
    # SIGTERM stops at once: no result, no report. SIGINT is Ctrl-C: the worker returns
    # what finished (its report) and then exits with 130.
    assert (tmp_path / "report-0" / "leaderboard.json").exists() == (signum == signal.SIGINT)
    counts["worker_exit_seconds"] = round(exited_after, 2)
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
        running_trial_of(open_study(url, "s"), os.getpid(), min_finished=1)
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
        states = [t.state.name for t in open_study(url, "s").trials]
        assert states.count("FAIL") == 1 and states[-1] == "WAITING"  # queued for the next run
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
def test_resume_after_every_worker_died(backend, script, tmp_path):
    url, name = backend
    n_trials = 8
    procs = [
        start_worker(script, url, name, n_trials, i, tmp_path, FIT_SECONDS=0.3) for i in range(2)
    ]
    study = open_study(url, name)
    for proc in procs:  # one after the other, each mid-trial, well within the grace period
        running_trial_of(study, proc.pid, min_finished=3)
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
    study = open_study(url, name)
    orphan = study.ask()  # no heartbeat: Optuna would never count it as stale
    orphan.suggest_float("C", 0.01, 100.0, log=True)
    later = types.SimpleNamespace(datetime=_ThreeGracePeriodsLater, timedelta=datetime.timedelta)
    monkeypatch.setattr(tunekit.workers, "datetime", later)
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
    study = open_study(url, name)
    before = ([t.params for t in study.trials], dict(study.user_attrs))
    # another space, from another worker process: it stops with the error, writes nothing
    (code,) = finish(
        [start_worker(script, url, name, 4, 1, tmp_path, FIT_SECONDS=0, SPACE="other")]
    )
    log = (tmp_path / "worker-1.log").read_text()
    assert code == 1 and "was created with a different search space" in log
    with pytest.raises(ValueError, match=r"was scored with 'accuracy', but this search .*roc_auc"):
        tk.search(LogisticRegression(), X, y, space=SPACE, n_trials=4, scoring="roc_auc", **kwargs)
    study = open_study(url, name)
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
    study = open_study(url, name)
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
    assert board["rows"][0]["state"] == "COMPLETE"  # the written report ranks them last too
    assert {r["state"] for r in board["rows"][-len(bad) :]} == {"FAIL"}
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
def test_database_lost_mid_run_is_a_clear_error_and_the_study_resumes(script, tmp_path):
    url = _postgres_or_skip()
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
            script, via_proxy, name, 30, 0, tmp_path, FIT_SECONDS=0.3, REPORT_DIR=report_dir
        )
        study = open_study(url, name)
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
