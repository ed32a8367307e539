"""The trial record: a study made by tunekit at e47eb89 loads, reports and resumes today.

``tests/data/study_e47eb89.sql`` is an SQL text dump of a small study that
``tests/data/make_study_e47eb89.py`` made with the code at commit e47eb89:
the study ``keras`` (a tiny ``KerasClassifier`` trained in batches on the
stacked engine, three of its four trials pruned, with the baselines) and the
study ``sklearn`` (a logistic regression, one trial at a time, one candidate
failing). The database is rebuilt from the dump in a temporary folder.
"""

import json
import sqlite3

import numpy as np
import optuna
import pytest
from _studies import restore_old_study
from sklearn.linear_model import LogisticRegression

import tunekit as tk
from tunekit.report import leaderboard, load, write_report

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.filterwarnings("ignore:.*candidates failed and rank last")



def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


@pytest.fixture
def old_study(tmp_path):
    return restore_old_study(tmp_path)


def _stored(url, study_name):
    """``{trial number: {key: value}}`` of a study's trial user attributes, read as SQL."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        rows = con.execute(
            "SELECT t.number, a.key, a.value_json FROM trial_user_attributes a "
            "JOIN trials t ON t.trial_id = a.trial_id JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = ?",
            (study_name,),
        ).fetchall()
    out: dict[int, dict] = {}
    for number, key, value in rows:
        out.setdefault(number, {})[key] = json.loads(value)
    return out


def test_the_old_study_loads_with_its_states_and_records(old_study):
    keras = load(old_study, study="keras")
    cv = tk.report.cv_results_from_study(keras)
    assert list(cv["state"]) == ["PRUNED", "COMPLETE", "PRUNED", "PRUNED"]
    assert list(cv["trial_number"]) == [0, 1, 2, 3]
    assert np.isfinite(cv["mean_test_score"][1]) and np.isnan(cv["mean_test_score"][0])
    assert cv["split0_best_epoch"].tolist() == [1.0, 4.0, 1.0, 1.0]  # pruned after epoch 1
    assert "split1_train_score" in cv
    sklearn = tk.report.cv_results_from_study(load(old_study, study="sklearn"))
    assert list(sklearn["state"]) == ["FAIL", "COMPLETE"]
    assert "InvalidParameterError" in sklearn["failure_reason"][0]
    assert sklearn["params"] == [{"C": -1.0}, {"C": 2.0}]
    assert np.isnan(sklearn["split0_best_epoch"]).all()


def test_the_old_study_is_reported(old_study, tmp_path):
    lb = leaderboard(load(old_study, study="keras"))
    assert lb.index[0] == 1 and lb.loc[1, "state"] == "COMPLETE"
    assert lb.attrs["scoring"] == "accuracy"
    assert "baseline:dummy" in leaderboard(load(old_study, study="keras"), baselines=True).index
    written = write_report(load(old_study, study="sklearn"), tmp_path / "report", plots=False)
    assert {"md", "html", "csv", "json"} <= set(written)
    out = tmp_path / "report"
    text = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "InvalidParameterError" in text
    assert json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))["rows"]


def test_the_old_study_resumes_with_only_the_missing_trials(old_study):
    X, y = _data()
    before = _stored(old_study, "sklearn")
    result = tk.search(
        LogisticRegression(max_iter=200), X, y, space={"C": tk.Choice([0.5, -1.0, 2.0])},
        strategy="optuna", n_trials=2, cv=2, test_size=None, storage=old_study,
        study_name="sklearn", baselines=False, random_state=0, verbose=0,
    )  # fmt: skip
    assert len(result.study_.get_trials()) == 3  # one finished trial was missing: one trial
    after = _stored(old_study, "sklearn")
    assert {n: after[n] for n in before} == before  # the old trials are left as they were
    assert list(result.cv_results_["trial_number"]) == [0, 1, 2]


def test_the_old_batched_study_resumes_with_only_the_missing_trials(old_study):
    X, y = _data()
    before = _stored(old_study, "keras")
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=4, batch_size=16, random_state=0, verbose=0
    )
    result = tk.search(
        clf, X, y, space={"optimizer__learning_rate": tk.Float(1e-4, 0.3, log=True)},
        strategy="optuna", n_trials=6, cv=2, test_size=None, storage=old_study,
        study_name="keras", random_state=0, verbose=0,
    )  # fmt: skip
    trials = result.study_.get_trials()
    assert len(trials) == 6  # four finished trials were there: two more
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    after = _stored(old_study, "keras")
    assert {n: after[n] for n in before} == before
    assert result.baselines_ is not None


def _layout(attrs: dict) -> dict:
    """Each key's JSON type, and the element types of lists."""

    def kind(value):
        if isinstance(value, list):
            return ("list", tuple(sorted({type(v).__name__ for v in value})))
        if isinstance(value, dict):
            return ("dict", tuple(sorted(value)))
        return type(value).__name__

    return {k: kind(v) for k, v in attrs.items() if k not in ("failure_traceback",)}


