"""scikit-learn searches on a Dask cluster: ``tunekit.search(..., backend="dask")``.

A ``LocalCluster`` of two worker processes stands in for a real cluster; the
searches on it must give the same candidates, folds and scores as the same
searches run here.
"""

import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import tunekit as tk
import tunekit.backends

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

# one worker runs the module: its tests share one LocalCluster
pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("dask")]

SPACE = {"C": tk.Float(0.01, 10.0, log=True)}


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as on two small machines."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 6))
    return X, (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int)


@pytest.mark.parametrize(
    "strategy, extra",
    [("grid", {"n_points": 4}), ("random", {"n_trials": 5}), ("halving", {"n_trials": 6})],
)
def test_dask_gives_the_candidates_folds_and_scores_of_a_local_run(strategy, extra, cluster, data):
    X, y = data
    kwargs = dict(space=SPACE, strategy=strategy, cv=3, verbose=0, engine="sklearn", **extra)
    local = tk.search(LogisticRegression(), X, y, **kwargs)
    remote = tk.search(
        LogisticRegression(), X, y, backend="dask", scheduler=cluster.scheduler_address, **kwargs
    )
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    assert remote.n_splits_ == local.n_splits_ == 3
    for key in ["mean_test_score", "split0_test_score", "split2_test_score", "mean_train_score"]:
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], atol=1e-12)
    assert remote.best_params_ == local.best_params_
    assert remote.heldout_score_ == pytest.approx(local.heldout_score_)


def test_the_fits_really_run_on_the_cluster(cluster, data):
    X, y = data
    with distributed.Client(cluster.scheduler_address) as client:
        with distributed.get_task_stream(client=client) as stream:
            result = tk.search(
                LogisticRegression(),
                X,
                y,
                space=SPACE,
                n_points=4,
                cv=3,
                verbose=0,
                backend="dask",
                scheduler=client,  # a client works as well as an address
            )
    workers = {task["worker"] for task in stream.data}
    assert stream.data, "no task reached the cluster"
    assert workers <= set(cluster.scheduler_info["workers"])
    assert len(result.cv_results_["params"]) == 4


def test_a_joblib_dask_block_set_by_the_user_works_too(cluster, data):
    from joblib import parallel_config

    X, y = data
    kwargs = dict(space=SPACE, n_points=4, cv=3, verbose=0, engine="sklearn")
    local = tk.search(LogisticRegression(), X, y, **kwargs)
    with distributed.Client(cluster.scheduler_address) as client:
        with distributed.get_task_stream(client=client) as stream, parallel_config("dask"):
            remote = tk.search(LogisticRegression(), X, y, n_jobs=-1, **kwargs)
    assert stream.data, "no task reached the cluster"
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )


@pytest.mark.slow  # ~20 s on 2 cores: TensorFlow is imported in both worker processes
def test_a_tiny_keras_model_searches_on_dask(cluster):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(64, 4)).astype("float32")
    y = (X[:, 0] > 0).astype(int)
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=1, batch_size=32, random_state=0, verbose=0
    )
    space = {"model__dropout": tk.Choice([0.0, 0.2])}
    kwargs = dict(space=space, cv=2, test_size=None, verbose=0, engine="sklearn")
    remote = tk.search(clf, X, y, backend="dask", scheduler=cluster.scheduler_address, **kwargs)
    local = tk.search(clf, X, y, **kwargs)
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    assert remote.n_splits_ == local.n_splits_ == 2
    # seeded single-epoch fits: the same scores wherever they ran, up to float noise
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], atol=0.1
    )


def test_unreachable_scheduler_is_a_clear_error(data, monkeypatch):
    monkeypatch.setattr(tunekit.backends, "DASK_CONNECT_TIMEOUT", 1.0)
    with pytest.raises(ConnectionError, match=r"cannot reach the Dask scheduler at 'tcp://127"):
        tk.search(
            LogisticRegression(),
            *data,
            space=SPACE,
            verbose=0,
            backend="dask",
            scheduler="tcp://127.0.0.1:1",
        )


def test_dask_without_a_scheduler_or_client_is_a_clear_error(data):
    with pytest.raises(ValueError, match=r"backend='dask' needs a scheduler: pass scheduler="):
        tk.search(LogisticRegression(), *data, space=SPACE, verbose=0, backend="dask")


def test_dask_not_installed_is_a_clear_error(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'tunekit\[dask\]'"):
        tk.search(
            LogisticRegression(), *data, space=SPACE, verbose=0, backend="dask", scheduler="x"
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backend": "spark"}, r"backend must be None .* or 'dask'.*got backend='spark'"),
        ({"backend": "dask", "strategy": "optuna"}, r"Optuna study scales out through its"),
        ({"backend": "dask", "engine": "stacked"}, r"engine='stacked' .* cannot use backend"),
    ],
)
def test_backend_misuse_is_refused_before_any_fit(kwargs, match, data):
    with pytest.raises(ValueError, match=match):
        tk.search(LogisticRegression(), *data, space=SPACE, verbose=0, **kwargs)
