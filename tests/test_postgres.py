"""Studies on PostgreSQL: drivers, heartbeat settings, several workers on one study.

Tests that need the server are marked ``postgres`` and skip unless
``TUNEKIT_TEST_POSTGRES_URL`` names a reachable database (``.ci/run`` sets
it). Each uses its own study name and deletes the study afterwards.
"""

import importlib.util
import os
import subprocess
import sys
import threading
import uuid

import numpy as np
import optuna
import pytest
import sqlalchemy
from _postgres import postgres_url
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url

import tunekit as tk
from tunekit.storage import RetryStaleTrial, heartbeat_settings, make_storage, resolve_url
from tunekit.workers import worker_seed

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"C": tk.Float(0.01, 100.0, log=True)}


@pytest.fixture
def pg():
    """``(URL, study name)`` on the test server; the study is deleted afterwards."""
    url = postgres_url()
    if not url:
        pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    try:
        storage = make_storage(url, heartbeat_interval=0)
    except ValueError as err:
        pytest.skip(f"PostgreSQL is not reachable: {err}")
    name = f"pg-{uuid.uuid4().hex[:12]}"
    yield url, name
    for study in optuna.study.get_all_study_names(storage):
        if study.startswith(name):
            optuna.delete_study(study_name=study, storage=storage)


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 4))
    return X, (X[:, 0] + 0.3 * rng.normal(size=90) > 0).astype(int)


# ----------------------------------------------------------------- drivers
@pytest.mark.parametrize(
    "url, installed, expected",
    [
        ("postgresql://u:p@h/db", {"psycopg", "psycopg2"}, "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h/db", {"psycopg"}, "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h/db", {"psycopg2"}, "postgresql+psycopg2://u@h/db"),
        ("postgresql://u@h/db", set(), "postgresql://u@h/db"),
        ("postgresql+psycopg2://u@h/db", {"psycopg"}, "postgresql+psycopg2://u@h/db"),
        ("sqlite:///study.db", {"psycopg"}, "sqlite:///study.db"),
        ("mysql+pymysql://u@h/db", {"psycopg"}, "mysql+pymysql://u@h/db"),
    ],
)
def test_a_bare_postgresql_url_gets_the_installed_driver(url, installed, expected, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        if name in ("psycopg", "psycopg2"):
            return object() if name in installed else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert resolve_url(url) == expected


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["", "+psycopg", "+psycopg2"])
def test_every_installed_driver_opens_the_storage(driver, pg):
    url, name = pg
    module = {"": "psycopg", "+psycopg": "psycopg", "+psycopg2": "psycopg2"}[driver]
    if importlib.util.find_spec(module) is None and driver:
        pytest.skip(f"{module} is not installed")
    storage = make_storage(url.replace("postgresql://", f"postgresql{driver}://", 1))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_workers_starting_together_on_an_empty_database(kind, tmp_path):
    """Every worker creates Optuna's tables on a fresh database: the losers must not fail."""
    if kind == "sqlite":
        url, cleanup = f"sqlite:///{tmp_path / 'fresh.db'}", None
    else:
        base = postgres_url()
        if not base:
            pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
        database = f"tunekit_fresh_{uuid.uuid4().hex[:10]}"
        admin = sqlalchemy.create_engine(resolve_url(base), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
        except sqlalchemy.exc.OperationalError as err:
            pytest.skip(f"PostgreSQL is not reachable: {type(err).__name__}")
        url = make_url(base).set(database=database).render_as_string(hide_password=False)

        def cleanup():
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
            admin.dispose()

    barrier, errors, storages = threading.Barrier(4), [], []

    def open_storage():
        barrier.wait()
        try:
            storages.append(make_storage(url))
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=open_storage) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert len(storages) == 4
        study = optuna.create_study(storage=storages[0], study_name="s", direction="maximize")
        assert optuna.load_study(study_name="s", storage=storages[3]).direction == study.direction
    finally:
        for storage in storages:
            storage.engine.dispose()
        if cleanup is not None:
            cleanup()


