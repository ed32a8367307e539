"""The tunekit command: run (workers, GPUs), report, the studies' shared flags, exit codes."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from tunekit import cli, launch
from tunekit.workflow import Config, run_study

FAKE_STUDY = """\
import json, os, pathlib, sys, time
out = pathlib.Path(os.environ["FAKE_OUT"])
keys = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER",
        "TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL", "TUNEKIT_WORKER")
record = {"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in keys}}
(out / f"{os.getpid()}.json").write_text(json.dumps(record))
print("fake study says hello")
worker = "--worker" in sys.argv
if os.environ.get("FAKE_KILL") and worker == (os.environ["FAKE_KILL"] == "worker"):
    os.kill(os.getpid(), 9)  # as the out-of-memory killer would
if os.environ.get("FAKE_SLEEP") and worker:
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        sys.exit(130)
sys.exit(int(os.environ.get("FAKE_EXIT_WORKER" if worker else "FAKE_EXIT", "0")))
"""

NVIDIA_SMI = """\
#!/bin/sh
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b)"
echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2c3d)"
"""


@pytest.fixture
def fake_study(tmp_path, monkeypatch):
    """A study script that records its arguments and environment, without any training."""
    script = tmp_path / "fake_study.py"
    script.write_text(FAKE_STUDY)
    out = tmp_path / "records"
    out.mkdir()
    monkeypatch.setenv("FAKE_OUT", str(out))
    return script, out


def records(out):
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@pytest.fixture
def no_gpu(tmp_path, monkeypatch):
    """A PATH without nvidia-smi: the machine shows no GPU."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def two_gpus(tmp_path, monkeypatch):
    """A fake nvidia-smi listing two GPUs."""
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-smi"
    exe.write_text(NVIDIA_SMI)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


# ------------------------------------------------------------------------ help
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--help"], ["run", "report", "exit codes", "--workers 2"]),
        (["run", "--help"], ["--workers", "--gpus", "CUDA_VISIBLE_DEVICES", "130 interrupted"]),
        (["report", "--help"], ["--study", "--format", "--out", "never printed"]),
    ],
)
def test_help_is_clear_and_exits_zero(argv, expected, capsys):
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    for word in expected:
        assert word in text


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("tunekit ")


