"""Ray: ``tunekit.search(..., backend="ray")`` and ``tunekit run STUDY --ray ADDRESS``.

One local Ray instance with two CPUs, started by the module's fixture, stands
in for a cluster: searches on it must give the candidates, folds and scores of
the same searches run here, and study workers started on it as Ray tasks must
share one study, with a killed worker's trial failed and retried.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import tunekit as tk
import tunekit.backends
from tunekit import cli
from tunekit.storage import make_storage

# one worker runs the module: its tests share one local Ray instance
pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("ray")]

SPACE = {"C": tk.Float(0.01, 10.0, log=True)}
HEARTBEAT = {"TUNEKIT_HEARTBEAT_INTERVAL": "1", "TUNEKIT_GRACE_PERIOD": "3"}

STUDY_SCRIPT = '''
"""A study worker configured by its arguments: STORAGE STUDY N_TRIALS [--worker]."""
import os
import sys
import time

import numpy as np
import optuna
from sklearn.linear_model import LogisticRegression

import tunekit as tk


class SlowLogisticRegression(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        time.sleep(0.3)
        return super().fit(X, y, sample_weight=sample_weight)


storage, study, n_trials = sys.argv[1:4]
rng = np.random.RandomState(0)
X = rng.normal(size=(80, 4))
y = (X[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
print(f"worker {os.environ.get('TUNEKIT_WORKER')} in {os.getcwd()}", flush=True)
tk.search(
    SlowLogisticRegression(),
    X,
    y,
    space={"C": tk.Float(0.01, 100.0, log=True)},
    strategy="optuna",
    storage=storage,
    study_name=study,
    n_trials=int(n_trials),
    pruner=optuna.pruners.NopPruner(),
    cv=2,
    test_size=None,
    verbose=0,
    baselines=False,
)
if "--worker" not in sys.argv:
    open("final-run.txt", "w").write("the final run wrote this")
'''


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance (2 CPUs) for the whole module; its GCS address."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 6))
    return X, (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)


# ------------------------------------------------------------------ backend="ray"
def recording_pipeline(folder: Path):
    """LogisticRegression behind a step that records the process of every call in ``folder``."""

    def record_pid(Z):  # a local function: Ray ships it by value
        (folder / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
        return Z

    folder.mkdir()
    return make_pipeline(FunctionTransformer(record_pid), LogisticRegression())


@pytest.mark.parametrize(
    "strategy, extra",
    [
        ("grid", {"n_points": 4}),
        pytest.param("random", {"n_trials": 5}, marks=pytest.mark.slow),  # the same path
        pytest.param("halving", {"n_trials": 6}, marks=pytest.mark.slow),
    ],
)
def test_ray_gives_the_candidates_folds_and_scores_of_a_local_run(
    strategy, extra, ray_address, data, tmp_path
):
    X, y = data
    space = {"logisticregression__C": tk.Float(0.01, 10.0, log=True)}
    kwargs = dict(space=space, strategy=strategy, cv=3, verbose=0, engine="sklearn", **extra)
    local = tk.search(recording_pipeline(tmp_path / "local"), X, y, **kwargs)
    remote = tk.search(
        recording_pipeline(tmp_path / "remote"), X, y, backend="ray", scheduler=ray_address,
        **kwargs,
    )
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    assert remote.n_splits_ == local.n_splits_ == 3
    for key in ["mean_test_score", "split0_test_score", "split2_test_score", "mean_train_score"]:
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], atol=1e-12)
    assert remote.best_params_ == local.best_params_
    assert remote.heldout_score_ == pytest.approx(local.heldout_score_)
    # every cross-validation fit ran in a Ray worker; only the refits (and the
    # baselines) run here
    calls = [int(p.name.partition("-")[0]) for p in (tmp_path / "remote").iterdir()]
    in_ray = [pid for pid in calls if pid != os.getpid()]
    assert len(in_ray) >= len(remote.cv_results_["params"]) * 3, calls
    assert len(in_ray) > len(calls) - len(in_ray)
    assert all(int(p.name.partition("-")[0]) == os.getpid() for p in (tmp_path / "local").iterdir())


@pytest.mark.slow  # TensorFlow starts in the Ray workers
def test_a_tiny_keras_model_searches_on_ray(ray_address):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(64, 4)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=1, batch_size=32, random_state=0, verbose=0
    )
    space = {"model__dropout": tk.Choice([0.0, 0.2])}
    kwargs = dict(space=space, cv=2, test_size=None, verbose=0, engine="sklearn", baselines=False)
    remote = tk.search(clf, X, y, backend="ray", scheduler=ray_address, **kwargs)
    local = tk.search(clf, X, y, **kwargs)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], atol=0.1
    )


# ------------------------------------------------------------------ clear errors
@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_address_is_a_clear_error_not_a_hang(address, data, monkeypatch):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setattr(tunekit.backends, "RAY_CONNECT_TIMEOUT", 2.0)
    with pytest.raises(ConnectionError, match=r"cannot reach the Ray cluster at '.*127\.0\.0\.1:1"):
        tk.search(
            LogisticRegression(), *data, space=SPACE, verbose=0, backend="ray", scheduler=address
        )


def test_tunekit_run_with_an_unreachable_ray_address_fails_at_once(tmp_path, capsys):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    script = tmp_path / "study.py"
    script.write_text("raise SystemExit('the study must not start')\n")
    code = cli.main(["run", str(script), "--ray", "127.0.0.1:1", "--workers", "2"])
    assert code == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in err
    assert "ray start --head" in err
    assert not (tmp_path / "final-run.txt").exists()


@pytest.mark.parametrize(
    "address, match",
    [
        ("tcp://10.0.0.5:8786", r"a Ray address is HOST:PORT .* got 'tcp://10.0.0.5:8786'"),
        (":6379", r"a Ray address needs a host"),
    ],
)
def test_a_malformed_address_is_refused(address, match):
    with pytest.raises(ValueError, match=match):
        tunekit.backends.check_reachable(address)


def test_ray_without_an_address_or_connection_is_a_clear_error(data, monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ValueError, match=r"backend='ray' needs a cluster: pass scheduler="):
        tk.search(LogisticRegression(), *data, space=SPACE, verbose=0, backend="ray")


def test_another_cluster_than_the_connected_one_is_refused(ray_address, data):
    host, _, port = ray_address.rpartition(":")
    other = f"{host}:{int(port) + 1}"
    with pytest.MonkeyPatch.context() as patch:  # the other port answers: only the check fails
        patch.setattr(tunekit.backends, "check_reachable", lambda address, timeout=None: None)
        with pytest.raises(ValueError, match=r"already connected to the Ray cluster at"):
            tk.search(
                LogisticRegression(), *data, space=SPACE, verbose=0, backend="ray", scheduler=other
            )


def test_ray_not_installed_is_a_clear_error(data, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'tunekit\[ray\]'"):
        tk.search(
            LogisticRegression(), *data, space=SPACE, verbose=0, backend="ray", scheduler="x:1"
        )
    script = tmp_path / "study.py"
    script.write_text("")
    assert cli.main(["run", str(script), "--ray", "auto"]) == cli.EXIT_FAILURE
    assert "pip install 'tunekit[ray]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "optuna"}, r"Optuna study scales out through its storage.*--ray ADDRESS"),
        ({"engine": "stacked"}, r"engine='stacked' .* cannot use backend='ray'"),
    ],
)
def test_ray_misuse_is_refused_before_any_fit(kwargs, match, data):
    with pytest.raises(ValueError, match=match):
        tk.search(LogisticRegression(), *data, space=SPACE, verbose=0, backend="ray", **kwargs)


def test_ray_and_gpus_together_are_a_usage_error(tmp_path, capsys):
    script = tmp_path / "study.py"
    script.write_text("")
    assert cli.main(["run", str(script), "--ray", "auto", "--gpus", "0"]) == cli.EXIT_USAGE
    assert "--ray: not allowed with argument --gpus" in capsys.readouterr().err


# ------------------------------------------------------------------ tunekit run --ray
def _trials(url, name):
    storage = make_storage(url, heartbeat_interval=0)
    if name not in optuna.study.get_all_study_names(storage):
        return []
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _pid_of(trial) -> int:
    return int(str(trial.user_attrs.get("tunekit_worker", "")).rpartition(":")[2] or 0)


def _parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[1])


@pytest.fixture
def study_script(tmp_path):
    path = tmp_path / "study.py"
    path.write_text(STUDY_SCRIPT)
    return path


def _start_run(study_script, url, name, n_trials, address, tmp_path):
    """``tunekit run STUDY --ray ADDRESS --workers 2`` as a user starts it: its own process."""
    command = [
        sys.executable,
        "-m",
        "tunekit",
        "run",
        str(study_script),
        "--ray",
        address,
        "--workers",
        "2",
        url,
        name,
        str(n_trials),
    ]
    env = {**os.environ, **HEARTBEAT, "TUNEKIT_WORKER": "ray"}
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def _finish(proc, tmp_path, timeout=180):
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"tunekit run did not finish:\n{(tmp_path / 'run.log').read_text()[-3000:]}")
    finally:
        proc.log_file.close()
    return code, (tmp_path / "run.log").read_text()


RECORDING_STUDY = """\
import json, os, pathlib, sys
out = pathlib.Path(sys.argv[1])
keys = ("TUNEKIT_WORKER", "TF_CPP_MIN_LOG_LEVEL", "TUNEKIT_GRACE_PERIOD")
record = {"argv": sys.argv[2:], "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in keys}}
(out / f"{os.getpid()}.json").write_text(json.dumps(record))
"""


def test_tunekit_run_starts_its_workers_as_ray_tasks_then_one_final_run(
    ray_address, tmp_path, monkeypatch
):
    script = tmp_path / "recording_study.py"
    script.write_text(RECORDING_STUDY)
    out = tmp_path / "records"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNEKIT_GRACE_PERIOD", "7")  # the driver's settings reach the tasks
    monkeypatch.setenv("TUNEKIT_WORKER", "box1")
    code = cli.main(["run", str(script), "--ray", ray_address, "--workers", "2", str(out), "-x"])
    assert code == cli.EXIT_OK
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    workers = [r for r in runs if "--worker" in r["argv"]]
    final = [r for r in runs if "--worker" not in r["argv"]]
    assert sorted(r["env"]["TUNEKIT_WORKER"] for r in workers) == ["box1-0", "box1-1"]
    assert all(r["argv"] == ["-x", "--worker"] for r in workers)
    assert all(r["env"]["TUNEKIT_GRACE_PERIOD"] == "7" for r in workers)
    assert all(r["cwd"] == str(tmp_path) for r in workers)  # the driver's directory
    assert [r["argv"] for r in final] == [["-x"]]  # one final run, here, writes the report


SLEEPING_STUDY = """\
import os, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
if "--worker" not in sys.argv:
    (out / "final-run").touch()
    sys.exit(0)
(out / f"started-{os.getpid()}").touch()
try:
    time.sleep(120)
except KeyboardInterrupt:
    (out / f"stopped-{os.getpid()}").touch()
    sys.exit(130)
"""


def test_ctrl_c_cancels_the_ray_workers_and_skips_the_final_run(ray_address, tmp_path):
    script = tmp_path / "sleeping_study.py"
    script.write_text(SLEEPING_STUDY)
    command = [sys.executable, "-m", "tunekit", "run", str(script), "--ray", ray_address]
    proc = subprocess.Popen(
        [*command, "--workers", "2", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    assert len(list(tmp_path.glob("started-*"))) == 2
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"tunekit run --ray did not stop:\n{proc.communicate()[0][-3000:]}")
    assert proc.returncode == cli.EXIT_INTERRUPTED, out[-3000:]
    assert "interrupted; run the same command again to continue" in out
    deadline = time.monotonic() + 30  # each worker stopped through its own SIGINT
    while len(list(tmp_path.glob("stopped-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(tmp_path.glob("stopped-*"))) == 2
    assert not (tmp_path / "final-run").exists()


@pytest.mark.slow  # 2 to 4 minutes on 2 busy cores: four processes start TensorFlow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ray_workers_share_the_study_and_a_killed_one_leaves_nothing_running(
    ray_address, study_script, tmp_path
):
    url, name, n_trials = f"sqlite:///{tmp_path / 'study.db'}", f"ray-{uuid.uuid4().hex[:8]}", 6
    proc = _start_run(study_script, url, name, n_trials, ray_address, tmp_path)
    victim = None
    deadline = time.monotonic() + 150
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        trials = _trials(url, name)
        finished = sum(t.state.name == "COMPLETE" for t in trials)
        running = [  # a trial that has just started: each takes over 0.6 s (2 fits)
            t
            for t in trials
            if t.state.name == "RUNNING"
            and _pid_of(t)
            and t.params  # parameters chosen: a trial killed before that is not retried
            and time.time() - t.datetime_start.timestamp() < 0.4
        ]
        if finished >= 1 and running:
            victim = running[0]
        else:
            time.sleep(0.05)
    assert victim is not None, (tmp_path / "run.log").read_text()[-3000:]
    # the whole worker dies mid-trial, as with a lost node: the study process and the Ray
    # worker process running its task
    study_pid = _pid_of(victim)
    task_pid = _parent_of(study_pid)
    for pid in (study_pid, task_pid):
        os.kill(pid, signal.SIGKILL)
    (victim,) = [  # the trial the worker was running when it died
        t for t in _trials(url, name) if t.state.name == "RUNNING" and _pid_of(t) == study_pid
    ]

    code, log = _finish(proc, tmp_path)
    assert code == 0, log[-3000:]
    trials = _trials(url, name)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states, states
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state.name == "FAIL"  # failed once its heartbeat was stale
    again = [t for t in trials if victim.number in (t.system_attrs.get("retry_history") or [])]
    seen = [(t.number, t.state.name, t.system_attrs, t.user_attrs.get("failure_reason"))
            for t in trials]
    assert again, (victim.number, seen, log[-3000:])
    assert again[-1].params == killed.params and again[-1].state.name == "COMPLETE"
    assert sum(s == "COMPLETE" for s in states) >= n_trials
    workers = {str(t.user_attrs.get("tunekit_worker")) for t in trials}
    assert len(workers) >= 2  # two study processes (three with Ray's retry of the lost task)
    assert "worker ray-0 in" in log and "worker ray-1 in" in log  # tags, forwarded output
    assert (tmp_path / "final-run.txt").is_file()  # then the final run wrote the report


# ------------------------------------------------------------------ the guide
def test_the_scale_out_guide_ray_example_runs(ray_address, tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parent.parent / "docs" / "scale-out.md").read_text()
    section = text[text.index("## scikit-learn searches on Ray") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "scale-out.md", "exec"), {"__name__": "__docs__"})
