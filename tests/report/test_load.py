"""load(): storages, result directories and files; no pickles; no passwords in messages."""

import os
import pickle
import sqlite3
import traceback

import optuna
import pytest

from tunekit.report import ReportError, leaderboard, load, redact_url, write_report
from tunekit.storage.urls import scrub


def _sqlite_study(path, add_cv_trial, name="mlp", n=3):
    url = f"sqlite:///{path}"
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    study.set_user_attr("scoring", "roc_auc")
    study.set_user_attr("n_splits", 3)
    study.set_user_attr("test_train_ratio", 0.5)
    for i in range(n):
        add_cv_trial(
            study,
            {"model__l2": 10.0 ** -(i + 2), "batch_size": 32, "hidden": [16, 16]},
            [0.8 + 0.01 * i, 0.81 + 0.01 * i, 0.79 + 0.01 * i],
        )
    return url


def test_load_a_sqlite_storage_url(tmp_path, add_cv_trial):
    url = _sqlite_study(tmp_path / "study.db", add_cv_trial)
    study = load(url)
    assert isinstance(study, optuna.study.Study) and study.study_name == "mlp"
    lb = leaderboard(study)
    assert lb.attrs["scoring"] == "roc_auc"
    assert lb.index[0] == 2
    assert lb["param_hidden"].iloc[0] == (16, 16)


@pytest.mark.parametrize("how", ["file", "directory"])
def test_load_a_database_file_or_its_directory(tmp_path, add_cv_trial, how):
    _sqlite_study(tmp_path / "study.db", add_cv_trial)
    study = load(tmp_path / "study.db" if how == "file" else tmp_path)
    assert len(leaderboard(study)) == 3


def test_study_selection(tmp_path, add_cv_trial):
    url = _sqlite_study(tmp_path / "s.db", add_cv_trial, name="mlp-l2")
    _sqlite_study(tmp_path / "s.db", add_cv_trial, name="mlp-dropout", n=1)
    with pytest.raises(ReportError, match=r"holds 2 studies .*study=NAME \(command line: --study"):
        load(url)
    assert len(leaderboard(load(url, study="mlp-dropout"))) == 1
    with pytest.raises(ReportError, match=r"no study named 'mlp-l1' .* Did you mean 'mlp-l2'\?"):
        load(url, study="mlp-l1")
    assert len(leaderboard(load(tmp_path, study="mlp-l2"))) == 3


def test_missing_sqlite_file_is_not_created(tmp_path):
    target = tmp_path / "nope.db"
    with pytest.raises(ReportError, match=r"no SQLite database at .*nope\.db.*check the path"):
        load(f"sqlite:///{target}")
    assert not target.exists()


def test_a_database_that_is_not_optuna_is_left_alone(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("create table t (x int)")
    before = path.read_bytes()
    with pytest.raises(ReportError, match=r"cannot read an Optuna storage at sqlite:///"):
        load(path)
    assert path.read_bytes() == before  # no Optuna tables created


def test_empty_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(url)  # creates Optuna's tables, no study
    with pytest.raises(ReportError, match=r"holds no study; run a study first"):
        load(url)


class _Exploit:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".pkl", ".joblib", ".pickle"])
def test_pickles_are_never_loaded(tmp_path, suffix):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"result{suffix}"
    evil.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ReportError, match=r"refusing to unpickle .*unpickling runs arbitrary code"):
        load(evil)
    with pytest.raises(ReportError, match=rf"It holds \['result{suffix}'\], but pickles are never"):
        load(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "source, match",
    [
        ("does/not/exist", r"no such file or directory: 'does/not/exist'; pass a storage URL"),
        ("notes.txt", r"cannot read '.*notes\.txt': expected a \.json, \.csv or SQLite"),
        ("bad.json", r"is not a tunekit JSON file .* got format='other'"),
        ("bad.csv", r"is not a leaderboard CSV written by tunekit\.report\.write"),
    ],
)
def test_unreadable_sources(tmp_path, monkeypatch, source, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReportError, match=match):
        load(source)


def test_directory_preference(result, tmp_path, add_cv_trial):
    write_report(result, tmp_path, formats=("json",), plots=False)
    _sqlite_study(tmp_path / "study.db", add_cv_trial)
    assert leaderboard(load(tmp_path)).attrs["strategy"] == "grid"  # cv_results.json first
    assert isinstance(load(tmp_path, study="mlp"), optuna.study.Study)  # a study was asked for
    os.remove(tmp_path / "cv_results.json")
    assert "candidate" in load(tmp_path).index.names  # then leaderboard.json


# ---------------------------------------------------------------- passwords
@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://tuner:s3cret@db:5432/studies", "postgresql://tuner:***@db:5432/studies"),
        ("postgresql+psycopg2://u:p%40ss@h/db", "postgresql+psycopg2://u:***@h/db"),
        ("mysql://u:pw@h/db?charset=utf8", "mysql://u:***@h/db?charset=utf8"),
        ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///results/study.db", "sqlite:///results/study.db"),
        ("results/run-1", "results/run-1"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_scrub_removes_every_spelling_of_the_password():
    url = "postgresql://u:p%40ss@h/db"
    text = f"failed for {url} with password p@ss (p%40ss)"
    assert scrub(text, url) == "failed for postgresql://u:***@h/db with password *** (***)"


@pytest.mark.parametrize("password", ["s3cret", "p%40ss%3Aw0rd"])
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2", "mysql"])
def test_storage_errors_never_show_the_password(scheme, password):
    from urllib.parse import unquote

    url = f"{scheme}://tuner:{password}@127.0.0.1:1/studies"  # nothing listens on port 1
    with pytest.raises(ReportError) as info:
        load(url)
    shown = "".join(traceback.format_exception(info.value))
    for spelling in {password, unquote(password)}:
        assert spelling not in shown
    assert f"{scheme}://tuner:***@127.0.0.1:1/studies" in str(info.value)


@pytest.mark.postgres
def test_load_from_postgresql(add_cv_trial):
    url = os.environ.get("TUNEKIT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TUNEKIT_TEST_POSTGRES_URL is not set")
    name = "tunekit-report-test"
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # unreachable server or missing driver
        pytest.skip(f"PostgreSQL unreachable at {redact_url(url)}: {type(exc).__name__}")
    if name in optuna.study.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    add_cv_trial(study, {"batch_size": 32}, [0.8, 0.8, 0.8])
    try:
        assert len(leaderboard(load(url, study=name))) == 1
    finally:
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:p%40ss@h:5/db", "postgresql+psycopg2://u:p%40ss@h:5/db"),
        ("postgres://u:pw@h/db", "postgresql+psycopg2://u:pw@h/db"),
        ("postgresql+psycopg2://u:pw@h/db", "postgresql+psycopg2://u:pw@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_bare_postgresql_urls_fall_back_to_psycopg2(monkeypatch, url, expected):
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; tunekit's extra installs psycopg2."""
    import importlib.util

    from tunekit.storage.urls import resolve_url

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            object() if name == "psycopg2" else None if name == "psycopg" else real(name, *a)
        ),
    )
    assert resolve_url(url) == expected
