"""A quiet terminal: tunekit's lines only, TensorFlow's start-up noise hidden, state restored."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tunekit._quiet import FitProgress, import_keras, is_noise, restoring_global_state

ROOT = Path(__file__).resolve().parents[1]
TF_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
NOISE = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "cuda drivers",
    "cuInit",
    "cpu_feature_guard",
    "To enable the following instructions",
    "retracing",
    "0.5fit",
)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in TF_VARIABLES}
    env.pop("TUNEKIT_QUIET_TF", None)
    env.update(extra)
    return env


def _python(code: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(**extra),
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize(
    "line, noise",
    [
        ("WARNING: All log messages before absl::InitializeLog() is called are written to "
         "STDERR\n", True),
        ("I0000 00:00:1796099837.717723    9836 port.cc:153] oneDNN custom operations are on.\n",
         True),
        ("E0000 00:00:1796099863.772572   11730 cuda_platform.cc:52] failed call to cuInit\n",
         True),
        ("To enable the following instructions: AVX2 FMA, in other operations, rebuild "
         "TensorFlow with the appropriate compiler flags.\n", True),
        ("search: strategy=grid, 64 samples for the search\n", False),
        ("Traceback (most recent call last):\n", False),
    ],
)  # fmt: skip
def test_only_tensorflow_start_up_lines_are_noise(line, noise):
    assert is_noise(line) is noise


# One fresh Python process for the tests below (a TensorFlow start-up costs 10 s or more on
# 2 cores): the smoke study, as `python studies/tune.py` runs it, then a default pipeline
# search on each engine. Every step's lines are marked, so that each test reads its own;
# TensorFlow's start-up lines, which come with the first step, are looked for in all of them.
FRESH_PROCESS = """\
import runpy, sys, traceback
import numpy as np
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

def step(name):
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        stream.write("\\n@@ step " + name + "\\n")
        stream.flush()

def end(name, status):
    step("end " + name)
    print("@@ status", status, file=sys.stderr, flush=True)

step("study")
sys.argv = ["studies/tune.py", "--smoke", "--n-trials", "1", "--out", sys.argv[1]]
try:
    runpy.run_path("studies/tune.py", run_name="__main__")
    end("study", 0)
except SystemExit as stop:
    end("study", stop.code)
except BaseException:
    traceback.print_exc()
    end("study", "raised")

import tunekit as tk
X = np.random.default_rng(0).normal(size=(48, 4)).astype("float32")
y = (X[:, 0] > 0).astype(int)
for engine in ("auto", "sklearn"):
    step(engine)
    try:
        est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=2, verbose=0,
                                 random_state=0)
        space = {"kerasclassifier__model__l2": tk.Choice([1e-4, 1e-2]),
                 "kerasclassifier__batch_size": tk.Choice([8, 16])}
        tk.search(make_pipeline(StandardScaler(), est), X, y, space=space, cv=2,
                  baselines=False, engine=engine)
        end(engine, 0)
    except BaseException:
        traceback.print_exc()
        end(engine, "raised")
