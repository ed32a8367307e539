"""A study's stored layout has a version, and nothing stored is ever unpickled.

A study written by this tunekit says which layout it is in; one written before
layouts had versions (``tests/data/study_e47eb89.sql``) is layout 1 and is
stamped when it is resumed; a study from a newer tunekit is refused with both
versions named, never misread. Whatever is read back from a storage or a
result folder is JSON (or CSV), so a pickle planted there runs nothing.
"""

import ast
import json
import pickle
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from _studies import restore_old_study
from sklearn.linear_model import LogisticRegression

import tunekit as tk
from tunekit.exceptions import LayoutError
from tunekit.record import LAYOUT_ATTR, LAYOUT_VERSION, MIN_READER, stored_layout
from tunekit.report import leaderboard, load, write_report

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.filterwarnings("ignore:.*candidates failed and rank last")

PACKAGE = Path(tk.__file__).parent


def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


def _search(url, n_trials=2, study_name="sklearn"):
    X, y = _data()
    return tk.search(
        LogisticRegression(max_iter=200), X, y, space={"C": tk.Choice([0.5, -1.0, 2.0])},
        strategy="optuna", n_trials=n_trials, cv=2, test_size=None, storage=url,
        study_name=study_name, baselines=False, random_state=0, verbose=0,
    )  # fmt: skip


@pytest.fixture
def old_study(tmp_path):
    return restore_old_study(tmp_path)


@pytest.fixture
def study_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _search(url)
    return url


def _set_layout(url, study_name, value):
    """Write the study attribute as a newer (or broken) tunekit would have."""
    optuna.load_study(study_name=study_name, storage=url).set_user_attr(LAYOUT_ATTR, value)


def _n_trials(url, study_name="sklearn"):
    return len(optuna.load_study(study_name=study_name, storage=url).get_trials())


# ------------------------------------------------------------------ the version


def test_a_new_study_stores_its_layout(study_url):
    study = optuna.load_study(study_name="sklearn", storage=study_url)
    assert study.user_attrs[LAYOUT_ATTR] == {
        "version": LAYOUT_VERSION, "min_reader": MIN_READER, "written_by": tk.__version__
    }  # fmt: skip


def test_a_study_from_before_versions_is_layout_1_and_is_stamped_when_resumed(old_study):
    before = optuna.load_study(study_name="sklearn", storage=old_study)
    assert LAYOUT_ATTR not in before.user_attrs
    assert stored_layout(before).version == 1
    assert leaderboard(load(old_study, study="sklearn")).loc[1, "state"] == "COMPLETE"
    result = _search(old_study, n_trials=3)
    assert len(result.study_.get_trials()) >= 3
    assert result.study_.user_attrs[LAYOUT_ATTR]["version"] == LAYOUT_VERSION


def test_a_newer_layout_that_this_tunekit_cannot_read_is_refused_naming_both(study_url):
    _set_layout(study_url, "sklearn", {"version": 7, "min_reader": 5, "written_by": "9.0.0"})
    message = r"layout version 7, which needs a reader of layout 5 or newer; .* reads layouts 1 to"
    with pytest.raises(LayoutError, match=message):
        load(study_url)
    with pytest.raises(LayoutError, match=r"written by tunekit 9\.0\.0"):
        tk.report.cv_results_from_study(optuna.load_study(study_name="sklearn", storage=study_url))
    with pytest.raises(LayoutError, match=message):
        _search(study_url, n_trials=4)
    assert _n_trials(study_url) == 2  # nothing was added


def test_a_newer_layout_that_older_readers_can_read_is_reported_but_not_resumed(study_url):
    newer = LAYOUT_VERSION + 1
    _set_layout(study_url, "sklearn", {"version": newer, "min_reader": 1, "written_by": "9.0.0"})
    assert len(leaderboard(load(study_url))) == 2  # read: the new keys are ignored
    message = rf"layout version {newer}; .* writes layout {LAYOUT_VERSION}, so it may report"
    with pytest.raises(LayoutError, match=message):
        _search(study_url, n_trials=4)
    assert _n_trials(study_url) == 2


def test_a_broken_layout_attribute_is_a_clear_error(study_url):
    _set_layout(study_url, "sklearn", "two")
    with pytest.raises(LayoutError, match="unreadable 'tunekit_layout' attribute"):
        load(study_url)


