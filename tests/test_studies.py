"""studies/: each study is a short script that runs in smoke mode and writes its report."""

import ast
import importlib.util
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from tunekit import datasets

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.stem for p in (ROOT / "studies").glob("*.py"))
EXTRA = {"imdb_listing_5_13": ["--synthetic"]}  # nothing can be downloaded here
SHARED_FLAGS = ("--storage", "--study-name", "--n-trials", "--timeout", "--seed", "--out")


def load(name):
    spec = importlib.util.spec_from_file_location(f"study_{name}", ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished(out, name):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def n_complete(db: Path) -> int:
    """Complete trials in an SQLite study file, read-only (the study may be in the making)."""
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0


def test_the_lecture_studies_are_all_there():
    assert STUDIES == [
        "imdb_listing_5_13",
        "more_data",
        "overfit_first",
        "regularization",
        "tune",
    ]


@pytest.mark.parametrize("name", STUDIES)
def test_a_study_is_a_short_script_without_library_logic(name):
    source = (ROOT / "studies" / f"{name}.py").read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "the docstring is the study's --help"
    functions = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Lambda)]
    assert functions == ["main"]
    assert not any(isinstance(n, ast.ClassDef | ast.For | ast.While) for n in ast.walk(tree))
    assert len(source.splitlines()) <= 55
    assert "cli.study_main(" in source


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_takes_the_shared_flags(name, capsys):
    with pytest.raises(SystemExit) as exc:
        load(name).main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in (*SHARED_FLAGS, "--smoke", "--full"):
        assert flag in text
    assert "never re-run" in text  # how to resume


# the IMDB study on its synthetic data: about 13 s on 2 cores; in the default suite,
# test_imdb_study_reads_the_keras_file_when_it_is_there runs the same study in smoke mode
SMOKE_SLOW = {"imdb_listing_5_13"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SMOKE_SLOW else n for n in STUDIES]
)
def test_each_study_runs_in_smoke_mode_and_writes_its_report(name, tmp_path, capsys):
    out = tmp_path / "out"  # one trial: the documented commands run the full smoke size
    argv = ["--smoke", "--n-trials", "1", "--out", str(out), *EXTRA.get(name, [])]
    assert load(name).main(argv) == 0
    printed = capsys.readouterr().out
    assert "configuration" in printed and "report:" in printed
    for report in ("leaderboard.md", "leaderboard.html", "summary.md", "index.md"):
        assert (out / report).stat().st_size > 0, report
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    md = (out / "leaderboard.md").read_text()
    assert md.startswith("# Leaderboard") and "| rank" in md and "mean_val_score" in md
    assert '<table class="leaderboard">' in (out / "leaderboard.html").read_text()
    assert (out / "study.db").is_file()


