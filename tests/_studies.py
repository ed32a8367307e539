"""What study tests share: the study that worker processes create, a study from e47eb89, a
plan that spawned worker processes share (this module's imports leave Keras out)."""

import sqlite3
import time
from pathlib import Path

import optuna
import pytest

from tunekit.storage import make_storage


def wait_for_study(url, name, timeout=300):
    """The study as the test sees it (no heartbeats of its own), once a worker made it."""
    storage = make_storage(url, heartbeat_interval=0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name in optuna.study.get_all_study_names(storage):
            return optuna.load_study(study_name=name, storage=storage)
        time.sleep(0.2)
    pytest.fail(f"no worker created study {name!r} within {timeout} s")


#: An SQL text dump of a small study made by tunekit at e47eb89 (tests/data/make_study_e47eb89.py).
OLD_STUDY_DUMP = Path(__file__).parent / "data" / "study_e47eb89.sql"


def restore_old_study(folder: Path) -> str:
    """Build the e47eb89 study's database from its dump in ``folder``; its storage URL."""
    path = folder / "old.db"
    with sqlite3.connect(path) as con:
        con.executescript(OLD_STUDY_DUMP.read_text(encoding="utf-8"))
    return f"sqlite:///{path}"


def share_a_plan(url, X, y, name="shared"):
    """A worker process of tests/test_workflow.py: a decision tree's depths 1 to 8, a plan
    that the workers of one study share."""
    from sklearn.tree import DecisionTreeClassifier

    from tunekit.workflow import Config, run_study

    run_study(
        DecisionTreeClassifier(random_state=0),
        X,
        y,
        storage=url,
        study_name=name,
        plan=[Config(f"depth {d}", {"max_depth": d}) for d in range(1, 9)],
        cv=3,
        worker=True,
        verbose=0,
    )