def test_new_trials_keep_the_stored_layout(old_study, tmp_path):
    """Trials written now have the keys and value types of those written at e47eb89."""
    X, y = _data()
    old = _stored(old_study, "sklearn")
    url = f"sqlite:///{tmp_path / 'new.db'}"
    tk.search(
        LogisticRegression(max_iter=200), X, y, space={"C": tk.Choice([0.5, -1.0, 2.0])},
        strategy="optuna", n_trials=2, cv=2, test_size=None, storage=url,
        study_name="sklearn", baselines=False, random_state=0, verbose=0,
    )  # fmt: skip
    new = _stored(url, "sklearn")
    for attrs in new.values():
        attrs.pop("oof_predictions", None)  # a new key that older readers ignore
    assert {n: _layout(a) for n, a in new.items()} == {n: _layout(a) for n, a in old.items()}
    assert 0 < len(new[0]["failure_traceback"]) <= 4000


def test_new_batched_trials_keep_the_stored_layout(old_study, tmp_path):
    X, y = _data()
    old = _stored(old_study, "keras")
    url = f"sqlite:///{tmp_path / 'new.db'}"
    clf = tk.KerasClassifier(
        tk.builders.mlp, model__hidden=(4,), epochs=4, batch_size=16, random_state=0, verbose=0
    )
    tk.search(
        clf, X, y, space={"optimizer__learning_rate": tk.Float(1e-4, 0.3, log=True)},
        strategy="optuna", n_trials=4, cv=2, test_size=None, storage=url, study_name="keras",
        pruner=optuna.pruners.ThresholdPruner(lower=0.62, n_warmup_steps=1),
        random_state=0, verbose=0,
    )  # fmt: skip
    new = _stored(url, "keras")
    for attrs in new.values():
        attrs.pop("tunekit_worker")  # written since the heartbeats on the batched path
        attrs.pop("oof_predictions", None)  # a new key that older readers ignore
        curves = attrs.pop("epoch_curves")  # stored layout 2: a key layout-1 readers ignore
        assert set(curves) == {"train_loss", "test_score"}
        assert all(isinstance(v, float) for fold in curves["train_loss"] for v in fold)
    assert {n: _layout(a) for n, a in new.items()} == {n: _layout(a) for n, a in old.items()}


def test_jsonable_values():
    from tunekit.record import jsonable, param_value

    value = {"a": (1, np.int64(2)), "b": np.float32(0.5), "c": float("nan"), "d": np.bool_(True)}
    assert jsonable(value) == {"a": [1, 2], "b": 0.5, "c": None, "d": True}
    assert jsonable(np.ma.MaskedArray([1.0, 2.0], mask=[False, True])) == [1.0, None]
    assert jsonable(LogisticRegression()) == "LogisticRegression()"
    assert param_value(jsonable((16, (8, 4)))) == (16, (8, 4))


def test_the_writer_keeps_the_layout_and_cuts_the_traceback():
    from tunekit.record import FOLD_KEYS, TRACEBACK_CHARS, TrialRecord

    record = TrialRecord()
    record.add_fold(test_score=0.5, fit_time=1, score_time=0.1, best_epoch=np.nan, n_epochs=3)
    record.add_fold(test_score=float("inf"), fit_time=2, score_time=0.2, n_epochs=4.0)
    attrs = record.attrs(epochs_spent=record.epochs_spent(), traceback_text="x" * 5000 + "\nE: y")
    assert list(attrs)[: len(FOLD_KEYS)] == list(FOLD_KEYS)
    assert attrs["cv_test_scores"] == [0.5, None]
    assert attrs["cv_train_scores"] == [None, None]
    assert attrs["best_epochs"] == [None, None] and attrs["fit_times"] == [1.0, 2.0]
    assert attrs["epochs_spent"] == 7.0
    assert attrs["failure_reason"] == "E: y"
    assert len(attrs["failure_traceback"]) == TRACEBACK_CHARS
    assert attrs["failure_traceback"].endswith("E: y")
    curve = TrialRecord(keys=("cv_test_scores", "fit_times"))
    curve.add_fold(test_score=0.7, fit_time=1.0, score_time=0.0)
    assert curve.attrs(reason="ValueError: no") == {
        "cv_test_scores": [0.7], "fit_times": [1.0], "failure_reason": "ValueError: no"
    }
    with pytest.raises(ValueError, match="keys must be among"):
        TrialRecord(keys=("cv_scores",))


def test_masked_parameters_are_written_as_null_and_read_back(tmp_path):
    """A parameter that only some candidates have (a list of grids) is null in JSON."""
    from tunekit.report import write_report

    params = [{"C": 1.0}, {"C": 2.0, "tol": 0.1}]
    tol = np.ma.MaskedArray(np.empty(2, dtype=float), mask=True)
    tol[1] = 0.1
    cv = {
        "params": params, "param_C": np.ma.MaskedArray([1.0, 2.0]), "param_tol": tol,
        "split0_test_score": np.array([0.5, 0.6]), "split1_test_score": np.array([0.7, 0.8]),
        "mean_test_score": np.array([0.6, 0.7]), "std_test_score": np.array([0.1, 0.1]),
        "rank_test_score": np.array([2, 1]),
    }  # fmt: skip
    write_report(cv, tmp_path, formats=("json",), plots=False)
    stored = json.loads((tmp_path / "cv_results.json").read_text(encoding="utf-8"))
    assert stored["cv_results"]["param_tol"] == [None, 0.1]
    back = load(tmp_path / "cv_results.json").cv_results_["param_tol"]
    assert back.mask.tolist() == [True, False] and back[1] == 0.1
