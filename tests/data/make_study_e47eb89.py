"""Write ``study_e47eb89.sql``: a small study made by tunekit at commit e47eb89.

Run with that commit's package on the path (``git worktree add /tmp/e47 e47eb89``)::

    PYTHONPATH=/tmp/e47 python tests/data/make_study_e47eb89.py

The dump holds two studies in one SQLite database: ``keras`` (a tiny
``KerasClassifier``, trained in batches on the stacked engine, with the
baselines; three of its four trials are pruned) and ``sklearn`` (a logistic
regression, one trial at a time, one candidate failing).
``tests/test_record.py`` loads, reports on and resumes it.
"""

import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna

import tunekit as tk

OUT = Path(__file__).with_name("study_e47eb89.sql")


def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = data()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/study.db"
        clf = tk.KerasClassifier(
            tk.builders.mlp, model__hidden=(4,), epochs=4, batch_size=16, random_state=0,
            verbose=0,
        )
        tk.search(
            clf, X, y, space={"optimizer__learning_rate": tk.Float(1e-4, 0.3, log=True)},
            strategy="optuna", n_trials=4, cv=2, test_size=None, storage=url, study_name="keras",
            pruner=optuna.pruners.ThresholdPruner(lower=0.62, n_warmup_steps=1),
            random_state=0, verbose=0,
        )
        from sklearn.linear_model import LogisticRegression

        tk.search(
            LogisticRegression(max_iter=200), X, y, space={"C": tk.Choice([0.5, -1.0, 2.0])},
            strategy="optuna", n_trials=2, cv=2, test_size=None, storage=url,
            study_name="sklearn", baselines=False, random_state=0, verbose=0,
        )
        with sqlite3.connect(f"{tmp}/study.db") as con:
            text = "\n".join(con.iterdump()) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} characters)", file=sys.stderr)


if __name__ == "__main__":
    main()
