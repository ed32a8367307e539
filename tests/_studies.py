"""What the multi-process tests share: the study that their worker processes create."""

import time

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
