"""The package itself: a cheap import, the public names, the version."""

import subprocess
import sys

import tunekit as tk


def test_import_has_no_heavy_side_effects():
    code = (
        "import sys, tunekit\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'scikeras', 'optuna', 'matplotlib')\n"
        "         if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    for name in tk.__all__:
        assert getattr(tk, name) is not None, name
    assert callable(tk.search)
    assert tk.KerasClassifier.__module__ == "tunekit.estimators"


def test_importing_estimators_does_not_patch_keras_twice():
    import keras

    import tunekit.estimators  # noqa: F401

    # scikeras patches keras.Model.__reduce__ when imported; tunekit adds nothing on top
    assert keras.Model.__reduce__.__module__ == "scikeras._saving_utils"
