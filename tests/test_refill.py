"""Refilled slots: a running stack seats new members as others leave, each as if alone.

Three levels, on both trainers (``mlp()``'s and any builder's): the trainer's
``turnover`` (:func:`tunekit.engine.train_stack`,
:func:`tunekit.engine.keras_stack.train_group`), the stacked evaluator with a
:class:`~tunekit.evaluators.stacked.refill.Refill`, and an Optuna study's batches.
"""

import logging

import numpy as np
import optuna
import pytest
from _builders import dense
from sklearn.metrics import check_scoring
from sklearn.model_selection import StratifiedKFold

import tunekit as tk
from tunekit.engine import MemberSpec, StackConfig, train_stack
from tunekit.engine import keras_stack as ks
from tunekit.evaluators import StackedEvaluator
from tunekit.space import Space
from tunekit.strategies.optuna_search import OptunaSearchCV

CONFIG = StackConfig(n_features=5, hidden=(6,), activation="relu", n_outputs=1,
                     output_activation="sigmoid", optimizer="adam", batch_size=16)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 5)).astype("float32")
    y = (X[:, 0] + X[:, 3] > 0).astype(int)
    return X, y


def _spec(seed, **kw):
    knobs = {"train_idx": np.arange(70), "epochs": 5, "l2": 1e-3, "dropout": 0.1, **kw}
    return MemberSpec(seed=seed, **knobs)


def _close(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) < 1e-5


