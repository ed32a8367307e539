"""Dead workers of a shared Optuna study: failed, run again, and the study reaches its target.

The process tests start real ``tk.search`` processes on one study (an SQLite
file, and PostgreSQL under the ``postgres`` marker), ``kill -9`` one of them
once the storage shows its trials RUNNING, start no process after it, and
check that the survivors alone bring the study to ``n_trials``: nothing left
RUNNING or WAITING, unique trial numbers, and every killed trial FAIL with a
finished trial of the same parameters. They run on both ways tunekit runs
Optuna trials: in batches on the stacked engine, and one at a time
(``engine="sklearn"``). Heartbeats are sped up through the documented
environment variables (interval 1 s, grace 3 s).

The fast tests check the one heartbeat check and the heartbeat thread on a
real SQLite storage, and a batched search that finds a dead worker's trials
in its study.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings

import numpy as np
import optuna
import pytest
from _postgres import reachable_postgres_url
from _studies import wait_for_study

import tunekit as tk
from tunekit.storage import Heartbeats, fail_stale_trials, heartbeat_interval, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

HEARTBEAT = {"TUNEKIT_HEARTBEAT_INTERVAL": "1", "TUNEKIT_GRACE_PERIOD": "3"}
# a grace period of 3 s (2 s in the direct checks) is surely past after this long: SQLite
# keeps heartbeat times to the second
STALE_AFTER = 5.0
FINISHED = ("COMPLETE", "PRUNED")
N_TRIALS = 12
SPACE = {"model__l2": tk.Float(1e-5, 1e-2, log=True)}

SCRIPT = """
import os

import numpy as np
import optuna

import tunekit as tk

rng = np.random.RandomState(0)
X = rng.normal(size=(240, 8)).astype("float32")
y = (X[:, 0] + 0.5 * rng.normal(size=240) > 0).astype(int)
est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(8,), epochs=int(os.environ["EPOCHS"]),
                         batch_size=16, verbose=0, random_state=0)
tk.search(est, X, y, space={"model__l2": tk.Float(1e-5, 1e-2, log=True)}, strategy="optuna",
          storage=os.environ["STORAGE"], study_name=os.environ["STUDY"],
          n_trials=int(os.environ["N_TRIALS"]), cv=2, test_size=None, trial_batch=4,
          pruner=optuna.pruners.NopPruner(), engine=os.environ["ENGINE"], baselines=False,
          verbose=0)
