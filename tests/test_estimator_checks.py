"""scikit-learn's own estimator checks, run on tunekit's estimators."""

import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

import tunekit as tk

# At most five entries, each with a one-line reason that is true.
EXPECTED_FAILED_CHECKS = {
    "check_estimator_tags_renamed": (
        "scikeras's BaseWrapper, a parent class, still defines the pre-1.6 _more_tags; "
        "tunekit defines __sklearn_tags__, which is what scikit-learn reads"
    ),
    "check_mixin_order": (
        "scikeras's wrappers inherit (BaseWrapper, ClassifierMixin), so BaseEstimator comes "
        "first in the MRO; tunekit sets the classifier/regressor tags explicitly instead"
    ),
    "check_regressor_multioutput": (
        "the regressor predicts in Keras's float type (float32), as scikeras does and as "
        "scikeras's own tests require; scikit-learn wants float64 multi-output predictions"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "under minibatch gradient descent, weighting a sample by 2 is not the same as "
        "repeating it: batches, step counts and shuffles differ"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "the same check on sparse X, which the estimators take: weighting is not repeating "
        "under minibatch gradient descent"
    ),
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


# Short fits: like scikeras, the estimators carry the `poor_score` tag, so the checks test
# behaviour (shapes, classes, determinism, errors) rather than accuracy thresholds. No
# routed model__ kwargs, so that __init__ sets only constructor parameters. run_eagerly
# (scikeras's parameter): on a few dozen rows, tracing Keras's training function is most
# of a fit, and the checks fit several hundred times; every other test trains in graph mode.
ESTIMATORS = [
    tk.KerasClassifier(optimizer="adam", epochs=2, batch_size=16, random_state=0, run_eagerly=True),
    tk.KerasRegressor(optimizer="adam", epochs=2, batch_size=16, random_state=0, run_eagerly=True),
]


def test_expected_failures_are_few_and_explained():
    assert len(EXPECTED_FAILED_CHECKS) <= 5
    assert all(len(reason) > 20 for reason in EXPECTED_FAILED_CHECKS.values())


# The sparse-input checks fit once per sparse format (about ten): 18 to 22 s each, so all four
# (estimator, sparse type) pairs run with -m slow. In the default suite, tests/test_sparse.py
# fits both estimators on sparse matrices and sparse arrays, on both engines and in searches.
# check_classifiers_train on read-only memory maps (float64 and float32 X): 10 s each; the
# default suite runs check_classifiers_train on ordinary arrays, and the regressor's
# check_regressors_train on both read-only memory maps, through the same input checks.
SLOW_CHECKS = {
    ("KerasClassifier", "check_estimator_sparse_matrix"),
    ("KerasClassifier", "check_estimator_sparse_array"),
    ("KerasRegressor", "check_estimator_sparse_matrix"),
    ("KerasRegressor", "check_estimator_sparse_array"),
    ("KerasClassifier", "check_classifiers_train(readonly_memmap=True)"),
    ("KerasClassifier", "check_classifiers_train(readonly_memmap=True,X_dtype=float32)"),
}


def _check_name(check):
    """The check's name, with its keyword arguments as in the test's id."""
    name = getattr(check, "func", check).__name__
    keywords = getattr(check, "keywords", None)
    if keywords:
        name += "(" + ",".join(f"{key}={value}" for key, value in keywords.items()) + ")"
    return name


def _with_slow_marks(decorator):
    """``parametrize_with_checks``'s parameters, the pairs in SLOW_CHECKS marked slow."""
    params = decorator.args[1]
    for i, param in enumerate(params):
        values, marks = (
            (param.values, list(param.marks)) if hasattr(param, "values") else (param, [])
        )
        estimator, check = values
        if (type(estimator).__name__, _check_name(check)) in SLOW_CHECKS:
            params[i] = pytest.param(*values, marks=[*marks, pytest.mark.slow])
    return decorator


@_with_slow_marks(
    parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_the_slow_pairs_are_checks_that_exist():
    """A renamed check would otherwise leave SLOW_CHECKS marking nothing."""
    names = set()
    for estimator in ESTIMATORS:
        for param in estimator_checks_generator(estimator, mark="skip"):
            _, check = param.values if hasattr(param, "values") else param
            names.add((type(estimator).__name__, _check_name(check)))
    assert SLOW_CHECKS <= names


@pytest.mark.parametrize("check_name", sorted(EXPECTED_FAILED_CHECKS))
def test_expected_failures_still_fail(check_name):
    """If scikeras or scikit-learn fix one of these, the entry must go."""
    import sklearn.utils.estimator_checks as checks

    if check_name.startswith("check_sample_weight_equivalence_on_"):
        pytest.skip("statistical check; its failure is covered by the parametrized run")
    check = getattr(checks, check_name)
    estimator = ESTIMATORS[1] if "regressor" in check_name else ESTIMATORS[0]
    with pytest.raises((AssertionError, TypeError)):
        check(type(estimator).__name__, estimator)