def test_the_report_command_names_both_versions(study_url, tmp_path):
    _set_layout(study_url, "sklearn", {"version": 3, "min_reader": 3})
    assert LAYOUT_VERSION < 3
    done = subprocess.run(
        [sys.executable, "-m", "tunekit", "report", study_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "layout version 3" in done.stderr
    assert f"reads layouts 1 to {LAYOUT_VERSION}" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------- no pickle, ever


class _Payload:
    """Unpickling this creates ``path``: the proof that a pickle ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plant(url: str, blob: bytes, raw: bool = False) -> None:
    """Put a pickle where tunekit reads a study: trial and study attributes.

    As JSON text (a string holding the pickle's bytes), or ``raw``: the bytes
    themselves in place of a trial's JSON.
    """
    path = url.removeprefix("sqlite:///")
    text = json.dumps(blob.decode("latin-1"))
    with sqlite3.connect(path) as con:
        for key in ("params", "failure_reason"):
            con.execute(
                "UPDATE trial_user_attributes SET value_json = ? WHERE key = ?",
                (blob if raw else text, key),
            )
        con.execute(
            "INSERT INTO study_user_attributes (study_id, key, value_json) "
            "SELECT study_id, 'tunekit_baselines', ? FROM studies",
            (text,),
        )
        con.execute(
            "INSERT INTO trial_system_attributes (trial_id, key, value_json) "
            "SELECT trial_id, 'planted', ? FROM trials",
            (text,),
        )


@pytest.fixture
def payload(tmp_path):
    """A pickle whose loading creates a marker file (shown to work before each test)."""
    marker = tmp_path / "pickle-ran"
    blob = pickle.dumps(_Payload(marker))
    pickle.loads(blob)
    assert marker.exists()
    marker.unlink()
    return blob, marker


def test_a_pickle_planted_as_text_in_a_study_is_read_as_text(study_url, tmp_path, payload):
    blob, marker = payload
    _plant(study_url, blob)
    write_report(load(study_url), tmp_path / "report", plots=False)
    assert not marker.exists()
    done = subprocess.run(
        [sys.executable, "-m", "tunekit", "report", study_url], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(_search(study_url, n_trials=3).study_.get_trials()) >= 3  # resumed
    assert not marker.exists()


def test_a_pickle_planted_as_raw_bytes_in_a_study_is_refused_not_run(study_url, payload):
    blob, marker = payload
    _plant(study_url, blob, raw=True)
    with pytest.raises(UnicodeDecodeError):  # Optuna reads its columns as JSON text
        leaderboard(load(study_url))
    with pytest.raises(UnicodeDecodeError):
        _search(study_url, n_trials=3)
    assert not marker.exists()


def test_a_pickle_in_a_result_folder_is_refused_and_never_loaded(tmp_path):
    marker = tmp_path / "pickle-ran"
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "result.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(tk.report.ReportError, match="never loaded"):
        load(folder)
    with pytest.raises(tk.report.ReportError, match="refusing to unpickle"):
        load(folder / "result.pkl")
    assert not marker.exists()


_UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"}


def _unsafe_calls(source: str) -> list[str]:
    """Calls that can run code from what they read, in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in _UNSAFE_MODULES]
        if isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in _UNSAFE_MODULES or (
                module == "joblib" and any(a.name == "load" for a in node.names)
            ):
                found.append(f"from {node.module} import ...")
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        name, keywords = node.func.attr, {k.arg: k.value for k in node.keywords}
        if owner in ("np", "numpy") and name == "load":
            safe = keywords.get("allow_pickle")
            if not (isinstance(safe, ast.Constant) and safe.value is False):
                found.append("np.load without allow_pickle=False")
        if name == "load_model":
            safe = keywords.get("safe_mode")
            if isinstance(safe, ast.Constant) and safe.value is False:
                found.append("load_model(safe_mode=False)")
        if (owner, name) in (("pd", "read_pickle"), ("joblib", "load")):
            found.append(f"{owner}.{name}")
    return found


def test_the_checker_finds_what_it_looks_for():
    source = (
        "import pickle\nimport numpy as np\nfrom joblib import load\n"
        "from joblib import Parallel\nnp.load('a.npy')\nnp.load('b.npy', allow_pickle=False)\n"
        "keras.models.load_model('m.keras', safe_mode=False)\npd.read_pickle('x')\n"
        "joblib.load('m.joblib')\n"
    )
    assert sorted(_unsafe_calls(source)) == sorted([
        "import pickle", "from joblib import ...", "np.load without allow_pickle=False",
        "load_model(safe_mode=False)", "pd.read_pickle", "joblib.load",
    ])  # fmt: skip


def test_the_package_never_calls_a_loader_that_runs_code():
    found = {
        str(path.relative_to(PACKAGE)): calls
        for path in sorted(PACKAGE.rglob("*.py"))
        if (calls := _unsafe_calls(path.read_text(encoding="utf-8")))
    }
    assert found == {}