# ----------------------------------------------------------------- heartbeat settings
def test_heartbeat_settings_default_and_environment(monkeypatch):
    for var in ("TUNEKIT_HEARTBEAT_INTERVAL", "TUNEKIT_GRACE_PERIOD", "TUNEKIT_MAX_RETRY"):
        monkeypatch.delenv(var, raising=False)
    assert heartbeat_settings() == {"heartbeat_interval": 10, "grace_period": 30, "max_retry": 1}
    monkeypatch.setenv("TUNEKIT_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("TUNEKIT_GRACE_PERIOD", "3")
    monkeypatch.setenv("TUNEKIT_MAX_RETRY", "2")
    assert heartbeat_settings() == {"heartbeat_interval": 1, "grace_period": 3, "max_retry": 2}
    assert heartbeat_settings(heartbeat_interval=2, grace_period=5)["grace_period"] == 5
    monkeypatch.setenv("TUNEKIT_MAX_RETRY", "none")
    assert heartbeat_settings()["max_retry"] is None
    storage = make_storage("sqlite:///:memory:")
    assert (storage.heartbeat_interval, storage.grace_period) == (1, 3)
    assert isinstance(storage.heartbeat_stale_trial_callback, RetryStaleTrial)
    monkeypatch.setenv("TUNEKIT_HEARTBEAT_INTERVAL", "0")  # off
    assert make_storage("sqlite:///:memory:").heartbeat_interval is None


@pytest.mark.parametrize(
    "env, kwargs, match",
    [
        ({"TUNEKIT_HEARTBEAT_INTERVAL": "ten"}, {}, r"TUNEKIT_HEARTBEAT_INTERVAL='ten' is not an"),
        ({"TUNEKIT_MAX_RETRY": "1.5"}, {}, r"TUNEKIT_MAX_RETRY='1.5' is not an integer.*retries"),
        ({}, {"grace_period": -1}, r"grace_period must be an integer >= 0, got grace_period=-1"),
        ({}, {"heartbeat_interval": 10, "grace_period": 10}, r"grace_period must be longer than"),
        ({"TUNEKIT_GRACE_PERIOD": "5"}, {"heartbeat_interval": 5}, r"at least two intervals"),
    ],
)
def test_bad_heartbeat_settings_are_refused(env, kwargs, match, monkeypatch):
    for var in ("TUNEKIT_HEARTBEAT_INTERVAL", "TUNEKIT_GRACE_PERIOD", "TUNEKIT_MAX_RETRY"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=match):
        make_storage("sqlite:///:memory:", **kwargs)


def test_retries_keep_only_the_parameters():
    """A retry must not inherit the dead trial's fold scores or failure reason."""
    study = optuna.create_study(direction="maximize")
    dist = {"C": optuna.distributions.FloatDistribution(0.1, 1.0)}
    study.add_trial(
        optuna.trial.create_trial(
            params={"C": 0.5},
            distributions=dist,
            state=optuna.trial.TrialState.FAIL,
            user_attrs={"params": {"C": 0.5}, "cv_test_scores": [0.1], "failure_reason": "x"},
        )
    )
    callback = RetryStaleTrial(max_retry=1)
    callback(study, study.trials[0])
    retry = study.trials[1]
    assert retry.state.name == "WAITING" and retry.params == {"C": 0.5}
    assert retry.user_attrs == {"params": {"C": 0.5}}
    assert retry.system_attrs["failed_trial"] == 0
    # a retry that dies too is not retried again (max_retry=1)
    study.add_trial(
        optuna.trial.create_trial(
            params={"C": 0.5},
            distributions=dist,
            state=optuna.trial.TrialState.FAIL,
            system_attrs=dict(retry.system_attrs),
        )
    )
    callback(study, study.trials[2])
    assert len(study.trials) == 3
    # a trial that died before choosing parameters has nothing to redo
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    callback(study, study.trials[3])
    assert len(study.trials) == 4


def test_worker_seed_is_distinct_per_worker(monkeypatch):
    monkeypatch.delenv("TUNEKIT_WORKER", raising=False)
    assert worker_seed(0) == 0 and worker_seed(None) is None
    seeds = set()
    for tag in ["0", "1", "2", "box-a-0", "box-b-0"]:
        monkeypatch.setenv("TUNEKIT_WORKER", tag)
        seeds.add(worker_seed(7))
    assert len(seeds) == 5
    monkeypatch.setenv("TUNEKIT_WORKER", "3")
    assert worker_seed(7) == 10 and worker_seed(None) is None


# ----------------------------------------------------------------- searches on PostgreSQL
@pytest.mark.postgres
def test_a_search_on_postgresql_matches_the_same_search_on_sqlite(pg, data, tmp_path):
    url, name = pg
    kwargs = dict(space=SPACE, strategy="optuna", n_trials=4, cv=2, verbose=0, study_name=name)
    on_pg = tk.search(LogisticRegression(), *data, storage=url, **kwargs)
    on_file = tk.search(
        LogisticRegression(), *data, storage=f"sqlite:///{tmp_path / 's.db'}", **kwargs
    )
    assert on_pg.cv_results_["params"] == on_file.cv_results_["params"]
    np.testing.assert_allclose(
        on_pg.cv_results_["mean_test_score"], on_file.cv_results_["mean_test_score"]
    )
    assert on_pg.heldout_score_ == on_file.heldout_score_
    # resumed from the server: nothing re-run, same leaderboard
    again = tk.search(LogisticRegression(), *data, storage=url, **kwargs)
    assert len(again.study_.trials) == 4
    loaded = tk.report.load(url, study=name)
    from tunekit.report._leaderboard import candidate_rows  # without the baseline rows

    assert len(candidate_rows(tk.report.leaderboard(loaded))) == 4


@pytest.mark.postgres
def test_n_jobs_worker_processes_share_one_postgresql_study(pg, data):
    url, name = pg
    result = tk.search(
        LogisticRegression(),
        *data,
        space=SPACE,
        strategy="optuna",
        n_trials=6,
        n_jobs=2,
        cv=2,
        storage=url,
        study_name=name,
        verbose=0,
    )
    states = [t.state.name for t in result.study_.trials]
    assert 6 <= states.count("COMPLETE") <= 7 and "RUNNING" not in states
    numbers = [t.number for t in result.study_.trials]
    assert len(set(numbers)) == len(numbers)
    assert len(result.cv_results_["params"]) == len(states)


WORKER = """
import os
import numpy as np
from sklearn.linear_model import LogisticRegression
import tunekit as tk

rng = np.random.RandomState(0)
X = rng.normal(size=(90, 4))
y = (X[:, 0] + 0.3 * rng.normal(size=90) > 0).astype(int)
tk.search(LogisticRegression(), X, y, space={"C": tk.Float(0.01, 100.0, log=True)},
          strategy="optuna", storage=os.environ["STORAGE"], study_name=os.environ["STUDY"],
          n_trials=8, cv=2, test_size=None, verbose=0)
"""


@pytest.mark.postgres
@pytest.mark.slow  # about 9 s; test_n_jobs_worker_processes_share... stays in the default suite
def test_workers_command_runs_n_workers_on_one_study(pg, tmp_path):
    """``python -m tunekit.workers -n 3 SCRIPT``: what ``tunekit run --workers 3`` needs."""
    url, name = pg
    script = tmp_path / "study.py"
    script.write_text(WORKER)
    env = {**os.environ, "STORAGE": url, "STUDY": name}
    done = subprocess.run(
        [sys.executable, "-m", "tunekit.workers", "-n", "3", str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=make_storage(url, heartbeat_interval=0))
    trials = study.get_trials(deepcopy=False)
    assert 8 <= sum(t.state.name == "COMPLETE" for t in trials) <= 8 + 3 - 1
    owners = {t.user_attrs["tunekit_worker"] for t in trials}
    assert len(owners) >= 2  # the trials were shared out
    params = [t.params["C"] for t in trials]
    assert len(set(params)) == len(params)  # distinct seeds: no candidate proposed twice


def test_workers_command_rejects_bad_arguments(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "tunekit.workers", "-n", "0", str(tmp_path / "x.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--workers must be >= 1, got 0" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "tunekit.workers", str(tmp_path / "missing.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no such study script" in missing.stderr


# ----------------------------------------------------------------- batched writes
@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_a_folds_record_is_written_in_one_transaction(kind, tmp_path, request):
    from sqlalchemy import event

    from tunekit.storage import set_user_attrs

    if kind == "postgres":
        url, name = request.getfixturevalue("pg")
    else:
        url, name = f"sqlite:///{tmp_path / 'study.db'}", "batched"
    storage = make_storage(url, heartbeat_interval=0)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    record = {"cv_test_scores": [0.5, None], "fit_times": [0.1, 0.2], "epochs_spent": 3,
              "failure_reason": "x", "best_epochs": [None], "n_epochs": [2.0], "params": {"C": 1}}
    commits = []
    event.listen(storage.engine, "commit", lambda conn: commits.append(1))

    def objective(trial):
        trial.set_user_attr("cv_test_scores", [0.0])  # overwritten below
        before = len(commits)
        set_user_attrs(trial, record)
        assert len(commits) - before == 1  # one transaction for the seven attributes
        assert trial.user_attrs == record
        return 1.0

    study.optimize(objective, n_trials=1)
    stored = optuna.load_study(study_name=name, storage=storage).trials[0].user_attrs
    assert stored == record  # the layout set_user_attr gives, one key per attribute


def test_set_user_attrs_without_a_database_sets_each_attribute():
    from tunekit.storage import set_user_attrs

    study = optuna.create_study()
    study.optimize(lambda t: (set_user_attrs(t, {"a": 1, "b": [2]}), 0.0)[1], n_trials=1)
    assert study.trials[0].user_attrs == {"a": 1, "b": [2]}


# ----------------------------------------------------------------- reconnecting
class _Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def _lost():
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the link"))


def test_a_lost_connection_is_retried_with_a_bounded_backoff(monkeypatch):
    import tunekit.storage.reconnect as storage

    clock = _Clock()
    monkeypatch.setattr(storage, "time", clock)
    monkeypatch.setenv("TUNEKIT_RECONNECT_SECONDS", "20")
    outcomes = iter([_lost(), _lost(), _lost(), "done"])

    def action():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise optuna.exceptions.StorageInternalError("commit failed") from outcome
        return outcome

    assert storage.with_reconnects(action, "get_trial", "postgresql://u@h/db") == "done"
    assert clock.sleeps == [0.5, 1.0, 2.0]
    # a server that stays away: the budget ends it, with the error itself
    clock.sleeps.clear()
    with pytest.raises(sqlalchemy.exc.OperationalError, match="server closed the link"):
        storage.with_reconnects(lambda: (_ for _ in ()).throw(_lost()), "get_trial", "x")
    assert sum(clock.sleeps) <= 20 and max(clock.sleeps) <= 8.0
    # any other error is not a lost connection: no retry
    clock.sleeps.clear()
    with pytest.raises(ValueError):
        storage.with_reconnects(lambda: (_ for _ in ()).throw(ValueError("bad")), "get", "x")
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "value, match",
    [("soon", r"TUNEKIT_RECONNECT_SECONDS='soon' is not a number of seconds >= 0"),
     ("-1", r"TUNEKIT_RECONNECT_SECONDS='-1' is not a number.*unset it")],
)  # fmt: skip
def test_a_bad_reconnect_budget_is_refused(value, match, monkeypatch):
    from tunekit.storage import reconnect_budget

    monkeypatch.setenv("TUNEKIT_RECONNECT_SECONDS", value)
    with pytest.raises(ValueError, match=match):
        reconnect_budget()


def test_server_databases_reconnect_and_sqlite_files_do_not(tmp_path):
    from tunekit.storage import ReconnectingRDBStorage

    assert not isinstance(make_storage(f"sqlite:///{tmp_path / 's.db'}"), ReconnectingRDBStorage)
    url = postgres_url()
    if url:
        assert isinstance(make_storage(url, heartbeat_interval=0), ReconnectingRDBStorage)


# ----------------------------------------------------------------- the queue
@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_a_lost_claim_takes_the_next_queued_trial_not_a_new_one(kind, tmp_path, request):
    """The race of two workers sharing a plan: this process reads the queue ([a]), the
    other queues b and takes a before this one claims it. Optuna alone would sample a
    new trial, off the plan; the study reads the queue again and takes b."""
    from tunekit.storage import claim_queued_trials

    if kind == "postgres":
        url, name = request.getfixturevalue("pg")
    else:
        url, name = f"sqlite:///{tmp_path / 'study.db'}", "queue"

    def race(suffix, guarded):
        storage = make_storage(url, heartbeat_interval=0)
        study = optuna.create_study(study_name=name + suffix, storage=storage)
        other = optuna.load_study(study_name=name + suffix, storage=make_storage(url))
        study.enqueue_trial({"x": 1.0}, user_attrs={"label": "a"})
        if guarded:
            claim_queued_trials(study)
        store = study._storage  # Optuna's cache around the storage: what ask() reads
        read, lost = store.get_all_trials, []

        def read_then_lose(study_id, deepcopy=True, states=None):
            trials = read(study_id, deepcopy=deepcopy, states=states)
            if states == (optuna.trial.TrialState.WAITING,) and not lost:
                lost.append(True)  # between this read and the claim, the other one acts
                other.enqueue_trial({"x": 2.0}, user_attrs={"label": "b"})
                assert other.ask().user_attrs["label"] == "a"
            return trials

        store.get_all_trials = read_then_lose
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 3)})
        assert lost  # the race happened
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        return trial, len(study.get_trials(deepcopy=False)), len(waiting)

    trial, n, n_waiting = race("-optuna", guarded=False)
    assert "label" not in trial.user_attrs and (n, n_waiting) == (3, 1)  # off the plan
    trial, n, n_waiting = race("-tunekit", guarded=True)
    assert trial.user_attrs["label"] == "b" and trial.params == {"x": 2.0}
    assert (n, n_waiting) == (2, 0)  # a and b, each taken once; nothing sampled


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_a_trial_queued_by_another_live_process_is_left_to_it(kind, tmp_path, request):
    from tunekit.storage import claim_queued_trials
    from tunekit.storage.queue import owner_attrs

    if kind == "postgres":
        url, name = request.getfixturevalue("pg")
    else:
        url, name = f"sqlite:///{tmp_path / 'study.db'}", "queue"
    study = optuna.create_study(study_name=name, storage=make_storage(url, heartbeat_interval=0))
    claim_queued_trials(study)
    parent = owner_attrs()
    parent["tunekit_enqueued_by"]["pid"] = os.getppid()  # alive, and not this process
    gone = owner_attrs()
    gone["tunekit_enqueued_by"]["pid"] = 2**22 + 12345
    study.enqueue_trial({"x": 1.0}, user_attrs={"label": "theirs", **parent})
    study.enqueue_trial({"x": 2.0}, user_attrs={"label": "gone", **gone})
    study.enqueue_trial({"x": 3.0}, user_attrs={"label": "mine", **owner_attrs()})
    study.enqueue_trial({"x": 4.0}, user_attrs={"label": "anyone's"})
    dist = {"x": optuna.distributions.FloatDistribution(0, 5)}
    taken = [study.ask(dist).user_attrs.get("label") for _ in range(4)]
    assert taken == ["gone", "mine", "anyone's", None]  # then a new trial: "theirs" is left
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["label"] for t in waiting] == ["theirs"]