"""


def _steps(text: str) -> dict[str, str]:
    """``{step: what it printed}`` from the output of FRESH_PROCESS."""
    steps, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("@@ step "):
            name = line.removeprefix("@@ step ").strip()
            steps[name] = ""
        elif name is not None:
            steps[name] += line
    return steps


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """The study's and the searches' output in one fresh process: ``(stdout, stderr, out)``."""
    out = tmp_path_factory.mktemp("smoke-study")
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr, out


def _finished(stderr: str, name: str) -> str:
    """What step ``name`` wrote to stderr, once it finished with status 0."""
    steps = _steps(stderr)
    assert name in steps and f"end {name}" in steps, stderr[-3000:]
    assert steps[f"end {name}"].strip() == "@@ status 0", steps[name][-3000:]
    return steps[name]


@pytest.mark.slow  # the shared fresh process (a smoke study, two searches): about 30 s
def test_smoke_study_prints_tunekit_lines_only(fresh_process):
    stdout, stderr, out = fresh_process
    err = _finished(stderr, "study")
    found = [word for word in NOISE if word in stderr]  # start-up included
    assert not found, stderr[-3000:]
    assert "search: strategy=optuna" in err  # tunekit's own progress lines stay
    printed = _steps(stdout)["study"]
    assert "baselines: the chosen model" in printed
    assert "report:" in printed
    # the study's summary and its reports carry the comparison with the baselines too
    assert "Baselines: the chosen model" in (out / "summary.md").read_text()
    for name in ("leaderboard.md", "leaderboard.html"):
        assert "baselines: the chosen model" in (out / name).read_text(), name


@pytest.mark.slow  # three to four TensorFlow start-ups: about 1 minute on 2 cores
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "two-workers"])
def test_tunekit_run_is_as_quiet_as_the_script(workers, tmp_path):
    """``tunekit run`` (its launcher, each worker, the final run) prints tunekit's lines only."""
    done = subprocess.run(
        [sys.executable, "-m", "tunekit", "run", "studies/tune.py", *workers, "--smoke",
         "--n-trials", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = [word for word in NOISE if word in done.stderr + done.stdout]
    assert not found, (done.stderr + done.stdout)[-3000:]
    assert "report:" in done.stdout
    assert (tmp_path / "leaderboard.html").exists()


def test_import_hides_start_up_lines_and_keeps_every_other_line():
    code = (
        "import builtins, os\n"
        "from tunekit._quiet import import_keras\n"
        "plain = builtins.__import__\n"
        "def writes_first(name, *args, **kwargs):\n"
        "    if name == 'keras' and not getattr(writes_first, 'done', False):\n"
        "        writes_first.done = True\n"
        "        os.write(2, b'not tensorflow: kept\\n')\n"
        "    return plain(name, *args, **kwargs)\n"
        "builtins.__import__ = writes_first\n"
        "import_keras()\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert not [word for word in NOISE if word in done.stderr], done.stderr
    assert "not tensorflow: kept" in done.stderr  # written during the import, not noise


@pytest.mark.slow
def test_start_up_lines_are_shown_when_the_user_asks_for_them():
    loud = _python(
        "from tunekit._quiet import import_keras; import_keras()", TF_CPP_MIN_LOG_LEVEL="0"
    )
    assert loud.returncode == 0, loud.stderr
    assert "absl::InitializeLog" in loud.stderr or "oneDNN" in loud.stderr, loud.stderr


def test_search_restores_loggers_and_warnings_filters(monkeypatch):
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TUNEKIT_QUIET_TF"):
        monkeypatch.delenv(name, raising=False)
    tf_logger = logging.getLogger("tensorflow")
    seen = {}

    @restoring_global_state
    def fake_search(*, verbose=1):
        seen["level"] = tf_logger.level
        warnings.simplefilter("ignore")
        tf_logger.setLevel(logging.DEBUG)
        return "done"

    monkeypatch.setattr(tf_logger, "level", logging.WARNING)
    filters = list(warnings.filters)
    assert fake_search() == "done"
    assert seen["level"] == logging.ERROR  # retracing warnings hidden during the search
    assert tf_logger.level == logging.WARNING
    assert list(warnings.filters) == filters
    fake_search(verbose=2)
    assert seen["level"] == logging.WARNING  # verbose=2: TensorFlow's warnings shown


def test_search_leaves_no_global_state_changed(regression_data):
    from sklearn.linear_model import Ridge

    import tunekit as tk

    search = tk.search  # importing Keras may add filters: that is the import, not the search
    levels = {n: logging.getLogger(n).level for n in ("tensorflow", "absl", "tunekit")}
    filters = list(warnings.filters)
    X, y = regression_data
    search(Ridge(), X, y, space={"alpha": tk.Choice([0.1, 1.0])}, cv=2, verbose=0)
    assert {n: logging.getLogger(n).level for n in levels} == levels
    assert list(warnings.filters) == filters


def test_progress_counts_whole_fits_with_a_total():
    progress = FitProgress(total=3)
    for _ in range(5):
        progress.update(0.5)  # a scorer called on test and training folds
    assert progress.bar.n == 2 and progress.bar.total == 3
    progress.update(0.5)
    assert progress.bar.n == 3
    progress.total = progress.total + 4  # a search's next batch of fits
    progress.refresh()
    assert progress.bar.total == 7
    progress.close()


def test_import_keras_returns_keras_once_imported():
    assert import_keras().__name__ == "keras"


@pytest.mark.slow  # shares the smoke study's fresh process
@pytest.mark.parametrize("engine", ["auto", "sklearn"])
def test_a_default_pipeline_search_shows_one_progress_bar_and_no_noise(engine, fresh_process):
    _, stderr, _ = fresh_process
    err = _finished(stderr, engine)
    found = [word for word in NOISE if word in stderr]  # start-up included
    assert not found, stderr[-3000:]
    frames = [f for f in err.replace("\r", "\n").splitlines() if f.startswith("fits:")]
    assert frames and all("/8 " in f for f in frames), frames  # one bar, its total from the start


def test_progress_draws_nothing_until_there_is_something_to_show():
    progress = FitProgress()
    assert progress.bar is None  # no empty "fits: 0fit" bar before the search knows its total
    progress.total = 6
    assert progress.bar.total == 6
    progress.close()
