"""Shared test configuration: quiet TensorFlow, Ctrl-C as in a terminal, an autouse seed,
small data."""

import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# A suite started in the background by a script (`pytest ... &`, no job control) inherits
# SIGINT ignored, and so do the workers and processes it starts: tunekit leaves an ignored
# SIGINT alone (nohup), so the tests that send Ctrl-C would pass or fail by the order they
# ran in (a test that restored Python's handler in its worker made the later ones pass).
# The tests press Ctrl-C as a terminal does.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import random

import numpy as np
import pytest

try:  # pytest >= 9: a test's id lives in a structured form
    from _pytest.nodeid import coerce_node_id
except ImportError:  # pytest 8: xdist's suffix already reaches the scheduler
    coerce_node_id = None


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same Python and NumPy random state."""
    random.seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def binary_data():
    """A small, learnable binary problem: 120 samples, 6 features."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 6)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture
def multiclass_data():
    """A small 3-class problem: 150 samples, 5 features."""
    rng = np.random.RandomState(1)
    X = rng.normal(size=(150, 5)).astype("float32")
    y = np.digitize(X[:, 0] + 0.3 * X[:, 2], [-0.5, 0.5])
    return X, y


@pytest.fixture
def regression_data():
    """A small regression problem: 120 samples, 4 features."""
    rng = np.random.RandomState(2)
    X = rng.normal(size=(120, 4)).astype("float32")
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=120)).astype("float32")
    return X, y


def _uses_a_module_fixture(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values() if defs)


def pytest_itemcollected(item):
    """Under ``-n``, the fault tests run one at a time in one worker: each starts several
    worker processes with short heartbeat grace periods, and several such tests at once
    on 2 cores starve each other past their timeouts.

    The tests of a module that share a module-scoped fixture (a trained search, a fitted
    model) run in one worker too, so that the fixture is built once, not once per worker.
    A module already in a group of its own keeps it."""
    if item.path.name == "test_faults.py":
        item.add_marker(pytest.mark.xdist_group("faults"))
    elif item.get_closest_marker("xdist_group") is None and _uses_a_module_fixture(item):
        item.add_marker(pytest.mark.xdist_group(f"{item.path.stem}-module-fixtures"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` group again on pytest >= 9.

    pytest-xdist (3.8) marks a test's group by appending ``@group`` to the test's
    ``_nodeid``; pytest 9 reads a test's id from ``_id`` instead, so the suffix never
    reached the scheduler and every group was ignored. This copies the suffixed id
    where pytest 9 reads it, after xdist has written it."""
    for item in items:
        marked = item.__dict__.get("_nodeid")
        if coerce_node_id is None:
            return
        if isinstance(marked, str) and "@" in marked and item.nodeid != marked:
            item._id = coerce_node_id(marked)