# Runs a study with Keras's fit paused once a trial has finished, so that Ctrl-C lands in
# the training of the next one (the signal is honoured at the end of that epoch).
PAUSED = """\
import pathlib, runpy, sqlite3, sys, time
import keras
marker, script = pathlib.Path(sys.argv[1]), sys.argv[2]
db = pathlib.Path(sys.argv[sys.argv.index("--out") + 1]) / "study.db"
fit = keras.Model.fit
def complete():
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
def paused_fit(self, *args, **kwargs):
    if not marker.exists() and db.is_file() and complete() == 1:
        marker.write_text("training")
        time.sleep(8)
    return fit(self, *args, **kwargs)
keras.Model.fit = paused_fit
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.slow  # about 30 s on 2 cores: a study, a Ctrl-C, a resume
@pytest.mark.filterwarnings("ignore:.*candidates failed and rank last")  # the interrupted trial
def test_a_study_interrupted_with_ctrl_c_resumes_where_it_stopped(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "marker"
    (tmp_path / "paused.py").write_text(PAUSED)
    script = str(ROOT / "studies" / "regularization.py")
    # --worker: one configuration at a time (no report), as tunekit run's workers do
    flags = ["--smoke", "--n-trials", "3", "--out", str(out), "--quiet", "--worker"]
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "paused.py"), str(marker), script, *flags],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert n_complete(out / "study.db") == 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "run the same command again to continue" in err
    before = [t.number for t in finished(out, "regularization-smoke")]
    assert len(before) == 1
    assert load("regularization").main(["--smoke", "--n-trials", "3", "--out", str(out)]) == 0
    after = finished(out, "regularization-smoke")
    penalties = sorted(
        tuple(t.user_attrs["params"][f"kerasclassifier__model__{k}"] for k in ("l2", "l1"))
        for t in after
    )
    assert penalties == [(0.0, 0.0), (0.0, 0.0005), (0.002, 0.0)]  # baseline, L1, L2: once each
    assert [t.number for t in after][: len(before)] == before  # finished ones never re-ran
    assert "| rank" in (out / "leaderboard.md").read_text()
    summary = (out / "summary.md").read_text()
    assert all(label in summary for label in ("baseline", "L2 0.002", "L1 0.0005"))


def test_imdb_without_the_file_fails_clearly_and_downloads_nothing(tmp_path, monkeypatch, capsys):
    if Path("/tmp/.keras/datasets/imdb.npz").is_file():
        pytest.skip("this machine has the IMDB file in /tmp/.keras")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    code = load("imdb_listing_5_13").main(["--smoke", "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "imdb_listing_5_13.py: error: the IMDB data is not on this machine" in err
    assert "tunekit never downloads" in err and "--synthetic" in err
    assert not (tmp_path / "keras-home" / "datasets").exists()


@pytest.mark.slow  # a 10 s study; the other studies' smoke runs stay in the default suite
def test_imdb_study_reads_the_keras_file_when_it_is_there(tmp_path, monkeypatch):
    import keras

    home = tmp_path / "keras-home"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "imdb.npz").write_bytes(b"stand-in: keras's loader is faked below")
    monkeypatch.setenv("KERAS_HOME", str(home))
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 2
    reviews = [
        [1, *rng.integers(4, 3000, 50), *([7, 8, 9] if label else [10, 11])] for label in labels
    ]
    seen = {}

    def load_data(num_words=None):
        seen["num_words"] = num_words
        return (np.array(reviews, dtype=object), labels), (None, None)

    monkeypatch.setattr(keras.datasets.imdb, "load_data", load_data)
    X, y = datasets.load_imdb(num_words=1000, n_samples=40)
    assert X.shape == (40, 1000) and set(np.unique(y)) == {0, 1} and (X[:, 1] == 1).all()
    out = tmp_path / "out"
    assert load("imdb_listing_5_13").main(["--smoke", "--n-trials", "1", "--out", str(out)]) == 0
    assert seen["num_words"] == 2000  # smoke size; 10,000 words otherwise
    names = optuna.get_all_study_names(storage=f"sqlite:///{out / 'study.db'}")
    assert names == ["imdb_listing_5_13-smoke"]  # the real data, not -synthetic
    assert "baseline" in (out / "summary.md").read_text()


# --------------------------------------------------------------------- datasets
@pytest.mark.parametrize(
    "name, shape, n_classes",
    [("breast_cancer", (569, 30), 2), ("digits", (1797, 64), 10), ("wine", (178, 13), 3)],
)
def test_bundled_data_sets_load_offline(name, shape, n_classes):
    X, y = datasets.load(name)
    assert X.shape == shape and X.dtype == np.float32 and len(np.unique(y)) == n_classes
    X_small, y_small = datasets.load(name, n_samples=40)
    assert X_small.shape == (40, shape[1]) and len(np.unique(y_small)) == n_classes


def test_diabetes_target_is_in_hundreds_and_unknown_names_are_refused():
    _, y = datasets.load("diabetes")
    assert 0.2 < y.min() < y.max() < 3.5
    with pytest.raises(
        ValueError, match=r"name must be one of .* got 'wines'. Did you mean 'wine'"
    ):
        datasets.load("wines")


def test_synthetic_imdb_looks_like_listing_5_13_input():
    X, y = datasets.synthetic_imdb(200, num_words=1000, random_state=0)
    assert X.shape == (200, 1000) and X.dtype == np.float32
    assert set(np.unique(X)) == {0.0, 1.0} and 0.4 < y.mean() < 0.6
    assert (X[:, 1] == 1).all() and 40 < X.sum(axis=1).mean() < 400
    again, _ = datasets.synthetic_imdb(200, num_words=1000, random_state=0)
    np.testing.assert_array_equal(X, again)
    np.testing.assert_array_equal(
        datasets.multi_hot([[1, 3, 3], [9]], num_words=4), [[0, 1, 0, 1], [0, 0, 0, 0]]
    )