def test_a_member_seated_mid_stack_trains_as_in_a_stack_of_its_own(data):
    X, y = data
    Y = y[:, None].astype("float32")
    first = [_spec(1), _spec(2, l2=1e-2, dropout=0.3)]
    # the newcomer has fewer rows, early stopping and its own epochs and knobs
    late = _spec(3, train_idx=np.arange(60), epochs=4, l2=1e-4, dropout=0.2,
                 val_idx=np.arange(60, 75), patience=1)  # fmt: skip
    queue, left = [late], []

    def on_epoch(epoch, params, active):
        return [1] if epoch == 2 else None  # stop member 1 after two epochs

    def turnover(epoch, outcomes):
        left.extend((epoch, m, o) for m, o in outcomes.items())
        return {m: queue.pop() for m in outcomes if queue}

    train_stack(CONFIG, first, X, Y, on_epoch_end=on_epoch, turnover=turnover)
    by_slot = {}
    for epoch, m, outcome in left:
        by_slot.setdefault(m, []).append((epoch, outcome))
    assert [e for e, _ in by_slot[1]] == [2, 2 + by_slot[1][1][1].n_epochs]
    seated = by_slot[1][1][1]
    assert seated.started == 2  # joined after the stack's second epoch
    alone = train_stack(CONFIG, [late], X, Y)
    assert seated.n_epochs == alone.n_epochs[0] and seated.best_epoch == alone.best_epoch[0]
    np.testing.assert_allclose(seated.history["loss"], alone.history["loss"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(seated.history["val_loss"], alone.history["val_loss"][:, 0],
                               rtol=1e-5)  # fmt: skip
    assert _close(seated.weights, alone.weights[0])
    # the member beside it never noticed
    (_, kept), = by_slot[0]
    assert _close(kept.weights, train_stack(CONFIG, [first[0]], X, Y).weights[0])


def test_any_builders_trainer_seats_a_member_mid_stack_as_in_a_stack_of_its_own(data):
    X, y = data
    est = tk.KerasClassifier(dense, epochs=5, batch_size=16, model__dropout=0.1, model__l2=1e-3,
                             random_state=0, verbose=0)  # fmt: skip
    late_params = {"model__dropout": 0.2, "model__l2": 1e-4, "epochs": 4, "early_stopping": 1}
    (group,) = ks.probe(est, [{}, {"model__dropout": 0.3, "model__l2": 1e-2}, late_params], X, y)
    first = [ks.KerasMember(0, np.arange(70), seed=1), ks.KerasMember(1, np.arange(70), seed=2)]
    # the newcomer has fewer rows, early stopping and its own epochs and knobs
    late = ks.KerasMember(2, np.arange(60), val_idx=np.arange(60, 75), seed=3)
    queue, left = [late], []

    def on_epoch(epoch, result):
        if epoch < 2:
            assert result.active.tolist() == [True, True]
        return [1] if epoch == 1 else None  # stop member 1 after two epochs

    def turnover(epoch, outcomes):
        left.extend((epoch, m, o) for m, o in outcomes.items())
        return {m: queue.pop() for m in outcomes if queue}

    ks.train_group(group, first, X, y, on_epoch_end=on_epoch, turnover=turnover)
    by_slot = {}
    for epoch, m, outcome in left:
        by_slot.setdefault(m, []).append((epoch, outcome))
    seated = by_slot[1][1][1]
    assert by_slot[1][0][0] == 2 and seated.started == 2  # joined after the second epoch
    assert by_slot[1][1][0] == 2 + seated.n_epochs
    alone = ks.train_group(group, [late], X, y)
    assert seated.n_epochs == alone.n_epochs[0] and seated.best_epoch == alone.best_epoch[0]
    np.testing.assert_allclose(seated.history["loss"], alone.history["loss"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(seated.history["val_loss"], alone.history["val_loss"][:, 0],
                               rtol=1e-5)  # fmt: skip
    assert _close(seated.weights, alone.weights[0])
    (_, kept), = by_slot[0]  # the member beside it never noticed
    assert _close(kept.weights, ks.train_group(group, [first[0]], X, y).weights[0])
    with pytest.raises(ValueError, match="more training rows than the stack"):
        ks.train_group(group, [ks.KerasMember(0, np.arange(20), epochs=1)], X, y,
                       turnover=lambda e, o: {m: first[0] for m in o})  # fmt: skip


def test_a_member_with_other_random_knobs_is_not_seated(data):
    X, y = data

    def turnover(epoch, outcomes):
        return {m: _spec(4, dropout=0.0) for m in outcomes}  # no dropout: another compiled step

    with pytest.raises(ValueError, match="other random knobs or penalties"):
        train_stack(CONFIG, [_spec(1, epochs=1)], X, y[:, None].astype("float32"),
                    turnover=turnover)  # fmt: skip


class _Source:
    """A refill that stops candidate 1 after its second epoch and then offers ``offers``."""

    def __init__(self, offers):
        self.offers, self.done_order, self.epochs = list(offers), [], {}

    def epoch_end(self, scores):
        for c, (epoch, values) in scores.items():
            self.epochs.setdefault(c, []).append(epoch)
            assert len(values) == 3  # every fold of the candidate, at its own epoch
        return [1] if scores.get(1, (0,))[0] == 2 else []

    def done(self, index, evaluation):
        assert all(entry is not None for entry in evaluation.entries[index])
        self.done_order.append(index)

    def more(self, n, fits):
        out = []
        while self.offers and len(out) < n and fits(self.offers[0]):
            out.append(self.offers.pop(0))
        return out


def _estimator(trainer, epochs):
    """A classifier on ``mlp()``'s trainer, or on any builder's (the same network, built)."""
    if trainer == "mlp":
        return tk.KerasClassifier(tk.builders.mlp, model__hidden=(6,), epochs=epochs,
                                  batch_size=16, random_state=0, verbose=0)  # fmt: skip
    # Keras's RMSprop default of 1e-3 learns too little in 4 epochs to tell trials apart
    return tk.KerasClassifier(dense, model__hidden=6, epochs=epochs, batch_size=16,
                              optimizer__learning_rate=0.02, random_state=0, verbose=0)  # fmt: skip


@pytest.mark.parametrize("trainer", ["mlp", "any"])
def test_the_evaluator_seats_new_candidates_and_scores_them_as_alone(data, trainer):
    X, y = data
    est = _estimator(trainer, 4)
    splits = list(StratifiedKFold(3).split(X, y))
    scorer = check_scoring(est)
    first = [{"model__l2": 1e-3, "model__dropout": 0.1}, {"model__l2": 1e-2, "model__dropout": 0.2}]
    late = {"model__l2": 1e-4, "model__dropout": 0.3, "epochs": 3}
    # another structure waits for a stack of its own (on mlp()'s trainer, so does dropout 0)
    other = {"model__hidden": (4,) if trainer == "mlp" else 4}
    source = _Source([late, other])
    evaluation = StackedEvaluator().evaluate(est, first, splits, X, y, scorers=scorer,
                                             refill=source)  # fmt: skip
    assert evaluation.refilled
    assert evaluation.engines == ["stacked"] * 3
    assert len(evaluation.entries) == 3 and source.offers == [other]
    assert evaluation.started == {2: 2}  # seated after the stack's second epoch
    assert evaluation.pruned == {1: 2}
    assert source.done_order == [1, 0, 2]  # 2 joined at epoch 2 for 3 epochs: it ends last
    assert source.epochs[2] == [1, 2, 3]  # its own epoch count
    alone = StackedEvaluator().evaluate(est, [late], splits, X, y, scorers=scorer)
    for seated, own in zip(evaluation.entries[2], alone.entries[0], strict=True):
        assert seated["test_scores"] == pytest.approx(own["test_scores"])
        assert seated["n_epochs"] == own["n_epochs"] == 3
    curve = [r for r in evaluation.curves if r["candidate"] == 2 and r["fold"] == 0]
    own_curve = [r for r in alone.curves if r["fold"] == 0]
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    np.testing.assert_allclose([r["train_loss"] for r in curve],
                               [r["train_loss"] for r in own_curve], rtol=1e-5)  # fmt: skip


def test_the_evaluator_trains_a_whole_batch_where_one_stack_cannot_hold_it(data, caplog):
    X, y = data
    est = tk.KerasClassifier(tk.builders.mlp, model__hidden=(6,), epochs=2, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    splits = list(StratifiedKFold(2).split(X, y))
    two_structures = [{"model__l2": 1e-3}, {"model__l2": 1e-3, "model__hidden": (4,)}]
    source = _Source([{"model__l2": 1e-4}])
    with caplog.at_level(logging.DEBUG, logger="tunekit"):
        evaluation = StackedEvaluator().evaluate(est, two_structures, splits, X, y,
                                                 scorers=check_scoring(est), refill=source)
    assert not evaluation.refilled and len(evaluation.entries) == 2
    assert source.offers and not source.done_order
    assert "no refilled slots: the batch's candidates make more than one stack" in caplog.text


def _optuna(X, y, refill, pruner=None, n_trials=10, seed=0, trainer="mlp"):
    est = _estimator(trainer, 4)
    space = Space({"model__l2": tk.Float(1e-5, 1e-2, log=True),
                   "model__dropout": tk.Float(0.05, 0.4)})  # fmt: skip
    search = OptunaSearchCV(est, space, cv=2, n_trials=n_trials, refit=False, verbose=0,
                            sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner,
                            trial_batch=3, refill_slots=refill)  # fmt: skip
    return search.fit(X, y)


@pytest.mark.parametrize("trainer", ["mlp", "any"])
def test_optuna_trials_take_free_slots_and_score_as_in_whole_batches(data, caplog, trainer):
    X, y = data
    with caplog.at_level(logging.DEBUG, logger="tunekit"):
        refilled = _optuna(X, y, True, optuna.pruners.NopPruner(), trainer=trainer)
    assert "take free slots of the running stack" in caplog.text
    whole = _optuna(X, y, False, optuna.pruners.NopPruner(), trainer=trainer)
    a, b = refilled.study_.trials, whole.study_.trials
    assert [t.params for t in a] == [t.params for t in b]  # a seeded RandomSampler: same draws
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in a + b)
    for ta, tb in zip(a, b, strict=True):
        assert ta.user_attrs["cv_test_scores"] == pytest.approx(tb.user_attrs["cv_test_scores"])
        assert ta.intermediate_values == {} == tb.intermediate_values  # no pruner: no reports


@pytest.mark.parametrize("trainer", ["mlp", "any"])
def test_optuna_pruning_with_refilled_slots_reports_each_trial_at_its_own_epoch(data, trainer):
    X, y = data
    result = _optuna(X, y, True, optuna.pruners.MedianPruner(n_startup_trials=2), n_trials=12,
                     trainer=trainer)  # fmt: skip
    trials = result.study_.trials
    assert len(trials) == 12
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.PRUNED in states
    for t in trials:  # steps 1.. the trial's own last epoch, whenever it joined the stack
        n = 4 if t.state == optuna.trial.TrialState.COMPLETE else max(t.intermediate_values)
        assert sorted(t.intermediate_values) == list(range(1, n + 1))
        assert t.user_attrs["n_epochs"] == [n, n]


@pytest.mark.parametrize("refill", [True, False])
@pytest.mark.parametrize("trainer", ["mlp", "any"])
def test_entries_come_from_one_pass_and_equal_each_members_own(data, monkeypatch, trainer, refill):
    """On both trainers, the members' entries (refilled slots' hand-overs, or a whole
    stack's end) are scored from one pass over every member's test and train rows, with
    its kept weights (compiled on any builder's trainer, NumPy on mlp()'s): no member
    predicts on its own, and the scores and out-of-fold predictions are those of each
    member's own forward pass."""
    from tunekit.engine.mlp import members as mlp_members
    from tunekit.evaluators.stacked.runs import GroupRun

    X, y = data
    est = _estimator(trainer, 3)
    splits = list(StratifiedKFold(3).split(X, y))
    first = [{"model__l2": 1e-3, "model__dropout": 0.1}, {"model__l2": 1e-2, "model__dropout": 0.2}]
    late = {"model__l2": 1e-4, "model__dropout": 0.3}
    network, method = (
        (mlp_members._NumpyNetwork, "outputs") if trainer == "mlp"
        else (ks.members._KerasNetwork, "_raw")
    )  # fmt: skip
    own = getattr(network, method)
    own_passes = []

    def counted(self, member, X_):
        if not any(X_ is array for array, _ in self.known):
            own_passes.append(len(X_))
        return own(self, member, X_)

    def run():
        evaluator = StackedEvaluator(oof_predictions=True, keep_models=True)
        source = _Source([late]) if refill else None
        return evaluator.evaluate(est, first, splits, X, y, scorers=check_scoring(est),
                                  refill=source)  # fmt: skip

    monkeypatch.setattr(network, method, counted)
    one_pass = run()
    assert own_passes == []
    assert one_pass.refilled == refill and len(one_pass.entries) == (3 if refill else 2)
    for entries in one_pass.entries:
        for entry in entries:  # a kept model holds none of the pass's arrays
            assert entry["model"]._network.known == [] and entry["score_time"] > 0
    monkeypatch.setattr(GroupRun, "known_outputs", lambda self, outputs, slots: {})
    alone = run()  # each member's own pass
    assert len(own_passes) == 3 * len(one_pass.entries) * 3  # test, train, out-of-fold
    for entries in alone.entries:  # the kept models still predict, on their own
        for entry in entries:
            assert entry["model"].predict(X[:4]).shape == (4,)
    for got, want in zip(one_pass.entries, alone.entries, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a["test_scores"] == b["test_scores"]
            assert a["train_scores"] == b["train_scores"]
            if trainer == "mlp":  # NumPy: the very same numbers
                np.testing.assert_array_equal(a["predictions"], b["predictions"])
            np.testing.assert_allclose(a["predictions"], b["predictions"], rtol=1e-5, atol=1e-6)
