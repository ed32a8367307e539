"""tunekit: tune and cross-validate Keras models the scikit-learn way.

Importing ``tunekit`` is cheap and has no side effects: TensorFlow, Keras and
scikeras are imported on first use of a name that needs them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from tunekit._version import __version__

__all__ = [
    "Choice",
    "Float",
    "Int",
    "KerasClassifier",
    "KerasRegressor",
    "SearchResult",
    "Space",
    "TunekitError",
    "__version__",
    "builders",
    "datasets",
    "ensemble",
    "report",
    "search",
    "spaces",
    "workflow",
]

# name -> module that defines it; resolved on first access (PEP 562).
_LAZY = {
    "KerasClassifier": "tunekit.estimators",
    "KerasRegressor": "tunekit.estimators",
    "Float": "tunekit.space",
    "Int": "tunekit.space",
    "Choice": "tunekit.space",
    "Space": "tunekit.space",
    "search": "tunekit.api",
    "ensemble": "tunekit.ensembles",
    "SearchResult": "tunekit.results",
    "TunekitError": "tunekit.exceptions",
}
_SUBMODULES = {
    "evaluators",
    "builders",
    "datasets",
    "report",
    "spaces",
    "workflow",
    "engine",
    "strategies",
    "space",
}


# names whose modules import Keras: imported without TensorFlow's start-up lines. ``search``
# is not one: a search of a scikit-learn estimator never starts TensorFlow, and a Keras
# estimator has imported Keras (quietly, through the names above) before it reaches a search.
_KERAS = {"KerasClassifier", "KerasRegressor", "builders", "workflow", "engine"}


def __getattr__(name):
    if name in _KERAS:
        # start-up: the quiet import of Keras loads with the first name that needs it
        from tunekit._quiet import import_keras

        import_keras()
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"tunekit.{name}")
    else:
        raise AttributeError(f"module 'tunekit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    from tunekit import builders, datasets, report, spaces, workflow
    from tunekit.api import search
    from tunekit.estimators import KerasClassifier, KerasRegressor
    from tunekit.exceptions import TunekitError
    from tunekit.results import SearchResult
    from tunekit.space import Choice, Float, Int, Space
