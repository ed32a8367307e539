"""``tunekit dashboard``: Optuna Dashboard on a study's storage (command line and Python)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from tunekit import cli
from tunekit.cli import study

DOCS = Path(__file__).resolve().parent.parent / "docs"

optuna.logging.set_verbosity(optuna.logging.WARNING)

# one worker runs the module, in order: its tests share one server, which the Ctrl-C test
# stops after the browser test
pytestmark = pytest.mark.xdist_group("dashboard")


def needs_dashboard():
    return pytest.importorskip("optuna_dashboard", reason="the dashboard extra is not installed")


def make_study_dir(root: Path) -> Path:
    """A result directory holding one study database, as every study in studies/ writes."""
    out = root / "results" / "demo"
    out.mkdir(parents=True)
    study = optuna.create_study(
        study_name="mlp-l2-dropout-demo",
        storage=f"sqlite:///{out / 'study.db'}",
        direction="maximize",
    )
    study.optimize(lambda t: -((t.suggest_float("model__l2", 1e-5, 1e-1, log=True) - 0.01) ** 2),
                   n_trials=4)
    return out


@pytest.fixture
def study_dir(tmp_path):
    return make_study_dir(tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``tunekit dashboard RESULT_DIR --port N`` in its own process, as a user starts it.

    One server for the module (it takes seconds to start); the Ctrl-C test stops it.
    """
    needs_dashboard()
    tmp_path = tmp_path_factory.mktemp("served")
    study_dir = make_study_dir(tmp_path)
    port = free_port()
    log = open(tmp_path / "dashboard.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunekit", "dashboard", str(study_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            get(f"{base}/api/studies", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"no dashboard on {base}:\n{(tmp_path / 'dashboard.log').read_text()}")
            time.sleep(0.25)
    yield base, proc, tmp_path
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


@pytest.mark.browser
def test_a_browser_shows_the_study_name(served, tmp_path):
    """Headless Chromium renders the dashboard's study list, the study's name on it."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary found")
    base, _, _ = served
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        f"{base}/dashboard/",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish in 120 s")
    dom = done.stdout
    assert "<body" in dom, done.stderr[-2000:]
    assert "mlp-l2-dropout-demo" in dom  # rendered by the page's script from the API


def test_the_dashboard_serves_the_study_and_stops_on_ctrl_c(served):
    base, proc, tmp_path = served  # after the browser test: it stops the module's server
    status, page = get(f"{base}/dashboard/")
    assert status == 200
    assert "<html" in page.lower() and "<script" in page.lower()
    status, body = get(f"{base}/api/studies")
    (summary,) = json.loads(body)["study_summaries"]
    assert summary["study_name"] == "mlp-l2-dropout-demo"
    status, body = get(f"{base}/api/studies/{summary['study_id']}")
    assert status == 200
    assert len(json.loads(body)["trials"]) == 4

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    out = (tmp_path / "dashboard.log").read_text()
    assert f"Optuna Dashboard for sqlite:///{Path(tmp_path).resolve().as_posix()}" in out
    assert re.search(r"http://localhost:\d+/dashboard/ \(Ctrl-C to stop\)", out)


def test_make_server_on_a_free_port_in_process(study_dir):
    needs_dashboard()
    import threading

    from tunekit.dashboard import make_server

    server = make_server(study_dir / "study.db", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, body = get(f"http://127.0.0.1:{server.server_port}/api/studies")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    assert "mlp-l2-dropout-demo" in body


@pytest.mark.parametrize(
    "make_source, match",
    [
        (lambda d: d / "nope", r"no such file or directory: '.*nope'"),
        (lambda d: d.parent, r"holds no database; the dashboard needs exactly one Optuna"),
        (lambda d: Path(shutil.copy(d / "study.db", d / "b.db")).parent, r"holds 2 databases"),
        (lambda d: Path(shutil.copy(d / "study.db", d / "x.csv")), r"is not an SQLite study"),
        (lambda d: "sqlite:///" + str(d / "typo.db"), r"no SQLite database at '.*typo.db'"),
    ],
)
def test_a_bad_source_is_a_clear_error(make_source, match, study_dir, capsys):
    needs_dashboard()
    source = str(make_source(study_dir))
    assert cli.main(["dashboard", source, "--port", "0"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert re.search(r"tunekit dashboard: error: .*" + match, err), err
    assert not (study_dir / "typo.db").exists()  # a typo never creates a database


def test_a_port_in_use_is_a_clear_error(study_dir):
    needs_dashboard()
    from tunekit.dashboard import DashboardError, make_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardError, match=rf"cannot listen on 127.0.0.1:{port} .*--port N"):
            make_server(study_dir, port=port)


def test_a_password_is_never_printed(capsys):
    needs_dashboard()
    url = "postgresql://tuner:s3cret@127.0.0.1:1/studies"
    assert cli.main(["dashboard", url]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "cannot read an Optuna storage at postgresql://tuner:***@127.0.0.1:1/studies" in err
    assert "s3cret" not in err


def test_without_the_extra_the_command_names_the_install(study_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import -> ImportError
    assert cli.main(["dashboard", str(study_dir)]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "tunekit dashboard needs Optuna Dashboard, which is not installed" in err
    assert "pip install 'tunekit[dashboard]'" in err


def test_the_dashboard_command_masks_passwords():
    from tunekit.dashboard import command

    assert command("results/tune") == "tunekit dashboard results/tune"
    assert command("postgresql://u:pw@h/db") == "tunekit dashboard 'postgresql://u:***@h/db'"


def test_the_guide_example_runs(tmp_path, monkeypatch):
    needs_dashboard()
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "dashboard.md").read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "dashboard.md", "exec"), {"__name__": "__docs__"})
    assert (tmp_path / "watched.db").is_file()


def test_the_help_lists_the_dashboard(capsys):
    assert cli.main(["--help"]) == 0
    assert "dashboard" in capsys.readouterr().out
    assert cli.main(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--port" in out and "tunekit[dashboard]" in out


def test_ctrl_c_stops_serve_cleanly(study_dir, monkeypatch):
    """serve() returns (and closes the socket) on KeyboardInterrupt."""
    needs_dashboard()
    from tunekit import dashboard

    lines = []

    def interrupt(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(dashboard.wsgiref.simple_server.WSGIServer, "serve_forever", interrupt)
    dashboard.serve(study_dir, port=0, announce=lines.append)
    assert len(lines) == 1 and "/dashboard/" in lines[0]
    assert os.fspath(study_dir / "study.db") in lines[0]


@pytest.mark.parametrize("installed", [True, False])
def test_a_study_prints_the_dashboard_command_next_to_its_report(installed, monkeypatch, capsys):
    from tunekit.workflow import StudyOutcome

    if not installed:
        monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # find_spec -> None
    outcome = StudyOutcome(
        study_name="tune",
        storage="sqlite:///results/tune/study.db",
        report={"md": Path("results/tune/leaderboard.md")},
        n_finished=2,
    )
    study._print_summary(outcome)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("report:"))
    live = lines[at + 1]
    assert live.startswith("live view: tunekit dashboard sqlite:///results/tune/study.db")
    assert ("pip install 'tunekit[dashboard]'" in live) is not installed


def test_the_dashboard_names_a_tunekit_studys_value_after_its_scorer(tmp_path):
    needs_dashboard()
    import threading

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import tunekit as tk
    from tunekit.dashboard import make_server

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    tk.search(LogisticRegression(), X, y, space={"C": tk.Float(0.1, 10.0, log=True)},
              strategy="optuna", n_trials=2, cv=2, test_size=None, baselines=False,
              storage=url, study_name="named", verbose=0)  # fmt: skip
    server = make_server(tmp_path / "study.db", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        (summary,) = json.loads(get(f"{base}/api/studies")[1])["study_summaries"]
        detail = json.loads(get(f"{base}/api/studies/{summary['study_id']}")[1])
    finally:
        server.shutdown()
        server.server_close()
    assert detail["objective_names"] == ["accuracy (mean over CV folds)"]
