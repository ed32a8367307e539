"""Step 3, one technique at a time: which way of delaying overfitting helps here?

Each technique of the lecture is tried alone against the same unregularized network
(Dense(64)-Dense(64), rmsprop, batch size 32): an L2 penalty (Listing 5.13's 0.002), L1,
dropout 0.5, Gaussian noise on the inputs or on the activations, label smoothing, weight
noise, batch sizes from 16 to 512, and early stopping. The summary ranks them by their
held-out score; the report adds cross-validation statistics (corrected t-test vs the best).
"""

import sys

import tunekit as tk
from tunekit import cli, datasets, workflow

BASELINE = {
    **{f"model__{k}": 0.0 for k in ("l2", "l1", "dropout", "noise", "activation_noise")},
    **{"model__label_smoothing": 0.0, "model__weight_noise": 0.0},
    **{"batch_size": 32, "early_stopping": None},
}
TECHNIQUES = {
    "L2 0.002": {"model__l2": 0.002},
    "L1 0.0005": {"model__l1": 0.0005},
    "dropout 0.5": {"model__dropout": 0.5},
    "input noise 0.1": {"model__noise": 0.1},
    "activation noise 0.1": {"model__activation_noise": 0.1},
    "label smoothing 0.1": {"model__label_smoothing": 0.1},
    "weight noise 0.05": {"model__weight_noise": 0.05},
    **{f"batch size {b}": {"batch_size": b} for b in (16, 64, 128, 256, 512)},
    "early stopping (patience 5)": {"early_stopping": 5},
}


def main(argv=None) -> int:
    opts = cli.study_options(
        "regularization", argv, description=__doc__, data=("breast_cancer", "wine", "digits")
    )
    X, y = datasets.load(opts.data, n_samples=opts.pick(90, None, None), random_state=opts.seed)
    clf = tk.KerasClassifier(
        tk.builders.mlp,
        model__hidden=opts.pick((8,), (64, 64), (64, 64)),
        epochs=opts.pick(2, 20, 100),
        random_state=opts.seed,
    )
    plan = workflow.one_at_a_time(BASELINE, TECHNIQUES)
    return cli.study_main(
        opts, clf, X, y, plan=plan, scale=True, cv=opts.pick(2, 3, 5), rank_by="heldout"
    )


if __name__ == "__main__":
    sys.exit(main())
