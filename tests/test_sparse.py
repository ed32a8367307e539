"""scipy sparse X: the estimators and tk.search take it as scikeras does, without densifying."""

import gc
import logging

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from sklearn.utils import get_tags

import tunekit as tk


def one_hot_classification(n=160, columns=3, levels=12, seed=0):
    """A sparse one-hot X whose class depends on the first column's level."""
    rng = np.random.RandomState(seed)
    codes = rng.randint(0, levels, size=(n, columns))
    y = (codes[:, 0] < levels // 2).astype(int)
    return codes, OneHotEncoder().fit_transform(codes), y


def small_clf(**kwargs):
    settings = dict(model__hidden=(8,), optimizer="adam", epochs=2, batch_size=16,
                    random_state=0)
    return tk.KerasClassifier(**{**settings, **kwargs})


@pytest.mark.parametrize("est", [tk.KerasClassifier(), tk.KerasRegressor()], ids=type)
def test_the_sparse_input_tag_says_true(est):
    assert get_tags(est).input_tags.sparse is True


class Recording(tk.KerasClassifier):
    """Keeps the type of every X its feature encoder receives."""

    seen: list = []

    @property
    def feature_encoder(self):
        def record(X):
            Recording.seen.append(type(X))
            return X

        return FunctionTransformer(record, accept_sparse=True)


def test_the_model_receives_the_sparse_matrix_in_csr_for_every_format():
    _, X, y = one_hot_classification()
    Recording.seen = []
    est = Recording(model__hidden=(8,), epochs=1).fit(X.tocoo(), y)
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr"):
        assert est.predict_proba(X.asformat(fmt)).shape == (len(y), 2)
    assert Recording.seen and all(kind is sp.csr_matrix for kind in Recording.seen)
    est.fit(sp.csr_array(X), y)  # a sparse array stays an array
    assert Recording.seen[-1] is sp.csr_array


def test_sparse_and_dense_predictions_of_one_fit_agree():
    _, X, y = one_hot_classification()
    est = small_clf().fit(X, y)
    dense = X.toarray().astype("float32")
    np.testing.assert_allclose(est.predict_proba(X), est.predict_proba(dense), atol=1e-6)
    assert est.score(X, y) == est.score(dense, y)


def test_non_finite_stored_values_are_refused_before_training():
    _, X, y = one_hot_classification()
    X = X.tocsr(copy=True)
    X.data[[3, 7]] = [np.nan, np.inf]
    est = small_clf()
    with pytest.raises(ValueError, match=r"contains NaN or infinity \(1 NaN, 1 infinite stored"):
        est.fit(X, y)
    assert not hasattr(est, "history_")


def test_a_sparse_x_of_another_width_is_refused_at_predict():
    _, X, y = one_hot_classification()
    est = small_clf(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"X has 35 features, but KerasClassifier is expecting 36"):
        est.predict(X[:, :35])


# ---------------------------------------------------------------- inside tk.search
SPACE = {"model__l2": [0.0, 0.01]}


def search(estimator, X, y, engine, space=SPACE, **kwargs):
    return tk.search(estimator, X, y, space=space, strategy="grid", cv=2, engine=engine,
                     verbose=0, **kwargs)


# the standard path's Keras fits on sparse X: about 19 s on 2 cores, with -m slow in CI; the
# engine's run stays in the default suite
@pytest.mark.parametrize("engine", [pytest.param("sklearn", marks=pytest.mark.slow), "stacked"])
def test_sparse_classification_inside_search_on_both_engines(engine, recwarn):
    _, X, y = one_hot_classification()
    # the engine's held-out refits of the runners-up train as one stack of sparse X; on the
    # standard path they are fits like the chosen one's: one refit there, one fit fewer
    result = search(small_clf(), X, y, engine, refit_top=1 if engine == "sklearn" else 3)
    assert result.engine_ == engine
    scores = result.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    assert result.best_estimator_.predict(X).shape == (len(y),)
    assert result.heldout_score_ is not None and 0.0 <= result.heldout_score_ <= 1.0
    assert not [w for w in recwarn if "Scoring failed" in str(w.message)]
    curves = result.epoch_curves_  # per-epoch scores of the sparse test folds
    if curves is not None:
        assert np.all(np.isfinite(curves["test_score"]))
    board = result.leaderboard  # the linear baseline scales the sparse X without centering
    assert "baseline:logistic" in list(board.index)
    # the same split and folds; only the CV scores are compared: one refit, no baselines
    dense = search(small_clf(), X.toarray().astype("float32"), y, engine, refit_top=1,
                   baselines=False)  # fmt: skip
    np.testing.assert_allclose(scores, dense.cv_results_["mean_test_score"], atol=1e-6)


def test_the_stacked_engine_densifies_one_batch_as_the_dense_gather_would():
    from keras import ops

    from tunekit.engine.mlp.sparse_rows import dense_rows, padded_rows

    _, X, _ = one_hot_classification(n=40)
    X = X.tocsr(copy=True)
    X.data *= np.linspace(0.5, 2.0, X.nnz)  # stored values other than 1 survive the round trip
    rows = np.array([[0, 5, 5, 39], [7, 1, 2, 3]], dtype="int32")  # (members, batch)
    got = ops.convert_to_numpy(dense_rows(padded_rows(X), ops.convert_to_tensor(rows), 36))
    np.testing.assert_allclose(got, X.toarray()[rows], rtol=1e-6)
    # rows of unequal length (one empty) and a column stored twice, which CSR adds up
    odd = sp.csr_matrix((np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
                         np.array([2, 2, 0, 1]), np.array([0, 2, 2, 4])), shape=(3, 4))
    rows = np.array([[0, 1, 2]], dtype="int32")
    got = ops.convert_to_numpy(dense_rows(padded_rows(odd), ops.convert_to_tensor(rows), 4))
    np.testing.assert_allclose(got[0], [[0, 0, 3, 0], [0, 0, 0, 0], [3, 4, 0, 0]])


def test_a_pipeline_whose_encoder_gives_sparse_output_stacks():
    codes, _, y = one_hot_classification()
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"), small_clf())
    space = {"kerasclassifier__model__l2": [0.0, 0.01]}
    result = search(pipe, codes, y, "stacked", space=space)
    assert result.engine_ == "stacked"
    assert np.all(np.isfinite(result.cv_results_["mean_test_score"]))


def test_above_the_memory_cap_sparse_x_takes_the_standard_path_and_says_why(
    monkeypatch, caplog
):
    import tunekit.engine.mlp.sparse_rows as sparse_rows

    _, X, y = one_hot_classification()
    # 2 candidates x 2 folds x 16 rows x 36 features x 4 B = 9 KiB a batch; allow 4 KiB
    monkeypatch.setattr(sparse_rows, "MAX_DENSE_BATCH_BYTES", 4096)
    with caplog.at_level(logging.INFO, logger="tunekit"):  # the folds only: no refits
        result = search(small_clf(), X, y, "auto", test_size=None, baselines=False)
    assert result.engine_ == "sklearn"
    assert np.all(np.isfinite(result.cv_results_["mean_test_score"]))
    said = [r.getMessage() for r in caplog.records if "take the standard path" in r.getMessage()]
    assert said and "above the stacked engine's cap of 0 MiB for sparse X" in said[0]
    with pytest.raises(ValueError, match=r"engine='stacked' cannot stack candidate 0.*"
                                         r"densified batch of 4 members x 16 rows x 36 features"):
        search(small_clf(), X, y, "stacked")


def _any_builder(meta, compile_kwargs):
    import keras

    inputs = keras.Input((meta["n_features_in_"],))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer=compile_kwargs["optimizer"])
    return model


