"""A storage URL's password never appears in logs, progress output, reports or errors.

Every test captures what a user could see: log records of every logger at
DEBUG, stdout and stderr (progress bars included), exception messages with
their formatted tracebacks (chained exceptions included), and every file
written, and asserts that the password is in none of them.
"""

import logging
import traceback
import uuid

import numpy as np
import optuna
import pytest
from _postgres import reachable_postgres_url
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url

import tunekit as tk
from tunekit.storage import make_storage, storage_label

PASSWORD = "hunter2secret"
UNREACHABLE = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"
SPACE = {"C": tk.Float(0.01, 10.0, log=True)}


@pytest.fixture
def seen(caplog, capsys):
    """Everything shown so far: log records at DEBUG, stdout and stderr."""
    caplog.set_level(logging.DEBUG)  # the root logger: tunekit, optuna, sqlalchemy, ...
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    optuna.logging.enable_propagation()

    def collect(*extra):
        out, err = capsys.readouterr()
        records = "\n".join(
            f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
        )
        return "\n".join([out, err, caplog.text, records, *map(str, extra)])

    yield collect
    optuna.logging.disable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def shown(err: BaseException) -> str:
    """The message and the full traceback a user would see, chained causes included."""
    return str(err) + "".join(traceback.format_exception(err, chain=True))


def test_unreachable_storage_error_hides_the_password(seen, binary_data):
    with pytest.raises(ValueError, match=r"cannot open the Optuna storage .*:\*\*\*@") as info:
        tk.search(
            LogisticRegression(),
            *binary_data,
            space=SPACE,
            strategy="optuna",
            storage=UNREACHABLE,
            study_name="s",
            n_trials=2,
            cv=2,
            verbose=1,
        )
    assert PASSWORD not in seen(shown(info.value))
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/test",  # unparsable port
        f"postgresql+nosuchdriver://postgres:{PASSWORD}@127.0.0.1/test",  # unknown driver
        f"postgresql://postgres@127.0.0.1:1/test?password={PASSWORD}",  # password as argument
        f"postgresql://postgres:{PASSWORD.replace('2', '%32')}@127.0.0.1:1/test",  # escaped
    ],
)
def test_malformed_urls_never_show_the_password(url, seen):
    with pytest.raises(ValueError, match=r"cannot open the Optuna storage") as info:
        make_storage(url)
    assert PASSWORD not in seen(shown(info.value))
    assert PASSWORD.replace("2", "%32") not in shown(info.value)


def test_report_loader_hides_the_password(seen):
    with pytest.raises(tk.report.ReportError) as info:
        tk.report.load(UNREACHABLE, study="s")
    assert "***" in str(info.value)
    assert PASSWORD not in seen(shown(info.value))


def test_storage_labels_hide_the_password(tmp_path):
    assert storage_label(UNREACHABLE) == "postgresql://postgres:***@127.0.0.1:1/test"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert storage_label(make_storage(url)) == url
    assert storage_label(None) == "memory"


def test_a_lost_storage_error_hides_the_password(monkeypatch):
    """The driver's message may quote the URL; tunekit's StorageError does not."""
    from sqlalchemy.exc import OperationalError

    from tunekit.strategies import shared_study

    study = optuna.create_study(storage=make_storage("sqlite:///:memory:"))
    backend = study._storage._backend
    monkeypatch.setattr(backend, "url", UNREACHABLE)
    driver_error = OperationalError("SELECT 1", {}, Exception(f"could not connect {UNREACHABLE}"))
    error = shared_study._storage_error(study, driver_error)
    assert "lost the Optuna storage postgresql://postgres:***@127.0.0.1:1/test" in str(error)
    assert "Run the worker again once the database is reachable" in str(error)
    assert PASSWORD not in shown(error)


@pytest.mark.postgres
def test_a_whole_run_on_a_password_url_never_shows_it(seen, binary_data, tmp_path):
    """Trust authentication ignores the password, so a real run can carry one."""
    url = reachable_postgres_url()
    with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    name = f"secrets-{uuid.uuid4().hex[:12]}"
    try:
        result = tk.search(
            LogisticRegression(),
            *binary_data,
            space=SPACE,
            strategy="optuna",
            storage=with_password,
            study_name=name,
            n_trials=3,
            cv=2,
            verbose=2,  # progress bar and Optuna's own messages
        )
        written = tk.report.write_report(result, tmp_path / "report", plots=False)
        loaded = tk.report.load(with_password, study=name)
        board = tk.report.leaderboard(loaded)
        with pytest.raises(ValueError, match=r"different search space") as info:
            tk.search(
                LogisticRegression(),
                *binary_data,
                space={"C": tk.Float(1.0, 2.0)},
                strategy="optuna",
                storage=with_password,
                study_name=name,
                n_trials=3,
                cv=2,
                verbose=1,
            )
        assert "postgres:***@" in str(info.value)
        files = "\n".join(
            p.read_text(errors="replace") for p in (tmp_path / "report").rglob("*") if p.is_file()
        )
        assert written and files
        everything = seen(
            shown(info.value),
            files,
            repr(result),
            result.leaderboard.to_string(),
            board.to_string(),
            result.cv_results_,
            result.study_.user_attrs,
            [t.user_attrs for t in result.study_.trials],
            [t.system_attrs for t in result.study_.trials],
        )
        assert PASSWORD not in everything
        assert np.isfinite(result.best_score_)
    finally:
        storage = make_storage(url, heartbeat_interval=0)
        if name in optuna.study.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)
