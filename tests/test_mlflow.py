"""A search logged to MLflow, read back with MLflow's own client (and shown by its UI)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import tunekit as tk

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402

SPACE = {"C": tk.Choice([0.01, 1.0])}


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return X, (X[:, 0] > 0).astype(int)


def _runs(uri):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tunekit")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_a_search_is_one_run_with_a_nested_run_per_candidate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = _data()
    result = tk.search(LogisticRegression(), X, y, space=SPACE, cv=3, mlflow=True, verbose=0)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"  # the default: ./mlruns
    client, parents, children = _runs(uri)
    (parent,) = parents
    assert parent.data.params["strategy"] == "grid"
    assert parent.data.params["n_candidates"] == "2"
    assert parent.data.metrics["best_cv_score"] == pytest.approx(result.best_score_)
    assert parent.data.metrics["heldout_score"] == pytest.approx(result.heldout_score_)
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    cv = result.cv_results_
    for child in children:
        i = int(child.data.tags["tunekit.candidate"])
        assert float(child.data.params["C"]) == cv["params"][i]["C"]
        assert child.data.metrics["mean_cv_score"] == pytest.approx(cv["mean_test_score"][i])
        for s in range(3):
            assert child.data.metrics[f"cv_score_fold{s}"] == pytest.approx(
                cv[f"split{s}_test_score"][i]
            )
        assert child.data.tags["state"] == "COMPLETE"
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/leaderboard.md", "report/leaderboard.html", "report/cv_results.json"} <= files


def test_per_epoch_curves_are_metrics_with_steps(tmp_path):
    X, y = _data()
    clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=3, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    space = {"model__l2": tk.Choice([1e-4, 1e-2])}
    result = tk.search(clf, X.astype("float32"), y, space=space, cv=2, test_size=None,
                       baselines=False, tracking_uri=uri, verbose=0)  # fmt: skip
    client, _, children = _runs(uri)
    curves = result.epoch_curves_
    for child in children:
        i = int(child.data.tags["tunekit.candidate"])
        history = client.get_metric_history(child.info.run_id, "epoch_train_loss")
        expected = curves[curves["candidate"] == i].groupby("epoch")["train_loss"].mean()
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(expected.index)
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            list(expected)
        )


def test_mlflow_is_not_imported_unless_asked_for():
    code = (
        "import sys, numpy as np, tunekit as tk\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = np.random.default_rng(0).normal(size=(30, 2)); y = (X[:, 0] > 0).astype(int)\n"
        "tk.search(LogisticRegression(), X, y, space={'C': tk.Choice([1.0])}, cv=2, verbose=0)\n"
        "print('mlflow' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TUNEKIT_MLFLOW_URI"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_a_bad_mlflow_value_is_refused_before_training():
    X, y = _data()
    with pytest.raises(ValueError, match=r"mlflow must be True, False or a tracking URI"):
        tk.search(LogisticRegression(), X, y, space=SPACE, cv=3, mlflow=3, verbose=0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # 1 to 3 minutes: the MLflow server starts, the browser loads its app
@pytest.mark.browser
def test_the_mlflow_ui_shows_the_search_run(tmp_path):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    server_command = shutil.which("mlflow")
    if binary is None or server_command is None:
        pytest.skip("no chromium binary or mlflow command found")
    X, y = _data()
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    tk.search(LogisticRegression(), X, y, space=SPACE, cv=3, tracking_uri=uri, verbose=0)
    _, (parent,), _ = _runs(uri)
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(
        [server_command, "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        page = f"{base}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
             "--dump-dom", page],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert parent.info.run_name in done.stdout, done.stdout[-2000:]