def test_a_builder_other_than_mlp_on_sparse_x_takes_the_standard_path_and_says_why(caplog):
    _, X, y = one_hot_classification()
    est = tk.KerasClassifier(_any_builder, epochs=1, batch_size=16, random_state=0)
    with caplog.at_level(logging.INFO, logger="tunekit"):
        result = search(est, X, y, "auto", space={"optimizer": ["adam"]},
                        test_size=None, baselines=False)  # fmt: skip
    assert result.engine_ == "sklearn"
    assert any("scipy sparse matrix, which only the mlp() trainer" in r.getMessage()
               for r in caplog.records)


# ---------------------------------------------------------------- memory
def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.slow
def test_a_sparse_fit_makes_no_dense_copy_of_x():
    """100,000 rows x 20,000 one-hot columns: 8 GB as dense float32, 24 MB as CSR."""
    n, columns, levels = 100_000, 20, 1_000
    rng = np.random.RandomState(0)
    codes = rng.randint(0, levels, size=(n, columns))
    indices = (codes + levels * np.arange(columns)).astype(np.int32).ravel()
    indptr = np.arange(0, n * columns + 1, columns, dtype=np.int32)
    X = sp.csr_matrix((np.ones(n * columns, dtype=np.float32), indices, indptr),
                      shape=(n, columns * levels))
    y = (codes[:, 0] < levels // 2).astype(np.float32)
    dense_bytes = n * columns * levels * 4
    assert dense_bytes == 8_000_000_000
    # one tiny fit first, so that TensorFlow's one-time start-up is not counted as growth
    tk.KerasRegressor(model__hidden=(8,), epochs=1).fit(X[:64], y[:64])
    gc.collect()
    before = _rss_bytes()
    est = tk.KerasRegressor(model__hidden=(8,), epochs=1, batch_size=1024, random_state=0)
    est.fit(X, y)
    growth = _rss_bytes() - before
    print(f"RSS growth during the fit: {growth / 2**20:.0f} MiB "
          f"(dense X: {dense_bytes / 2**30:.1f} GiB)")
    assert growth < dense_bytes / 16  # well under the dense size: under 500 MB
    assert est.predict(X[:1000]).shape == (1000,)