"""


def _storage_url(kind, tmp_path):
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return reachable_postgres_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def study_url(request, tmp_path):
    """``(storage URL, study name)``: a fresh study, deleted afterwards."""
    url = _storage_url(request.param, tmp_path)
    name = f"dead-{uuid.uuid4().hex[:12]}"
    yield url, name
    storage = make_storage(url, heartbeat_interval=0)
    if name in optuna.study.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)


def _owner(trial) -> str:
    return str(trial.user_attrs.get("tunekit_worker", "")).rpartition(":")[2]


def _states(study) -> list[str]:
    return [t.state.name for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)]


def _check_recovered(study, killed: list[int]) -> dict:
    """The study after the survivors stopped: every assertion of a recovered study."""
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "trial numbers must be unique"
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states, f"a trial is still RUNNING: {states}"
    assert "WAITING" not in states, f"a queued retry never ran: {states}"
    by_number = {t.number: t for t in trials}
    for number in killed:
        assert by_number[number].state.name == "FAIL"
        again = [
            t
            for t in trials
            if t.number != number
            and t.params == by_number[number].params
            and t.state.name in FINISHED
        ]
        assert again, f"the parameters of killed trial {number} never finished again"
    finished = sum(s in FINISHED for s in states)
    assert finished >= N_TRIALS, f"the survivors stopped at {finished} of {N_TRIALS}: {states}"
    return {"finished": finished, "failed": states.count("FAIL"), "started": len(states)}


# ----------------------------------------------------------------- kill -9, real processes
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ["auto", "sklearn"], ids=["batched", "one-at-a-time"])
def test_kill_9_of_one_worker_the_survivors_finish_the_study(engine, study_url, tmp_path):
    url, name = study_url
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        **HEARTBEAT,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "STORAGE": url,
        "STUDY": name,
        "N_TRIALS": str(N_TRIALS),
        "ENGINE": engine,
        "EPOCHS": "40",
    }
    procs = []
    for i in range(3):
        log = open(tmp_path / f"worker-{i}.log", "wb")  # closed below
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env={**env, "TUNEKIT_WORKER": str(i)},
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        procs[-1].log = log
    try:
        study = wait_for_study(url, name)
        victim = _first_worker_mid_trial(study, procs)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        killed = sorted(
            t.number
            for t in study.get_trials(deepcopy=False)
            if t.state.name == "RUNNING" and _owner(t) == str(victim.pid)
        )
        before = _states(study)
        codes = {p.pid: p.wait(timeout=420) for p in procs}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.log.close()
    logs = {p.pid: (tmp_path / f"worker-{i}.log").read_text()[-3000:] for i, p in enumerate(procs)}
    assert killed, "the victim had no RUNNING trial when it was killed"
    assert codes[victim.pid] == -signal.SIGKILL
    assert all(c == 0 for pid, c in codes.items() if pid != victim.pid), logs
    counts = _check_recovered(study, killed)
    after = _states(study)
    print(  # the accounting of one run, shown with pytest -s
        f"\nDEAD WORKER [{engine}, {url.split(':')[0]}]: "
        + json.dumps({"killed": killed, "before": before, "after": after, **counts})
    )


def _first_worker_mid_trial(study, procs, timeout=240):
    """The first process that the storage shows with RUNNING trials whose parameters are set.

    Preferably once two processes are running trials at the same time; a process
    that stays alone for 20 s is taken as it is.
    """
    pids = {str(p.pid): p for p in procs}
    deadline = time.monotonic() + timeout
    first_seen = None
    while time.monotonic() < deadline:
        owners = {
            _owner(t)
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.params and _owner(t) in pids
        }
        if owners:
            first_seen = first_seen or time.monotonic()
            if len(owners) >= 2 or time.monotonic() - first_seen > 20:
                return pids[min(owners, key=lambda pid: list(pids).index(pid))]
        time.sleep(0.05)
    pytest.fail(f"no process was mid-trial within {timeout} s: {_states(study)}")


# ----------------------------------------------------------------- the one check, fast
def test_the_heartbeat_check_sees_what_a_study_holds(tmp_path):
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = make_storage(url, heartbeat_interval=2, grace_period=5)
    study = optuna.create_study(storage=storage)
    # the study holds Optuna's cache in front of the RDBStorage: both answer
    assert heartbeat_interval(storage) == 2
    assert heartbeat_interval(study._storage) == 2
    assert heartbeat_interval(make_storage(url, heartbeat_interval=0)) is None
    assert heartbeat_interval(optuna.storages.InMemoryStorage()) is None
    assert fail_stale_trials(optuna.create_study()) == []  # in memory: nothing to check


def _dead_trial(study, space):
    """A trial as a killed worker leaves it: RUNNING, parameters set, one old heartbeat."""
    trial = study.ask()
    space.suggest(trial)
    study._storage.record_heartbeat(trial._trial_id)
    return trial.number


def test_heartbeats_keep_a_long_batch_alive_and_a_silent_trial_is_failed(tmp_path):
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = make_storage(url, heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(storage=storage, study_name="hb")
    space = tk.Space(SPACE)
    silent = _dead_trial(study, space)
    with Heartbeats(study._storage) as beats:
        alive = study.ask()
        space.suggest(alive)
        beats.add(alive)
        # one long epoch in the main thread, well past the grace period (SQLite keeps the
        # heartbeats' times to the second)
        time.sleep(STALE_AFTER)
        # another process's check, on its own connection
        checker = make_storage(url, heartbeat_interval=1, grace_period=3)
        other = optuna.load_study(study_name="hb", storage=checker)
        failed = fail_stale_trials(other)
        assert failed == [silent]
        assert other._storage.get_trial(alive._trial_id).state.name == "RUNNING"
        study.tell(alive, 1.0)
        beats.discard(alive)
    retries = [t for t in other.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    assert [t.system_attrs["failed_trial"] for t in retries] == [silent]
    assert retries[0].params == study.trials[silent].params
    assert not any(t.name == "tunekit-heartbeats" for t in threading.enumerate())


class _DiesWhenWaitedFor(logging.Handler):
    """The other worker: its trials beat until a survivor says it waits for them."""

    def __init__(self, beats, trials):
        super().__init__()
        self.beats, self.trials, self.messages = beats, trials, []

    def emit(self, record):
        message = record.getMessage()
        if "waiting for" in message:
            self.messages.append(message)
            for trial in self.trials:
                self.beats.discard(trial)


def _keras_case():
    est = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=2, batch_size=32, verbose=0, random_state=0
    )
    return est, SPACE


def _logistic_case():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(), {"C": tk.Float(1e-2, 1e2, log=True)}


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "engine, case",
    [
        pytest.param("auto", _keras_case, id="batched"),
        # the one-at-a-time path is the same for every estimator: a linear model here, the
        # Keras model (twelve fits one after the other, about 25 s) with -m slow
        pytest.param("sklearn", _logistic_case, id="one-at-a-time"),
        pytest.param("sklearn", _keras_case, id="one-at-a-time-keras", marks=pytest.mark.slow),
    ],
)
def test_a_search_waits_for_a_live_workers_trials_and_runs_them_once_it_dies(
    engine, case, binary_data, tmp_path, monkeypatch
):
    """No process is killed here: another worker's trials beat in a thread of this one.

    They beat until the search has nothing left to ask and says that it waits for them;
    then they stop, as if that worker died, and the search fails them and runs them again.
    """
    monkeypatch.setenv("TUNEKIT_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("TUNEKIT_GRACE_PERIOD", "2")
    X, y = binary_data
    url = f"sqlite:///{tmp_path / 'dead.db'}"
    est, space = case()
    space = tk.Space(space)
    other = optuna.create_study(storage=make_storage(url), study_name="dead", direction="maximize")
    trials = [other.ask() for _ in range(2)]
    for trial in trials:
        space.suggest(trial)
    dead = [t.number for t in trials]
    logger = logging.getLogger("tunekit")
    with Heartbeats(other._storage) as beats:
        for trial in trials:
            beats.add(trial)
        handler = _DiesWhenWaitedFor(beats, trials)
        logger.addHandler(handler)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            result = tk.search(
                est, X, y, space=space, strategy="optuna", storage=url, study_name="dead",
                n_trials=4, cv=2, test_size=None, trial_batch=2, engine=engine,
                pruner=optuna.pruners.NopPruner(), baselines=False, verbose=0,
            )  # fmt: skip
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert result.engine_ == ("stacked" if engine == "auto" else "sklearn")
    counts = _check_recovered_small(other, dead, n_trials=4, param=next(iter(space)))
    assert counts["failed"] == 2
    # one line says which trials it waits for, and for how long at most (interval + grace)
    assert len(handler.messages) == 1, handler.messages
    assert f"trial(s) {dead[0]}, {dead[1]}" in handler.messages[0], handler.messages
    assert "at most 3 s" in handler.messages[0], handler.messages


def _check_recovered_small(study, killed, n_trials, param="model__l2"):
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states, states
    by_number = {t.number: t for t in trials}
    for number in killed:
        assert by_number[number].state.name == "FAIL"
        assert [
            t
            for t in trials
            if t.system_attrs.get("failed_trial") == number and t.state.name in FINISHED
        ], f"trial {number} never ran again: {states}"
        assert np.isclose(
            next(t for t in trials if t.system_attrs.get("failed_trial") == number).params[param],
            by_number[number].params[param],
        )
    assert sum(s in FINISHED for s in states) >= n_trials
    return {"failed": states.count("FAIL")}


def test_two_survivors_checking_at_once_count_a_dead_trial_once(tmp_path, monkeypatch):
    """The other survivor fails the trial between this one's look and its own check."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study_a = optuna.create_study(storage=make_storage(url, heartbeat_interval=1, grace_period=2),
                                  study_name="race")  # fmt: skip
    dead = _dead_trial(study_a, tk.Space(SPACE))
    study_b = optuna.load_study(
        study_name="race", storage=make_storage(url, heartbeat_interval=1, grace_period=2)
    )
    time.sleep(STALE_AFTER - 1)
    real = optuna.storages.fail_stale_trials
    first = []

    def other_survivor_first(study):
        if study is study_b and not first:
            first.extend(fail_stale_trials(study_a))
        real(study)

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", other_survivor_first)
    assert fail_stale_trials(study_b) == []
    assert first == [dead]
    retries = [t for t in study_b.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    assert len(retries) == 1


def test_a_storage_without_a_retry_callback_still_queues_the_dead_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="plain")
    dead = _dead_trial(study, tk.Space(SPACE))
    time.sleep(STALE_AFTER - 1)
    assert fail_stale_trials(study) == [dead]
    (retry,) = [t for t in study.get_trials(deepcopy=False) if t.state.name == "WAITING"]
    assert retry.system_attrs["failed_trial"] == dead
    assert retry.params == study.trials[dead].params


def test_a_queued_trial_another_process_finished_first_is_not_an_error(tmp_path, caplog):
    """Two settling processes can both claim one queued retry; the one that tells second
    finds it COMPLETE. That process goes on; the trial keeps the first result."""
    from tunekit.strategies import shared_study

    COMPLETE = optuna.trial.TrialState.COMPLETE
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    study.enqueue_trial({"x": 0.5})

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        # the other process finishes the same trial while this one is still running it
        study._storage.set_trial_state_values(trial._trial_id, COMPLETE, [0.25])
        return x

    with caplog.at_level(logging.INFO, logger="tunekit"):
        shared_study.optimize(study, objective, n_trials=0)
    (trial,) = study.get_trials()
    assert trial.state == COMPLETE and trial.value == 0.25
    assert "another process finished the queued trial first" in caplog.text
