"""Refits after a search on the engine: the held-out refits and an ensemble's members
train together as one stack, and behave as the Keras refits they replace.

What is checked on tiny data: which path trains them (the engine after an engine
search, Keras after ``engine="sklearn"``), that a kept member is trained on every
search row and gives the score recorded for it, that the refits' histories and fit
counts are kept, that a pipeline (whose member reads transformed rows) falls back to
its own fit, and that an ensemble of members predicts as the weighted average of
its members and refits with Keras when fitted again.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, check_scoring
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import tunekit as tk
from tunekit import api, ensembles
from tunekit.engine.members import StackedMemberClassifier
from tunekit.evaluators.refits import refit_together

EPOCHS = 3


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def _estimator(**kwargs):
    return tk.KerasClassifier(tk.builders.mlp, model__hidden=(6,), epochs=EPOCHS,
                              batch_size=16, verbose=0, random_state=0, **kwargs)  # fmt: skip


SPACE = {"model__l2": tk.Choice([0.0, 1e-3, 1e-2])}


def test_members_trained_together_score_what_they_predict():
    X, y = _data()
    X_search, y_search, X_test, y_test = X[:90], y[:90], X[90:], y[90:]
    candidates = [{"model__l2": 0.0}, {"model__l2": 0.01}]
    done = refit_together(_estimator(), candidates, X_search, y_search, X_test, y_test,
                          scoring="accuracy")  # fmt: skip
    assert [d.engine for d in done] == ["stacked", "stacked"]
    for d in done:
        assert isinstance(d.model, StackedMemberClassifier) and d.error is None
        assert d.model.n_epochs_ == EPOCHS and d.model.n_features_in_ == 5
        assert d.score == pytest.approx(accuracy_score(y_test, d.model.predict(X_test)))
        assert len(d.history["loss"]) == EPOCHS and np.isfinite(d.history["loss"]).all()
    # different weights, not one model twice
    assert not np.allclose(done[0].model.weights_[0], done[1].model.weights_[0])


def test_a_pipeline_keeps_no_engine_member_and_a_plain_estimator_keeps_its_fit():
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), _estimator())
    (d,) = refit_together(pipe, [{"kerasclassifier__model__l2": 0.0}], X[:90], y[:90],
                          X[90:], y[90:])  # fmt: skip
    assert d.engine == "stacked" and d.model is None and np.isfinite(d.score)
    (d,) = refit_together(LogisticRegression(), [{"C": 1.0}], X[:90], y[:90], X[90:], y[90:])
    assert d.engine == "sklearn" and d.model.coef_.shape == (1, 5)
    assert d.score == pytest.approx(d.model.score(X[90:], y[90:]))


def _spy(monkeypatch):
    calls = []
    real = api.refit_together

    def spy(estimator, candidates, *args, **kwargs):
        calls.append(list(candidates))
        return real(estimator, candidates, *args, **kwargs)

    monkeypatch.setattr(api, "refit_together", spy)
    return calls


# after engine="sklearn" (each refit a Keras fit): about 11 s on 2 cores, with -m slow in CI
@pytest.mark.parametrize("engine", ["auto", pytest.param("sklearn", marks=pytest.mark.slow)])
def test_heldout_refits_train_on_the_engine_after_an_engine_search(engine, monkeypatch):
    X, y = _data()
    calls = _spy(monkeypatch)
    result = tk.search(_estimator(), X, y, space=SPACE, cv=2, refit_top=3, test_size=0.25,
                       baselines=False, engine=engine, verbose=0)  # fmt: skip
    held = np.asarray(result.cv_results_["heldout_test_score"], dtype=float)
    assert np.isfinite(held).sum() == 3
    assert held[result.best_index_] == pytest.approx(result.heldout_score_)
    others = [p for i, p in enumerate(result.cv_results_["params"]) if i != result.best_index_]
    # the chosen candidate is the Keras refit (best_estimator_); only the others train again
    assert calls == ([others] if engine == "auto" else [])
    assert sorted(result.histories_) == [0, 1, 2]
    assert all(len(h["loss"]) == EPOCHS for h in result.histories_.values())
    assert result.n_fits_ == 1 + 3 * 2 + 2


def test_a_refit_that_diverges_is_a_failure_with_its_reason_not_an_exception():
    X, y = _data()
    candidates = [{"optimizer__learning_rate": 1e20}, {"optimizer__learning_rate": 1e-3}]
    bad, good = refit_together(_estimator(), candidates, X[:90], y[:90], X[90:], y[90:])
    assert bad.model is None and np.isnan(bad.score)
    assert "DivergedError: training diverged" in bad.error
    assert "the learning rate 1e+20 is far too large" in bad.error
    assert good.error is None and np.isfinite(good.score)


def test_an_ensemble_after_an_engine_search_averages_members_trained_together(monkeypatch):
    X, y = _data()
    seen = []
    real = ensembles.refit_together
    monkeypatch.setattr(ensembles, "refit_together",
                        lambda *a, **k: seen.append(a[1]) or real(*a, **k))  # fmt: skip
    space = {"model__l2": tk.Choice([0.0, 1e-3, 1e-2, 1e-1]),
             "model__hidden": tk.Choice([(2,), (6,)])}
    result = tk.search(_estimator(), X, y, space=space, cv=2, refit_top=1, test_size=0.25,
                       baselines=False, verbose=0, ensemble=8)  # fmt: skip
    est, weights = result.ensemble_, result.ensemble_weights_
    rows = weights["row"].to_numpy()
    for row, member in zip(rows, est.estimators_, strict=True):
        if row == result.best_index_:
            assert member is result.best_estimator_
        else:
            assert isinstance(member, StackedMemberClassifier)
    if len(rows) > 1:  # the others trained in one call, once each
        assert len(seen) == 1 and len(seen[0]) == sum(r != result.best_index_ for r in rows)
    X_test = result.data_.X_test
    blend = sum(w * m.predict_proba(X_test) for w, m in zip(weights["weight"], est.estimators_,
                                                          strict=True))  # fmt: skip
    np.testing.assert_allclose(est.predict_proba(X_test), blend, rtol=1e-5, atol=1e-6)
    scorer = check_scoring(result.data_.estimator)
    assert result.ensemble_scores_.loc["ensemble", "heldout_score"] == pytest.approx(
        scorer(est, X_test, result.data_.y_test)
    )
    # fitting the ensemble again refits every member the standard way
    refit = clone(est).fit(X[:40], y[:40])
    assert all(isinstance(m, (tk.KerasClassifier, Pipeline)) for m in refit.estimators_)
    assert refit.predict(X_test).shape == (len(X_test),)
