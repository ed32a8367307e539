"""Make the report figures shown in docs/report.md (small PNGs in docs/images/).

    python docs/images/report_figures.py

A small Optuna study that overfits: a wide two-layer MLP on 300 noisy rows of
``make_classification``, 60 epochs, L2 and dropout tuned by TPE with median
pruning, 3-fold CV. A validation split (``early_stopping`` with a patience
longer than the run) records the validation loss too, so that the loss panel
shows training and validation parting ways. Takes about two minutes on 2 cores.
"""

import io
import sys
import warnings
from pathlib import Path

import optuna
from PIL import Image
from sklearn.datasets import make_classification

import tunekit as tk
from tunekit.report import plot_epoch_curves, plot_param_importances

OUT = Path(__file__).resolve().parent


def _save(fig, name: str, dpi: int) -> None:
    """A small PNG: 64 colours, optimized."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=64)
    image.save(OUT / name, optimize=True)


def main() -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = make_classification(n_samples=300, n_features=40, n_informative=5, flip_y=0.1,
                               random_state=0)  # fmt: skip
    clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(128, 128), epochs=60, batch_size=16,
                             early_stopping=100, random_state=0, verbose=0)  # fmt: skip
    space = {"model__l2": tk.Float(1e-6, 1e-1, log=True), "model__dropout": tk.Float(0.0, 0.6)}
    result = tk.search(clf, X.astype("float32"), y, space=space, strategy="optuna",
                       n_trials=12, cv=3, test_size=None, baselines=False, verbose=0,
                       random_state=0)  # fmt: skip
    _save(plot_epoch_curves(result, top=2), "report-epoch-curves.png", dpi=80)
    _save(plot_param_importances(result), "report-optuna-importances.png", dpi=60)
    with warnings.catch_warnings():  # Optuna's matplotlib module is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = optuna.visualization.matplotlib.plot_intermediate_values(result.study_)
    _save(axes.figure, "report-optuna-intermediate.png", dpi=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
