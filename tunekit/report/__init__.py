"""Reports: rank candidates by honest out-of-sample scores, test, plot and write them.

``import tunekit.report`` is cheap: matplotlib, Optuna, SciPy and SQLAlchemy
are imported only by the functions that need them, and TensorFlow/Keras never.

Main entry points
-----------------
leaderboard
    Every candidate of a search (a tunekit result, any fitted scikit-learn
    ``*SearchCV`` or an Optuna study) ranked best first, with standard
    errors, corrected 95% intervals, the train/validation gap, the corrected
    t-test against the best and the one-standard-error pick.
compare
    Several searches on the same data side by side.
load, write, render, write_report
    Read results back (storage URLs, result directories; never pickles) and
    write Markdown, self-contained HTML, CSV and JSON, atomically.
plot_*
    Per-epoch training and validation curves of the CV folds and of the
    refit candidates, score by hyperparameter, the overfitting gap, Optuna's
    history and parameter importances, the best candidate's out-of-fold
    diagnostics.
result_text, result_html
    What a search result shows in a terminal and in a notebook.
resolve, atomic_write_text
    A result, study or search as the one source every table reads; a text file
    written atomically (for the study runner's summary).
"""

from tunekit.exceptions import ReportError
from tunekit.record import cv_results_from_study
from tunekit.report._curves import plot_epoch_curves
from tunekit.report._diagnostics import plot_diagnostics
from tunekit.report._io import atomic_write_text as atomic_write_text
from tunekit.report._leaderboard import STAT_COLUMNS, baseline_summary, compare, leaderboard
from tunekit.report._load import load
from tunekit.report._optuna_plots import plot_param_importances
from tunekit.report._plots import (
    plot_learning_curves,
    plot_optuna_history,
    plot_overfitting_gap,
    plot_param_scores,
)
from tunekit.report._result_view import result_html as result_html
from tunekit.report._result_view import result_text as result_text
from tunekit.report._source import LoadedResult
from tunekit.report._source import resolve as resolve
from tunekit.report._stats import DEFAULT_REGULARIZATION, CorrectedTTest, corrected_ttest
from tunekit.report._table import Leaderboard
from tunekit.report._writers import FORMATS, render, write, write_report
from tunekit.storage.urls import redact_url

# result_text and result_html are how a SearchResult shows itself (print, notebooks), resolve
# and atomic_write_text serve the study runner; they
# are public for that, and left out of __all__, which lists what users call.

__all__ = [
    "DEFAULT_REGULARIZATION",
    "FORMATS",
    "STAT_COLUMNS",
    "CorrectedTTest",
    "Leaderboard",
    "LoadedResult",
    "ReportError",
    "baseline_summary",
    "compare",
    "corrected_ttest",
    "cv_results_from_study",
    "leaderboard",
    "load",
    "plot_diagnostics",
    "plot_epoch_curves",
    "plot_learning_curves",
    "plot_optuna_history",
    "plot_overfitting_gap",
    "plot_param_importances",
    "plot_param_scores",
    "redact_url",
    "render",
    "write",
    "write_report",
]