@pytest.mark.parametrize(
    "argv, match",
    [
        ([], r"usage: tunekit"),
        (["bogus"], r"invalid choice: 'bogus'"),
        (["run"], r"the following arguments are required: script"),
        (["run", "no_such_study.py"], r"no study script 'no_such_study.py'"),
        (["run", "--workers", "0", "x.py"], r"argument --workers: must be a positive integer"),
        (["run", "{script}", "--workers", "two"], r"--workers: must be a positive integer"),
        (["run", "--gpus", "a,b", "{script}"], r"--gpus takes GPU indices such as 0 or 0,1"),
        (["run", "--gpus", "0,0", "{script}"], r"--gpus lists a GPU twice"),
        (["run", "--workers", "2", "--gpus", "0", "{script}"], r"not allowed with argument"),
        (["run", "{script}", "--gpus", "0", "--workers", "2"], r"not allowed with argument"),
        (["run", "{script}", "--worker"], r"--worker is set by tunekit run itself"),
        (["report"], r"the following arguments are required: source"),
        (["report", "x", "--format", "pdf"], r"invalid choice: 'pdf'"),
        (["report", "x", "--bogus"], r"unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, match, fake_study, capsys):
    script, _ = fake_study
    argv = [a.replace("{script}", str(script)) for a in argv]
    assert cli.main(argv) == 2
    assert re.search(match, capsys.readouterr().err)


# ------------------------------------------------------------------------ GPUs
def test_gpus_that_are_not_there_exit_2_naming_requested_and_visible(no_gpu, fake_study, capsys):
    script, out = fake_study
    assert cli.main(["run", "--gpus", "0,1", str(script)]) == 2
    err = capsys.readouterr().err
    assert "--gpus 0,1 asks for GPU(s) 0, 1 that this machine does not have" in err
    assert "visible GPUs: none" in err
    assert records(out) == []  # nothing was started


def test_a_missing_gpu_among_visible_ones_is_named(two_gpus, fake_study, capsys):
    script, _ = fake_study
    assert cli.main(["run", "--gpus", "1,2", str(script)]) == 2
    err = capsys.readouterr().err
    assert "asks for GPU(s) 2 that" in err
    assert "visible GPUs: 0 (NVIDIA H100 80GB HBM3), 1 (NVIDIA H100 80GB HBM3)" in err


def test_visible_gpus_reads_nvidia_smi(two_gpus):
    assert cli.visible_gpus() == [(0, "NVIDIA H100 80GB HBM3"), (1, "NVIDIA H100 80GB HBM3")]


def test_visible_gpus_is_empty_without_nvidia_smi(no_gpu):
    assert cli.visible_gpus() == []


@pytest.mark.parametrize("gpus", ["0,1", "all"])
def test_one_worker_per_gpu_each_seeing_only_its_gpu(gpus, two_gpus, fake_study):
    script, out = fake_study
    assert cli.main(["run", "--gpus", gpus, str(script), "--n-trials", "4"]) == 0
    runs = records(out)
    workers = [r for r in runs if "--worker" in r["argv"]]
    final = [r for r in runs if "--worker" not in r["argv"]]
    assert sorted(w["env"]["CUDA_VISIBLE_DEVICES"] for w in workers) == ["0", "1"]
    for run in runs:
        assert run["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert run["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert run["argv"][:2] == ["--n-trials", "4"]
    assert len(final) == 1  # one final run writes the report


# --------------------------------------------------------------------- workers
def test_workers_share_the_study_then_one_final_run_reports(fake_study, capsys):
    script, out = fake_study
    assert cli.main(["run", str(script), "--workers", "3", "--seed", "1"]) == 0
    runs = records(out)
    assert sum("--worker" in r["argv"] for r in runs) == 3
    assert [r["argv"] for r in runs if "--worker" not in r["argv"]] == [["--seed", "1"]]
    per_worker = str(max(1, (os.cpu_count() or 1) // 3))
    assert {r["env"]["TF_NUM_INTRAOP_THREADS"] for r in runs if "--worker" in r["argv"]} == {
        per_worker
    }
    assert "[worker 2] fake study says hello" in capsys.readouterr().err


def test_a_study_can_be_named_without_its_path(fake_study, tmp_path, monkeypatch):
    script, out = fake_study
    (tmp_path / "studies").mkdir()
    shutil.copy(script, tmp_path / "studies" / "demo.py")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "demo", "--seed", "2"]) == 0
    assert [r["argv"] for r in records(out)] == [["--seed", "2"]]


def test_a_single_run_passes_flags_through(fake_study):
    script, out = fake_study
    assert cli.main(["run", str(script), "--storage", "sqlite:///x.db", "--smoke"]) == 0
    (run,) = records(out)
    assert run["argv"] == ["--storage", "sqlite:///x.db", "--smoke"]
    assert run["env"]["CUDA_VISIBLE_DEVICES"] in (None, os.environ.get("CUDA_VISIBLE_DEVICES"))


@pytest.mark.parametrize(
    "env, code", [({"FAKE_EXIT_WORKER": "1"}, 1), ({"FAKE_EXIT_WORKER": "130"}, 130)]
)
def test_a_failed_worker_fails_the_run_without_a_report(env, code, fake_study, monkeypatch, capsys):
    script, out = fake_study
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["run", "--workers", "2", str(script)]) == code
    assert all("--worker" in r["argv"] for r in records(out))  # no final run
    if code == 1:
        assert "worker 0 exited with code 1" in capsys.readouterr().err


@pytest.mark.parametrize("code", [0, 1, 2, 130])
def test_the_study_exit_code_is_passed_on(code, fake_study, monkeypatch):
    script, _ = fake_study
    monkeypatch.setenv("FAKE_EXIT", str(code))
    assert cli.main(["run", str(script)]) == code


def test_ctrl_c_stops_the_workers_and_exits_130(fake_study, monkeypatch):
    script, out = fake_study
    monkeypatch.setenv("FAKE_SLEEP", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunekit", "run", "--workers", "2", str(script)],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(records(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "run the same command again to continue" in err
    assert all("--worker" in r["argv"] for r in records(out))


def test_python_m_tunekit_and_the_console_script(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tunekit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "tunekit run" in done.stdout
    exe = shutil.which("tunekit", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the tunekit console script is not installed in this environment")
    done = subprocess.run([exe, "run", "nope.py"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no study script 'nope.py'" in done.stderr


def test_the_command_does_not_import_tensorflow():
    code = "import sys, tunekit.cli; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


# ---------------------------------------------------------------------- report
@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A finished study in SQLite, and the result directory it wrote."""
    from sklearn.datasets import make_classification

    root = tmp_path_factory.mktemp("stored")
    X, y = make_classification(n_samples=90, n_features=5, random_state=0)
    url = f"sqlite:///{root / 'study.db'}"
    plan = [Config(f"C={c}", {"C": c}) for c in (0.01, 1.0)]
    run_study(
        LogisticRegression(),
        X,
        y,
        storage=url,
        study_name="demo",
        plan=plan,
        cv=3,
        out=root / "results",
        verbose=0,
    )
    return url, root


@pytest.mark.parametrize(
    "extra, expected",
    [([], "| rank"), (["--format", "csv"], "candidate,"), (["--format", "json"], '"format"')],
)
@pytest.mark.parametrize("source", ["url", "dir", "db-file"])
def test_report_prints_the_leaderboard(source, extra, expected, stored, capsys):
    url, root = stored
    where = {"url": url, "dir": str(root / "results"), "db-file": str(root / "study.db")}[source]
    assert cli.main(["report", where, *extra]) == 0
    assert expected in capsys.readouterr().out


def test_report_writes_a_file_or_a_full_report(stored, tmp_path, capsys):
    url, _ = stored
    assert cli.main(["report", url, "--out", str(tmp_path / "lb.html")]) == 0
    assert "<table" in (tmp_path / "lb.html").read_text()
    assert cli.main(["report", url, "--format", "md", "--out", str(tmp_path / "lb.txt")]) == 0
    assert "| rank" in (tmp_path / "lb.txt").read_text()
    assert cli.main(["report", url, "--out", str(tmp_path / "full")]) == 0
    for name in ("leaderboard.md", "leaderboard.html", "leaderboard.csv", "index.md"):
        assert (tmp_path / "full" / name).stat().st_size > 0
    assert str(tmp_path / "full") in capsys.readouterr().out


@pytest.mark.parametrize(
    "source, args, match",
    [
        ("{root}/nowhere", [], r"no such file or directory"),
        ("{root}/model.pkl", [], r"refusing to unpickle"),
        ("{url}", ["--study", "demo2"], r"no study named 'demo2'.*Did you mean 'demo'"),
    ],
)
def test_report_failures_exit_1_with_a_clean_message(source, args, match, stored, capsys):
    url, root = stored
    (root / "model.pkl").write_bytes(b"not really a pickle")
    source = source.format(root=root, url=url)
    assert cli.main(["report", source, *args]) == 1
    err = capsys.readouterr().err
    assert re.search(match, err)
    assert "Traceback" not in err


def test_report_never_prints_a_password(capsys):
    code = cli.main(["report", "postgresql://tuner:s3cret-pw@127.0.0.1:9/studies"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "s3cret-pw" not in out + err
    assert "tuner:***@127.0.0.1:9" in err


# --------------------------------------------------------------- study options
def test_study_options_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opts = cli.study_options("demo", ["--smoke"])
    assert opts.study_name == "demo-smoke" and opts.mode == "smoke"
    assert opts.out == str(Path("results") / "demo")
    assert opts.storage == "sqlite:///results/demo/study.db"
    assert opts.n_trials == 2 and opts.seed == 0 and not opts.worker
    assert opts.pick(1, 2, 3) == 1
    assert (tmp_path / "results" / "demo").is_dir()
    assert cli.study_options("demo", []).n_trials is None
    assert cli.study_options("demo", [], n_trials=(2, 20, 100)).n_trials == 20


def test_study_names_tell_settings_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--data", "wine", "--synthetic", "--full", "--seed", "3", "--out", "o"]
    opts = cli.study_options(
        "demo", argv, data=("breast_cancer", "wine"), flags={"--synthetic": "generated"}
    )
    assert opts.study_name == "demo-wine-synthetic-full-seed3"
    assert opts.storage == "sqlite:///o/study.db" and opts.pick(1, 2, 3) == 3
    named = cli.study_options("demo", ["--study-name", "mine", "--storage", "sqlite:///s.db"])
    assert (named.study_name, named.storage) == ("mine", "sqlite:///s.db")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--smoke", "--full"], r"argument --full: not allowed with argument --smoke"),
        (["--n-trials", "0"], r"argument --n-trials: must be a positive integer, got '0'"),
        (["--timeout", "-5"], r"argument --timeout: must be a positive number"),
        (["--data", "iris"], r"argument --data: invalid choice: 'iris'"),
    ],
)
def test_bad_study_flags_exit_2(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.study_options("demo", argv, data=("breast_cancer",))
    assert exc.value.code == 2
    assert re.search(match, capsys.readouterr().err)


def test_study_main_turns_failures_into_exit_1(tmp_path, capsys):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=60, random_state=0)
    opts = cli.study_options("demo", ["--out", str(tmp_path)])
    assert cli.study_main(opts, LogisticRegression(), X, y, space={"nope": [1]}) == 1
    assert "demo.py: error: Invalid parameter 'nope'" in capsys.readouterr().err
    opts.storage = "postgresql://tuner:s3cret-pw@127.0.0.1:9/studies"
    assert cli.study_main(opts, LogisticRegression(), X, y, space={"C": [1.0]}) == 1
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err and "cannot open the Optuna storage" in err


# ------------------------------------------------------------------ exit codes
@pytest.mark.parametrize(
    "returncode, status",
    [(0, 0), (1, 1), (2, 2), (75, 75), (3, 3), (-2, 130), (-9, 137), (-15, 143)],
)
def test_one_exit_code_table_a_killed_child_is_128_plus_its_signal(returncode, status):
    assert launch.exit_status(returncode) == status


def test_several_workers_report_a_stop_first_then_the_first_failure():
    assert launch.combined_status([0, 0]) == 0
    assert launch.combined_status([1, -9]) == 1
    assert launch.combined_status([-9, 1]) == 137
    assert launch.combined_status([1, 75, -2]) == 130  # run the same command again
    assert launch.combined_status([1, 75]) == 75


def workers_command(*args):
    return [sys.executable, "-m", "tunekit.workers", *args]


@pytest.mark.parametrize("launcher", ["tunekit run", "tunekit run --workers 2", "workers -n 2"])
def test_a_study_process_killed_by_sigkill_exits_137_through_every_launcher(
    launcher, fake_study, monkeypatch, capsys
):
    """A real child killed by SIGKILL: 128 + 9, as a shell reports it, whoever launched it."""
    script, out = fake_study
    if launcher == "tunekit run":
        monkeypatch.setenv("FAKE_KILL", "run")
        assert cli.main(["run", str(script)]) == 137
    elif launcher == "tunekit run --workers 2":
        monkeypatch.setenv("FAKE_KILL", "worker")
        assert cli.main(["run", "--workers", "2", str(script)]) == 137
        assert "worker 0 exited with code 137" in capsys.readouterr().err
        assert all("--worker" in r["argv"] for r in records(out))  # no final run
    else:  # python -m tunekit.workers runs its workers as python -m tunekit.workers SCRIPT
        env = {**os.environ, "FAKE_KILL": "run"}
        done = subprocess.run(workers_command("-n", "2", str(script)), env=env, timeout=120)
        assert done.returncode == 137
    assert records(out)  # the processes did start


def test_both_launchers_tag_their_workers_alike(fake_study, monkeypatch):
    """``<TUNEKIT_WORKER>-<i>`` from tunekit run and from python -m tunekit.workers."""
    script, out = fake_study
    monkeypatch.setenv("TUNEKIT_WORKER", "box1")
    assert cli.main(["run", "--workers", "2", str(script)]) == 0
    tagged = sorted(r["env"]["TUNEKIT_WORKER"] for r in records(out) if "--worker" in r["argv"])
    assert tagged == ["box1-0", "box1-1"]
    for path in out.glob("*.json"):
        path.unlink()
    done = subprocess.run(workers_command("-n", "2", str(script)), timeout=120)
    assert done.returncode == 0
    assert sorted(r["env"]["TUNEKIT_WORKER"] for r in records(out)) == ["box1-0", "box1-1"]


def test_python_m_tunekit_workers_gives_one_worker_per_gpu(two_gpus, fake_study):
    script, out = fake_study
    done = subprocess.run(workers_command("--gpus", "0,1", str(script)), timeout=120)
    assert done.returncode == 0
    runs = records(out)
    assert sorted(r["env"]["CUDA_VISIBLE_DEVICES"] for r in runs) == ["0", "1"]
    assert {r["env"]["CUDA_DEVICE_ORDER"] for r in runs} == {"PCI_BUS_ID"}


def test_python_m_tunekit_workers_checks_gpus_as_tunekit_run_does(no_gpu, fake_study):
    script, out = fake_study
    done = subprocess.run(
        workers_command("--gpus", "0", str(script)), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "--gpus 0 asks for GPU(s) 0 that this machine does not have" in done.stderr
    assert records(out) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_run_with_mlflow_asks_the_process_that_ends_the_study_to_log_it(
    workers, tmp_path, monkeypatch
):
    from tunekit import launch
    from tunekit.cli.command import main as cli_main

    script = tmp_path / "study.py"
    script.write_text("print('a study')\n")
    seen = []
    monkeypatch.setattr(launch, "run_child", lambda cmd, env: seen.append(("final", env)) or 0)

    def run_workers(cmd, envs, label=True):
        seen.extend(("worker", env) for env in envs)
        return [0] * len(envs)

    monkeypatch.setattr(launch, "run_workers", run_workers)
    assert cli_main(["run", "--workers", str(workers), "--mlflow", "http://mlflow:5000",
                     str(script)]) == 0  # fmt: skip
    final = [env for kind, env in seen if kind == "final"]
    workers_ = [env for kind, env in seen if kind == "worker"]
    assert [env.get("TUNEKIT_MLFLOW_URI") for env in final] == ["http://mlflow:5000"]
    assert all("TUNEKIT_MLFLOW_URI" not in env for env in workers_)
    assert len(workers_) == (workers if workers > 1 else 0)
    seen.clear()
    assert cli_main(["run", str(script)]) == 0  # not asked for: not logged
    assert all("TUNEKIT_MLFLOW_URI" not in env for _, env in seen)
