"""Step 1: grow the network until it overfits a small subset; watch the curves diverge.

The lecture's first step is "get your model to overfit on training data (always possible)".
On 200 handwritten digits the hidden layers grow rung by rung, from 1 unit to two layers of
256, until the mean training accuracy reaches 0.99: then capacity is not the problem. Every
fit also records its loss on 1,000 other digits, so the report's learning curves show the
training and validation losses diverging, and its gap plot shows the training score leaving
the validation score behind as capacity grows.
"""

import sys

from sklearn.model_selection import train_test_split

import tunekit as tk
from tunekit import cli, datasets, workflow

LADDER = [(1,), (2,), (4,), (8,), (16,), (32,), (64, 64), (256, 256)]


def main(argv=None) -> int:
    opts = cli.study_options("overfit_first", argv, description=__doc__)
    X, y = datasets.load("digits")
    X_sub, X_val, y_sub, y_val = train_test_split(
        X, y, train_size=opts.pick(60, 200, 400), stratify=y, random_state=opts.seed
    )
    clf = tk.KerasClassifier(
        tk.builders.mlp,
        optimizer="adam",
        optimizer__learning_rate=0.005,
        epochs=opts.pick(2, 60, 200),
        validation_batch_size=1000,  # the validation curve in one step per epoch
        metrics=["accuracy"],
        random_state=opts.seed,
    )
    curves = {"validation_data": (X_val[:1000], y_val[:1000])}  # per-epoch validation loss
    plan = workflow.capacity_ladder(LADDER)
    return cli.study_main(
        opts,
        clf,
        X_sub,
        y_sub,
        plan=plan,
        until_train_score=0.99,
        cv=opts.pick(2, 3, 3),
        fit_params=curves,
    )


if __name__ == "__main__":
    sys.exit(main())
