"""An SQLite study file in write-ahead-log mode: fast commits, nothing lost, one file at the end.

``make_storage`` opens an SQLite file with ``journal_mode=WAL`` and
``synchronous=NORMAL``. These tests run real processes on a real file: the
log is folded back into the database when a process ends (so copying the
``.db`` alone copies the whole study), a process killed with ``kill -9``
loses no committed trial, and ``TUNEKIT_SQLITE_WAL=0`` keeps the rollback
journal.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tunekit.storage import make_storage
from tunekit.storage.opening import write_ahead_log

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import optuna
    from tunekit.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(sys.argv[1])
    study = optuna.create_study(storage=storage, study_name="wal", load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=int(sys.argv[2]))
    print(sorted(os.listdir(os.path.dirname(sys.argv[1].removeprefix("sqlite:///")))), flush=True)
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _write(url, n_trials, end="exit", **env):
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, url, str(n_trials), end],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    return proc


def _trials(path):
    with sqlite3.connect(path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        states = [s for (s,) in conn.execute("SELECT state FROM trials ORDER BY number")]
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return mode, states, check


def test_a_study_file_is_one_file_again_when_its_process_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _write(url, 6)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # while the study ran, its commits went to the log beside the file ...
    assert "study.db-wal" in proc.stdout
    # ... and once the process ended, they are in the file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db"]
    copy = tmp_path.parent / f"{tmp_path.name}-copy.db"
    shutil.copy(tmp_path / "study.db", copy)  # the .db alone: every trial is in it
    mode, states, check = _trials(copy)
    assert (mode, check) == ("wal", "ok")
    assert states == ["COMPLETE"] * 6


def test_kill_9_loses_no_committed_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _write(url, 5, "kill")
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "study.db-wal").exists()  # the log was not folded back: no clean end
    mode, states, check = _trials(tmp_path / "study.db")  # the next opener replays it
    assert (mode, states, check) == ("wal", ["COMPLETE"] * 5, "ok")
    proc = _write(url, 3)  # and the study goes on from there
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _trials(tmp_path / "study.db")[1] == ["COMPLETE"] * 8


def test_the_rollback_journal_on_request(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    proc = _write(url, 2, TUNEKIT_SQLITE_WAL="0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "study.db-wal" not in proc.stdout
    assert _trials(tmp_path / "study.db")[:2] == ("delete", ["COMPLETE"] * 2)


def test_a_bad_wal_setting_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEKIT_SQLITE_WAL", "sometimes")
    with pytest.raises(ValueError, match=r"TUNEKIT_SQLITE_WAL must be 1 or 0, got 'sometimes'"):
        write_ahead_log()
    with pytest.raises(ValueError, match=r"TUNEKIT_SQLITE_WAL must be 1 or 0"):
        make_storage(f"sqlite:///{tmp_path / 'study.db'}")


def test_an_in_memory_database_is_left_as_it_is():
    storage = make_storage("sqlite:///:memory:", heartbeat_interval=0)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
